use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::Error;
use domain::auth::{NewRefreshToken, RefreshTokenHash, RefreshTokenStore, Rotation};
use domain::users::UserId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Database;
use crate::schema::refresh_tokens as tokens;

/// [`RefreshTokenStore`] on the `refresh_tokens` table.
#[derive(Clone)]
pub struct PgRefreshTokenStore {
    db: Database,
}

impl PgRefreshTokenStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[derive(Insertable)]
#[diesel(table_name = tokens)]
struct NewRow<'a> {
    token_hash: &'a [u8],
    user_id: Uuid,
    family_id: Uuid,
    expires_at: OffsetDateTime,
    family_expires_at: OffsetDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = tokens, check_for_backend(diesel::pg::Pg))]
struct Row {
    user_id: Uuid,
    family_id: Uuid,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    family_expires_at: OffsetDateTime,
}

fn query_error(e: diesel::result::Error) -> Error {
    crate::error::query(e, &[])
}

#[async_trait]
impl RefreshTokenStore for PgRefreshTokenStore {
    async fn insert(&self, token: &NewRefreshToken) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        diesel::insert_into(tokens::table)
            .values(NewRow {
                token_hash: &token.hash.0,
                user_id: token.user_id.as_uuid(),
                family_id: token.family_id,
                expires_at: token.expires_at.min(token.family_expires_at),
                family_expires_at: token.family_expires_at,
            })
            .execute(&mut conn)
            .await
            .map_err(query_error)?;
        Ok(())
    }

    async fn owner(&self, presented: &RefreshTokenHash) -> Result<Option<UserId>, Error> {
        let mut conn = self.db.get().await?;
        let owner: Option<Uuid> = tokens::table
            .find(presented.0.as_slice())
            .select(tokens::user_id)
            .first(&mut conn)
            .await
            .optional()
            .map_err(query_error)?;
        Ok(owner.map(UserId::from_uuid))
    }

    async fn rotate(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: OffsetDateTime,
    ) -> Result<Rotation, Error> {
        let mut conn = self.db.get().await?;
        let presented = presented.0;
        let next = next.0;
        let now = domain::now();
        conn.transaction::<Rotation, diesel::result::Error, _>(async move |conn| {
            // FOR UPDATE serialises concurrent presentations of one token: the second
            // waits, then sees it spent.
            let current: Option<Row> = tokens::table
                .find(presented.as_slice())
                .select(Row::as_select())
                .for_update()
                .first(conn)
                .await
                .optional()?;
            let Some(current) = current else {
                return Ok(Rotation::Invalid);
            };
            if current.revoked_at.is_some()
                || current.expires_at <= now
                || current.family_expires_at <= now
            {
                return Ok(Rotation::Invalid);
            }
            let user_id = UserId::from_uuid(current.user_id);
            if current.used_at.is_some() {
                diesel::update(
                    tokens::table
                        .filter(tokens::family_id.eq(current.family_id))
                        .filter(tokens::revoked_at.is_null()),
                )
                .set(tokens::revoked_at.eq(now))
                .execute(conn)
                .await?;
                return Ok(Rotation::Reused { user_id });
            }
            diesel::update(tokens::table.find(presented.as_slice()))
                .set(tokens::used_at.eq(now))
                .execute(conn)
                .await?;
            diesel::insert_into(tokens::table)
                .values(NewRow {
                    token_hash: next.as_slice(),
                    user_id: current.user_id,
                    family_id: current.family_id,
                    expires_at: next_expires_at.min(current.family_expires_at),
                    family_expires_at: current.family_expires_at,
                })
                .execute(conn)
                .await?;
            Ok(Rotation::Rotated { user_id })
        })
        .await
        .map_err(query_error)
    }

    async fn revoke(&self, presented: &RefreshTokenHash) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        diesel::update(
            tokens::table
                .find(presented.0.as_slice())
                .filter(tokens::revoked_at.is_null()),
        )
        .set(tokens::revoked_at.eq(domain::now()))
        .execute(&mut conn)
        .await
        .map_err(query_error)?;
        Ok(())
    }

    async fn revoke_all_for_user(&self, user: &UserId) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        diesel::update(
            tokens::table
                .filter(tokens::user_id.eq(user.as_uuid()))
                .filter(tokens::revoked_at.is_null()),
        )
        .set(tokens::revoked_at.eq(domain::now()))
        .execute(&mut conn)
        .await
        .map_err(query_error)?;
        Ok(())
    }
}
