//! Authentication at the HTTP edge: the bearer-token extractor, the admin guard, and
//! the `/api/auth` endpoints. Tokens are checked by the `AuthService`; nothing here
//! knows how they are signed.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use domain::auth::{Claims, Principal, SeenFrom};
use ports::auth::{AuthService, TokenPair};
use ports::rate_limit::fingerprint;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::Json;
use crate::problem::{ApiError, Problem};
use crate::rate_limit::CredentialLimits;
use crate::routing::Routes;

pub(crate) fn routes(routes: &mut Routes) {
    routes
        .resource("/api/auth/login")
        .endpoint(__path_login, login);
    routes
        .resource("/api/auth/refresh")
        .endpoint(__path_refresh, refresh);
    routes
        .resource("/api/auth/logout")
        .endpoint(__path_logout, logout);
}

/// The authenticated caller. Extracting it answers `401` when the request has no valid
/// bearer token, so a handler that takes it cannot run unauthenticated.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(Authenticated))
    }
}

fn unauthorized(detail: &str, challenge: &str) -> ApiError {
    let mut problem = Problem::for_status(StatusCode::UNAUTHORIZED);
    problem.detail = detail.to_owned();
    problem.www_authenticate = Some(challenge.to_owned());
    ApiError::problem(problem)
}

pub(crate) fn invalid_token() -> ApiError {
    unauthorized(
        "invalid or expired token",
        r#"Bearer error="invalid_token""#,
    )
}

/// The authenticated caller with their session: for the operations on one's own
/// sessions and password, which need to know which session asks.
#[derive(Debug, Clone, Copy)]
pub struct InSession(pub Claims);

impl FromRequest for InSession {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(claims(req).map(InSession))
    }
}

/// The principal of this request: the one an admin guard stored (with the role stored
/// now), else the token's.
pub(crate) fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    if let Some(principal) = req.extensions().get::<Principal>() {
        return Ok(*principal);
    }
    claims(req).map(|c| c.principal)
}

/// What this request's token proves, verified once and then kept in the request's
/// extensions for later extractors and middleware.
pub(crate) fn claims(req: &HttpRequest) -> Result<Claims, ApiError> {
    if let Some(claims) = req.extensions().get::<Claims>() {
        return Ok(*claims);
    }
    let Some(header) = req.headers().get(AUTHORIZATION) else {
        return Err(unauthorized("Missing authorization header", "Bearer"));
    };
    let token = header
        .to_str()
        .ok()
        .and_then(ports::auth::bearer_token)
        .ok_or_else(invalid_token)?;
    let auth = req
        .app_data::<web::Data<dyn AuthService>>()
        .ok_or_else(|| ApiError::from(domain::Error::internal("no AuthService configured")))?;
    let claims = auth.authenticate(token).map_err(|_| invalid_token())?;
    req.extensions_mut().insert(claims);
    Ok(claims)
}

/// Where a request comes from, as a session records it.
pub(crate) fn seen_from(req: &HttpRequest) -> SeenFrom {
    SeenFrom::new(
        crate::client::client_ip(req).map(|ip| ip.to_string()),
        req.headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|ua| ua.to_str().ok()),
    )
}

/// Guards a scope for admins: `401` without a valid token, `403` for anyone who is not
/// an admin now. The token's role claim is not enough: it outlives a demotion, so the
/// role stored now decides, and the handlers behind see that principal.
pub(crate) async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let claimed = authenticate(req.request())?;
    if !claimed.is_admin() {
        return Err(ApiError::from(domain::Error::Forbidden("admins only")).into());
    }
    let users = req
        .app_data::<web::Data<dyn ports::users::UserService>>()
        .ok_or_else(|| ApiError::from(domain::Error::internal("no UserService configured")))?
        .clone();
    let current = match users.current_principal(claimed).await {
        Ok(current) => current,
        Err(domain::Error::Unauthorized(_)) => return Err(invalid_token().into()),
        Err(e) => return Err(ApiError::from(e).into()),
    };
    if !current.is_admin() {
        return Err(ApiError::from(domain::Error::Forbidden("admins only")).into());
    }
    req.extensions_mut().insert(current);
    next.call(req).await
}

/// Login request. Unknown fields are rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(example = "correct horse battery staple")]
    password: String,
}

/// A refresh token, for `/refresh` and `/logout`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

/// A new token pair.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    /// JWT for `Authorization: Bearer …`.
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    expires_in: u64,
    /// Opaque; spend it once at `/api/auth/refresh` for a new pair.
    refresh_token: String,
}

impl From<TokenPair> for TokenResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access.token,
            token_type: "Bearer",
            expires_in: pair.access.expires_in,
            refresh_token: pair.refresh.expose().to_owned(),
        }
    }
}

/// A token pair, which no cache may keep (RFC 6749 §5.1).
fn tokens(pair: TokenPair) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse::from(pair))
}

/// The client's address as the rate limits key it.
pub(crate) fn client_key(req: &HttpRequest) -> ports::rate_limit::ClientKey {
    ports::rate_limit::ClientKey::of(crate::client::client_ip(req))
}

/// The key of an account's failed-login budget: by its address as typed at login.
pub(crate) fn account_key(email: &str) -> String {
    format!(
        "account:{}",
        fingerprint(&email.trim().to_ascii_lowercase())
    )
}

/// Log in with e-mail and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse, headers(("RateLimit-Policy" = String, description = "The per-address budget, e.g. `\"login\";q=10;w=60`"), ("RateLimit" = String, description = "Attempts left and seconds until one more, e.g. `\"login\";r=9;t=6`"))),
        (status = 401, description = "Wrong e-mail or password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The password is right, but the address is not verified and this service requires it (`/problems/email-not-verified`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this client address, or too many failures for this account this hour (addresses it signed in from lately excepted)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"), ("RateLimit-Policy" = String, description = "The per-address budget, e.g. `\"login\";q=10;w=60`"), ("RateLimit" = String, description = "Attempts left and seconds until one more, e.g. `\"login\";r=9;t=6`"))),
        (status = 503, description = "Database unavailable, or password hashing at capacity", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn login(
    auth: web::Data<dyn AuthService>,
    limits: web::Data<CredentialLimits>,
    req: HttpRequest,
    Json(body): Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let account = account_key(&body.email);
    let ip = format!("ip:{}", client_key(&req));
    let pair = format!("{account}|{ip}");
    let standing = limits.take(&limits.login, &ip).await?;
    // The account's ceiling holds for every address but those the owner signed in from
    // lately: someone else's failures never lock them out there.
    let known = limits.known_addresses.contains(&pair);
    if !known {
        limits.take(&limits.account_failures, &account).await?;
    }
    let outcome = auth
        .login(&body.email, &body.password, seen_from(&req))
        .await;
    let store = &limits.store;
    let failures = &limits.account_failures;
    // A bookkeeping failure (the store away) must not turn an answered login into an
    // error: the attempt is counted or not, and the answer stands.
    let kept = match &outcome {
        Ok(_) => {
            limits.known_addresses.insert(&pair);
            if known {
                Ok(())
            } else {
                store.refund(failures, &account).await
            }
        }
        Err(domain::Error::Unauthorized(_)) if known => store.record(failures, &account).await,
        Err(domain::Error::Unauthorized(_)) => Ok(()),
        // Not a failure of the password: nothing to count.
        Err(_) if known => Ok(()),
        Err(_) => store.refund(failures, &account).await,
    };
    if let Err(error) = kept {
        tracing::warn!(%error, "counting a login attempt failed");
    }
    Ok(standing.on(tokens(outcome?)))
}

/// Spend a refresh token for a new token pair.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair; the presented token is spent", body = TokenResponse, headers(("RateLimit-Policy" = String, description = "The per-address budget, e.g. `\"login\";q=10;w=60`"), ("RateLimit" = String, description = "Attempts left and seconds until one more, e.g. `\"login\";r=9;t=6`"))),
        (status = 401, description = "Unknown, expired, revoked or already spent (which revokes its family)",
            body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"), ("RateLimit-Policy" = String, description = "The per-address budget, e.g. `\"login\";q=10;w=60`"), ("RateLimit" = String, description = "Attempts left and seconds until one more, e.g. `\"login\";r=9;t=6`"))),
    ))]
pub(crate) async fn refresh(
    auth: web::Data<dyn AuthService>,
    limits: web::Data<CredentialLimits>,
    req: HttpRequest,
    Json(body): Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let ip = format!("ip:{}", client_key(&req));
    let standing = limits.take(&limits.refresh, &ip).await?;
    let token = format!("token:{}", fingerprint(&body.refresh_token));
    if let Err(refused) = limits.take(&limits.refresh, &token).await {
        // The attempt was not made: the address gets its attempt back.
        if let Err(error) = limits.store.refund(&limits.refresh, &ip).await {
            tracing::warn!(%error, "giving back a refresh attempt failed");
        }
        return Err(refused);
    }
    let pair = auth.refresh(&body.refresh_token, seen_from(&req)).await?;
    Ok(standing.on(tokens(pair)))
}

/// End the session of a refresh token: the token and the session's access tokens stop
/// working.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Ended (also for unknown tokens)"),
    ))]
pub(crate) async fn logout(
    auth: web::Data<dyn AuthService>,
    Json(body): Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.logout(&body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}
