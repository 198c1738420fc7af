use actix_web::{HttpResponse, web};
use ports::health::HealthService;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::Problem;
use crate::routing::Routes;

pub(crate) fn routes(routes: &mut Routes) {
    routes
        .resource("/api/health")
        .endpoint(__path_liveness, liveness);
    routes
        .resource("/api/health/ready")
        .endpoint(__path_readiness, readiness);
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    #[schema(example = "ok")]
    status: &'static str,
    /// Each check by name: `ok` or `unavailable`.
    #[schema(value_type = Object, example = json!({"database": "ok"}))]
    checks: serde_json::Map<String, serde_json::Value>,
}

/// Liveness: the process is up. Touches no dependency.
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub(crate) async fn liveness() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// Readiness: every dependency answers, so the instance can take traffic.
#[utoipa::path(get, path = "/api/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is unavailable; `checks` names it",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn readiness(health: web::Data<dyn HealthService>) -> HttpResponse {
    let report = health.readiness().await;
    let checks: serde_json::Map<String, serde_json::Value> = report
        .checks
        .iter()
        .map(|(name, status)| ((*name).to_owned(), status.as_str().into()))
        .collect();
    if report.is_ready() {
        HttpResponse::Ok().json(Readiness {
            status: "ok",
            checks,
        })
    } else {
        let mut problem = Problem::for_status(actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
        problem.detail = "a dependency is unavailable".into();
        problem.checks = Some(checks);
        problem.response()
    }
}
