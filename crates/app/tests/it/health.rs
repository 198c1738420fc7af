use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_and_readiness_on_postgres() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/health").await;
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
    let (status, body) = app.get("/api/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "checks": {"database": "ok"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gives_503s_and_the_service_recovers_by_itself() {
    let mut app = spawn_app().await;
    let (user, token) = app.signed_in("Ada", "ada@example.com").await;
    let path = format!("/api/users/{}", user["id"].as_str().unwrap());
    let db = app.take_db();

    db.cut_off().await;
    let started = Instant::now();
    let (status, problem) = app.get_as(&token, &path).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "/problems/unavailable");
    assert!(started.elapsed() < Duration::from_secs(10));

    let (status, ready) = app.get("/api/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!(ready["checks"]["database"], "unavailable");

    db.restore().await;
    let (status, fetched) = app.get_as(&token, &path).await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched, user, "committed data survived the outage");
    let (status, _) = app.get("/api/health/ready").await;
    assert_eq!(status, 200);
}
