use diesel::RunQueryDsl as _;
use diesel::sql_types::BigInt;
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

/// How long one migration statement may wait for a table lock. A DDL statement waiting
/// on a lock queues every later query on that table behind it: with a short wait, live
/// traffic is held up for seconds at most, and the migration is tried again.
const DDL_LOCK_WAIT_MS: u64 = 3_000;

/// Tries of the pending migrations when a statement's lock wait runs out. Each
/// migration is its own transaction, so a try that gives up leaves the schema as the
/// last migration that completed.
const DDL_TRIES: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database at {target} to migrate: {reason}")]
    Connect { target: String, reason: String },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("migration task failed: {0}")]
    Task(String),
    #[error(
        "the database has migrations this build does not know ({0}): a newer version \
         migrated it; run that version or a newer one"
    )]
    Newer(String),
    #[error(
        "the database lacks migrations this build needs ({0}): run `app migrate` first \
         (MIGRATE_ON_START is false)"
    )]
    Pending(String),
}

/// Checks, without changing anything, that the database's schema is exactly what this
/// build knows: [`MigrateError::Newer`] when it has migrations this build lacks,
/// [`MigrateError::Pending`] when it lacks some of this build's.
pub async fn check_schema(url: &str) -> Result<(), MigrateError> {
    let conn = connect(url).await?;
    tokio::task::spawn_blocking(move || {
        let mut conn = Conn::from(conn);
        refuse_newer(&mut conn)?;
        let pending = conn
            .pending_migrations(MIGRATIONS)
            .map_err(|e| MigrateError::Migration(e.to_string()))?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(MigrateError::Pending(
                pending
                    .iter()
                    .map(|m| m.name().version().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ))
        }
    })
    .await
    .map_err(|e| MigrateError::Task(e.to_string()))?
}

type Conn = AsyncConnectionWrapper<AsyncPgConnection>;

/// One connection, with the TLS the URL asks for, driven on the calling runtime; the
/// harness then uses it from a blocking thread.
async fn connect(url: &str) -> Result<AsyncPgConnection, MigrateError> {
    let failed = |reason: String| MigrateError::Connect {
        target: redact_url(url),
        reason,
    };
    let target = crate::Target::parse(url).map_err(failed)?;
    target.establish().await.map_err(|e| failed(e.to_string()))
}

/// [`MigrateError::Newer`] when the database has applied a migration this build does
/// not embed: running against it would mean running against a schema it was not
/// written for.
fn refuse_newer(conn: &mut Conn) -> Result<(), MigrateError> {
    use diesel::migration::MigrationSource;
    let known: std::collections::HashSet<String> =
        MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
            .map_err(|e| MigrateError::Migration(e.to_string()))?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect();
    let unknown: Vec<String> = conn
        .applied_migrations()
        .map_err(|e| MigrateError::Migration(e.to_string()))?
        .iter()
        .map(ToString::to_string)
        .filter(|version| !known.contains(version))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(MigrateError::Newer(unknown.join(", ")))
    }
}

/// Applies every pending migration and returns the versions applied, in order.
///
/// Holds a Postgres advisory lock for the duration, so instances starting together wait
/// for one another instead of racing on the same DDL. Runs the synchronous diesel
/// migration harness through `AsyncConnectionWrapper`, so no libpq is needed.
pub async fn run_migrations(url: &str) -> Result<Vec<String>, MigrateError> {
    let conn = connect(url).await?;
    tokio::task::spawn_blocking(move || migrate_blocking(Conn::from(conn)))
        .await
        .map_err(|e| MigrateError::Task(e.to_string()))?
}

fn migrate_blocking(mut conn: Conn) -> Result<Vec<String>, MigrateError> {
    let lock = |sql: &str, conn: &mut Conn| {
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
    let applied = refuse_newer(&mut conn).and_then(|()| apply_pending(&mut conn));
    // Closing the connection would release the lock too; unlock explicitly so the next
    // instance does not wait for our socket to be torn down.
    let unlocked = lock("SELECT pg_advisory_unlock($1)", &mut conn);
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

/// Applies what is pending, each DDL statement waiting at most [`DDL_LOCK_WAIT_MS`] for
/// its locks, trying again (after a growing pause) when a wait runs out.
fn apply_pending(conn: &mut Conn) -> Result<Vec<String>, MigrateError> {
    diesel::sql_query(format!("SET lock_timeout = {DDL_LOCK_WAIT_MS}"))
        .execute(conn)
        .map_err(|e| MigrateError::Migration(e.to_string()))?;
    let mut attempt = 1;
    loop {
        match conn.run_pending_migrations(MIGRATIONS) {
            // The versions the last try applied (an earlier try may have applied some).
            Ok(versions) => return Ok(versions.iter().map(ToString::to_string).collect()),
            Err(error) if attempt < DDL_TRIES && error.to_string().contains("lock timeout") => {
                tracing::warn!(attempt, %error, "a migration waited too long for a lock; trying again");
                std::thread::sleep(std::time::Duration::from_millis(500 * u64::from(attempt)));
                attempt += 1;
            }
            Err(error) => return Err(MigrateError::Migration(error.to_string())),
        }
    }
}
