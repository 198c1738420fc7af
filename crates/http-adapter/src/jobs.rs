//! `/api/admin/jobs`: the job queue for operators (inside the admin scope).

use actix_web::{HttpResponse, web};
use domain::jobs::{Job, JobId, JobState};
use ports::jobs::JobService;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extract::path_id;
use crate::pagination::{Page, page_params};
use crate::problem::{ApiError, Problem};
use crate::routing::Routes;

pub(crate) fn routes(routes: &mut Routes) {
    routes
        .resource("/api/admin/jobs")
        .endpoint(__path_list_jobs, list_jobs);
    routes
        .resource("/api/admin/jobs/{id}/retry")
        .endpoint(__path_retry_job, retry_job);
}

/// A background job.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobResponse {
    id: Uuid,
    #[schema(example = "welcome_email")]
    kind: &'static str,
    /// `queued`, `running`, `completed`, `failed` or `dead`.
    #[schema(example = "queued")]
    state: &'static str,
    attempts: u32,
    max_attempts: u32,
    last_error: Option<String>,
    /// When it runs next (for a running job: when its lease expires).
    #[serde(with = "time::serde::rfc3339")]
    run_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    /// The job's typed payload, tagged by `kind`.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

impl From<Job> for JobResponse {
    fn from(job: Job) -> Self {
        Self {
            id: job.id.as_uuid(),
            kind: job.payload.kind(),
            state: job.state.as_str(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            last_error: job.last_error,
            run_at: job.run_at,
            created_at: job.created_at,
            updated_at: job.updated_at,
            payload: serde_json::to_value(&job.payload).unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only jobs in this state.
    #[param(
        example = "dead",
        nullable = false,
        pattern = "^(queued|running|completed|failed|dead)$"
    )]
    state: Option<String>,
    /// Page size, 1 to 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page (opaque).
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// List jobs, newest first (admins only).
#[utoipa::path(get, path = "/api/admin/jobs", tag = "admin",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of jobs", body = Page<JobResponse>),
        (status = 422, description = "Invalid state, limit or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_jobs(
    jobs: web::Data<dyn JobService>,
    params: web::Query<ListParams>,
) -> Result<web::Json<Page<JobResponse>>, ApiError> {
    let state = params
        .state
        .as_deref()
        .map(JobState::parse)
        .transpose()
        .map_err(domain::Error::from)?;
    let (limit, cursor) = page_params(params.limit.as_deref(), params.cursor.as_deref())?;
    let page = jobs.list(state, limit, cursor).await?;
    Ok(web::Json(Page::of(page, JobResponse::from)))
}

/// Requeue a failed or dead job now, with a fresh set of attempts (admins only).
#[utoipa::path(post, path = "/api/admin/jobs/{id}/retry", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The requeued job", body = JobResponse),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not failed or dead", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn retry_job(
    jobs: web::Data<dyn JobService>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: JobId = path_id(&id)?;
    let job = jobs.retry(id).await?;
    Ok(HttpResponse::Ok().json(JobResponse::from(job)))
}
