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
