//! [`Housekeeping`]: the retention sweeps, each batch fenced by the sweeper's lease.

use std::time::Duration;

use async_trait::async_trait;
use diesel::OptionalExtension;
use diesel::sql_types::{BigInt, Double, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::Error;
use domain::housekeeping::{Fence, Housekeeping, Sweep};

use crate::Database;
use crate::lease::Held;

#[derive(Clone)]
pub struct PgHousekeeping {
    db: Database,
}

impl PgHousekeeping {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// One batch of one sweep: `$1` is the retention in seconds, `$2` the batch size. Each
/// reads its rows through an index (`jobs_finished_idx`, `refresh_tokens_expires_at_idx`,
/// `idempotency_keys_created_at_idx`), so a batch costs the rows it deletes.
fn batch_sql(sweep: Sweep) -> &'static str {
    match sweep {
        Sweep::CompletedJobs => {
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
             WHERE state = 'completed' AND updated_at <= now() - make_interval(secs => $1) \
             LIMIT $2)"
        }
        Sweep::DeadJobs => {
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
             WHERE state = 'dead' AND updated_at <= now() - make_interval(secs => $1) \
             LIMIT $2)"
        }
        Sweep::ExpiredRefreshTokens => {
            "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash \
             FROM refresh_tokens WHERE expires_at <= now() - make_interval(secs => $1) \
             LIMIT $2)"
        }
        Sweep::IdempotencyKeys => {
            "DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key \
             FROM idempotency_keys WHERE created_at <= now() - make_interval(secs => $1) \
             LIMIT $2)"
        }
        Sweep::EndedSessions => {
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
             WHERE ended_at <= now() - make_interval(secs => $1) \
             UNION ALL SELECT id FROM sessions \
             WHERE expires_at <= now() - make_interval(secs => $1) LIMIT $2)"
        }
        Sweep::ExpiredAccountTokens => {
            "DELETE FROM account_tokens WHERE token_hash IN (SELECT token_hash \
             FROM account_tokens WHERE expires_at <= now() - make_interval(secs => $1) \
             LIMIT $2)"
        }
    }
}

#[async_trait]
impl Housekeeping for PgHousekeeping {
    async fn sweep(
        &self,
        sweep: Sweep,
        retention: Duration,
        batch: u32,
        fence: Fence,
    ) -> Result<u64, Error> {
        let mut conn = self.db.get().await?;
        let deleted = conn
            .transaction::<Option<usize>, diesel::result::Error, _>(async move |conn| {
                // One batch is short; a slow one gives up rather than hold the lease
                // row (and the holder's next renewal) for long.
                diesel::sql_query("SET LOCAL statement_timeout = 1000")
                    .execute(conn)
                    .await?;
                // The fence: `FOR SHARE` on our unexpired lease row. An instance taking
                // the lease over must update that row, so it waits for this batch to
                // commit, and once it has the lease this check fails: two sweeps never
                // overlap, even if this instance was paused past its lease.
                let held: Option<Held> = diesel::sql_query(
                    "SELECT true AS held FROM leases \
                     WHERE name = $1 AND holder = $2 AND expires_at > clock_timestamp() \
                     FOR SHARE",
                )
                .bind::<Text, _>(fence.name.as_str())
                .bind::<SqlUuid, _>(fence.holder.as_uuid())
                .get_result(conn)
                .await
                .optional()?;
                if held.is_none() {
                    return Ok(None);
                }
                let deleted = diesel::sql_query(batch_sql(sweep))
                    .bind::<Double, _>(retention.as_secs_f64())
                    .bind::<BigInt, _>(i64::from(batch))
                    .execute(conn)
                    .await?;
                Ok(Some(deleted))
            })
            .await
            .map_err(|e| crate::error::query(e, &[]))?;
        match deleted {
            Some(n) => Ok(n as u64),
            None => Err(Error::Conflict("the housekeeping lease is held elsewhere")),
        }
    }
}
