//! WebSocket load benchmark: N clients in one room, one sender; reports delivered
//! messages per second, p50/p99 delivery latency, and memory per connection.
//!
//! Runs the real service in-process on the embedded default (no database, so it
//! measures the WebSocket path, not Postgres):
//!
//! ```sh
//! cargo run --release -p app --example ws_load -- 200 2000   # clients, messages
//! ```

use std::time::{Duration, Instant};

use app::{Application, Settings};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let messages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);

    let vars = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("GRPC_PORT", "0"),
        ("WORKERS", "0"),
        ("RUST_LOG", "warn"),
        ("LIVE_MAX_FRAMES_PER_SEC", "100000"),
        ("LIVE_MAX_MESSAGES_PER_SEC_PER_USER", "100000"),
        // One benchmark user on many sockets from one address.
        ("LIVE_MAX_CONNECTIONS_PER_USER", "100000"),
        ("LIVE_MAX_CONNECTIONS_PER_IP", "100000"),
        ("LIVE_OUTBOUND_QUEUE", "4096"),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
    ];
    let settings = Settings::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })?;
    let application = Application::build(&settings).await?;
    let base = format!("127.0.0.1:{}", application.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let password = "benchmark password 123";
    http.post(format!("http://{base}/api/users"))
        .json(&serde_json::json!({"name": "Bench", "email": "bench@example.com", "password": password}))
        .send()
        .await?;
    let token: serde_json::Value = http
        .post(format!("http://{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "bench@example.com", "password": password}))
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let connect = || {
        let mut request = format!("ws://{base}/api/ws")
            .into_client_request()
            .expect("url");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        tokio_tungstenite::connect_async(request)
    };
    let rss_before = rss_kib();
    let mut receivers = Vec::new();
    for _ in 0..clients {
        let (mut ws, _) = connect().await?;
        ws.send(Message::text(r#"{"type":"join","room":"bench"}"#))
            .await?;
        let _joined = ws.next().await;
        receivers.push(ws);
    }
    let rss_after = rss_kib();

    // Each receiver records the latency of every message (the text is the send time).
    let epoch = Instant::now();
    let tasks: Vec<_> = receivers
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(messages);
                while latencies.len() < messages {
                    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                            if let Some(sent) =
                                v["text"].as_str().and_then(|s| s.parse::<u128>().ok())
                            {
                                latencies.push(epoch.elapsed().as_micros().saturating_sub(sent));
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                latencies
            })
        })
        .collect();

    let (mut sender, _) = connect().await?;
    sender
        .send(Message::text(r#"{"type":"join","room":"bench"}"#))
        .await?;
    let started = Instant::now();
    for _ in 0..messages {
        let frame = serde_json::json!({
            "type": "message", "room": "bench", "text": epoch.elapsed().as_micros().to_string()
        });
        sender.send(Message::text(frame.to_string())).await?;
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await?);
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };

    println!("| metric | value |");
    println!("|---|---|");
    println!("| clients | {clients} |");
    println!("| messages sent | {messages} |");
    println!("| deliveries | {} of {} |", all.len(), clients * messages);
    println!(
        "| delivered / s | {:.0} |",
        all.len() as f64 / elapsed.as_secs_f64()
    );
    println!("| latency p50 | {:.2} ms |", pct(0.50) as f64 / 1000.0);
    println!("| latency p99 | {:.2} ms |", pct(0.99) as f64 / 1000.0);
    println!(
        "| memory per connection | {:.1} KiB |",
        (rss_after.saturating_sub(rss_before)) as f64 / clients.max(1) as f64
    );

    let _ = stop.send(());
    server.await??;
    Ok(())
}
