//! Domain errors as gRPC statuses: the gRPC column of the one error table both
//! transports follow (docs/errors.md). Internals never reach the client; they are
//! logged here instead.

use domain::Error;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

pub fn status(error: Error) -> Status {
    match error {
        Error::NotFound { .. } => Status::not_found(error.to_string()),
        Error::Duplicate { field, .. } => Status::with_error_details(
            Code::AlreadyExists,
            error.to_string(),
            ErrorDetails::with_bad_request(vec![FieldViolation::new(field, "already taken")]),
        ),
        Error::Unauthorized(detail) => Status::unauthenticated(detail),
        Error::Forbidden(detail) => Status::permission_denied(detail),
        Error::Conflict(detail) => Status::aborted(detail),
        Error::EmailNotVerified => Status::permission_denied(error.to_string()),
        Error::LinkInvalid => Status::invalid_argument(error.to_string()),
        Error::VersionMismatch { .. } => Status::failed_precondition(error.to_string()),
        Error::RateLimited { .. } => Status::resource_exhausted(error.to_string()),
        Error::DeadlineExceeded(detail) => Status::deadline_exceeded(detail),
        Error::Validation(errors) => Status::with_error_details(
            Code::InvalidArgument,
            errors.to_string(),
            ErrorDetails::with_bad_request(
                errors
                    .errors()
                    .iter()
                    .map(|e| FieldViolation::new(e.field.clone(), e.message.clone()))
                    .collect::<Vec<_>>(),
            ),
        ),
        Error::Unavailable(source) => {
            tracing::warn!(error = %source, "gRPC call failed: a dependency is unavailable");
            Status::unavailable("the service is temporarily unavailable; try again shortly")
        }
        Error::Internal(source) => {
            tracing::error!(error = %source, "gRPC call failed");
            Status::internal("internal error")
        }
    }
}

/// A request field that failed to parse, as `INVALID_ARGUMENT` with its violation.
pub fn invalid(field: &str, message: impl Into<String>) -> Status {
    status(Error::from(domain::FieldError::new(field, message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_error_has_its_code() {
        let cases = [
            (Error::not_found("user", "x"), Code::NotFound),
            (
                Error::Duplicate {
                    entity: "user",
                    field: "email",
                },
                Code::AlreadyExists,
            ),
            (Error::Unauthorized("no"), Code::Unauthenticated),
            (Error::Forbidden("no"), Code::PermissionDenied),
            (Error::Conflict("busy"), Code::Aborted),
            (
                Error::VersionMismatch { entity: "user" },
                Code::FailedPrecondition,
            ),
            (Error::DeadlineExceeded("slow"), Code::DeadlineExceeded),
            (
                Error::RateLimited {
                    retry_after: std::time::Duration::from_secs(3),
                },
                Code::ResourceExhausted,
            ),
            (
                Error::from(domain::FieldError::new("email", "bad")),
                Code::InvalidArgument,
            ),
            (Error::unavailable("db down"), Code::Unavailable),
            (Error::internal("secret detail"), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(status(error).code(), code);
        }
    }

    #[test]
    fn validation_names_each_field_in_bad_request_details() {
        let mut errors = domain::ValidationErrors::new();
        errors.push(domain::FieldError::new(
            "email",
            "must be an e-mail address",
        ));
        errors.push(domain::FieldError::new("name", "must not be empty"));
        let status = status(Error::Validation(errors));
        let details = status.get_error_details();
        let violations: Vec<_> = details
            .bad_request()
            .expect("a BadRequest detail")
            .field_violations
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(
            violations,
            [
                ("email", "must be an e-mail address"),
                ("name", "must not be empty")
            ]
        );
    }

    #[test]
    fn internals_stay_inside() {
        let status = status(Error::internal("password=hunter2 at db:5432"));
        assert_eq!(status.message(), "internal error");
        let status = status_of_unavailable();
        assert!(!status.message().contains("10.0.0.7"));
    }

    fn status_of_unavailable() -> Status {
        status(Error::unavailable("connect to 10.0.0.7 refused"))
    }
}
