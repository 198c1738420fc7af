use std::time::Duration;

use diesel_async::SimpleAsyncConnection;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart() {
    let mut first = spawn_app().await;
    let user = first.create_user("Ada", "ada@example.com").await;
    let db = first.take_db();
    first.stop().await.expect("clean stop");

    // Same secret, same database: the account and its password survive the restart.
    let second = spawn_with(settings(Some(db.url()), &[])).await;
    let token = second.login("ada@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, fetched) = second
        .get_as(
            &token,
            &format!("/api/users/{}", user["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched, user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_request_completes_while_shutdown_is_under_way() {
    let mut app = spawn_app().await;
    let (_, token) = app.signed_in("Ada", "ada@example.com").await;
    let db = app.take_db();

    // Hold the users table so the next listing blocks inside Postgres.
    let mut locker = db.connect().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();
    let request = tokio::spawn(
        app.client
            .get(app.url("/api/users"))
            .bearer_auth(&token)
            .send(),
    );
    wait_for(|| async { db.sessions_waiting_for_locks().await > 0 }).await;

    app.begin_shutdown();
    // The listener closes: new connections are refused while the old request drains.
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    wait_for(|| async {
        tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .is_err()
    })
    .await;

    locker.batch_execute("COMMIT").await.unwrap();
    let response = request
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    let (_, page) = read(response).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    app.wait().await.expect("the server stops cleanly");
}

/// Polls `condition` until it holds, failing the test after 10 s.
async fn wait_for<F, Fut>(condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With migrations a deploy step (`MIGRATE_ON_START=false`), an instance started before
/// them refuses to serve a schema it was not written for, and says what to run; once
/// `app migrate` has run, it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_migrate_on_start_a_stale_schema_is_refused_until_migrated() {
    let db = test_support::TestDb::empty().await;
    let settings = settings(Some(db.url()), &[("MIGRATE_ON_START", "false")]);
    let refused = app::Application::build(&settings)
        .await
        .err()
        .expect("a schema without migrations is refused");
    assert!(
        format!("{refused:#}").contains("app migrate"),
        "{refused:#}"
    );
    postgres_adapter::run_migrations(db.url()).await.unwrap();
    let app = spawn_with(settings).await;
    let (status, _) = app.get("/api/health/ready").await;
    assert_eq!(status, 200);
}
