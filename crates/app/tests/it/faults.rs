//! Faults on the local Postgres: what clients see, and that the service keeps serving.

use std::time::{Duration, Instant};

use diesel_async::SimpleAsyncConnection;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_queues_then_answers_503_while_health_stays_responsive() {
    let db = test_support::TestDb::new().await;
    let mut app = spawn_with(settings(
        Some(db.url()),
        &[
            ("DB_MAX_CONNECTIONS", "2"),
            ("DB_MIN_IDLE", "1"),
            ("DB_ACQUIRE_TIMEOUT_MS", "300"),
            ("WORKERS", "0"),
        ],
    ))
    .await;
    app.db = Some(db);
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let path = format!("/api/users/{}", ada["id"].as_str().unwrap());

    // Every read of users now waits inside Postgres, holding its pooled connection.
    let mut locker = app.db.as_ref().unwrap().connect().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let client = app.client.clone();
        let url = app.url(&path);
        let token = token.clone();
        requests.spawn(async move {
            let started = Instant::now();
            let response = client.get(url).bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, retry_after, body, started.elapsed())
        });
    }

    // Two requests hold both connections (waiting on the lock); the other four wait
    // for a connection up to the acquire timeout, then get a 503 problem.
    for _ in 0..4 {
        let (status, retry_after, body, elapsed) =
            tokio::time::timeout(Duration::from_secs(5), requests.join_next())
                .await
                .expect("refused within the acquire timeout")
                .unwrap()
                .unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(retry_after);
        assert_eq!(body["type"], "/problems/unavailable");
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    }
    assert_eq!(
        app.db.as_ref().unwrap().sessions_waiting_for_locks().await,
        2
    );

    // Liveness does not need the database: it answers at once, pool or no pool.
    let started = Instant::now();
    let (status, _) = app.get("/api/health").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));

    // Released, the two held requests complete.
    locker.batch_execute("ROLLBACK").await.unwrap();
    while let Some(done) = requests.join_next().await {
        let (status, _, body, _) = done.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // Served normally afterwards.
    let (status, _) = app.get_as(&token, &path).await;
    assert_eq!(status, 200);
}

/// With no test query on checkout, a connection the server has closed must still never
/// be handed out twice: after every backend is terminated, at most one failure per
/// terminated connection (a 503 problem), then only 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_are_discarded_at_their_first_failure() {
    let app = spawn_app_with(|s| {
        s.database.pool.max_size = 5;
        s.database.pool.min_idle = 5;
        s.jobs.workers = 0;
    })
    .await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let path = format!("/api/users/{}", ada["id"].as_str().unwrap());
    // Every pooled connection in use once, so each has a session to lose.
    let mut warm = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, url, token) = (app.client.clone(), app.url(&path), token.clone());
        warm.spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = warm.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let terminated = app.db.as_ref().unwrap().terminate_sessions().await;
    assert!(terminated >= 1, "sessions were terminated: {terminated}");
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status != 200 {
            assert_eq!(status, 503, "a failure is a 503");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
        statuses.push(status);
    }
    let failures = statuses.iter().filter(|s| **s != 200).count() as i64;
    assert!(
        failures <= terminated,
        "{failures} failures for {terminated} terminated connections: {statuses:?}"
    );
    let first_ok = statuses
        .iter()
        .position(|s| *s == 200)
        .expect("the service recovers");
    assert!(
        statuses[first_ok..].iter().all(|s| *s == 200),
        "no broken connection handed out again: {statuses:?}"
    );
}
