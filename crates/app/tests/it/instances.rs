//! Several instances of the binary on one database, as behind a load balancer.

use std::time::{Duration, Instant};

use crate::binary::{app, listening, read_log};
use crate::support::{ApiClient, JWT_SECRET};

/// One running instance.
struct Instance {
    process: tokio::process::Child,
    api: ApiClient,
}

async fn start(db: &test_support::TestDb, extra: &[(&str, &str)]) -> Instance {
    let mut command = app();
    command
        .env("DATABASE_URL", db.url())
        .env("JWT_SECRET", JWT_SECRET)
        .env("WORKERS", "0");
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut process = command.spawn().unwrap();
    let (address, lines) = listening(&mut process).await;
    let _log = read_log(lines);
    Instance {
        process,
        api: ApiClient::new(format!("http://{address}")),
    }
}

/// The `/metrics` text at `url`.
async fn metrics(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// Whether the instance reports that it holds the housekeeping lease.
async fn leads(instance: &Instance) -> bool {
    let text = metrics(instance.api.url("/metrics")).await;
    text.lines().any(|line| line == "housekeeping_leader 1")
}

/// Waits until exactly one of `instances` leads, and returns which.
async fn the_leader(instances: &[Instance], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut leaders = Vec::new();
        for (n, instance) in instances.iter().enumerate() {
            if leads(instance).await {
                leaders.push(n);
            }
        }
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if let [leader] = leaders[..] {
            return leader;
        }
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A job that completed two days ago, past the default retention of a day.
async fn old_completed_job(db: &test_support::TestDb) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    db.execute(&format!(
        "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, \
           created_at, updated_at) \
         VALUES ('{id}', 'welcome_email', '{{}}', 'completed', 1, 5, now(), \
           now() - interval '2 days', now() - interval '2 days')"
    ))
    .await;
    id
}

async fn swept(db: &test_support::TestDb, id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while db
        .count(&format!("SELECT count(*) AS n FROM jobs WHERE id = '{id}'"))
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "job {id} was not swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_housekeeping_lease_moves_within_its_lifetime_when_the_leader_dies() {
    const LEASE: Duration = Duration::from_secs(3);
    let db = test_support::TestDb::new().await;
    let settings = [
        ("LEADER_LEASE_SECS", "3"),
        ("HOUSEKEEPING_INTERVAL_SECS", "1"),
    ];
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(start(&db, &settings).await);
    }
    let leader = the_leader(&instances, 2 * LEASE).await;
    // Only the leader reports job counts, so a sum over instances counts each job once.
    for (n, instance) in instances.iter().enumerate() {
        let text = metrics(instance.api.url("/metrics")).await;
        let reports = text
            .lines()
            .any(|l| l.starts_with("jobs{state=\"queued\"}"));
        assert_eq!(reports, n == leader, "instance {n} (leader {leader})");
    }
    let old = old_completed_job(&db).await;
    let young = old_completed_job(&db).await;
    db.execute(&format!(
        "UPDATE jobs SET updated_at = now() WHERE id = '{young}'"
    ))
    .await;
    swept(&db, &old, Duration::from_secs(10)).await;

    // Killed, not stopped: it cannot give the lease up.
    let mut dead = instances.remove(leader);
    dead.process.start_kill().unwrap();
    dead.process.wait().await.unwrap();
    let killed = Instant::now();
    let successor = the_leader(&instances, 2 * LEASE).await;
    let took = killed.elapsed();
    // Within the lease's lifetime (and the time one scrape round takes).
    assert!(took <= LEASE + Duration::from_millis(500), "took {took:?}");

    // The sweeps go on under the successor, and keep what is young.
    let older = old_completed_job(&db).await;
    swept(&db, &older, Duration::from_secs(10)).await;
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM jobs WHERE id = '{young}'"
        ))
        .await,
        1
    );
    // A graceful stop hands the lease over at once, without waiting for it to expire.
    let mut stopping = instances.remove(successor);
    crate::binary::sigterm(&stopping.process);
    stopping.process.wait().await.unwrap();
    let stopped = Instant::now();
    the_leader(&instances, 2 * LEASE).await;
    assert!(stopped.elapsed() < LEASE, "took {:?}", stopped.elapsed());
}

/// Two in-process instances on one database, with live events over one NATS server.
async fn two_over_nats(
    db: &test_support::TestDb,
    nats: &test_support::NatsServer,
) -> (crate::support::TestApp, crate::support::TestApp) {
    let url = nats.url();
    let over_nats = [("EVENT_BUS", "nats"), ("NATS_URL", url.as_str())];
    let one =
        crate::support::spawn_with(crate::support::settings(Some(db.url()), &over_nats)).await;
    let two =
        crate::support::spawn_with(crate::support::settings(Some(db.url()), &over_nats)).await;
    (one, two)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_websocket_clients_chat_across_two_instances_over_nats() {
    let db = test_support::TestDb::new().await;
    let nats = test_support::NatsServer::start();
    let (one, two) = two_over_nats(&db, &nats).await;
    crate::grpc::chat_between_grpc_and_websocket(&one, &two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_loses_no_stored_message_once_clients_resume() {
    use crate::ws::{connect, join, next_frame, recv, send};
    use serde_json::json;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let db = test_support::TestDb::new().await;
    let mut nats = test_support::NatsServer::start();
    let (one, two) = two_over_nats(&db, &nats).await;
    let (_, ada) = one.signed_in("Ada", "ada@example.com").await;
    let (_, grace) = two.signed_in("Grace", "grace@example.com").await;
    let mut a = connect(&one, &ada).await;
    let mut g = connect(&two, &grace).await;
    join(&mut a, "general").await;
    join(&mut g, "general").await;
    let say = |text: &'static str| json!({"type": "message", "room": "general", "text": text});
    send(&mut a, say("before")).await;
    let before = recv(&mut g).await;
    assert_eq!(before["text"], "before", "{before}");

    nats.stop();
    send(&mut a, say("during 1")).await;
    send(&mut a, say("during 2")).await;
    // Stored (the sender's acknowledgement is its own copy, which needs the bus): the
    // history has them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = one
            .get_as(&ada, "/api/rooms/general/messages?limit=10")
            .await;
        if page["items"].as_array().unwrap().len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "messages not stored: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nats.resume();

    // Grace's instance reconnects and tells her she may have missed messages...
    let mut seen = vec![before];
    let code = loop {
        match next_frame(&mut g, Duration::from_secs(20)).await {
            Ok(frame) => seen.push(frame),
            Err(code) => break code,
        }
    };
    assert_eq!(code, Some(CloseCode::Again), "seen {seen:?}");
    // ...and resuming from the last one she saw gives her the rest.
    let last = seen
        .iter()
        .rev()
        .find(|m| m["type"] == "message")
        .and_then(|m| m["id"].as_str())
        .unwrap()
        .to_owned();
    let mut again = connect(&two, &grace).await;
    send(
        &mut again,
        json!({"type": "join", "room": "general", "since": last}),
    )
    .await;
    let joined = recv(&mut again).await;
    let mut texts: Vec<String> = seen
        .iter()
        .filter(|m| m["type"] == "message")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    texts.extend(
        joined["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned()),
    );
    assert_eq!(texts, ["before", "during 1", "during 2"]);
    // Live delivery works again, across instances, for a client that does as clients
    // must: reconnect when told to (Ada's instance may reconnect to NATS later than
    // Grace's did, and tell her then).
    let deadline = Instant::now() + Duration::from_secs(20);
    'delivered: loop {
        assert!(
            Instant::now() < deadline,
            "no live delivery after the restart"
        );
        let mut a = connect(&one, &ada).await;
        join(&mut a, "general").await;
        send(
            &mut again,
            json!({"type": "message", "room": "general", "text": "after"}),
        )
        .await;
        // Told to reconnect (closed): try again on a new connection.
        while let Ok(m) = next_frame(&mut a, Duration::from_secs(10)).await {
            if m["text"] == "after" {
                break 'delivered;
            }
        }
    }
}

/// Three instances on one database and one NATS, requests spread over them: one login
/// budget for all, one chat, one leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_database_and_one_nats_behave_as_one_service() {
    use serde_json::json;

    let db = test_support::TestDb::new().await;
    let nats = test_support::NatsServer::start();
    let url = nats.url();
    let shared = [
        ("EVENT_BUS", "nats"),
        ("NATS_URL", url.as_str()),
        ("LEADER_LEASE_SECS", "3"),
    ];
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(
            crate::support::spawn_with(crate::support::settings(Some(db.url()), &shared)).await,
        );
    }

    // One chat: a WebSocket client on each instance, a message from each reaches all.
    let mut clients = Vec::new();
    for (n, app) in apps.iter().enumerate() {
        let (_, token) = app
            .signed_in(&format!("User {n}"), &format!("user{n}@example.com"))
            .await;
        let mut ws = crate::ws::connect(app, &token).await;
        crate::ws::join(&mut ws, "all-hands").await;
        clients.push(ws);
    }
    for sender in 0..3 {
        let text = format!("from instance {sender}");
        crate::ws::send(
            &mut clients[sender],
            json!({"type": "message", "room": "all-hands", "text": text}),
        )
        .await;
        for client in &mut clients {
            let frame = crate::ws::recv(client).await;
            assert_eq!(frame["text"], text.as_str(), "{frame}");
        }
    }

    // Login attempts round-robin, from the address the three sign-ins above came from:
    // AUTH_RATE_LIMIT_PER_MINUTE (10) for every attempt on the three together, those
    // three logins included.
    let mut statuses = Vec::new();
    for n in 0..8 {
        let app = &apps[n % 3];
        let response = app
            .client
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": "nobody@example.com", "password": "guess guess guess"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 401, 401, 429]);

    // One leader among them, reported by exactly one instance's /metrics.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut leaders = 0;
        for app in &apps {
            let text = metrics(app.url("/metrics")).await;
            leaders += usize::from(text.lines().any(|l| l == "housekeeping_leader 1"));
        }
        assert!(leaders <= 1, "{leaders} leaders");
        if leaders == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
