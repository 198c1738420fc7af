//! The account flows end to end: the real server on Postgres, e-mails through a real
//! SMTP sink, each flow started from the link in the e-mail received, and sessions
//! across two instances sharing one database and bus.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{ReceivedMail, SmtpSink, TestDb};

use crate::support::{ApiClient, PASSWORD, TestApp, settings, spawn_with};

/// An instance on `db` that mails through `sink`, with `extra` settings.
async fn instance(db: &TestDb, sink: &SmtpSink, extra: &[(&str, &str)]) -> TestApp {
    let url = sink.url();
    let mut vars = vec![
        ("SMTP_URL", url.as_str()),
        ("SMTP_FROM", "Users <no-reply@users.example>"),
        ("PUBLIC_BASE_URL", "https://app.example"),
    ];
    vars.extend_from_slice(extra);
    spawn_with(settings(Some(db.url()), &vars)).await
}

/// The latest mail to `to` whose subject starts with `subject`, waiting for the
/// `n`-th such one (counted from 1).
async fn nth_mail(sink: &SmtpSink, to: &str, subject: &str, n: usize) -> ReceivedMail {
    let to = format!("<{to}>");
    let matching = |mails: &[ReceivedMail]| -> Vec<ReceivedMail> {
        mails
            .iter()
            .filter(|m| {
                m.to.contains(&to) && m.header("Subject").is_some_and(|s| s.starts_with(subject))
            })
            .cloned()
            .collect()
    };
    let mails = sink
        .wait_until(Duration::from_secs(15), |mails| matching(mails).len() >= n)
        .await;
    matching(&mails)[n - 1].clone()
}

async fn mail(sink: &SmtpSink, to: &str, subject: &str) -> ReceivedMail {
    nth_mail(sink, to, subject, 1).await
}

/// The token of the link to `page` in `mail`: the same link in the text and the HTML
/// part, pointing at `PUBLIC_BASE_URL`.
fn token_in(mail: &ReceivedMail, page: &str) -> String {
    let text = mail
        .link("text/plain", page)
        .unwrap_or_else(|| panic!("no {page} link in the text part: {:?}", mail.text_parts()));
    let html = mail
        .link("text/html", page)
        .unwrap_or_else(|| panic!("no {page} link in the HTML part: {:?}", mail.text_parts()));
    assert_eq!(text, html, "both parts carry the same link");
    let prefix = format!("https://app.example/{page}?token=");
    let token = text
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{text} is not under PUBLIC_BASE_URL"));
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    token.to_owned()
}

/// Asserts the one "invalid link" problem, whatever made the link invalid.
fn assert_invalid_link(status: u16, body: &Value) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "/problems/invalid-link", "{body}");
}

async fn me(api: &ApiClient, token: &str) -> Value {
    let (status, me) = api.get_as(token, "/api/users/me").await;
    assert_eq!(status, 200, "{me}");
    me
}

/// A login from `user_agent`; the token response.
async fn login_from(api: &ApiClient, email: &str, password: &str, user_agent: &str) -> Value {
    let response = api
        .client
        .post(api.url("/api/auth/login"))
        .header("user-agent", user_agent)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login");
    let (status, body) = crate::support::read(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn access(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn refresh(tokens: &Value) -> String {
    tokens["refresh_token"].as_str().unwrap().to_owned()
}

/// Polls until `token` is refused on `api` (401), at most `within`; how long it took.
async fn refused_within(api: &ApiClient, token: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _) = api.get_as(token, "/api/users/me").await;
        if status == 401 {
            return started.elapsed();
        }
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < within,
            "the token still works after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welcome_email_verifies_the_address_once() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let app = instance(&db, &sink, &[]).await;
    let (_, token) = app.signed_in("Ada", "ada@example.com").await;
    assert_eq!(me(&app, &token).await["email_verified"], false);
    assert_eq!(me(&app, &token).await["email_verified_at"], Value::Null);

    let welcome = mail(&sink, "ada@example.com", "Welcome, Ada").await;
    let link = token_in(&welcome, "verify-email");
    let (status, body) = app
        .post("/api/auth/verify-email", json!({"token": link}))
        .await;
    assert_eq!(status, 204, "{body}");
    let verified = me(&app, &token).await;
    assert_eq!(verified["email_verified"], true);
    assert!(verified["email_verified_at"].is_string(), "{verified}");

    // Single-use; and an unknown token reads exactly the same.
    let (status, used) = app
        .post("/api/auth/verify-email", json!({"token": link}))
        .await;
    assert_invalid_link(status, &used);
    let (status, unknown) = app
        .post("/api/auth/verify-email", json!({"token": "no-such-token"}))
        .await;
    assert_invalid_link(status, &unknown);
    assert_eq!(used, unknown, "the answer does not say which");

    let (status, body) = app
        .post_as(&token, "/api/auth/resend-verification", json!({}))
        .await;
    assert_eq!(status, 409, "already verified: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_link_ends_the_older_one_and_an_expired_link_is_refused() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let app = instance(&db, &sink, &[]).await;
    let (_, token) = app.signed_in("Ada", "ada@example.com").await;
    let first = token_in(
        &mail(&sink, "ada@example.com", "Welcome").await,
        "verify-email",
    );
    let (status, body) = app
        .post_as(&token, "/api/auth/resend-verification", json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    let second = token_in(
        &mail(&sink, "ada@example.com", "Verify your e-mail address").await,
        "verify-email",
    );
    assert_ne!(first, second);
    let (status, body) = app
        .post("/api/auth/verify-email", json!({"token": first}))
        .await;
    assert_invalid_link(status, &body);

    // The link's lifetime passes (set in storage rather than waited for).
    db.execute("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
        .await;
    let (status, body) = app
        .post("/api/auth/verify-email", json!({"token": second}))
        .await;
    assert_invalid_link(status, &body);
    assert_eq!(me(&app, &token).await["email_verified"], false);

    // The per-account budget: 5 an hour, the one above included.
    for _ in 0..4 {
        let (status, _) = app
            .post_as(&token, "/api/auth/resend-verification", json!({}))
            .await;
        assert_eq!(status, 202);
    }
    let (status, body) = app
        .post_as(&token, "/api/auth/resend-verification", json!({}))
        .await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_verification_is_told_only_to_whoever_has_the_password() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let app = instance(&db, &sink, &[("REQUIRE_VERIFIED_EMAIL", "true")]).await;
    app.create_user("Ada", "ada@example.com").await;
    let (status, wrong) = app
        .post(
            "/api/auth/login",
            json!({"email": "ada@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(status, 401, "{wrong}");
    let (status, unverified) = app
        .post(
            "/api/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 403, "{unverified}");
    assert_eq!(unverified["type"], "/problems/email-not-verified");

    let link = token_in(
        &mail(&sink, "ada@example.com", "Welcome").await,
        "verify-email",
    );
    let (status, _) = app
        .post("/api/auth/verify-email", json!({"token": link}))
        .await;
    assert_eq!(status, 204);
    app.login("ada@example.com", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_from_the_mail_and_every_session_ends() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let app = instance(&db, &sink, &[]).await;
    app.create_user("Ada", "ada@example.com").await;
    let before = app.login("ada@example.com", PASSWORD).await;

    // The same answer, in about the same time, whether the address has an account.
    let ask = |email: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            let (status, body) = app
                .post("/api/auth/forgot-password", json!({"email": email}))
                .await;
            (status, body, started.elapsed())
        }
    };
    let mut known_times = Vec::new();
    let mut unknown_times = Vec::new();
    for _ in 0..3 {
        let (status, known, took) = ask("ADA@example.com").await;
        known_times.push(took);
        let (status2, unknown, took) = ask("nobody@example.com").await;
        unknown_times.push(took);
        assert_eq!((status, status2), (202, 202));
        assert_eq!(known, unknown, "the body says nothing");
    }
    known_times.sort();
    unknown_times.sort();
    let (known, unknown) = (known_times[1], unknown_times[1]);
    eprintln!("forgot-password medians: known {known:?}, unknown {unknown:?}");
    let gap = known.abs_diff(unknown);
    assert!(
        gap < Duration::from_millis(50) || gap < known.max(unknown) / 2,
        "medians {known:?} and {unknown:?} tell the addresses apart"
    );

    // The newest of the three reset e-mails is the one whose link works.
    let newest = token_in(
        &nth_mail(&sink, "ada@example.com", "Reset your password", 3).await,
        "reset-password",
    );
    let older = token_in(
        &nth_mail(&sink, "ada@example.com", "Reset your password", 1).await,
        "reset-password",
    );
    let (status, body) = app
        .post(
            "/api/auth/reset-password",
            json!({"token": newest, "password": "short"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "password");
    let (status, body) = app
        .post(
            "/api/auth/reset-password",
            json!({"token": older, "password": "a brand new horse battery"}),
        )
        .await;
    assert_invalid_link(status, &body);
    let (status, body) = app
        .post(
            "/api/auth/reset-password",
            json!({"token": newest, "password": "a brand new horse battery"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    // Every session ended: its refresh token at once, its access token too.
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": refresh(&before)}),
        )
        .await;
    assert_eq!(status, 401);
    refused_within(&app, &access(&before), Duration::from_secs(5)).await;
    let (status, _) = app
        .post(
            "/api/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401, "the old password is gone");
    let after = app
        .login("ada@example.com", "a brand new horse battery")
        .await;
    assert_eq!(
        me(&app, &access(&after)).await["email_verified"],
        true,
        "the reset link reached the address: that proves it"
    );
    mail(&sink, "ada@example.com", "Your password was changed").await;
    let (status, body) = app
        .post(
            "/api/auth/reset-password",
            json!({"token": newest, "password": "yet another horse battery"}),
        )
        .await;
    assert_invalid_link(status, &body);
    assert!(
        !sink
            .received()
            .iter()
            .any(|m| m.to.contains(&"<nobody@example.com>".to_owned())),
        "an address without an account gets nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_keeps_this_session_and_ends_the_others() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let app = instance(&db, &sink, &[]).await;
    app.create_user("Ada", "ada@example.com").await;
    let phone = app.login("ada@example.com", PASSWORD).await;
    let laptop = app.login("ada@example.com", PASSWORD).await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    let (status, body) = app
        .post_as(
            &access(&laptop),
            "/api/users/me/password",
            change("not my password", "a brand new horse battery"),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app
        .post_as(
            &access(&laptop),
            "/api/users/me/password",
            change(PASSWORD, "short"),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "new_password");
    let (status, body) = app
        .post_as(
            &access(&laptop),
            "/api/users/me/password",
            change(PASSWORD, "a brand new horse battery"),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    me(&app, &access(&laptop)).await;
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": refresh(&laptop)}),
        )
        .await;
    assert_eq!(status, 200, "the caller's session goes on");
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": refresh(&phone)}),
        )
        .await;
    assert_eq!(status, 401, "the other session ended");
    refused_within(&app, &access(&phone), Duration::from_secs(5)).await;
    mail(&sink, "ada@example.com", "Your password was changed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_current_passwords_count_as_failed_logins() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let app = instance(&db, &sink, &[("AUTH_ACCOUNT_FAILURES_PER_HOUR", "3")]).await;
    let (_, token) = app.signed_in("Ada", "ada@example.com").await;
    let wrong = json!({"current_password": "guess guess guess", "new_password": "a brand new horse battery"});
    for _ in 0..3 {
        let (status, _) = app
            .post_as(&token, "/api/users/me/password", wrong.clone())
            .await;
        assert_eq!(status, 403);
    }
    let (status, body) = app.post_as(&token, "/api/users/me/password", wrong).await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_address_applies_once_confirmed_from_it() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let app = instance(&db, &sink, &[]).await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let id = ada["id"].as_str().unwrap();
    let (status, asked) = app
        .patch_as(
            &token,
            &format!("/api/users/{id}"),
            json!({"email": "ada.king@example.com"}),
        )
        .await;
    assert_eq!(status, 200, "{asked}");
    assert_eq!(asked["email"], "ada@example.com", "not until confirmed");
    assert_eq!(asked["pending_email"], "ada.king@example.com");

    let notice = mail(&sink, "ada@example.com", "A change of your e-mail address").await;
    assert!(
        notice
            .text_parts()
            .iter()
            .any(|(_, body)| body.contains("ada.king@example.com")),
        "the old address is told where the account moves"
    );
    let confirm = token_in(
        &mail(
            &sink,
            "ada.king@example.com",
            "Confirm your new e-mail address",
        )
        .await,
        "confirm-email-change",
    );
    let (status, body) = app
        .post("/api/auth/confirm-email-change", json!({"token": confirm}))
        .await;
    assert_eq!(status, 204, "{body}");
    let moved = me(&app, &token).await;
    assert_eq!(moved["email"], "ada.king@example.com");
    assert_eq!(moved["pending_email"], Value::Null);
    assert_eq!(moved["email_verified"], true);
    app.login("ada.king@example.com", PASSWORD).await;
    let (status, body) = app
        .post("/api/auth/confirm-email-change", json!({"token": confirm}))
        .await;
    assert_invalid_link(status, &body);

    // Each request mails an address of the caller's choosing: 5 an hour per account.
    for n in 1..5 {
        let (status, body) = app
            .patch_as(
                &token,
                &format!("/api/users/{id}"),
                json!({"email": format!("elsewhere{n}@example.com")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app
        .patch_as(
            &token,
            &format!("/api/users/{id}"),
            json!({"email": "one.more@example.com"}),
        )
        .await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_taken_first_fails_the_confirmation_and_an_admin_change_applies_at_once() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let app = instance(&db, &sink, &[]).await;
    let (ada, token) = app.signed_in("Ada", "ada@example.com").await;
    let id = ada["id"].as_str().unwrap();
    let (status, _) = app
        .patch_as(
            &token,
            &format!("/api/users/{id}"),
            json!({"email": "wanted@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
    let confirm = token_in(
        &mail(
            &sink,
            "wanted@example.com",
            "Confirm your new e-mail address",
        )
        .await,
        "confirm-email-change",
    );
    app.create_user("Quick", "Wanted@Example.com").await;
    let (status, body) = app
        .post("/api/auth/confirm-email-change", json!({"token": confirm}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(me(&app, &token).await["email"], "ada@example.com");

    app::create_admin(
        &settings(Some(db.url()), &[]),
        "Root",
        "root@example.com",
        PASSWORD,
    )
    .await
    .expect("create admin");
    let admin = access(&app.login("root@example.com", PASSWORD).await);
    let (status, changed) = app
        .patch_as(
            &admin,
            &format!("/api/users/{id}"),
            json!({"email": "ada.lovelace@example.com"}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["email"], "ada.lovelace@example.com");
    assert_eq!(changed["email_verified"], true);
    assert_eq!(changed["pending_email"], Value::Null);

    // An admin's own address is theirs to prove, like anyone's.
    let (_, root) = app.get_as(&admin, "/api/users/me").await;
    let root_id = root["id"].as_str().unwrap();
    let (status, own) = app
        .patch_as(
            &admin,
            &format!("/api/users/{root_id}"),
            json!({"email": "root.new@example.com"}),
        )
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["email"], "root@example.com");
    assert_eq!(own["pending_email"], "root.new@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_ended_on_every_instance() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let one = instance(&db, &sink, &[]).await;
    let two = instance(&db, &sink, &[("WORKERS", "0")]).await;
    one.create_user("Ada", "ada@example.com").await;
    let phone = login_from(&one, "ada@example.com", PASSWORD, "Phone/1.0").await;
    let laptop = login_from(&two, "ada@example.com", PASSWORD, "Laptop/2.0").await;

    let (status, listed) = two.get_as(&access(&laptop), "/api/users/me/sessions").await;
    assert_eq!(status, 200, "{listed}");
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{listed}");
    assert_eq!(
        sessions[0]["login"]["user_agent"], "Laptop/2.0",
        "newest first"
    );
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[1]["login"]["user_agent"], "Phone/1.0");
    assert_eq!(sessions[1]["current"], false);
    assert_eq!(sessions[1]["login"]["address"], "127.0.0.1");
    let phone_session = sessions[1]["id"].as_str().unwrap().to_owned();

    // Another user cannot end it, nor learn that it exists.
    let (_, grace) = one.signed_in("Grace", "grace@example.com").await;
    assert_eq!(
        one.delete_as(&grace, &format!("/api/users/me/sessions/{phone_session}"))
            .await,
        404
    );
    me(&one, &access(&phone)).await;

    // The phone is on a WebSocket at instance one; the laptop ends its session at two.
    let mut phone_ws = crate::ws::connect(&one, &access(&phone)).await;
    assert_eq!(
        two.delete_as(
            &access(&laptop),
            &format!("/api/users/me/sessions/{phone_session}")
        )
        .await,
        204
    );
    let (status, _) = one
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": refresh(&phone)}),
        )
        .await;
    assert_eq!(status, 401, "its refresh token stops at once");
    let took = refused_within(&one, &access(&phone), Duration::from_secs(5)).await;
    refused_within(&two, &access(&phone), Duration::from_secs(5)).await;
    assert_eq!(
        crate::ws::close_code(&mut phone_ws).await,
        Some(tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Policy)
    );
    eprintln!("an ended session's access token was refused on the other instance after {took:?}");
    assert_eq!(
        two.delete_as(
            &access(&laptop),
            &format!("/api/users/me/sessions/{phone_session}")
        )
        .await,
        404,
        "ended already"
    );

    // Sign out everywhere else, then everywhere.
    let tablet = login_from(&one, "ada@example.com", PASSWORD, "Tablet/3.0").await;
    let (status, _) = two
        .post_as(&access(&laptop), "/api/auth/logout-all", json!({}))
        .await;
    assert_eq!(status, 204);
    refused_within(&one, &access(&tablet), Duration::from_secs(5)).await;
    me(&two, &access(&laptop)).await;
    let (status, _) = two
        .post_as(
            &access(&laptop),
            "/api/auth/logout-all",
            json!({"including_current": true}),
        )
        .await;
    assert_eq!(status, 204);
    refused_within(&one, &access(&laptop), Duration::from_secs(5)).await;
    refused_within(&two, &access(&laptop), Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_later_knows_the_sessions_ended_before() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let one = instance(&db, &sink, &[]).await;
    one.create_user("Ada", "ada@example.com").await;
    let tokens = one.login("ada@example.com", PASSWORD).await;
    let (status, _) = one
        .post(
            "/api/auth/logout",
            json!({"refresh_token": refresh(&tokens)}),
        )
        .await;
    assert_eq!(status, 204);
    // Started after the logout: it loads what ended from the database.
    let late = instance(&db, &sink, &[("WORKERS", "0")]).await;
    let (status, _) = late.get_as(&access(&tokens), "/api/users/me").await;
    assert_eq!(status, 401);
}

/// A logout on one instance closes the session's WebSocket and gRPC chat stream on the
/// other within 5 s, and neither reopens with its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_sessions_live_connections_close_on_every_instance_within_5_s() {
    use grpc_adapter::pb::chat::chat_service_client::ChatServiceClient;
    use grpc_adapter::pb::chat::{self as chat_pb, client_event};
    use tokio_stream::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let one = instance(&db, &sink, &[]).await;
    let two = instance(&db, &sink, &[("WORKERS", "0")]).await;
    one.create_user("Ada", "ada@example.com").await;
    let tokens = one.login("ada@example.com", PASSWORD).await;
    let token = access(&tokens);

    let mut ws = crate::ws::connect(&two, &token).await;
    let mut chat = ChatServiceClient::connect(two.grpc_address.clone())
        .await
        .unwrap();
    let (events, inbound) = tokio::sync::mpsc::channel(4);
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(inbound));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut stream = chat.chat(request).await.unwrap().into_inner();
    events
        .send(chat_pb::ClientEvent {
            event: Some(client_event::Event::Ping(chat_pb::Ping {})),
        })
        .await
        .unwrap();
    assert!(stream.next().await.unwrap().is_ok(), "the stream is open");

    let (status, _) = one
        .post(
            "/api/auth/logout",
            json!({"refresh_token": refresh(&tokens)}),
        )
        .await;
    assert_eq!(status, 204);
    let closed = tokio::time::timeout(Duration::from_secs(5), crate::ws::close_code(&mut ws))
        .await
        .expect("the WebSocket closes within 5 s");
    assert_eq!(closed, Some(CloseCode::Policy));
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends within 5 s");
    assert_eq!(
        ended.unwrap().unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let (status, _) = two.get_as(&token, "/api/users/me").await;
    assert_eq!(status, 401);
}
