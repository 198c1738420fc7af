//! `authorization: Bearer <jwt>` metadata, checked by the same `AuthService` as HTTP.

use domain::auth::Principal;
use ports::auth::AuthService;
use tonic::{Request, Status};

pub fn authenticate<T>(auth: &dyn AuthService, request: &Request<T>) -> Result<Principal, Status> {
    let Some(value) = request.metadata().get("authorization") else {
        return Err(Status::unauthenticated("missing authorization metadata"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(ports::auth::bearer_token)
        .ok_or_else(invalid)?;
    auth.authenticate(token).map_err(|_| invalid())
}

fn invalid() -> Status {
    Status::unauthenticated("invalid or expired token")
}
