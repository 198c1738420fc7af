use async_trait::async_trait;
use diesel::OptionalExtension;
use diesel::sql_types::{Bool, Bytea, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::Error;
use domain::idempotency::{Claim, IdempotencyKey, IdempotencyStore, StoredResponse};
use time::OffsetDateTime;

use crate::Database;

/// [`IdempotencyStore`] on the `idempotency_keys` table.
#[derive(Clone)]
pub struct PgIdempotencyStore {
    db: Database,
}

impl PgIdempotencyStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[derive(diesel::QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Bool)]
    #[allow(dead_code)]
    claimed: bool,
}

#[derive(diesel::QueryableByName)]
struct Existing {
    #[diesel(sql_type = Bytea)]
    fingerprint: Vec<u8>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    response_status: Option<i16>,
    #[diesel(sql_type = Nullable<Text>)]
    response_location: Option<String>,
    #[diesel(sql_type = Nullable<Bytea>)]
    response_body: Option<Vec<u8>>,
}

fn query_error(e: diesel::result::Error) -> Error {
    crate::error::query(e, &[])
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &[u8; 32],
        expires_before: OffsetDateTime,
        stale_before: OffsetDateTime,
    ) -> Result<Claim, Error> {
        let mut conn = self.db.get().await?;
        let (scope, name, fingerprint) = (key.scope.clone(), key.key.clone(), fingerprint.to_vec());
        conn.transaction::<Claim, diesel::result::Error, _>(async move |conn| {
            // Expired keys are not deleted here but by the housekeeping sweep; until
            // then the upsert below treats one as unused.
            // The primary key makes this the atomic step: of concurrent claims, one
            // inserts (or takes over an expired/abandoned row); the others conflict.
            let claimed: Vec<Claimed> = diesel::sql_query(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at) \
                 VALUES ($1, $2, $3, $6) \
                 ON CONFLICT (scope, key) DO UPDATE SET \
                   fingerprint = EXCLUDED.fingerprint, created_at = EXCLUDED.created_at, \
                   response_status = NULL, response_location = NULL, response_body = NULL \
                 WHERE idempotency_keys.created_at < $4 \
                    OR (idempotency_keys.response_status IS NULL \
                        AND idempotency_keys.created_at < $5) \
                 RETURNING true AS claimed",
            )
            .bind::<Text, _>(&scope)
            .bind::<Text, _>(&name)
            .bind::<Bytea, _>(&fingerprint)
            .bind::<Timestamptz, _>(expires_before)
            .bind::<Timestamptz, _>(stale_before)
            .bind::<Timestamptz, _>(domain::now())
            .load(conn)
            .await?;
            if !claimed.is_empty() {
                return Ok(Claim::New);
            }
            let existing: Option<Existing> = diesel::sql_query(
                "SELECT fingerprint, response_status, response_location, response_body \
                 FROM idempotency_keys WHERE scope = $1 AND key = $2",
            )
            .bind::<Text, _>(&scope)
            .bind::<Text, _>(&name)
            .get_result(conn)
            .await
            .optional()?;
            Ok(match existing {
                // Released between our insert and this read: the other request failed
                // and a retry will find the key free.
                None => Claim::InProgress,
                Some(e) if e.fingerprint != fingerprint => Claim::Mismatch,
                Some(Existing {
                    response_status: Some(status),
                    response_location,
                    response_body,
                    ..
                }) => Claim::Replay(StoredResponse {
                    status: u16::try_from(status).unwrap_or(500),
                    location: response_location,
                    body: response_body.unwrap_or_default(),
                }),
                Some(_) => Claim::InProgress,
            })
        })
        .await
        .map_err(query_error)
    }

    async fn complete(&self, key: &IdempotencyKey, response: &StoredResponse) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        diesel::sql_query(
            "UPDATE idempotency_keys SET response_status = $3, response_location = $4, \
             response_body = $5 WHERE scope = $1 AND key = $2",
        )
        .bind::<Text, _>(&key.scope)
        .bind::<Text, _>(&key.key)
        .bind::<SmallInt, _>(i16::try_from(response.status).unwrap_or(500))
        .bind::<Nullable<Text>, _>(response.location.as_deref())
        .bind::<Bytea, _>(&response.body)
        .execute(&mut conn)
        .await
        .map_err(query_error)?;
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        diesel::sql_query(
            "DELETE FROM idempotency_keys \
             WHERE scope = $1 AND key = $2 AND response_status IS NULL",
        )
        .bind::<Text, _>(&key.scope)
        .bind::<Text, _>(&key.key)
        .execute(&mut conn)
        .await
        .map_err(query_error)?;
        Ok(())
    }
}
