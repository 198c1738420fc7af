//! `authorization: Bearer <jwt>` metadata, checked by the same `AuthService` as HTTP.

use domain::auth::{Claims, Principal};
use ports::auth::AuthService;
use tonic::{Request, Status};

pub fn authenticate<T>(auth: &dyn AuthService, request: &Request<T>) -> Result<Principal, Status> {
    claims(auth, request).map(|c| c.principal)
}

/// What the token proves: the principal, its session and when it expires, for streams
/// that outlive a call.
pub fn claims<T>(auth: &dyn AuthService, request: &Request<T>) -> Result<Claims, Status> {
    auth.authenticate(bearer(request)?).map_err(|_| invalid())
}

fn bearer<T>(request: &Request<T>) -> Result<&str, Status> {
    let Some(value) = request.metadata().get("authorization") else {
        return Err(Status::unauthenticated("missing authorization metadata"));
    };
    value
        .to_str()
        .ok()
        .and_then(ports::auth::bearer_token)
        .ok_or_else(invalid)
}

fn invalid() -> Status {
    Status::unauthenticated("invalid or expired token")
}
