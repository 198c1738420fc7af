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

/// `GET {base}/metrics`, as text.
async fn scrape(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
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
        let metrics = scrape(&client, &http).await;
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
    let metrics = scrape(&client, &http).await;
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
    let app = spawn_app_with(|s| s.users.registration_rate_limit_per_minute = 4).await;
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

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Attack: any signed-in user read every user's e-mail address and role, one by one or
/// the whole table at once (gRPC `ListUsers` with `max_users = 0`). Now another user's
/// record is the public profile, unless the caller is an admin now.
#[tokio::test]
async fn another_users_email_and_role_are_private_on_every_read() {
    let app = spawn_app().await;
    let (ada, ada_token) = app.signed_in("Ada", "ada@example.com").await;
    let (bob, _) = app.signed_in("Bob", "bob@example.com").await;
    let admin = app.admin_token().await;
    let ada_id = ada["id"].as_str().unwrap();
    let bob_id = bob["id"].as_str().unwrap();
    let public = |v: &serde_json::Value| {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys.retain(|k| *k != "posts");
        keys.join(",")
    };

    for path in [
        format!("/api/users/{bob_id}"),
        format!("/api/users/{bob_id}?include=posts"),
    ] {
        let (status, body) = app.get_as(&ada_token, &path).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(public(&body), "created_at,id,name", "{path}: {body}");
        let (_, as_admin) = app.get_as(&admin, &path).await;
        assert_eq!(as_admin["email"], "bob@example.com", "{path}");
        let (_, own) = app.get_as(&ada_token, &path.replace(bob_id, ada_id)).await;
        assert_eq!(own["email"], "ada@example.com", "{path}");
    }
    let (_, page) = app.get_as(&ada_token, "/api/users?limit=100").await;
    for item in page["items"].as_array().unwrap() {
        let own = item["id"] == ada["id"];
        assert_eq!(item.get("email").is_some(), own, "{item}");
        assert_eq!(item.get("role").is_some(), own, "{item}");
    }
    let own = app
        .client
        .get(app.url("/api/users/me"))
        .bearer_auth(&ada_token)
        .send()
        .await
        .unwrap();
    assert_eq!(own.headers()["cache-control"], "no-store");

    let mut grpc = UserServiceClient::connect(app.grpc_address.clone())
        .await
        .unwrap();
    let other = grpc
        .get_user(authed(pb::GetUserRequest { id: bob_id.into() }, &ada_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.name, "Bob");
    assert_eq!(other.email, "");
    assert_eq!(other.role, pb::Role::Unspecified as i32);
    assert_eq!(other.version, 0);
    let seen = grpc
        .get_user(authed(pb::GetUserRequest { id: bob_id.into() }, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.email, "bob@example.com");
}

/// `ListUsers` streams at most 100 users per call, with a cursor to go on.
#[tokio::test]
async fn grpc_list_users_is_paged_at_100_per_call() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("Ada", "ada@example.com").await;
    let db = app.db.as_ref().unwrap();
    db.count(
        "WITH made AS (INSERT INTO users (id, name, email, password_hash, role, created_at, updated_at, version) \
         SELECT gen_random_uuid(), 'Seed', 'seed' || n || '@example.com', NULL, 'user', now() - n * interval '1 second', now(), 1 \
         FROM generate_series(1, 150) AS n RETURNING 1) SELECT count(*) AS n FROM made",
    )
    .await;
    let mut grpc = UserServiceClient::connect(app.grpc_address.clone())
        .await
        .unwrap();
    let read = |after: String| {
        let request = authed(
            pb::ListUsersRequest {
                page_size: 50,
                after,
                max_users: 0,
            },
            &token,
        );
        let mut grpc = grpc.clone();
        async move {
            let mut stream = grpc.list_users(request).await.unwrap().into_inner();
            let mut got = Vec::new();
            while let Some(item) = stream.message().await.unwrap() {
                got.push(item);
            }
            got
        }
    };
    let first = read(String::new()).await;
    assert_eq!(first.len(), 100, "one call streams at most 100");
    let rest = read(first.last().unwrap().cursor.clone()).await;
    assert_eq!(rest.len(), 51, "the cursor continues: 151 users in all");
    let _ = &mut grpc;
}

/// Attack: admin A demotes admin B; B, with the access token issued before, promoted
/// themself again and deleted A. Now every admin decision uses the role stored now, and
/// a role change ends the demoted user's refresh tokens.
#[tokio::test]
async fn a_demoted_admin_keeps_no_admin_power_from_an_old_token() {
    let app = spawn_app().await;
    let a = app.admin_token().await;
    let (b, _) = app.signed_in("Bea", "bea@example.com").await;
    let b_id = b["id"].as_str().unwrap();
    let (status, _) = app
        .patch_as(&a, &format!("/api/users/{b_id}"), json!({"role": "admin"}))
        .await;
    assert_eq!(status, 200);
    let b_admin = app.login("bea@example.com", PASSWORD).await;
    let b_token = b_admin["access_token"].as_str().unwrap();
    let b_refresh = b_admin["refresh_token"].as_str().unwrap();
    let (_, a_me) = app.get_as(&a, "/api/users/me").await;
    let a_id = a_me["id"].as_str().unwrap();
    // B is an admin for now: their token works for admin rights.
    let (status, _) = app.get_as(b_token, "/api/admin/jobs").await;
    assert_eq!(status, 200);

    let (status, _) = app
        .patch_as(&a, &format!("/api/users/{b_id}"), json!({"role": "user"}))
        .await;
    assert_eq!(status, 200);

    // B's token still says admin, but its session ended with the demotion.
    let (status, body) = app
        .patch_as(
            b_token,
            &format!("/api/users/{b_id}"),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, 401, "self-promotion with the old token: {body}");
    assert_eq!(
        app.delete_as(b_token, &format!("/api/admin/users/{a_id}"))
            .await,
        401
    );
    let (status, _) = app.get_as(b_token, "/api/admin/jobs").await;
    assert_eq!(status, 401);
    // A new session as the plain user B is now: no admin rights.
    let b_user = app.login("bea@example.com", PASSWORD).await;
    let b_user = b_user["access_token"].as_str().unwrap();
    let (status, _) = app.get_as(b_user, "/api/admin/jobs").await;
    assert_eq!(status, 403);
    let (_, a_seen) = app.get_as(b_user, &format!("/api/users/{a_id}")).await;
    assert!(a_seen.get("email").is_none(), "{a_seen}");
    let (status, _) = app
        .post("/api/auth/refresh", json!({"refresh_token": b_refresh}))
        .await;
    assert_eq!(status, 401, "the demotion ended B's sessions");
    let (_, b_now) = app.get_as(&a, &format!("/api/users/{b_id}")).await;
    assert_eq!(b_now["role"], "user");

    // Over gRPC too.
    let mut grpc = UserServiceClient::connect(app.grpc_address.clone())
        .await
        .unwrap();
    let refused = grpc
        .update_user(authed(
            pb::UpdateUserRequest {
                id: b_id.into(),
                role: Some(pb::Role::Admin as i32),
                ..Default::default()
            },
            b_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unauthenticated,
        "the old session ended"
    );
    let refused = grpc
        .update_user(authed(
            pb::UpdateUserRequest {
                id: b_id.into(),
                role: Some(pb::Role::Admin as i32),
                ..Default::default()
            },
            b_user,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

/// A client whose connections come from `ip` (any of 127/8 reaches the server).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(ip.parse().unwrap()))
        .build()
        .unwrap()
}

/// Attack: every login attempt, success included, counted against `account:<email>`, so
/// one request every 6 s from anywhere kept the real owner at 429 for ever. Now only
/// failures count against the account, and every attempt against its address.
#[tokio::test]
async fn failures_from_elsewhere_do_not_lock_the_owner_out() {
    let app = spawn_app_with(|s| s.http.auth_rate_limit_per_minute = 3).await;
    app.create_user("Vic", "victim@example.com").await;
    let attacker = client_from("127.0.0.2");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = attacker
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": "victim@example.com", "password": "guess guess guess"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    for n in 3..6 {
        let owner = client_from(&format!("127.0.0.{n}"));
        let response = owner
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": "victim@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the owner from 127.0.0.{n}");
    }
}

/// Attack: behind a proxy the TCP peer is the proxy, so every client shared one login
/// budget and the fourth attempt anywhere locked everyone out; and believing
/// `X-Forwarded-For` from anyone would let a client pick a fresh budget per request.
/// Now the header counts only from a peer in `TRUSTED_PROXIES`.
#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let app = spawn_app_with(|s| {
        s.http.auth_rate_limit_per_minute = 3;
        s.http.trusted_proxies = ports::client::TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let attempts = async |client: &reqwest::Client, forwarded_for: &str| {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let response = client
                .post(app.url("/api/auth/login"))
                .header("x-forwarded-for", forwarded_for)
                .json(&json!({"email": "nobody@example.com", "password": "guess guess guess"}))
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    };
    // Through the trusted proxy, two clients have a budget each.
    let proxy = client_from("127.0.0.1");
    assert_eq!(attempts(&proxy, "198.51.100.1").await, [401, 401, 401, 429]);
    assert_eq!(attempts(&proxy, "198.51.100.2").await, [401, 401, 401, 429]);
    // A spoofed chain does not help either: the rightmost untrusted address counts.
    assert_eq!(
        attempts(&proxy, "203.0.113.77, 198.51.100.2").await,
        [429, 429, 429, 429]
    );
    // From a peer that is not trusted, the header changes nothing: one budget for the
    // peer, whatever each request claims.
    let direct = client_from("127.0.0.2");
    let mut statuses = Vec::new();
    for n in 0..4 {
        let response = direct
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", format!("192.0.2.{n}"))
            .json(&json!({"email": "nobody@example.com", "password": "guess guess guess"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
}

mod live {
    use std::time::Duration;

    use grpc_adapter::pb::chat::chat_service_client::ChatServiceClient;
    use grpc_adapter::pb::chat::{self as chat_pb, client_event};
    use serde_json::json;
    use tokio_stream::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tonic::Code;

    use super::authed;
    use crate::support::*;
    use crate::ws::{close_code, connect, recv, send};

    /// Attack, continued: a demoted admin's open WebSocket kept following another
    /// user's private topic, and a deleted user's sessions lived on. Account changes now
    /// reach every instance's hub over the event bus.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_demotion_and_a_deletion_end_the_live_sessions() {
        let app = spawn_app().await;
        let root = app.admin_token().await;
        let (ada, ada_token) = app.signed_in("Ada", "ada@example.com").await;
        let ada_id = ada["id"].as_str().unwrap().to_owned();
        let (bea, _) = app.signed_in("Bea", "bea@example.com").await;
        let bea_id = bea["id"].as_str().unwrap().to_owned();
        let (status, _) = app
            .patch_as(
                &root,
                &format!("/api/users/{bea_id}"),
                json!({"role": "admin"}),
            )
            .await;
        assert_eq!(status, 200);
        let bea_token = app.login("bea@example.com", PASSWORD).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();

        let mut watcher = connect(&app, &bea_token).await;
        for topic in ["posts".to_owned(), format!("user:{ada_id}")] {
            send(&mut watcher, json!({"type": "subscribe", "topic": topic})).await;
            assert_eq!(recv(&mut watcher).await["type"], "subscribed");
        }
        app.write_post(&ada_token, "Before").await;
        let topics = [recv(&mut watcher).await, recv(&mut watcher).await]
            .map(|f| f["topic"].as_str().unwrap().to_owned());
        assert_eq!(topics, ["posts".to_owned(), format!("user:{ada_id}")]);

        let (status, _) = app
            .patch_as(
                &root,
                &format!("/api/users/{bea_id}"),
                json!({"role": "user"}),
            )
            .await;
        assert_eq!(status, 200);
        // The demotion ended Bea's sessions: the live one closes, and a new one (as a
        // plain user) may not follow another user's topic.
        assert_eq!(close_code(&mut watcher).await, Some(CloseCode::Policy));
        let bea_token = app.login("bea@example.com", PASSWORD).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut watcher = connect(&app, &bea_token).await;
        send(
            &mut watcher,
            json!({"type": "subscribe", "topic": format!("user:{ada_id}")}),
        )
        .await;
        assert_eq!(recv(&mut watcher).await["code"], "forbidden");

        // Ada, on a WebSocket and a gRPC chat stream, is deleted.
        let mut ada_ws = connect(&app, &ada_token).await;
        let (events, inbound) = tokio::sync::mpsc::channel(4);
        let mut chat = ChatServiceClient::connect(app.grpc_address.clone())
            .await
            .unwrap();
        let mut ada_grpc = chat
            .chat(authed(
                tokio_stream::wrappers::ReceiverStream::new(inbound),
                &ada_token,
            ))
            .await
            .unwrap()
            .into_inner();
        events
            .send(chat_pb::ClientEvent {
                event: Some(client_event::Event::Ping(chat_pb::Ping {})),
            })
            .await
            .unwrap();
        assert!(ada_grpc.next().await.unwrap().is_ok(), "the stream is open");
        assert_eq!(
            app.delete_as(&root, &format!("/api/admin/users/{ada_id}"))
                .await,
            204
        );
        assert_eq!(close_code(&mut ada_ws).await, Some(CloseCode::Policy));
        let ended = tokio::time::timeout(Duration::from_secs(5), ada_grpc.next())
            .await
            .expect("the stream ends within 5 s");
        assert_eq!(ended.unwrap().unwrap_err().code(), Code::Unauthenticated);
        // And the token opens no new session.
        let url = app.url("/api/ws").replace("http://", "ws://");
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {ada_token}").parse().unwrap(),
        );
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401);
            }
            other => panic!("a deleted user's token opened a session: {other:?}"),
        }
    }

    /// A live session ends when the token it was opened with expires.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_session_ends_when_its_token_expires() {
        let app = spawn_app_with(|s| s.auth.jwt_ttl = Duration::from_secs(2)).await;
        let (_, token) = app.signed_in("Ada", "ada@example.com").await;
        let mut ws = connect(&app, &token).await;
        let mut chat = ChatServiceClient::connect(app.grpc_address.clone())
            .await
            .unwrap();
        let (_events, inbound) = tokio::sync::mpsc::channel::<chat_pb::ClientEvent>(1);
        let mut stream = chat
            .chat(authed(
                tokio_stream::wrappers::ReceiverStream::new(inbound),
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(close_code(&mut ws).await, Some(CloseCode::Policy));
        let ended = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("ends with the token");
        assert_eq!(ended.unwrap().unwrap_err().code(), Code::Unauthenticated);
    }
}

mod live_limits {
    use std::time::{Duration, Instant};

    use grpc_adapter::pb::chat as chat_pb;
    use grpc_adapter::pb::chat::chat_service_client::ChatServiceClient;
    use serde_json::json;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tonic::Code;

    use super::authed;
    use crate::support::*;
    use crate::ws::{Ws, connect, join, recv, send};

    /// The status of a WebSocket upgrade that is refused.
    async fn refused_upgrade(app: &TestApp, token: &str) -> (u16, String) {
        let mut request = app
            .url("/api/ws")
            .replace("http://", "ws://")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => (
                response.status().as_u16(),
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned(),
            ),
            Ok(_) => panic!("the upgrade was accepted"),
            Err(other) => panic!("{other}"),
        }
    }

    async fn grpc_chat(app: &TestApp, token: &str) -> Result<(), tonic::Status> {
        let mut chat = ChatServiceClient::connect(app.grpc_address.clone())
            .await
            .unwrap();
        let (events, inbound) = tokio::sync::mpsc::channel::<chat_pb::ClientEvent>(1);
        // Kept open for the test's life: the stream holds its slot while it runs.
        std::mem::forget(events);
        chat.chat(authed(
            tokio_stream::wrappers::ReceiverStream::new(inbound),
            token,
        ))
        .await
        .map(drop)
    }

    /// Attack: one account took every live slot of an instance. Now at most
    /// LIVE_MAX_CONNECTIONS_PER_USER per user (WebSocket and gRPC together) and
    /// LIVE_MAX_CONNECTIONS_PER_IP per client address.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_connections_are_capped_per_user_and_per_address() {
        let app = spawn_app_with(|s| {
            s.live.max_per_user = 3;
            s.live.max_per_client = 5;
        })
        .await;
        let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
        let mut held: Vec<Ws> = vec![connect(&app, &ada).await, connect(&app, &ada).await];
        grpc_chat(&app, &ada).await.unwrap();
        let (status, body) = refused_upgrade(&app, &ada).await;
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("/problems/rate-limited"), "{body}");
        let refused = grpc_chat(&app, &ada).await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        // A slot comes back when a connection ends.
        drop(held.pop());
        let mut back = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while back.is_none() && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(1), async {
                let mut request = app
                    .url("/api/ws")
                    .replace("http://", "ws://")
                    .into_client_request()
                    .unwrap();
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {ada}").parse().unwrap());
                tokio_tungstenite::connect_async(request).await
            })
            .await
            {
                Ok(Ok((ws, _))) => {
                    back = Some(ws);
                    break;
                }
                _ => tokio::task::yield_now().await,
            }
        }
        assert!(back.is_some(), "the freed slot is usable again");

        // Per address: 3 of Ada's + 2 of Bob's from 127.0.0.1 fill its 5.
        let (_, bob) = app.signed_in("Bob", "bob@example.com").await;
        held.push(connect(&app, &bob).await);
        held.push(connect(&app, &bob).await);
        let (status, _) = refused_upgrade(&app, &bob).await;
        assert_eq!(status, 429, "the address is full");
    }

    /// A user's chat budget is shared by all their connections.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chat_messages_are_limited_per_user_across_connections() {
        let app = spawn_with(settings(
            None,
            &[
                ("JWT_SECRET", ""),
                ("LIVE_MAX_MESSAGES_PER_SEC_PER_USER", "4"),
            ],
        ))
        .await;
        let (_, ada) = app.signed_in("Ada", "ada@example.com").await;
        let mut sockets = vec![
            connect(&app, &ada).await,
            connect(&app, &ada).await,
            connect(&app, &ada).await,
        ];
        for ws in &mut sockets {
            join(ws, "budget").await;
        }
        // 3 sockets × 3 messages at once: 9 against a budget of 4 per second.
        for ws in &mut sockets {
            for n in 0..3 {
                send(
                    ws,
                    json!({"type": "message", "room": "budget", "text": format!("m{n}")}),
                )
                .await;
            }
        }
        let mut limited = 0;
        let mut delivered = 0;
        // Every socket gets every delivered message, and its own refusals.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) && limited + delivered / 3 < 9 {
            for ws in &mut sockets {
                if let Ok(frame) = tokio::time::timeout(Duration::from_millis(200), recv(ws)).await
                {
                    match frame["type"].as_str() {
                        Some("message") => delivered += 1,
                        Some("error") if frame["code"] == "rate_limited" => limited += 1,
                        _ => panic!("{frame}"),
                    }
                }
            }
        }
        // The budget is 4 a second: the burst, and one more if the sends spanned a
        // refill (250 ms) on a busy machine.
        let sent = delivered / 3;
        assert!(
            (4..=5).contains(&sent),
            "{sent} delivered to each of the 3 sockets"
        );
        assert_eq!(sent + limited, 9, "every other one was refused");
    }

    /// One user flooding a room cannot make the instance's dispatcher fall so far behind
    /// that members of other rooms are cut off: a member of another room gets every
    /// message in order, without a 1013.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flooding_account_does_not_disconnect_other_rooms() {
        // Each connection may send 100 frames a second, and the 20 together send 1,000:
        // only the per-user budget (40) holds the flood back from the store and the bus.
        let app = spawn_app_with(|s| s.ws.max_messages_per_sec = 100).await;
        let (_, flooder) = app.signed_in("Flood", "flood@example.com").await;
        let (_, calm) = app.signed_in("Calm", "calm@example.com").await;
        let (_, speaker) = app.signed_in("Speaker", "speaker@example.com").await;
        let mut listener = connect(&app, &calm).await;
        join(&mut listener, "calm").await;
        let mut talker = connect(&app, &speaker).await;
        join(&mut talker, "calm").await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut flooding = Vec::new();
        for _ in 0..20 {
            let mut ws = connect(&app, &flooder).await;
            join(&mut ws, "flood").await;
            let (mut sink, mut frames) = futures_util::StreamExt::split(ws);
            // A reader that keeps up, so nothing but the flood itself is measured; it
            // reports how the server ended the connection, if it did.
            let reader = tokio::spawn(async move {
                use futures_util::StreamExt;
                while let Some(frame) = frames.next().await {
                    if let Ok(tokio_tungstenite::tungstenite::Message::Close(close)) = frame {
                        return close.map(|c| u16::from(c.code));
                    }
                }
                None
            });
            let stop = stop.clone();
            let writer = tokio::spawn(async move {
                use futures_util::SinkExt;
                let text = "x".repeat(2000);
                let frame = json!({"type": "message", "room": "flood", "text": text}).to_string();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let message = tokio_tungstenite::tungstenite::Message::text(frame.clone());
                    if sink.send(message).await.is_err() {
                        return;
                    }
                    // 50 frames a second per socket: the flooder's pace.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = sink.close().await;
            });
            flooding.push((reader, writer));
        }
        for n in 0..50 {
            send(
                &mut talker,
                json!({"type": "message", "room": "calm", "text": format!("{n}")}),
            )
            .await;
            let echo = recv(&mut talker).await;
            assert_eq!(echo["type"], "message", "{echo}");
            let got = recv(&mut listener).await;
            assert_eq!(got["type"], "message", "message {n}: {got}");
            assert_eq!(got["text"], n.to_string(), "in order");
            // The talker's pace, not a wait for anything.
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let flooders_still_open = flooding.iter().filter(|(r, _)| !r.is_finished()).count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for (reader, writer) in flooding {
            writer.await.unwrap();
            let closed_with = reader.await.unwrap();
            assert_ne!(closed_with, Some(1013), "a flooder was cut off as too slow");
        }
        assert_eq!(
            flooders_still_open, 20,
            "the flood went on for the whole test"
        );
    }
}

/// Found by a real HTTP client: a refused WebSocket upgrade with `Accept-Encoding:
/// gzip` was a gzip body announced as `Transfer-Encoding: chunked` but written without
/// chunk framing. Every refusal of an upgrade is now a well-formed response.
#[tokio::test]
async fn a_refused_upgrade_is_a_well_formed_problem_whatever_the_encoding() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_memory_app().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    for path in ["/api/ws", "/api/ws?access_token=garbage", "/api/users"] {
        let mut socket = tokio::net::TcpStream::connect(&host).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Accept-Encoding: gzip\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        // Read the head, then exactly what it says the body is.
        let mut raw = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk))
                .await
                .expect("an answer")
                .unwrap();
            assert!(n > 0, "closed before the head ended: {raw:?}");
            raw.extend_from_slice(&chunk[..n]);
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
        assert!(head.starts_with("http/1.1 401"), "{path}: {head}");
        assert!(!head.contains("transfer-encoding"), "{path}: {head}");
        assert!(!head.contains("content-encoding: gzip"), "{path}: {head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("a length-delimited body")
            .trim()
            .parse()
            .unwrap();
        while raw.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the body ended early");
            raw.extend_from_slice(&chunk[..n]);
        }
        let problem: serde_json::Value =
            serde_json::from_slice(&raw[head_end..head_end + length]).expect("a JSON problem");
        assert_eq!(problem["status"], 401, "{path}");
    }
    // And an ordinary HTTP client, sending what browsers send, reads it cleanly.
    let response = app
        .client
        .get(app.url("/api/ws"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.expect("a readable problem");
    assert_eq!(body["type"], "/problems/unauthorized");
}

mod metrics {
    use std::time::{Duration, Instant};

    use crate::support::*;

    async fn scrape(app: &TestApp, base: &str) -> (u16, String) {
        let response = app
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Attack: every new method token became a new label set, growing the metrics
    /// without bound. Now the API's methods, and `other`.
    #[tokio::test]
    async fn metric_labels_stay_bounded_whatever_methods_arrive() {
        let app = spawn_memory_app().await;
        for n in 0..30 {
            let method = reqwest::Method::from_bytes(format!("XM{n}").as_bytes()).unwrap();
            app.client
                .request(method, app.url("/api/users"))
                .send()
                .await
                .unwrap();
        }
        let (_, text) = scrape(&app, &app.address).await;
        assert!(
            !text.contains("method=\"XM"),
            "a client's method became a label"
        );
        assert!(
            text.lines().any(|l| l.starts_with("http_requests_total")
                && l.contains("method=\"other\"")
                && l.contains("route=\"/api/users\"")),
            "{text}"
        );
    }

    /// Attack: each scrape counted the jobs table on the request's worker, waiting up to
    /// 2 s while the database was away, so scrapes could hold the HTTP workers. Job counts
    /// now come from one task every 15 s; a scrape touches no database.
    #[tokio::test]
    async fn a_scrape_never_waits_for_the_database() {
        let app = spawn_app().await;
        let db = app.db.as_ref().unwrap();
        db.cut_off().await;
        for _ in 0..5 {
            let asked = Instant::now();
            let (status, text) = scrape(&app, &app.address).await;
            assert_eq!(status, 200);
            assert!(text.contains("db_pool_connections"));
            assert!(
                asked.elapsed() < Duration::from_secs(1),
                "a scrape waited {:?} for the database",
                asked.elapsed()
            );
        }
        db.restore().await;
    }

    /// METRICS_ADDR serves `/metrics` alone on its own address; the API's port
    /// answers 404 for it.
    #[tokio::test]
    async fn metrics_addr_moves_metrics_off_the_api_port() {
        let app = spawn_with(settings(
            None,
            &[("JWT_SECRET", ""), ("METRICS_ADDR", "127.0.0.1:0")],
        ))
        .await;
        let (status, _) = scrape(&app, &app.address).await;
        assert_eq!(status, 404);
        let metrics = app.metrics_address.clone().expect("a metrics address");
        let (status, text) = scrape(&app, &metrics).await;
        assert_eq!(status, 200);
        assert!(text.contains("build_info"), "{text}");
        let elsewhere = app
            .client
            .get(format!("{metrics}/api/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(elsewhere.status(), 404, "only /metrics there");
        app.stop().await.unwrap();
    }
}

mod connections {
    use std::time::{Duration, Instant};

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    use crate::binary::{app, listening_line, read_log, sigterm};

    async fn idle(address: &str, n: usize) -> Vec<(TcpStream, Instant)> {
        let mut open = Vec::with_capacity(n);
        for _ in 0..n {
            let stream = TcpStream::connect(address).await.expect("connect");
            open.push((stream, Instant::now()));
        }
        open
    }

    /// Whether the server closes `stream` by `deadline`.
    async fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout_at(deadline.into(), stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// Attack: thousands of TCP connections that never speak. gRPC kept each for ever;
    /// now one that has not sent the HTTP/2 preface within 10 s is closed, and neither
    /// port's idle connections keep the API from answering.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_neither_starve_the_api_nor_stay_open_on_grpc() {
        rlimit::increase_nofile_limit(u64::MAX).unwrap();
        let mut child = app().env("RUST_LOG", "info").spawn().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            child.stdout.take().unwrap(),
        ));
        let mut start_up = Vec::new();
        let listening = loop {
            let line = lines.next_line().await.unwrap().expect("the server starts");
            let log: serde_json::Value = serde_json::from_str(&line).unwrap();
            if log["message"] == "listening" {
                break log;
            }
            start_up.push(line);
        };
        let http = listening["address"].as_str().unwrap().to_owned();
        let grpc = listening["grpc_address"].as_str().unwrap().to_owned();
        let log = read_log(lines);

        let mut grpc_idle = idle(&grpc, 2000).await;
        let http_idle = idle(&http, 2000).await;
        let asked = Instant::now();
        let health = reqwest::Client::new()
            .get(format!("http://{http}/api/health"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .expect("health answers within 1 s beside 4,000 idle connections");
        assert_eq!(health.status(), 200);
        assert!(asked.elapsed() < Duration::from_secs(1));

        let mut still_open = 0;
        for (stream, opened) in &mut grpc_idle {
            if !closed_by(stream, *opened + Duration::from_secs(15)).await {
                still_open += 1;
            }
        }
        assert_eq!(still_open, 0, "idle gRPC connections open after 15 s");
        drop(http_idle);
        sigterm(&child);
        child.wait().await.unwrap();
        log.await.unwrap();
        let limit = start_up
            .iter()
            .find(|l| l.contains("open files limit"))
            .expect("the open files limit is logged");
        assert!(
            limit.contains("\"soft\"") && limit.contains("\"hard\""),
            "{limit}"
        );
    }

    /// Past GRPC_MAX_CONNECTIONS, a new gRPC connection is closed at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grpc_connections_past_the_cap_are_closed_at_once() {
        let mut child = app().env("GRPC_MAX_CONNECTIONS", "3").spawn().unwrap();
        let (listening, lines) = listening_line(&mut child).await;
        let grpc = listening["grpc_address"].as_str().unwrap().to_owned();
        let _log = read_log(lines);
        let mut held = idle(&grpc, 3).await;
        let mut fourth = TcpStream::connect(&grpc).await.unwrap();
        assert!(
            closed_by(&mut fourth, Instant::now() + Duration::from_secs(2)).await,
            "the fourth connection is closed"
        );
        // The three within the cap are still open (their handshake time is not over).
        for (stream, _) in &mut held {
            assert!(!closed_by(stream, Instant::now() + Duration::from_millis(100)).await);
        }
        sigterm(&child);
        child.wait().await.unwrap();
    }
}

/// Attack: the example signing key from `.env.example`, or a key like `aaaa…`, lets
/// anyone mint tokens. The service refuses to start with one: one readable line, a
/// non-zero exit.
#[tokio::test]
async fn a_guessable_signing_key_is_refused_at_start() {
    for secret in [
        "change-me-to-the-output-of-openssl-rand-hex-32",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ] {
        let output = crate::binary::app()
            .env("JWT_SECRET", secret)
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{secret}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("JWT_SECRET"), "{stderr}");
        assert!(!stderr.contains(secret), "the key is not echoed: {stderr}");
    }
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.example"))
            .unwrap();
    assert!(
        example.lines().any(|l| l == "JWT_SECRET="),
        ".env.example leaves the key empty"
    );
}

/// Chat text with a NUL reached Postgres, which cannot store one: an internal error and
/// an error-level log line. Control characters (but line breaks and tabs) are now
/// invalid input, answered with a validation error frame, and the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_chat_are_invalid_input_not_internal_errors() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let db = TestDb::new().await;
    let mut child = app()
        .env("DATABASE_URL", db.url())
        .env("JWT_SECRET", JWT_SECRET)
        .env("WORKERS", "0")
        .spawn()
        .unwrap();
    let (listening, lines) = listening_line(&mut child).await;
    let log = read_log(lines);
    let base = format!("http://{}", listening["address"].as_str().unwrap());
    let token = crate::under_load::sign_up(&base, "ada@example.com").await;
    let mut request = format!("{}/api/ws", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let say = async |ws: &mut crate::ws::Ws, frame: serde_json::Value| {
        crate::ws::send(ws, frame).await;
        crate::ws::recv(ws).await
    };
    let joined = say(&mut ws, json!({"type": "join", "room": "lobby"})).await;
    assert_eq!(joined["type"], "joined");
    for text in ["nul \u{0} inside", "bell \u{7}", "escape \u{1b}[2J"] {
        let answer = say(
            &mut ws,
            json!({"type": "message", "room": "lobby", "text": text}),
        )
        .await;
        assert_eq!(answer["type"], "error", "{answer}");
        assert_eq!(answer["code"], "validation", "{answer}");
    }
    let fine = say(
        &mut ws,
        json!({"type": "message", "room": "lobby", "text": "two\nlines\tand a tab"}),
    )
    .await;
    assert_eq!(fine["type"], "message", "{fine}");
    sigterm(&child);
    child.wait().await.unwrap();
    let log = log.await.unwrap();
    let errors: Vec<_> = log.iter().filter(|l| l.contains("\"ERROR\"")).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM chat_messages").await,
        1,
        "only the valid message is stored"
    );
}

/// The development compose file is what people copy to servers: its database and mail
/// catcher listen on this host only, the password comes from the environment, images
/// are pinned, and the app runs with a memory limit and without privilege escalation.
#[test]
fn docker_compose_keeps_its_services_to_this_host_and_pins_its_images() {
    let compose = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docker-compose.yml"
    ))
    .unwrap();
    // A service's lines: from `  name:` to the next line indented by two or less.
    let section = |name: &str| {
        let header = format!("  {name}:");
        let mut lines = compose.lines().skip_while(|l| *l != header);
        assert!(lines.next().is_some(), "a `{name}` service");
        lines
            .take_while(|l| l.is_empty() || l.starts_with("   "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for service in ["db", "mail"] {
        let text = section(service);
        let published: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("- \"") && l.contains(':'))
            .collect();
        assert!(!published.is_empty(), "{service} publishes ports: {text}");
        for port in published {
            assert!(port.starts_with("- \"127.0.0.1:"), "{service}: {port}");
        }
    }
    for line in compose
        .lines()
        .filter(|l| l.trim_start().starts_with("image:"))
    {
        let image = line.trim_start().trim_start_matches("image:").trim();
        let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && tag.contains('.'),
            "pinned: {image}"
        );
    }
    assert!(
        !compose.contains("POSTGRES_PASSWORD: app"),
        "the password is not written in"
    );
    assert!(compose.contains("POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?"));
    let app = section("app");
    assert!(app.contains("mem_limit:"), "{app}");
    assert!(app.contains("no-new-privileges:true"), "{app}");
}

/// Tokens and private fields are for the caller alone; the reference page may run only
/// its own scripts.
#[tokio::test]
async fn private_answers_are_not_cached_and_the_docs_page_has_a_content_security_policy() {
    let app = spawn_memory_app().await;
    let created = app
        .client
        .post(app.url("/api/users"))
        .json(&registration("ada@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.headers()["cache-control"], "no-store");
    let login = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.headers()["cache-control"], "no-store");
    let tokens: serde_json::Value = login.json().await.unwrap();
    let refreshed = app
        .client
        .post(app.url("/api/auth/refresh"))
        .json(&json!({"refresh_token": tokens["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.headers()["cache-control"], "no-store");

    let docs = app.client.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let csp = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-eval") && !csp.contains("script-src 'self' 'unsafe-inline'"),
        "{csp}"
    );
    let api = app.client.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(
        api.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    );
}

/// Attack: each instance counted login attempts on its own, so N instances behind a
/// load balancer allowed N times the guesses. With a database the budgets are counted
/// there, by every instance together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_budgets_are_shared_by_every_instance_on_the_database() {
    let db = test_support::TestDb::new().await;
    let one = spawn_with(settings(Some(db.url()), &[])).await;
    let two = spawn_with(settings(Some(db.url()), &[])).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for n in 0..11 {
        let app = if n % 2 == 0 { &one } else { &two };
        let response = app
            .client
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": "nobody@example.com", "password": "guess guess guess"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    // AUTH_RATE_LIMIT_PER_MINUTE (10) over both instances together.
    assert_eq!(statuses[..10], [401; 10]);
    assert_eq!(statuses[10], 429);
    let refused = last.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(refused.headers()["ratelimit-policy"], "\"login\";q=10;w=60");
    assert!(
        refused.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"login\";r=0;t="),
        "{:?}",
        refused.headers()["ratelimit"]
    );
}
