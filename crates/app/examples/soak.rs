//! Soak traffic: a fixed rate of mixed HTTP requests (reads, writes, logins) plus
//! WebSocket and gRPC chat clients, against a running server, for a bounded time.
//! Prints one JSON line per interval and a final `summary` line; `scripts/soak.sh`
//! (`just soak`) pairs them with the server's memory, file descriptors and database
//! connections and writes the report.
//!
//! ```sh
//! cargo run --release -p app --example soak -- http://127.0.0.1:8080 http://127.0.0.1:50051 600 200
//! ```
//!
//! HTTP is open-loop: a request starts every 1/RATE s whether or not earlier ones have
//! finished (at most 512 in flight; a tick finding none free counts as `overload`), so
//! a slow server shows up as latency and errors rather than as a politely lower rate.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use grpc_adapter::pb::chat::chat_service_client::ChatServiceClient;
use grpc_adapter::pb::chat::{self, client_event, server_event};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PASSWORD: &str = "soak test passphrase";
const USERS: usize = 20;
const WS_CLIENTS: usize = 16;
const GRPC_CLIENTS: usize = 4;
const CHAT_EVERY: Duration = Duration::from_secs(2);
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);

/// What one interval saw; swapped out and reported every interval.
#[derive(Default)]
struct Interval {
    http_ms: Vec<f64>,
    ws_ms: Vec<f64>,
    grpc_ms: Vec<f64>,
    /// Failures by kind: an HTTP status, `transport`, `overload`, `ws_…`, `grpc_…`.
    errors: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Stats {
    now: Mutex<Interval>,
    http_total: AtomicU64,
    chat_total: AtomicU64,
}

impl Stats {
    fn record(&self, f: impl FnOnce(&mut Interval)) {
        if let Ok(mut interval) = self.now.lock() {
            f(&mut interval);
        }
    }

    fn error(&self, kind: impl Into<String>) {
        let kind = kind.into();
        self.record(|i| *i.errors.entry(kind).or_default() += 1);
    }
}

/// A small xorshift generator: the traffic mix needs no cryptographic randomness.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[derive(Clone)]
struct Account {
    id: String,
    email: String,
    token: String,
}

/// Posts written so far and who wrote them (the newest 1,000).
type Posts = Arc<Mutex<Vec<(String, usize)>>>;

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (base, grpc, secs, rate, every) = match args.as_slice() {
        [base, grpc, secs, rate] => (base, grpc, secs, rate, "10"),
        [base, grpc, secs, rate, every] => (base, grpc, secs, rate, every.as_str()),
        _ => anyhow::bail!("usage: soak BASE_URL GRPC_URL SECONDS RATE [INTERVAL_SECS]"),
    };
    let duration = Duration::from_secs(secs.parse().context("SECONDS")?);
    let rate: f64 = rate.parse().context("RATE")?;
    let every = Duration::from_secs(every.parse().context("INTERVAL_SECS")?);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    let run = std::process::id();
    let mut accounts = Vec::new();
    for n in 0..USERS {
        accounts.push(sign_up(&http, base, &format!("soak-{run}-{n}@example.com")).await?);
    }
    let accounts = Arc::new(accounts);
    let posts: Posts = Arc::default();
    for (owner, account) in accounts.iter().enumerate() {
        let created: Value = http
            .post(format!("{base}/api/posts"))
            .bearer_auth(&account.token)
            .json(&json!({"title": "soak", "body": "the first post"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["id"].as_str().context("post id")?.to_owned();
        posts
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push((id, owner));
    }

    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let until = started + duration;
    let mut clients = tokio::task::JoinSet::new();
    for n in 0..WS_CLIENTS {
        let (stats, account) = (stats.clone(), accounts[n % USERS].clone());
        let url = format!("{}/api/ws", base.replacen("http", "ws", 1));
        clients.spawn(async move {
            if let Err(e) =
                ws_client(&url, &account, &format!("soak-{}", n % 4), n, until, &stats).await
            {
                stats.error(format!("ws_{e}"));
            }
        });
    }
    for n in 0..GRPC_CLIENTS {
        let (stats, account, grpc) = (stats.clone(), accounts[n % USERS].clone(), grpc.clone());
        clients.spawn(async move {
            if let Err(e) = grpc_client(&grpc, &account, n, until, &stats).await {
                stats.error(format!("grpc_{e}"));
            }
        });
    }
    let reporter = tokio::spawn(report(stats.clone(), started, every, until));

    // Open-loop HTTP traffic.
    let in_flight = Arc::new(Semaphore::new(512));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(run));
    let mut requests = tokio::task::JoinSet::new();
    while Instant::now() < until {
        ticker.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            stats.error("overload");
            continue;
        };
        let pick = rng.below(100);
        let who = rng.below(USERS);
        let which = rng.below(1_000_000);
        let (http, base, accounts, posts, stats) = (
            http.clone(),
            base.clone(),
            accounts.clone(),
            posts.clone(),
            stats.clone(),
        );
        requests.spawn(async move {
            let _permit = permit;
            one_request(&http, &base, &accounts, &posts, &stats, pick, who, which).await;
        });
        // Reap finished ones so the set stays small.
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
    while clients.join_next().await.is_some() {}
    reporter.await?;
    Ok(())
}

async fn sign_up(http: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<Account> {
    let created: Value = http
        .post(format!("{base}/api/users"))
        .json(&json!({"name": "Soak", "email": email, "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()
        .context("signing up")?
        .json()
        .await?;
    let token = login(http, base, email).await?;
    Ok(Account {
        id: created["id"].as_str().context("user id")?.to_owned(),
        email: email.to_owned(),
        token,
    })
}

async fn login(http: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<String> {
    let tokens: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()
        .context("logging in")?
        .json()
        .await?;
    Ok(tokens["access_token"]
        .as_str()
        .context("access token")?
        .to_owned())
}

/// One request of the mix: 45 % a post, 15 % a user with posts (the fan-out), 10 % a
/// page of users, 6 % the caller, 15 % a new post, 7 % an edit, 2 % a login.
#[allow(clippy::too_many_arguments)]
async fn one_request(
    http: &reqwest::Client,
    base: &str,
    accounts: &[Account],
    posts: &Posts,
    stats: &Stats,
    pick: usize,
    who: usize,
    which: usize,
) {
    let account = &accounts[who];
    let some_post = || {
        posts.lock().ok().and_then(|p| {
            let (id, owner) = p.get(which % p.len().max(1))?;
            Some((id.clone(), *owner))
        })
    };
    let request = match pick {
        0..45 => match some_post() {
            Some((id, _)) => http.get(format!("{base}/api/posts/{id}")),
            None => return,
        },
        45..60 => {
            let user = &accounts[which % accounts.len()];
            http.get(format!("{base}/api/users/{}?include=posts", user.id))
        }
        60..70 => http.get(format!("{base}/api/users?limit=20")),
        70..76 => http.get(format!("{base}/api/users/me")),
        76..91 => http
            .post(format!("{base}/api/posts"))
            .json(&json!({"title": format!("soak {which}"), "body": "steady traffic"})),
        91..98 => match some_post() {
            Some((id, owner)) => {
                let edit = http
                    .patch(format!("{base}/api/posts/{id}"))
                    .bearer_auth(&accounts[owner].token)
                    .json(&json!({"body": format!("edited {which}")}));
                timed(stats, edit.send()).await;
                return;
            }
            None => return,
        },
        _ => {
            let email = account.email.clone();
            let started = Instant::now();
            match login(http, base, &email).await {
                Ok(_) => stats.record(|i| i.http_ms.push(ms(started))),
                Err(_) => stats.error("login_failed"),
            }
            stats.http_total.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let created = timed(stats, async {
        request.bearer_auth(&account.token).send().await
    })
    .await;
    if let Some(body) = created
        && let Some(id) = body["id"].as_str().filter(|_| (76..91).contains(&pick))
        && let Ok(mut p) = posts.lock()
    {
        if p.len() >= 1000 {
            p.remove(0);
        }
        p.push((id.to_owned(), who));
    }
}

/// Sends, records the latency or the failure, and returns a successful JSON body.
async fn timed(
    stats: &Stats,
    send: impl Future<Output = reqwest::Result<reqwest::Response>>,
) -> Option<Value> {
    let started = Instant::now();
    stats.http_total.fetch_add(1, Ordering::Relaxed);
    match send.await {
        Ok(response) if response.status().is_success() => {
            let body = response.json::<Value>().await.unwrap_or_default();
            stats.record(|i| i.http_ms.push(ms(started)));
            Some(body)
        }
        Ok(response) => {
            stats.error(response.status().as_u16().to_string());
            None
        }
        Err(_) => {
            stats.error("transport");
            None
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Chat messages sent and not yet echoed. Past the end of the run a client stops
/// sending and waits until this is empty; an echo later than [`ECHO_TIMEOUT`] is an
/// error either way.
struct Pending {
    sent: HashMap<String, Instant>,
    timeout_error: &'static str,
}

impl Pending {
    fn new(timeout_error: &'static str) -> Self {
        Self {
            sent: HashMap::new(),
            timeout_error,
        }
    }

    fn sent(&mut self, client_id: String) {
        self.sent.insert(client_id, Instant::now());
    }

    /// When `client_id` was sent, if it was ours and still awaited.
    fn echoed(&mut self, client_id: &str, stats: &Stats) -> Option<Instant> {
        let at = self.sent.remove(client_id)?;
        stats.chat_total.fetch_add(1, Ordering::Relaxed);
        Some(at)
    }

    /// Forgets the messages past the timeout, counting each as an error.
    fn sweep(&mut self, stats: &Stats) {
        self.sent.retain(|_, at| {
            let late = at.elapsed() > ECHO_TIMEOUT;
            if late {
                stats.error(self.timeout_error);
            }
            !late
        });
    }

    fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

/// A WebSocket chat client: one message every 2 s to its room; each must come back (its
/// echo) within 5 s.
async fn ws_client(
    url: &str,
    account: &Account,
    room: &str,
    n: usize,
    until: Instant,
    stats: &Stats,
) -> Result<(), &'static str> {
    let mut request = url.into_client_request().map_err(|_| "url")?;
    let bearer = format!("Bearer {}", account.token)
        .parse()
        .map_err(|_| "token")?;
    request.headers_mut().insert("authorization", bearer);
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|_| "connect")?;
    let join = json!({"type": "join", "room": room}).to_string();
    ws.send(Message::text(join)).await.map_err(|_| "send")?;
    let mut pending = Pending::new("ws_echo_timeout");
    let mut ticker = tokio::time::interval(CHAT_EVERY);
    let mut sent = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                pending.sweep(stats);
                if Instant::now() >= until {
                    if pending.is_empty() {
                        let _ = ws.close(None).await;
                        return Ok(());
                    }
                    continue;
                }
                let client_id = format!("ws{n}-{sent}");
                sent += 1;
                let frame = json!({"type": "message", "room": room, "text": "soak", "client_id": client_id});
                pending.sent(client_id);
                ws.send(Message::text(frame.to_string())).await.map_err(|_| "send")?;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Ok(v) = serde_json::from_str::<Value>(&text) else { return Err("bad_frame") };
                    match v["type"].as_str() {
                        Some("message") => {
                            if let Some(at) = v["client_id"].as_str().and_then(|id| pending.echoed(id, stats)) {
                                stats.record(|i| i.ws_ms.push(ms(at)));
                            }
                        }
                        Some("error") => stats.error(format!("ws_error_{}", v["code"].as_str().unwrap_or("?"))),
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Err("closed"),
                Some(Ok(_)) => {}
                Some(Err(_)) => return Err("broken"),
            }
        }
    }
}

/// A gRPC chat stream doing what [`ws_client`] does.
async fn grpc_client(
    address: &str,
    account: &Account,
    n: usize,
    until: Instant,
    stats: &Stats,
) -> Result<(), &'static str> {
    let channel = tonic::transport::Channel::from_shared(address.to_owned())
        .map_err(|_| "address")?
        .connect()
        .await
        .map_err(|_| "connect")?;
    let (tx, outgoing) = mpsc::channel(16);
    let mut request = tonic::Request::new(ReceiverStream::new(outgoing));
    let bearer = format!("Bearer {}", account.token)
        .parse()
        .map_err(|_| "token")?;
    request.metadata_mut().insert("authorization", bearer);
    let mut events = ChatServiceClient::new(channel)
        .chat(request)
        .await
        .map_err(|_| "open")?
        .into_inner();
    let send = |event| chat::ClientEvent { event: Some(event) };
    let room = "soak-grpc".to_owned();
    tx.send(send(client_event::Event::Join(chat::Join {
        room: room.clone(),
        since: None,
    })))
    .await
    .map_err(|_| "send")?;
    let mut pending = Pending::new("grpc_echo_timeout");
    let mut ticker = tokio::time::interval(CHAT_EVERY);
    let mut sent = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                pending.sweep(stats);
                if Instant::now() >= until {
                    if pending.is_empty() {
                        return Ok(());
                    }
                    continue;
                }
                let client_id = format!("g{n}-{sent}");
                sent += 1;
                pending.sent(client_id.clone());
                let message = chat::SendMessage { room: room.clone(), text: "soak".into(), client_id: Some(client_id) };
                tx.send(send(client_event::Event::Message(message))).await.map_err(|_| "send")?;
            }
            event = events.message() => match event {
                Ok(Some(chat::ServerEvent { event: Some(server_event::Event::Message(m)) })) => {
                    if let Some(at) = m.client_id.and_then(|id| pending.echoed(&id, stats)) {
                        stats.record(|i| i.grpc_ms.push(ms(at)));
                    }
                }
                Ok(Some(chat::ServerEvent { event: Some(server_event::Event::Error(e)) })) => {
                    stats.error(format!("grpc_error_{}", e.code));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Err("ended"),
            }
        }
    }
}

/// Every interval: one JSON line of what it saw. At the end: the summary line.
async fn report(stats: Arc<Stats>, started: Instant, every: Duration, until: Instant) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let (mut all_http, mut all_chat) = (Vec::new(), Vec::new());
    let mut all_errors: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        ticker.tick().await;
        let mut interval = stats
            .now
            .lock()
            .map(|mut i| std::mem::take(&mut *i))
            .unwrap_or_default();
        let requests = interval.http_ms.len() as u64
            + interval
                .errors
                .iter()
                .filter(|(k, _)| !k.starts_with("ws_") && !k.starts_with("grpc_"))
                .map(|(_, v)| v)
                .sum::<u64>();
        let errors: u64 = interval.errors.values().sum();
        let line = json!({
            "t": started.elapsed().as_secs(),
            "http_requests": requests,
            "http_rps": requests as f64 / every.as_secs_f64(),
            "http_p50_ms": percentile(&mut interval.http_ms, 0.50),
            "http_p99_ms": percentile(&mut interval.http_ms, 0.99),
            "ws_messages": interval.ws_ms.len(),
            "ws_p99_ms": percentile(&mut interval.ws_ms, 0.99),
            "grpc_messages": interval.grpc_ms.len(),
            "grpc_p99_ms": percentile(&mut interval.grpc_ms, 0.99),
            "errors": errors,
            "error_kinds": interval.errors,
        });
        println!("{line}");
        all_http.append(&mut interval.http_ms);
        all_chat.append(&mut interval.ws_ms);
        all_chat.append(&mut interval.grpc_ms);
        for (k, v) in interval.errors {
            *all_errors.entry(k).or_default() += v;
        }
        // The chat clients wait up to one echo timeout for their last echoes.
        if tokio::time::Instant::now().into_std() >= until + ECHO_TIMEOUT + CHAT_EVERY + every {
            break;
        }
    }
    let errors: u64 = all_errors.values().sum();
    let summary = json!({
        "summary": true,
        "seconds": started.elapsed().as_secs(),
        "http_requests": stats.http_total.load(Ordering::Relaxed),
        "chat_messages": stats.chat_total.load(Ordering::Relaxed),
        "errors": errors,
        "error_kinds": all_errors,
        "http_p50_ms": percentile(&mut all_http, 0.50),
        "http_p99_ms": percentile(&mut all_http, 0.99),
        "http_max_ms": all_http.last().copied().unwrap_or(0.0),
        "chat_p99_ms": percentile(&mut all_chat, 0.99),
    });
    println!("{summary}");
}
