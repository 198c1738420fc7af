use async_trait::async_trait;
use diesel_async::RunQueryDsl;
use domain::Error;
use domain::health::HealthProbe;

use crate::Database;

/// Readiness of the database: a connection from the pool answers `SELECT 1`.
#[derive(Clone)]
pub struct PgProbe {
    db: Database,
}

impl PgProbe {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl HealthProbe for PgProbe {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), Error> {
        // Bounded by the pool's acquire timeout and the statement round trip; a hung
        // server is cut off by the same bound.
        let bound = self.db.settings().pool.acquire_timeout * 2;
        let ping = async {
            let mut conn = self.db.get().await?;
            diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .map_err(|e| crate::error::query(e, &[]))
        };
        match tokio::time::timeout(bound, ping).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(Error::unavailable("database ping timed out")),
        }
    }
}
