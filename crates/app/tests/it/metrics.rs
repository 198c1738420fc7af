//! `GET /metrics`: scraped and parsed like Prometheus would, and the counters move.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use grpc_adapter::pb::users::GetUserRequest;
use grpc_adapter::pb::users::user_service_client::UserServiceClient;

use crate::support::*;

/// One sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition (no escaped quotes in our label values).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse(&response.text().await.unwrap())
}

/// The value of the one sample with this name and (at least) these labels.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_and_the_counters_move() {
    let app = spawn_app().await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let id = ada["id"].as_str().unwrap();
    let route = [
        ("method", "GET"),
        ("route", "/api/users/{id}"),
        ("status", "200"),
    ];

    assert_eq!(app.get_as(&token, &format!("/api/users/{id}")).await.0, 200);
    let before = scrape(&app).await;
    let seen = value(&before, "http_requests_total", &route).expect("counted by route");
    for _ in 0..3 {
        assert_eq!(app.get_as(&token, &format!("/api/users/{id}")).await.0, 200);
    }
    let mut grpc = UserServiceClient::connect(app.grpc_address.clone())
        .await
        .unwrap();
    let mut request = tonic::Request::new(GetUserRequest { id: id.into() });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    grpc.get_user(request).await.unwrap();

    // The welcome e-mail job runs in the background; its attempt is counted once done.
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let after = scrape(&app).await;
        if value(&after, "job_attempts_total", &[("kind", "welcome_email")]).is_some() {
            break after;
        }
        assert!(Instant::now() < deadline, "no job attempt was counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Other tests share the process-wide recorder, so counters only ever grow by at
    // least what this test did.
    let now = value(&after, "http_requests_total", &route).unwrap();
    assert!(now >= seen + 3.0, "{seen} -> {now}");
    assert!(
        value(
            &after,
            "http_request_duration_seconds_count",
            &[("route", "/api/users/{id}")]
        )
        .unwrap()
            >= 4.0
    );
    assert!(
        value(
            &after,
            "grpc_requests_total",
            &[("method", "GetUser"), ("code", "Ok")]
        )
        .unwrap()
            >= 1.0
    );
    // Routes are patterns: no raw path (with its id) ever becomes a label.
    assert!(
        after
            .iter()
            .all(|s| s.labels.values().all(|v| !v.contains(id)))
    );
    for name in [
        "db_pool_connections",
        "db_pool_idle_connections",
        "db_pool_waiting",
        "db_pool_max_connections",
    ] {
        assert!(value(&after, name, &[("pool", "main")]).is_some(), "{name}");
    }
    assert!(value(&after, "db_pool_acquire_seconds_count", &[]).unwrap() > 0.0);
    assert!(value(&after, "jobs", &[("state", "completed")]).is_some());
    assert!(
        value(
            &after,
            "job_duration_seconds_count",
            &[("kind", "welcome_email")]
        )
        .is_some()
    );
    assert!(value(&after, "live_connections", &[]).is_some());
    assert!(value(&after, "sessions_ended_remembered", &[]).is_some());
    assert!(value(&after, "live_dropped_slow_total", &[]).is_some());
    assert_eq!(
        value(
            &after,
            "build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
}
