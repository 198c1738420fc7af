//! gRPC load: concurrent `GetUser` calls over random ids for a while, then one
//! `ListUsers` stream over every user. Prints one JSON line per measurement (the
//! benchmark suite, `just bench`, reads them).
//!
//! ```sh
//! cargo run --release -p app --example grpc_load -- http://127.0.0.1:50051 TOKEN ids.txt 25 10 [CONNECTIONS]
//! ```
//!
//! The calls share CONNECTIONS HTTP/2 connections (default 1), round robin: with one,
//! every call and every response goes through one connection task on each side.

use std::time::{Duration, Instant};

use anyhow::Context;
use grpc_adapter::pb::users::user_service_client::UserServiceClient;
use grpc_adapter::pb::users::{GetUserRequest, ListUsersRequest};
use tonic::Request;

fn authed<T>(message: T, token: &str) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (address, token, ids, concurrency, secs, connections) = match args.as_slice() {
        [a, t, i, c, s] => (a, t, i, c, s, "1"),
        [a, t, i, c, s, n] => (a, t, i, c, s, n.as_str()),
        _ => anyhow::bail!(
            "usage: grpc_load ADDRESS TOKEN IDS_FILE CONCURRENCY SECONDS [CONNECTIONS]"
        ),
    };
    let ids: Vec<String> = std::fs::read_to_string(ids)
        .context("reading the ids file")?
        .lines()
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!ids.is_empty(), "no ids");
    let concurrency: usize = concurrency.parse()?;
    let duration = Duration::from_secs(secs.parse()?);
    let connections: usize = connections.parse()?;
    anyhow::ensure!(connections > 0, "at least one connection");
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(
            tonic::transport::Channel::from_shared(address.clone())?
                .connect()
                .await?,
        );
    }
    let channel = channels[0].clone();

    // Unary: each task calls GetUser back to back over its share of the connections.
    let until = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..concurrency {
        let mut client = UserServiceClient::new(channels[t % connections].clone());
        let ids = ids.clone();
        let token = token.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i = t * 7919;
            while Instant::now() < until {
                i = (i + 104_729) % ids.len();
                let started = Instant::now();
                let request = authed(GetUserRequest { id: ids[i].clone() }, &token)?;
                match client.get_user(request).await {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            anyhow::Ok((latencies, errors))
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (l, e) = done??;
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "name": if connections == 1 {
                "grpc GetUser".to_owned()
            } else {
                format!("grpc GetUser, {connections} connections")
            },
            "rps": latencies.len() as f64 / duration.as_secs_f64(),
            "p50_ms": percentile(&latencies, 0.50),
            "p99_ms": percentile(&latencies, 0.99),
            "errors": errors,
        })
    );

    // Server stream: every user, page by page.
    let mut client = UserServiceClient::new(channel);
    let started = Instant::now();
    let mut stream = client
        .list_users(authed(
            ListUsersRequest {
                page_size: 100,
                after: String::new(),
                max_users: 0,
            },
            token,
        )?)
        .await?
        .into_inner();
    let mut streamed = 0u64;
    while let Some(_user) = stream.message().await? {
        streamed += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "name": "grpc ListUsers stream",
            "users": streamed,
            "users_per_s": streamed as f64 / secs,
            "secs": secs,
        })
    );
    Ok(())
}
