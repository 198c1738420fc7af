//! [`RateLimitStore`] on the `rate_limits` table: every instance sharing the database
//! counts against the same buckets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use diesel::OptionalExtension;
use diesel::sql_types::{BigInt, Double, Text};
use diesel_async::RunQueryDsl;
use domain::Error;
use domain::rate_limit::{Budget, RateLimitStore, Taken};

use crate::Database;

/// Every this many takes an instance deletes a batch of buckets that are full again
/// (they carry nothing), so the table holds only keys seen within their window.
const PRUNE_EVERY: u64 = 256;
const PRUNE_BATCH: i64 = 1000;

/// Buckets in Postgres, one row per budget and key (GCRA: the time the key's bucket is
/// full again). **Each call is one statement**, atomic per key through the row's lock,
/// so concurrent attempts on every instance together never overspend.
#[derive(Clone)]
pub struct PgRateLimitStore {
    db: Database,
    takes: Arc<AtomicU64>,
}

impl PgRateLimitStore {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            takes: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn prune(&self) {
        let pruned = async {
            let mut conn = self.db.get().await?;
            diesel::sql_query(
                "DELETE FROM rate_limits WHERE ctid IN \
                 (SELECT ctid FROM rate_limits WHERE full_at < now() LIMIT $1)",
            )
            .bind::<BigInt, _>(PRUNE_BATCH)
            .execute(&mut conn)
            .await
            .map_err(|e| crate::error::query(e, &[]))
        };
        if let Err(error) = pruned.await {
            tracing::debug!(%error, "pruning rate-limit buckets failed");
        }
    }

    /// How far ahead of now `key`'s bucket is full again; zero when it has no row.
    async fn ahead(&self, budget: &Budget, key: &str) -> Result<Duration, Error> {
        let mut conn = self.db.get().await?;
        let found: Option<Ahead> = diesel::sql_query(
            "SELECT greatest(extract(epoch FROM full_at - now()), 0)::float8 AS seconds \
             FROM rate_limits WHERE budget = $1 AND key = $2",
        )
        .bind::<Text, _>(budget.name)
        .bind::<Text, _>(key)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(|e| crate::error::query(e, &[]))?;
        Ok(found.map_or(Duration::ZERO, Ahead::duration))
    }

    /// Spends one attempt; with `only_if_left`, only when the bucket has one left.
    /// Returns how far ahead the bucket is full again afterwards, `None` when refused.
    async fn spend(
        &self,
        budget: &Budget,
        key: &str,
        only_if_left: bool,
    ) -> Result<Option<Duration>, Error> {
        let mut conn = self.db.get().await?;
        // ON CONFLICT … DO UPDATE … WHERE: the builder cannot say a conditional upsert.
        let spent: Option<Ahead> = diesel::sql_query(
            "INSERT INTO rate_limits AS r (budget, key, full_at) \
             VALUES ($1, $2, now() + $3 * interval '1 microsecond') \
             ON CONFLICT (budget, key) DO UPDATE \
             SET full_at = greatest(r.full_at, now()) + $3 * interval '1 microsecond' \
             WHERE NOT $5 OR greatest(r.full_at, now()) - now() <= $4 * interval '1 microsecond' \
             RETURNING extract(epoch FROM full_at - now())::float8 AS seconds",
        )
        .bind::<Text, _>(budget.name)
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(micros(budget.interval()))
        .bind::<BigInt, _>(micros(budget.burst()))
        .bind::<diesel::sql_types::Bool, _>(only_if_left)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(|e| crate::error::query(e, &[]))?;
        Ok(spent.map(Ahead::duration))
    }
}

#[derive(diesel::QueryableByName)]
struct Ahead {
    #[diesel(sql_type = Double)]
    seconds: f64,
}

impl Ahead {
    fn duration(self) -> Duration {
        Duration::try_from_secs_f64(self.seconds.max(0.0)).unwrap_or(Duration::ZERO)
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[async_trait]
impl RateLimitStore for PgRateLimitStore {
    async fn take(&self, budget: &Budget, key: &str) -> Result<Taken, Error> {
        if self.takes.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            // Off the request that happens to be the 256th: it waits for nobody's sweep.
            let store = self.clone();
            tokio::spawn(async move { store.prune().await });
        }
        match self.spend(budget, key, true).await? {
            Some(ahead) => Ok(Taken::Allowed(budget.remaining(ahead))),
            None => Ok(budget.decide(self.ahead(budget, key).await?)),
        }
    }

    async fn peek(&self, budget: &Budget, key: &str) -> Result<Taken, Error> {
        Ok(budget.decide(self.ahead(budget, key).await?))
    }

    async fn record(&self, budget: &Budget, key: &str) -> Result<(), Error> {
        self.spend(budget, key, false).await.map(|_| ())
    }

    async fn refund(&self, budget: &Budget, key: &str) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        // Never below now: a refund gives back what was spent, not more.
        diesel::sql_query(
            "UPDATE rate_limits SET full_at = greatest(full_at - $3 * interval '1 microsecond', now()) \
             WHERE budget = $1 AND key = $2",
        )
        .bind::<Text, _>(budget.name)
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(micros(budget.interval()))
        .execute(&mut conn)
        .await
        .map_err(|e| crate::error::query(e, &[]))?;
        Ok(())
    }
}
