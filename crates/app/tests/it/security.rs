//! The attacks of docs/security.md, each against the real server: the test shows the
//! service's answer, and fails where the attack worked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use grpc_adapter::pb::users::user_service_client::UserServiceClient;
use grpc_adapter::pb::users::{self as pb};
use serde_json::json;
use test_support::TestDb;
use tonic::Code;

use crate::binary::{app, listening_line, read_log, sigterm};
use crate::support::*;

fn registration(email: &str) -> serde_json::Value {
    json!({"name": "Flood", "email": email, "password": PASSWORD})
}

/// `VmHWM` (peak resident memory) and `Threads` of a process, from `/proc`.
fn peak_rss_and_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("Threads:"))
}

/// A gauge's value in a Prometheus exposition.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Attack: registrations whose callers give up mid-hash (gRPC calls with a 5 ms
/// deadline, HTTP clients that hang up after 10 ms). Each abandoned hash used to give its
/// slot back at once while it kept running, so they piled up: memory and threads grew
/// without bound. Now a hash keeps its slot until it ends.
#[tokio::test]
async fn abandoned_password_hashes_stay_bounded_and_logins_still_get_through() {
    let db = TestDb::new().await;
    let mut child = app()
        .env("DATABASE_URL", db.url())
        .env("JWT_SECRET", JWT_SECRET)
        .env("WORKERS", "0")
        .env("MALLOC_MMAP_THRESHOLD_", "1048576")
        .env("PASSWORD_HASH_CONCURRENCY", "2")
        .env("AUTH_RATE_LIMIT_PER_MINUTE", "1000")
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let (listening, lines) = listening_line(&mut child).await;
    let log = read_log(lines);
    let http = format!("http://{}", listening["address"].as_str().unwrap());
    let grpc = format!("http://{}", listening["grpc_address"].as_str().unwrap());
    let client = reqwest::Client::new();
    let owner = client
        .post(format!("{http}/api/users"))
        .json(&registration("owner@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), 201);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for worker in 0..12 {
        let (stop, sent, grpc) = (stop.clone(), sent.clone(), grpc.clone());
        flood.push(tokio::spawn(async move {
            let mut users = UserServiceClient::connect(grpc).await.unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let mut request = tonic::Request::new(pb::CreateUserRequest {
                    name: "Flood".into(),
                    email: format!("grpc-{worker}-{n}@example.com"),
                    password: PASSWORD.into(),
                });
                request.set_timeout(Duration::from_millis(5));
                let _ = users.create_user(request).await;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in 0..12 {
        let (stop, sent, http) = (stop.clone(), sent.clone(), http.clone());
        flood.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(10))
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let email = format!("http-{worker}-{n}@example.com");
                let _ = client
                    .post(format!("{http}/api/users"))
                    .json(&registration(&email))
                    .send()
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let started = Instant::now();
    let mut peak_threads = 0;
    let mut peak_in_flight = 0.0f64;
    let mut login_took = None;
    while started.elapsed() < Duration::from_secs(15) {
        let (_, threads) = peak_rss_and_threads(pid);
        peak_threads = peak_threads.max(threads);
        let metrics = client
            .get(format!("{http}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if let Some(now) = gauge(&metrics, "password_hashes_in_flight") {
            peak_in_flight = peak_in_flight.max(now);
        }
        if login_took.is_none() && started.elapsed() > Duration::from_secs(5) {
            // Another client, in the middle of the flood.
            let fresh = reqwest::Client::new();
            let asked = Instant::now();
            let login = fresh
                .post(format!("{http}/api/auth/login"))
                .json(&json!({"email": "owner@example.com", "password": PASSWORD}))
                .timeout(Duration::from_secs(3))
                .send()
                .await
                .expect("the login is answered within 3 s");
            assert_eq!(login.status(), 200, "{:?}", login.text().await);
            login_took = Some(asked.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.unwrap();
    }
    let (peak_rss_kib, _) = peak_rss_and_threads(pid);
    let metrics = client
        .get(format!("{http}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let recorded_peak = gauge(&metrics, "password_hashes_in_flight_peak").unwrap_or(f64::MAX);
    sigterm(&child);
    child.wait().await.unwrap();
    drop(log);

    let requests = sent.load(Ordering::Relaxed);
    eprintln!(
        "flood: {requests} abandoned registrations; peak RSS {} MiB, peak threads \
         {peak_threads}, in-flight peak {recorded_peak}, login {login_took:?}",
        peak_rss_kib / 1024
    );
    assert!(requests > 500, "the flood was a flood: {requests}");
    assert!(
        peak_rss_kib < 120 * 1024,
        "peak RSS {} MiB",
        peak_rss_kib / 1024
    );
    assert!(peak_in_flight <= 2.0, "sampled in flight: {peak_in_flight}");
    assert!(recorded_peak <= 2.0, "in-flight peak: {recorded_peak}");
    assert!(login_took.is_some_and(|t| t < Duration::from_secs(3)));
}

/// Attack: unlimited anonymous registrations from one address (each a hash and an
/// e-mail to any address). Now a budget per client address, shared by REST and gRPC.
#[tokio::test]
async fn registrations_are_limited_per_client_address_across_both_transports() {
    let db = TestDb::new().await;
    let mut app = spawn_with(settings(
        Some(db.url()),
        &[("REGISTRATION_RATE_LIMIT_PER_MINUTE", "4")],
    ))
    .await;
    app.db = Some(db);
    let mut grpc = UserServiceClient::connect(app.grpc_address.clone())
        .await
        .unwrap();
    for n in 0..2 {
        app.create_user("Ada", &format!("ada{n}@example.com")).await;
        grpc.create_user(pb::CreateUserRequest {
            name: "Ada".into(),
            email: format!("ada-grpc{n}@example.com"),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    }
    let response = app
        .client
        .post(app.url("/api/users"))
        .json(&registration("fifth@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let refused = grpc
        .create_user(pb::CreateUserRequest {
            name: "Ada".into(),
            email: "sixth@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let db = app.db.as_ref().unwrap();
    assert_eq!(db.count("SELECT count(*) AS n FROM users").await, 4);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM jobs WHERE payload->>'email' IN ('fifth@example.com', 'sixth@example.com')")
            .await,
        0,
        "no e-mail for a refused registration"
    );
}
