use std::sync::Arc;

use actix_web::test::TestRequest;
use ports::health::{CheckStatus, MockHealthService, Readiness};

use crate::support::*;

#[actix_web::test]
async fn liveness_is_ok() {
    let reply = send(state(untouched()), TestRequest::get().uri("/api/health")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, serde_json::json!({"status": "ok"}));
}

#[actix_web::test]
async fn readiness_reports_every_check() {
    let reply = send(
        state(untouched()),
        TestRequest::get().uri("/api/health/ready"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        serde_json::json!({"status": "ok", "checks": {"database": "ok"}})
    );
}

#[actix_web::test]
async fn readiness_is_a_503_problem_naming_the_failing_check() {
    let mut health = MockHealthService::new();
    health.expect_readiness().returning(|| Readiness {
        checks: vec![("database", CheckStatus::Unavailable)],
    });
    let mut api = state(untouched());
    api.health = Arc::new(health);
    let reply = send(api, TestRequest::get().uri("/api/health/ready")).await;
    reply.assert_problem(503);
    assert_eq!(
        reply.body["checks"],
        serde_json::json!({"database": "unavailable"})
    );
}
