//! Faults while requests flow: several clients send a steady stream of writes and reads,
//! a fault strikes, and what every request was answered is checked against what
//! Postgres holds afterwards. A write acknowledged (201) must be there; a row nobody
//! sent must not; a failure must be a 503 problem or a connection that never got an
//! answer, never a 500 or a hang.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::binary::{app, listening, read_log, sigterm};
use crate::support::*;

/// What one request saw.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// An HTTP answer, and the problem `type` when it was one.
    Answered(u16, Option<String>),
    /// The connection was refused: nothing listens, the request was never sent.
    Refused,
    /// Sent, but the connection failed before an answer came.
    Lost(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    WritePost,
    ReadPost,
    Register,
}

#[derive(Debug, Clone)]
struct Record {
    op: Op,
    /// The post title or the e-mail sent: unique per request.
    key: String,
    outcome: Outcome,
    elapsed: Duration,
}

impl Record {
    fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Answered(status, _) => Some(status),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    unavailable: AtomicUsize,
}

/// A steady request stream: `clients` tasks, each sending one request after another
/// until told to stop or until its connection is refused (the server is gone).
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    tasks: JoinSet<Vec<Record>>,
}

impl Load {
    /// Writes and reads of posts as `token`'s user; with `register`, every fifth
    /// request registers a new user instead.
    fn start(base: &str, token: &str, clients: usize, register: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let mut tasks = JoinSet::new();
        for client in 0..clients {
            let (stop, tally) = (stop.clone(), tally.clone());
            let (base, token) = (base.to_owned(), token.to_owned());
            tasks.spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut records = Vec::new();
                let mut last_post: Option<String> = None;
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("c{client}-{n}");
                    let (op, request) = match (n % 5, &last_post) {
                        (4, _) if register => (
                            Op::Register,
                            http.post(format!("{base}/api/users")).json(&json!({
                                "name": "Load", "email": format!("{key}@example.com"),
                                "password": PASSWORD,
                            })),
                        ),
                        (1 | 3, Some(id)) => (
                            Op::ReadPost,
                            http.get(format!("{base}/api/posts/{id}"))
                                .bearer_auth(&token),
                        ),
                        _ => (
                            Op::WritePost,
                            http.post(format!("{base}/api/posts"))
                                .bearer_auth(&token)
                                .json(&json!({"title": key, "body": "steady load"})),
                        ),
                    };
                    let started = Instant::now();
                    let outcome = match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body: Value = response.json().await.unwrap_or_default();
                            if op == Op::WritePost && status == 201 {
                                last_post = body["id"].as_str().map(str::to_owned);
                            }
                            if status < 300 {
                                tally.ok.fetch_add(1, Ordering::Relaxed);
                            } else if status == 503 {
                                tally.unavailable.fetch_add(1, Ordering::Relaxed);
                            }
                            Outcome::Answered(status, body["type"].as_str().map(str::to_owned))
                        }
                        Err(e) if e.is_connect() => Outcome::Refused,
                        Err(e) => Outcome::Lost(format!("{e:?}")),
                    };
                    let refused = outcome == Outcome::Refused;
                    records.push(Record {
                        op,
                        key: if op == Op::Register {
                            format!("{key}@example.com")
                        } else {
                            key
                        },
                        outcome,
                        elapsed: started.elapsed(),
                    });
                    if refused {
                        break;
                    }
                }
                records
            });
        }
        Self { stop, tally, tasks }
    }

    fn ok(&self) -> usize {
        self.tally.ok.load(Ordering::Relaxed)
    }

    fn unavailable(&self) -> usize {
        self.tally.unavailable.load(Ordering::Relaxed)
    }

    /// Waits (polling the tally, at most 30 s) until `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: {} ok, {} unavailable",
                self.ok(),
                self.unavailable()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the clients (or waits for them to find the server gone) and returns every
    /// request's record.
    async fn finish(mut self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        while let Some(records) = self.tasks.join_next().await {
            all.extend(records.unwrap());
        }
        all
    }
}

fn keys(records: &[Record], op: Op, status: u16) -> HashSet<String> {
    records
        .iter()
        .filter(|r| r.op == op && r.status() == Some(status))
        .map(|r| r.key.clone())
        .collect()
}

/// What Postgres holds against what clients were told: every acknowledged key is
/// stored, and every other stored key is one of `unanswered` (sent, answer unknown).
fn assert_stored(
    what: &str,
    stored: &HashSet<String>,
    acknowledged: &HashSet<String>,
    unanswered: &HashSet<String>,
) {
    let missing: Vec<_> = acknowledged.difference(stored).collect();
    assert!(
        missing.is_empty(),
        "{what}: acknowledged, not stored: {missing:?}"
    );
    let unexplained: Vec<_> = stored
        .difference(acknowledged)
        .filter(|k| !unanswered.contains(*k))
        .collect();
    assert!(
        unexplained.is_empty(),
        "{what}: stored, never acknowledged: {unexplained:?}"
    );
}

fn sent(records: &[Record], op: Op) -> HashSet<String> {
    records
        .iter()
        .filter(|r| r.op == op)
        .map(|r| r.key.clone())
        .collect()
}

async fn post_titles(db: &test_support::TestDb) -> HashSet<String> {
    db.strings("SELECT title FROM posts WHERE body = 'steady load'")
        .await
        .into_iter()
        .collect()
}

async fn load_emails(db: &test_support::TestDb) -> HashSet<String> {
    db.strings("SELECT email FROM users WHERE name = 'Load'")
        .await
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_and_a_lost_database_under_load_give_503s_then_recover_losing_nothing() {
    let db = test_support::TestDb::new().await;
    let mut app = spawn_with(settings(
        Some(db.url()),
        &[
            ("DB_MAX_CONNECTIONS", "4"),
            ("DB_ACQUIRE_TIMEOUT_MS", "1000"),
            ("WORKERS", "0"),
        ],
    ))
    .await;
    app.db = Some(db);
    let (_, token) = app.signed_in("Ada", "ada@example.com").await;
    let db = app.db.as_ref().unwrap();

    let load = Load::start(&app.address, &token, 4, true);
    load.until("warming up", |l| l.ok() >= 30).await;

    // Every connection of the pool (and the event listener's) killed mid-stream, three
    // times: requests on a dying connection fail over to fresh ones or get a 503.
    for _ in 0..3 {
        assert!(db.terminate_sessions().await > 0);
        let before = load.ok();
        load.until("recovering from killed connections", |l| {
            l.ok() >= before + 15
        })
        .await;
    }

    // The database gone for a while: 503s, and readiness says so.
    db.cut_off().await;
    let before = load.unavailable();
    load.until("503s during the outage", |l| l.unavailable() >= before + 5)
        .await;
    let (status, ready) = app.get("/api/health/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["database"], "unavailable");

    // Back, and the same process serves again.
    db.restore().await;
    let before = load.ok();
    load.until("recovering from the outage", |l| l.ok() >= before + 30)
        .await;
    let (status, _) = app.get("/api/health/ready").await;
    assert_eq!(status, 200);
    let records = load.finish().await;

    // Every answer is a success or a 503 problem, well within the acquire timeout plus
    // one connect attempt; the server never dropped a connection.
    for record in &records {
        match &record.outcome {
            Outcome::Answered(200 | 201, _) => {}
            Outcome::Answered(503, kind) => {
                assert_eq!(kind.as_deref(), Some("/problems/unavailable"), "{record:?}")
            }
            other => panic!("{other:?} for {record:?}"),
        }
        assert!(record.elapsed < Duration::from_secs(5), "{record:?}");
    }
    let answered_503 = records.iter().filter(|r| r.status() == Some(503)).count();
    assert!(answered_503 >= 5);

    // Nothing acknowledged is lost; nothing unsent appears. A write answered 503 may
    // or may not have committed (the connection died around the COMMIT): the client
    // retries it with its Idempotency-Key.
    let titles = post_titles(db).await;
    let posts_sent = sent(&records, Op::WritePost);
    assert_stored(
        "posts",
        &titles,
        &keys(&records, Op::WritePost, 201),
        &posts_sent,
    );
    let emails = load_emails(db).await;
    let users_sent = sent(&records, Op::Register);
    assert_stored(
        "users",
        &emails,
        &keys(&records, Op::Register, 201),
        &users_sent,
    );
    eprintln!(
        "{} requests: {} answered 503, {} posts and {} users stored",
        records.len(),
        answered_503,
        titles.len(),
        emails.len()
    );
}

/// Signs a new user up over HTTP and returns their access token.
pub(crate) async fn sign_up(base: &str, email: &str) -> String {
    ApiClient::new(base).signed_in("Ada", email).await.1
}

/// Polls `count` until it reaches `at_least`, for at most 15 s.
async fn eventually(what: &str, at_least: i64, count: impl AsyncFn() -> i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = count().await;
        if n >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_accepted_request_and_exits_0() {
    let db = test_support::TestDb::new().await;
    // Deliveries outlast the grace period, so the welcome job is mid-flight at the
    // signal and has to be released.
    let sink = test_support::SmtpSink::start_on(0, Duration::from_secs(60)).await;
    let mut child = app()
        .env("DATABASE_URL", db.url())
        .env("JWT_SECRET", JWT_SECRET)
        .env("SMTP_URL", sink.url())
        .env("WORKERS", "2")
        .env("JOB_LEASE_SECS", "120")
        .env("SHUTDOWN_GRACE_SECS", "3")
        .spawn()
        .unwrap();
    let (address, lines) = listening(&mut child).await;
    let logs = read_log(lines);
    let base = format!("http://{address}");
    let token = sign_up(&base, "ada@example.com").await;
    eventually("the welcome job running", 1, async || {
        db.count("SELECT count(*) AS n FROM jobs WHERE state = 'running'")
            .await
    })
    .await;

    let load = Load::start(&base, &token, 4, false);
    load.until("warming up", |l| l.ok() >= 40).await;

    // One request certainly in flight at the signal: a login that waits on a lock.
    let mut locker = db.connect().await;
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut locker,
        "BEGIN; LOCK TABLE refresh_tokens IN ACCESS EXCLUSIVE MODE;",
    )
    .await
    .unwrap();
    let held = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
            .send(),
    );
    eventually("the login waiting on the lock", 1, async || {
        db.sessions_waiting_for_locks().await
    })
    .await;

    sigterm(&child);
    let signalled = Instant::now();
    // Draining: the listener is closed at once, while the process still runs.
    let deadline = Instant::now() + Duration::from_secs(2);
    while tokio::net::TcpStream::connect(&address).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before draining"
    );

    diesel_async::SimpleAsyncConnection::batch_execute(&mut locker, "ROLLBACK")
        .await
        .unwrap();
    let login = held.await.unwrap().expect("the held request is answered");
    assert_eq!(login.status(), 200, "the request in flight completed");

    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
    // The unfinished job holds shutdown for the whole 3 s grace period, then is released.
    assert!(
        signalled.elapsed() < Duration::from_secs(3 + 5),
        "within the grace period: {:?}",
        signalled.elapsed()
    );
    let records = load.finish().await;

    // Every request answered was a success. The others were refused at connect, or
    // were sent on an idle keep-alive connection just as the server closed it: a race
    // every HTTP client must meet with a retry, at most one per connection, and such a
    // request was never read: a post is stored exactly when its 201 came back.
    let mut raced = 0;
    for record in &records {
        match &record.outcome {
            Outcome::Answered(200 | 201, _) | Outcome::Refused => {}
            Outcome::Lost(_) => raced += 1,
            other => panic!("{other:?} for {record:?}"),
        }
    }
    // At most one per connection, twice if a reconnect lands in the closing backlog.
    assert!(raced <= 8, "{raced} requests met a closing connection");
    assert_eq!(
        post_titles(&db).await,
        keys(&records, Op::WritePost, 201),
        "stored exactly the acknowledged posts"
    );
    // The worker released the job it could not finish: queued again, no lease held.
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM jobs WHERE state = 'running' OR lease_until IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM jobs WHERE state = 'queued'")
            .await,
        1
    );
    let logs = logs.await.unwrap();
    assert!(logs.iter().any(|l| l.contains("\"stopped\"")), "{logs:?}");
    eprintln!(
        "{} requests, {} refused after the signal, {raced} racing a connection close",
        records.len(),
        records
            .iter()
            .filter(|r| r.outcome == Outcome::Refused)
            .count()
    );
}

/// Sends chat messages one after another, each acknowledged by its own echo (stored,
/// then delivered), until the connection breaks. Returns the acknowledged message ids
/// and how many were sent.
async fn chat_until_cut_off(base: &str, token: &str) -> (Vec<String>, usize) {
    let url = format!("{}/api/ws", base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let frame = |v: Value| Message::text(v.to_string());
    ws.send(frame(json!({"type": "join", "room": "load"})))
        .await
        .unwrap();
    let (mut acknowledged, mut sent) = (Vec::new(), 0);
    'sending: for n in 0.. {
        let client_id = format!("m{n}");
        let message = json!({"type": "message", "room": "load", "text": "steady chat", "client_id": client_id});
        if ws.send(frame(message)).await.is_err() {
            break;
        }
        sent += 1;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    assert_ne!(v["type"], "error", "{v}");
                    if v["type"] == "message" && v["client_id"] == client_id.as_str() {
                        acknowledged.push(v["id"].as_str().unwrap().to_owned());
                        continue 'sending;
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => break 'sending,
                Err(_) => panic!("no echo within 10 s"),
            }
        }
    }
    (acknowledged, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_write_and_leaves_nothing_half_written() {
    let db = test_support::TestDb::new().await;
    let start = || {
        app()
            .env("DATABASE_URL", db.url())
            .env("JWT_SECRET", JWT_SECRET)
            .env("WORKERS", "0")
            // The chat client sends as fast as its echoes come back.
            .env("LIVE_MAX_FRAMES_PER_SEC", "10000")
            .env("LIVE_MAX_MESSAGES_PER_SEC_PER_USER", "10000")
            .spawn()
            .unwrap()
    };
    let mut first = start();
    let (address, lines) = listening(&mut first).await;
    read_log(lines);
    let base = format!("http://{address}");
    let token = sign_up(&base, "ada@example.com").await;

    let load = Load::start(&base, &token, 3, true);
    let chat = tokio::spawn({
        let (base, token) = (base.clone(), token.clone());
        async move { chat_until_cut_off(&base, &token).await }
    });
    load.until("warming up", |l| l.ok() >= 60).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let records = load.finish().await;
    let (messages, messages_sent) = chat.await.unwrap();
    assert!(!messages.is_empty(), "chat ran before the kill");

    // Before the kill: successes only. Then the requests in flight, and those sent
    // before the dying process's listener closed, lost their answers.
    let in_flight: HashSet<String> = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Lost(_)))
        .map(|r| r.key.clone())
        .collect();
    for record in &records {
        match &record.outcome {
            Outcome::Answered(200 | 201, _) | Outcome::Refused | Outcome::Lost(_) => {}
            other => panic!("{other:?} for {record:?}"),
        }
    }
    let lost = in_flight.len();

    // Restarted on the same database.
    let mut second = start();
    let (address, lines) = listening(&mut second).await;
    read_log(lines);
    let base = format!("http://{address}");

    // Every acknowledged write is there; besides those, only writes in flight at the
    // kill may have committed.
    let titles = post_titles(&db).await;
    let acknowledged = keys(&records, Op::WritePost, 201);
    assert_stored("posts", &titles, &acknowledged, &in_flight);
    let emails = load_emails(&db).await;
    let registered = keys(&records, Op::Register, 201);
    assert_stored("users", &emails, &registered, &in_flight);
    let stored: HashSet<String> = db
        .strings("SELECT id FROM chat_messages WHERE room = 'load'")
        .await
        .into_iter()
        .collect();
    assert!(messages.iter().all(|id| stored.contains(id)));
    assert!(stored.len() <= messages_sent);

    // Nothing half-written: every user has exactly their welcome job (one
    // transaction), and no post lacks its author.
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM users u WHERE (SELECT count(*) FROM jobs j \
             WHERE j.payload->>'user_id' = u.id::text AND j.kind = 'welcome_email') <> 1"
        )
        .await,
        0
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM jobs WHERE kind = 'welcome_email'")
            .await,
        db.count("SELECT count(*) AS n FROM users").await
    );
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM posts p WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = p.author_id)"
        )
        .await,
        0
    );

    // And the restarted server serves what was acknowledged.
    let some = acknowledged.iter().next().unwrap();
    let id = db
        .strings(&format!("SELECT id FROM posts WHERE title = '{some}'"))
        .await;
    let (_, fetched) = ApiClient::new(&base)
        .get_as(&token, &format!("/api/posts/{}", id[0]))
        .await;
    assert_eq!(fetched["title"], some.as_str(), "{fetched}");
    eprintln!(
        "killed after {} requests ({} acknowledged posts, {} lost answers) and {} chat messages",
        records.len(),
        acknowledged.len(),
        lost,
        messages.len()
    );
    second.start_kill().unwrap();
    second.wait().await.unwrap();
}
