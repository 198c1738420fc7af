//! RFC 9457 problem details: the one shape every error response has.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use domain::{Error, FieldError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An `application/problem+json` body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// One entry per invalid field, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldProblem>>,
    /// The result of every readiness check, for readiness problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub checks: Option<serde_json::Map<String, serde_json::Value>>,
    /// Sent as the `WWW-Authenticate` header (with 401).
    #[serde(skip)]
    pub www_authenticate: Option<String>,
    /// Sent as the `Retry-After` header, in seconds (with 429 and 503).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// Sent as the `RateLimit-Policy` and `RateLimit` headers (with 429).
    #[serde(skip)]
    pub rate_limit: Option<(String, String)>,
}

/// One invalid field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldProblem {
    /// The field as the client spelled it.
    pub field: String,
    pub message: String,
}

impl From<&FieldError> for FieldProblem {
    fn from(e: &FieldError) -> Self {
        Self {
            field: e.field.clone(),
            message: e.message.clone(),
        }
    }
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            checks: None,
            www_authenticate: None,
            retry_after: None,
            rate_limit: None,
        }
    }

    /// The problem a bare status stands for, for responses made outside our handlers
    /// (unknown route, wrong method, and anything the framework answers itself).
    pub fn for_status(status: StatusCode) -> Self {
        let (kind, detail) = match status {
            StatusCode::NOT_FOUND => ("not-found", "no resource at this path"),
            StatusCode::UNAUTHORIZED => ("unauthorized", "authentication is required"),
            StatusCode::FORBIDDEN => ("forbidden", "you may not do this"),
            StatusCode::TOO_MANY_REQUESTS => ("rate-limited", "too many requests; retry later"),
            StatusCode::PRECONDITION_FAILED => (
                "precondition-failed",
                "the resource changed since it was read; fetch it again",
            ),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method-not-allowed",
                "this method is not allowed on this resource",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "the request body is too large"),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
                "headers-too-large",
                "the request's header fields are too large",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported-media-type",
                "the request body must be application/json",
            ),
            StatusCode::GATEWAY_TIMEOUT => {
                ("timeout", "the request took too long and was cancelled")
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                ("unavailable", "the service cannot answer now; retry later")
            }
            s if s.is_server_error() => ("internal", "the server failed to handle the request"),
            _ => ("bad-request", "the request is not valid"),
        };
        Self::new(
            status,
            kind,
            status.canonical_reason().unwrap_or("Error"),
            detail,
        )
    }

    pub fn with_errors(mut self, errors: impl IntoIterator<Item = FieldProblem>) -> Self {
        self.errors = Some(errors.into_iter().collect());
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        let retry_after = self
            .retry_after
            .or((self.status == StatusCode::SERVICE_UNAVAILABLE.as_u16()).then_some(1));
        if let Some(seconds) = retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some((policy, standing)) = &self.rate_limit {
            response.insert_header(("ratelimit-policy", policy.as_str()));
            response.insert_header(("ratelimit", standing.as_str()));
        }
        if let Some(challenge) = &self.www_authenticate {
            response.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
        } else if self.status == StatusCode::UNAUTHORIZED.as_u16() {
            // RFC 9110: a 401 always names a scheme.
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.body(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Every error a handler returns. Converted to a [`Problem`] in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] Error),
    #[error("{}", .0.detail)]
    Problem(Box<Problem>),
}

impl ApiError {
    pub fn problem(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }

    /// A `400` for input that is readable but not acceptable in the URL (path or query).
    pub fn bad_request(error: &FieldError) -> Self {
        Self::problem(
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Bad Request",
                format!("{}: {}", error.field, error.message),
            )
            .with_errors([FieldProblem::from(error)]),
        )
    }

    fn to_problem(&self) -> Problem {
        match self {
            Self::Problem(problem) => (**problem).clone(),
            Self::Domain(error) => domain_problem(error),
        }
    }
}

fn domain_problem(error: &Error) -> Problem {
    match error {
        Error::NotFound { .. } => Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            error.to_string(),
        ),
        Error::Duplicate { field, .. } => Problem::new(
            StatusCode::CONFLICT,
            "duplicate",
            "Conflict",
            error.to_string(),
        )
        .with_errors([FieldProblem {
            field: (*field).to_owned(),
            message: "is already taken".into(),
        }]),
        Error::Unauthorized(detail) => {
            let mut problem = Problem::for_status(StatusCode::UNAUTHORIZED);
            problem.detail = (*detail).to_owned();
            problem
        }
        Error::Forbidden(detail) => {
            let mut problem = Problem::for_status(StatusCode::FORBIDDEN);
            problem.detail = (*detail).to_owned();
            problem
        }
        Error::EmailNotVerified => Problem::new(
            StatusCode::FORBIDDEN,
            "email-not-verified",
            "Forbidden",
            error.to_string(),
        ),
        Error::LinkInvalid => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-link",
            "Bad Request",
            error.to_string(),
        ),
        Error::Conflict(detail) => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict",
            (*detail).to_owned(),
        ),
        Error::VersionMismatch { .. } => {
            let mut problem = Problem::for_status(StatusCode::PRECONDITION_FAILED);
            problem.detail = error.to_string();
            problem
        }
        Error::RateLimited { retry_after } => {
            let mut problem = Problem::for_status(StatusCode::TOO_MANY_REQUESTS);
            problem.detail = "too many attempts; retry later".into();
            problem.retry_after = Some(retry_after.as_secs().max(1));
            problem
        }
        Error::DeadlineExceeded(detail) => {
            let mut problem = Problem::for_status(StatusCode::GATEWAY_TIMEOUT);
            problem.detail = (*detail).to_owned();
            problem
        }
        Error::Validation(errors) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Unprocessable Entity",
            "the request has invalid fields",
        )
        .with_errors(errors.errors().iter().map(FieldProblem::from)),
        Error::Unavailable(_) => Problem::for_status(StatusCode::SERVICE_UNAVAILABLE),
        Error::Internal(_) => Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.to_problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        // The cause goes to the log, inside the request's span (request id included);
        // the client gets nothing that could reveal internals.
        match self {
            Self::Domain(Error::Unavailable(source)) => {
                tracing::warn!(error = %source, "dependency unavailable");
            }
            Self::Domain(Error::Internal(source)) => {
                tracing::error!(error = %source, "internal error");
            }
            _ => {}
        }
        self.to_problem().response()
    }
}
