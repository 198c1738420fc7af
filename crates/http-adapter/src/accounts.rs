//! The account flows over HTTP: verifying an address, resetting a forgotten password,
//! changing it, confirming a new address, and listing and ending one's sessions. The
//! rules are the `AccountService`'s; this module maps them to requests.

use actix_web::{HttpRequest, HttpResponse, web};
use ports::accounts::{AccountService, SessionView};
use ports::users::{UserService, UserView};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Authenticated, InSession, account_key, client_key};
use crate::extract::{Json, path_id};
use crate::problem::{ApiError, Problem};
use crate::rate_limit::CredentialLimits;
use crate::routing::Routes;

pub(crate) fn routes(routes: &mut Routes) {
    routes
        .resource("/api/auth/verify-email")
        .endpoint(__path_verify_email, verify_email);
    routes
        .resource("/api/auth/resend-verification")
        .endpoint(__path_resend_verification, resend_verification);
    routes
        .resource("/api/auth/forgot-password")
        .endpoint(__path_forgot_password, forgot_password);
    routes
        .resource("/api/auth/reset-password")
        .endpoint(__path_reset_password, reset_password);
    routes
        .resource("/api/auth/confirm-email-change")
        .endpoint(__path_confirm_email_change, confirm_email_change);
    routes
        .resource("/api/auth/logout-all")
        .endpoint(__path_logout_all, logout_all);
    routes
        .resource("/api/users/me/password")
        .endpoint(__path_change_password, change_password);
    routes
        .resource("/api/users/me/sessions")
        .endpoint(__path_list_sessions, list_sessions);
    routes
        .resource("/api/users/me/sessions/{id}")
        .endpoint(__path_end_session, end_session);
}

/// The token of an e-mailed link. Unknown fields are rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// The `token` query parameter of the link.
    #[schema(example = "q3JtYV9ZbGx4b2tMVm1Xb2dLcFdYc0N0eFhZb1d4Zk4")]
    token: String,
}

/// Asks for a password reset link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForgotPasswordRequest {
    #[schema(example = "ada@example.com", format = Email, min_length = 3)]
    email: String,
}

/// Sets a new password with a reset link's token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetPasswordRequest {
    token: String,
    /// 12 to 128 characters, kept exactly as typed.
    #[schema(
        example = "a brand new horse battery",
        min_length = 12,
        max_length = 128
    )]
    password: String,
}

/// Changes the caller's password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordRequest {
    current_password: String,
    /// 12 to 128 characters, kept exactly as typed.
    #[schema(
        example = "a brand new horse battery",
        min_length = 12,
        max_length = 128
    )]
    new_password: String,
}

/// Which sessions to end; `{}` ends every one but the caller's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutAllRequest {
    /// End the caller's session too.
    #[serde(default)]
    including_current: bool,
}

/// A request taken, whose outcome arrives by e-mail.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    #[schema(example = "accepted")]
    status: &'static str,
    detail: &'static str,
}

/// Where a session was used from.
#[derive(Serialize, ToSchema)]
pub(crate) struct SeenFromResponse {
    /// The client's address, as this service saw it (through trusted proxies).
    #[schema(example = "203.0.113.7")]
    address: Option<String>,
    /// The `User-Agent` sent, cut to 256 characters.
    user_agent: Option<String>,
}

/// One session: a login and every refresh since.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionResponse {
    id: Uuid,
    /// RFC 3339, UTC.
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// The latest refresh, or the login (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    last_used_at: OffsetDateTime,
    /// At login.
    login: SeenFromResponse,
    /// At the latest refresh.
    last_seen: SeenFromResponse,
    /// Whether this is the session the request was made in.
    current: bool,
}

impl From<SessionView> for SessionResponse {
    fn from(view: SessionView) -> Self {
        let s = view.session;
        Self {
            id: s.id.as_uuid(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            login: SeenFromResponse {
                address: s.login.address,
                user_agent: s.login.user_agent,
            },
            last_seen: SeenFromResponse {
                address: s.last.address,
                user_agent: s.last.user_agent,
            },
            current: view.current,
        }
    }
}

/// The caller's sessions, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionsResponse {
    sessions: Vec<SessionResponse>,
}

/// Mark the address a verification link was sent to as verified.
#[utoipa::path(post, path = "/api/auth/verify-email", tag = "accounts",
    request_body = TokenRequest,
    responses(
        (status = 204, description = "Verified"),
        (status = 400, description = "The link is unknown, used, expired, or for an address the account no longer has (`/problems/invalid-link`; which one is not said)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn verify_email(
    accounts: web::Data<dyn AccountService>,
    Json(body): Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    accounts.verify_email(&body.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Send a new verification link to the caller's address; older links stop working.
#[utoipa::path(post, path = "/api/auth/resend-verification", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "An e-mail is on its way", body = Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The address is verified already", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many links asked for this account (5 an hour)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn resend_verification(
    accounts: web::Data<dyn AccountService>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    accounts.resend_verification(actor).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        status: "accepted",
        detail: "a new verification link is on its way",
    }))
}

/// Ask for a password reset link. The answer is the same whether or not an account
/// has the address.
#[utoipa::path(post, path = "/api/auth/forgot-password", tag = "accounts",
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "If an account has this address, a reset link is on its way", body = Accepted),
        (status = 422, description = "Not an e-mail address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client address (20 an hour)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn forgot_password(
    accounts: web::Data<dyn AccountService>,
    req: HttpRequest,
    Json(body): Json<ForgotPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    accounts
        .forgot_password(&body.email, client_key(&req))
        .await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        status: "accepted",
        detail: "if an account has this address, a link to reset its password is on its way",
    }))
}

/// Set a new password with a reset link's token. Every session of the account ends.
#[utoipa::path(post, path = "/api/auth/reset-password", tag = "accounts",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "The password is set; every session of the account has ended"),
        (status = 400, description = "The link is unknown, used or expired (`/problems/invalid-link`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The password breaks a rule (field `password`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing at capacity", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn reset_password(
    accounts: web::Data<dyn AccountService>,
    Json(body): Json<ResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    accounts.reset_password(&body.token, &body.password).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Move the account to the pending address a confirmation link was sent to.
#[utoipa::path(post, path = "/api/auth/confirm-email-change", tag = "accounts",
    request_body = TokenRequest,
    responses(
        (status = 204, description = "The account has its new address, verified"),
        (status = 400, description = "The link is unknown, used, expired, or a newer change replaced it (`/problems/invalid-link`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another account took the address meanwhile", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn confirm_email_change(
    accounts: web::Data<dyn AccountService>,
    Json(body): Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    accounts.confirm_email_change(&body.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// End every session of the caller but this one, or every one.
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "accounts",
    security(("bearer" = [])),
    request_body = LogoutAllRequest,
    responses(
        (status = 204, description = "Ended; their refresh tokens stop working now, their access tokens and live connections within 5 s on every instance"),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn logout_all(
    accounts: web::Data<dyn AccountService>,
    InSession(caller): InSession,
    Json(body): Json<LogoutAllRequest>,
) -> Result<HttpResponse, ApiError> {
    accounts.logout_all(caller, body.including_current).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Change the caller's password. Every other session of theirs ends.
#[utoipa::path(post, path = "/api/users/me/password", tag = "accounts",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every other session has ended"),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The current password is not right (counted as a failed login)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password breaks a rule (field `new_password`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts for this account", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn change_password(
    accounts: web::Data<dyn AccountService>,
    limits: web::Data<CredentialLimits>,
    users: web::Data<dyn UserService>,
    InSession(caller): InSession,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    // Guesses of the current password are budgeted per account (a stolen access
    // token cannot guess faster than logins may), and each wrong one also counts as a
    // failed login of the account. The gate is the user's own key, not the login one:
    // failed logins from elsewhere never lock the owner out of changing it.
    let account = match users
        .get(caller.principal, caller.principal.user_id)
        .await?
    {
        UserView::Full(user) => account_key(user.email.as_str()),
        UserView::Public(_) => return Err(crate::auth::invalid_token()),
    };
    let own = format!("password-change:{}", caller.principal.user_id);
    limits.take(&limits.account_failures, &own).await?;
    let outcome = accounts
        .change_password(caller, &body.current_password, &body.new_password)
        .await;
    let kept = match &outcome {
        Err(domain::Error::Forbidden(_)) => {
            limits
                .store
                .record(&limits.account_failures, &account)
                .await
        }
        _ => limits.store.refund(&limits.account_failures, &own).await,
    };
    if let Err(error) = kept {
        tracing::warn!(%error, "counting a password attempt failed");
    }
    outcome?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's sessions that have not ended, newest first.
#[utoipa::path(get, path = "/api/users/me/sessions", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The sessions, the caller's marked `current`", body = SessionsResponse),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_sessions(
    accounts: web::Data<dyn AccountService>,
    InSession(caller): InSession,
) -> Result<HttpResponse, ApiError> {
    let sessions = accounts.sessions(caller).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(SessionsResponse {
            sessions: sessions.into_iter().map(SessionResponse::from).collect(),
        }))
}

/// End one of the caller's sessions.
#[utoipa::path(delete, path = "/api/users/me/sessions/{id}", tag = "accounts",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Ended; its refresh token stops working now, its access tokens and live connections within 5 s on every instance"),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of the caller's live sessions", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn end_session(
    accounts: web::Data<dyn AccountService>,
    InSession(caller): InSession,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    accounts.end_session(caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
