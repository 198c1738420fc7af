use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::test::{self, TestRequest};
use async_trait::async_trait;
use domain::auth::Principal;
use domain::users::{User, UserId};
use domain::{Error, Page, Version};
use http_adapter::{HttpConfig, app};
use ports::users::{
    CreateUser, ListUsers, MockUserService, UpdateUser, UserService, UserWithPosts,
};

use crate::support::*;

#[actix_web::test]
async fn a_panicking_handler_gets_a_500_problem_and_the_server_keeps_serving() {
    let mut users = MockUserService::new();
    users
        .expect_get()
        .times(1)
        .returning(|_, _| panic!("bug in a handler"));
    let service = test::init_service(app(state(users), HttpConfig::default())).await;

    let uri = format!("/api/users/{}", uuid::Uuid::now_v7());
    let response = call(&service, as_user(TestRequest::get().uri(&uri)).to_request()).await;
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    assert!(response.headers().contains_key("x-request-id"));
    // Responses the server renders from errors carry the security headers too.
    assert_eq!(
        response.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    let body = test::read_body(response).await;
    assert!(!String::from_utf8_lossy(&body).contains("bug in a handler"));

    let after =
        test::call_service(&service, TestRequest::get().uri("/api/health").to_request()).await;
    assert_eq!(after.status(), 200);
}

/// A use case that takes far longer than the request deadline.
struct Slow;

#[async_trait]
impl UserService for Slow {
    async fn create(&self, _: CreateUser, _: ports::rate_limit::ClientKey) -> Result<User, Error> {
        unreachable!()
    }
    async fn current_principal(&self, claimed: Principal) -> Result<Principal, Error> {
        Ok(claimed)
    }
    async fn session_principal(&self, claimed: Principal) -> Result<Principal, Error> {
        Ok(claimed)
    }
    async fn get(&self, _: Principal, _: UserId) -> Result<ports::users::UserView, Error> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(ports::users::UserView::Full(ada()))
    }
    async fn get_with_posts(&self, _: Principal, _: UserId) -> Result<UserWithPosts, Error> {
        unreachable!()
    }
    async fn update(
        &self,
        _: Principal,
        _: UserId,
        _: UpdateUser,
        _: Option<Version>,
    ) -> Result<User, Error> {
        unreachable!()
    }
    async fn list(
        &self,
        _: Principal,
        _: ListUsers,
    ) -> Result<Page<ports::users::UserView>, Error> {
        unreachable!()
    }
    async fn delete(&self, _: Principal, _: UserId) -> Result<(), Error> {
        unreachable!()
    }
    async fn ensure_admin(&self, _: CreateUser) -> Result<User, Error> {
        unreachable!()
    }
}

#[actix_web::test]
async fn a_request_past_its_deadline_is_cancelled_with_504() {
    let config = HttpConfig {
        request_timeout: Duration::from_millis(50),
        ..HttpConfig::default()
    };
    let started = std::time::Instant::now();
    let reply = send_with(
        state(Slow),
        config,
        as_user(TestRequest::get().uri(&format!("/api/users/{}", uuid::Uuid::now_v7()))),
    )
    .await;
    reply.assert_problem(504);
    assert!(reply.headers.contains_key("x-request-id"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let given = send(
        state(untouched()),
        TestRequest::get()
            .uri("/api/health")
            .insert_header(("x-request-id", "client-chosen-42")),
    )
    .await;
    assert_eq!(given.header("x-request-id"), "client-chosen-42");

    let generated = send(state(untouched()), TestRequest::get().uri("/api/health")).await;
    let id = generated.header("x-request-id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let hostile = "x".repeat(500);
    let replaced = send(
        state(untouched()),
        TestRequest::get()
            .uri("/api/health")
            .insert_header(("x-request-id", hostile.as_str())),
    )
    .await;
    let replacement = replaced.header("x-request-id");
    assert!(
        uuid::Uuid::parse_str(replacement).is_ok(),
        "{replacement:?}"
    );

    let on_errors = send(state(untouched()), TestRequest::get().uri("/nope")).await;
    assert!(on_errors.headers.contains_key("x-request-id"));
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_web::test]
async fn every_log_line_of_a_request_carries_its_request_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut users = MockUserService::new();
    users
        .expect_get()
        .returning(|_, _| Err(Error::internal("disk on fire")));
    let reply = send(
        state(users),
        as_user(
            TestRequest::get()
                .uri(&format!("/api/users/{}", uuid::Uuid::now_v7()))
                .insert_header(("x-request-id", "trace-me-7")),
        ),
    )
    .await;
    reply.assert_problem(500);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = logs.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("disk on fire")),
        "the cause is logged: {logs}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request completed") && l.contains("500"))
    );
    for line in &lines {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            line.contains("trace-me-7"),
            "line without the request id: {json}"
        );
    }
}

#[actix_web::test]
async fn every_response_carries_the_security_headers_and_hsts_only_when_configured() {
    for (hsts, uri) in [
        (false, "/api/health"),
        (false, "/no/such/route"),
        (true, "/api/health"),
    ] {
        let config = HttpConfig {
            hsts,
            ..HttpConfig::default()
        };
        let reply = send_with(state(untouched()), config, TestRequest::get().uri(uri)).await;
        assert_eq!(reply.header("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(reply.header("x-frame-options"), "DENY", "{uri}");
        assert_eq!(reply.header("referrer-policy"), "no-referrer", "{uri}");
        assert_eq!(
            reply.headers.contains_key("strict-transport-security"),
            hsts,
            "{uri}"
        );
        assert!(!reply.headers.contains_key("server"), "no version banner");
    }
}

#[actix_web::test]
async fn cors_answers_only_the_configured_origins() {
    let preflight = |origin: &str| {
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/api/users")
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header((
                "access-control-request-headers",
                "content-type, authorization",
            ))
    };
    // Not configured: no CORS headers for anyone.
    let reply = send_with(
        state(untouched()),
        HttpConfig::default(),
        TestRequest::get()
            .uri("/api/health")
            .insert_header(("origin", "https://app.example.com")),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(!reply.headers.contains_key("access-control-allow-origin"));

    let config = HttpConfig {
        cors_allowed_origins: vec!["https://app.example.com".into()],
        ..HttpConfig::default()
    };
    let allowed = send_with(
        state(untouched()),
        config.clone(),
        preflight("https://app.example.com"),
    )
    .await;
    assert!(allowed.status.is_success(), "{:?}", allowed.status);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(
        allowed
            .header("access-control-allow-headers")
            .contains("authorization")
    );

    let simple = send_with(
        state(untouched()),
        config.clone(),
        TestRequest::get()
            .uri("/api/health")
            .insert_header(("origin", "https://app.example.com")),
    )
    .await;
    assert_eq!(
        simple.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(
        simple
            .header("access-control-expose-headers")
            .contains("x-request-id")
    );

    let refused = send_with(
        state(untouched()),
        config.clone(),
        preflight("https://evil.example").insert_header(("accept-encoding", "gzip")),
    )
    .await;
    assert!(!refused.headers.contains_key("access-control-allow-origin"));
    // Refused as a problem, like every other error.
    refused.assert_problem(400);
    let simple = send_with(
        state(untouched()),
        config,
        TestRequest::get()
            .uri("/api/health")
            .insert_header(("origin", "https://evil.example")),
    )
    .await;
    // A simple request is served without CORS headers: the browser withholds the
    // answer from the page.
    assert_eq!(simple.status, 200);
    assert!(!simple.headers.contains_key("access-control-allow-origin"));
}

#[actix_web::test]
async fn header_fields_past_32_kib_are_a_431_problem() {
    let with_padding = |bytes: usize| {
        TestRequest::get()
            .uri("/api/health")
            .insert_header(("x-padding", "x".repeat(bytes)))
    };
    let reply = send(state(untouched()), with_padding(16 * 1024)).await;
    assert_eq!(reply.status, 200);
    let reply = send(state(untouched()), with_padding(33 * 1024)).await;
    reply.assert_problem(431);
    assert_eq!(reply.body["type"], "/problems/headers-too-large");
    assert!(!reply.header("x-request-id").is_empty());
}
