use diesel::sql_types::BigInt;
use diesel::{Connection as _, RunQueryDsl as _};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::pool::redact_url;

/// The SQL files of the top-level `migrations/` folder, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Serialises migrations across every instance sharing the database. Any constant works as
/// long as nothing else uses it; this one is "app-mig" in ASCII.
const MIGRATION_LOCK_KEY: i64 = 0x0061_7070_2d6d_6967;

/// How long start-up waits for another instance's migrations.
const LOCK_WAIT_MS: u64 = 120_000;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database at {target} to migrate: {reason}")]
    Connect { target: String, reason: String },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("migration task failed: {0}")]
    Task(String),
}

/// Applies every pending migration and returns the versions applied, in order.
///
/// Holds a Postgres advisory lock for the duration, so instances starting together wait
/// for one another instead of racing on the same DDL. Runs the synchronous diesel
/// migration harness through `AsyncConnectionWrapper`, so no libpq is needed.
pub async fn run_migrations(url: &str) -> Result<Vec<String>, MigrateError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || migrate_blocking(&url))
        .await
        .map_err(|e| MigrateError::Task(e.to_string()))?
}

fn migrate_blocking(url: &str) -> Result<Vec<String>, MigrateError> {
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url).map_err(|e| {
        MigrateError::Connect {
            target: redact_url(url),
            reason: e.to_string(),
        }
    })?;
    let lock = |sql: &str, conn: &mut AsyncConnectionWrapper<AsyncPgConnection>| {
        diesel::sql_query(sql)
            .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
            .execute(conn)
            .map(|_| ())
            .map_err(|e| MigrateError::Migration(e.to_string()))
    };
    // Waiting for another instance's migrations is expected; waiting forever (a stuck
    // instance holding the lock) is not: give up after LOCK_WAIT and let the
    // orchestrator restart us.
    diesel::sql_query(format!("SET lock_timeout = {}", LOCK_WAIT_MS))
        .execute(&mut conn)
        .map_err(|e| MigrateError::Migration(e.to_string()))?;
    lock("SELECT pg_advisory_lock($1)", &mut conn)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| MigrateError::Migration(e.to_string()));
    // Closing the connection would release the lock too; unlock explicitly so the next
    // instance does not wait for our socket to be torn down.
    let unlocked = lock("SELECT pg_advisory_unlock($1)", &mut conn);
    let applied = applied?;
    unlocked?;
    Ok(applied)
}
