//! [`LeaseStore`] on the `leases` table, judged by the database's clock.

use std::time::Duration;

use async_trait::async_trait;
use diesel::sql_types::{Double, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use domain::Error;
use domain::housekeeping::{Holder, LeaseName, LeaseStore};

use crate::Database;

/// One row per lease name. Taking, renewing and taking over an expired lease are one
/// conditional upsert, atomic through the row's lock: of two instances racing for a
/// free lease, one inserts and the other's `WHERE` finds it held.
#[derive(Clone)]
pub struct PgLeaseStore {
    db: Database,
}

impl PgLeaseStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// A row that says the lease is held (its value is only ever `true`): the shape of
/// `RETURNING true AS held` and of the sweep's fence.
#[derive(diesel::QueryableByName)]
pub(crate) struct Held {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    #[allow(dead_code)]
    held: bool,
}

#[async_trait]
impl LeaseStore for PgLeaseStore {
    async fn acquire(&self, name: LeaseName, holder: Holder, ttl: Duration) -> Result<bool, Error> {
        let mut conn = self.db.get().await?;
        // Raw SQL: an `ON CONFLICT … DO UPDATE … WHERE` upsert, and the server's clock
        // (`clock_timestamp()`) so that no instance's clock decides expiry.
        let rows: Vec<Held> = diesel::sql_query(
            "INSERT INTO leases (name, holder, expires_at) \
             VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) \
             ON CONFLICT (name) DO UPDATE \
               SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < clock_timestamp() \
             RETURNING true AS held",
        )
        .bind::<Text, _>(name.as_str())
        .bind::<SqlUuid, _>(holder.as_uuid())
        .bind::<Double, _>(ttl.as_secs_f64())
        .load(&mut conn)
        .await
        .map_err(|e| crate::error::query(e, &[]))?;
        Ok(!rows.is_empty())
    }

    async fn release(&self, name: LeaseName, holder: Holder) -> Result<(), Error> {
        use crate::schema::leases::dsl;
        use diesel::{ExpressionMethods, QueryDsl};
        let mut conn = self.db.get().await?;
        diesel::delete(
            dsl::leases
                .filter(dsl::name.eq(name.as_str()))
                .filter(dsl::holder.eq(holder.as_uuid())),
        )
        .execute(&mut conn)
        .await
        .map_err(|e| crate::error::query(e, &[]))?;
        Ok(())
    }
}
