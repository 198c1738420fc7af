//! What start-up checks of the schema: nothing newer than this build, nothing missing
//! when migrating is left to a deploy step.

use postgres_adapter::{MigrateError, check_schema, run_migrations};
use test_support::TestDb;

#[tokio::test]
async fn a_schema_missing_migrations_is_pending_until_migrated() {
    let db = TestDb::empty().await;
    assert!(
        matches!(check_schema(db.url()).await, Err(MigrateError::Pending(_))),
        "an empty database lacks every migration"
    );
    run_migrations(db.url()).await.expect("migrate");
    check_schema(db.url()).await.expect("up to date");
}

#[tokio::test]
async fn a_schema_migrated_by_a_newer_build_is_refused_and_left_alone() {
    let db = TestDb::new().await;
    let newer = "99991231000000";
    let mut conn = db.connect().await;
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        &format!("INSERT INTO __diesel_schema_migrations (version) VALUES ('{newer}')"),
    )
    .await
    .unwrap();
    for outcome in [
        run_migrations(db.url()).await.map(|_| ()),
        check_schema(db.url()).await,
    ] {
        match outcome {
            Err(MigrateError::Newer(versions)) => assert_eq!(versions, newer),
            other => panic!("expected Newer, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_blocked_by_a_lock_gives_up_its_wait_and_tries_again() {
    use diesel_async::SimpleAsyncConnection;
    let db = TestDb::new().await;
    // Take the last migration back, so there is one to apply.
    let mut conn = db.connect().await;
    conn.batch_execute(include_str!(
        "../../../../migrations/2026-12-02-000010_housekeeping/down.sql"
    ))
    .await
    .unwrap();
    conn.batch_execute("DELETE FROM __diesel_schema_migrations WHERE version = '20261202000010'")
        .await
        .unwrap();
    // A transaction holding a lock the migration's CREATE INDEX on `jobs` must wait for.
    let mut locker = db.connect().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE jobs IN ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let url = db.url().to_owned();
    let migrating = tokio::spawn(async move { run_migrations(&url).await });
    let wait_until = |want: i64| {
        let db = &db;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while db.sessions_waiting_for_locks().await != want {
                assert!(std::time::Instant::now() < deadline, "never {want} waiting");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    // It waits, gives the wait up (live traffic is queued behind a waiting DDL), and
    // waits again.
    wait_until(1).await;
    wait_until(0).await;
    wait_until(1).await;
    assert!(!migrating.is_finished(), "still trying");
    locker.batch_execute("COMMIT").await.unwrap();
    let applied = migrating
        .await
        .unwrap()
        .expect("applied once the lock is free");
    assert_eq!(applied, ["20261202000010"]);
}
