use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use domain::idempotency::IdempotencyStore;
use ports::auth::AuthService;
use ports::health::HealthService;
use ports::jobs::JobService;
use ports::posts::PostService;
use ports::users::UserService;

use crate::idempotency::FingerprintKey;
use crate::problem::{ApiError, Problem};
use crate::{auth, health, jobs, middleware, openapi, posts, users};
use ports::rate_limit::RateLimiter;

/// The use cases the routes call.
#[derive(Clone)]
pub struct ApiState {
    pub users: Arc<dyn UserService>,
    pub health: Arc<dyn HealthService>,
    pub auth: Arc<dyn AuthService>,
    pub posts: Arc<dyn PostService>,
    /// Remembers `Idempotency-Key`s of creating requests.
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub jobs: Arc<dyn JobService>,
    /// WebSocket connections of this instance (and the chat use cases behind them).
    pub ws: Arc<crate::ws::WsHub>,
    /// Renders the Prometheus exposition for `GET /metrics`; `None` serves no metrics.
    pub metrics: Option<MetricsRenderer>,
    /// Run on each HTTP worker's thread as it starts, inside its runtime (the wiring
    /// gives each worker database connections of its own there).
    pub worker_start: Option<WorkerStart>,
}

/// Per-worker set-up, see [`ApiState::worker_start`].
pub type WorkerStart = Arc<dyn Fn() + Send + Sync>;

/// Produces the current metrics in the Prometheus text format. The wiring owns the
/// recorder and samples what it needs (pool sizes, queue depth) on each call.
pub type MetricsRenderer =
    Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, String> + Send + Sync>;

/// `GET /metrics`: Prometheus text exposition, outside `/api` and its versioning.
async fn metrics(renderer: Option<web::Data<MetricsRenderer>>) -> HttpResponse {
    match renderer {
        Some(render) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(render.get_ref()().await),
        None => HttpResponse::NotFound().finish(),
    }
}

/// A server for `GET /metrics` alone, on its own listener (`METRICS_ADDR`): scrapes
/// stay off the API's port and workers, and the API's port answers 404 for them.
pub fn metrics_server(
    listener: TcpListener,
    renderer: MetricsRenderer,
) -> std::io::Result<actix_web::dev::Server> {
    let renderer = web::Data::new(renderer);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(renderer.clone())
            .route("/metrics", web::get().to(metrics))
            .default_service(web::to(|| async {
                Problem::for_status(StatusCode::NOT_FOUND).response()
            }))
    })
    .disable_signals()
    .workers(1)
    .listen(listener)?
    .run())
}

/// How long a successful login makes its address known for that account.
const KNOWN_ADDRESS_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Budgets for the credential endpoints, shared by every worker of a server.
#[derive(Debug)]
pub(crate) struct RateLimits {
    /// Every login attempt, per client address.
    pub(crate) login: RateLimiter,
    /// Failed logins per account from every address together, per hour: the ceiling on
    /// guessing one password from many addresses. Spent before an attempt and given
    /// back when it succeeds, so attempts in flight together cannot overshoot it.
    pub(crate) account_failures: RateLimiter,
    /// Addresses each account logged in from lately (`account|ip`): they are not held
    /// to the account's ceiling, so failures from elsewhere never lock the owner out
    /// where they signed in before.
    pub(crate) known_addresses: ports::rate_limit::RecentKeys,
    pub(crate) refresh: RateLimiter,
}

impl RateLimits {
    fn new(config: &HttpConfig) -> Self {
        Self {
            login: RateLimiter::per_minute(config.auth_rate_limit_per_minute),
            account_failures: RateLimiter::new(
                config.auth_account_failures_per_hour,
                Duration::from_secs(3600),
            ),
            known_addresses: ports::rate_limit::RecentKeys::new(KNOWN_ADDRESS_TTL),
            refresh: RateLimiter::per_minute(config.auth_rate_limit_per_minute),
        }
    }
}

/// HTTP-level limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// A handler running longer is cancelled and the client gets `504`.
    pub request_timeout: Duration,
    /// Time a client has to send the request head.
    pub client_request_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub keep_alive: Duration,
    /// Time to finish writing to a client that is closing the connection.
    pub client_disconnect_timeout: Duration,
    /// How long a graceful stop waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Worker threads; `None` for one per core.
    pub workers: Option<usize>,
    /// Connections open at once, over every worker; past it new ones wait in the
    /// listen backlog.
    pub max_connections: usize,
    /// Login and refresh attempts allowed per minute and client address; failed logins
    /// per minute, account and client address.
    pub auth_rate_limit_per_minute: u32,
    /// Failed logins per account and hour, from every address together.
    pub auth_account_failures_per_hour: u32,
    /// Keys the `Idempotency-Key` request fingerprints; shared by every instance.
    pub fingerprint_key: FingerprintKey,
    /// Origins allowed to call the API from a browser (CORS); empty: none, and no CORS
    /// headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// Send `Strict-Transport-Security` (only when clients reach the service over TLS,
    /// e.g. behind a TLS-terminating proxy).
    pub hsts: bool,
}

/// The request deadline when no [`HttpConfig`] is registered.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The JSON body limit when no [`HttpConfig`] is registered.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            client_request_timeout: Duration::from_secs(15),
            keep_alive: Duration::from_secs(60),
            client_disconnect_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            body_limit: DEFAULT_BODY_LIMIT,
            workers: None,
            max_connections: 10_000,
            auth_rate_limit_per_minute: 10,
            auth_account_failures_per_hour: 100,
            fingerprint_key: FingerprintKey(random_key()),
            cors_allowed_origins: Vec::new(),
            hsts: false,
        }
    }
}

/// A key nobody else has, for a process whose fingerprints need not outlive it.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    if getrandom::fill(&mut key).is_err() {
        // Without the OS RNG, UUID v7's random bits still make the key process-unique.
        use sha2::Digest;
        let seed = format!("{}{}", uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        key = sha2::Sha256::digest(seed.as_bytes()).into();
    }
    key
}

/// The application: routes and middleware, ready for `HttpServer` or `actix_web::test`.
pub fn app(
    state: ApiState,
    config: HttpConfig,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limits = web::Data::new(RateLimits::new(&config));
    app_with(state, config, limits)
}

fn app_with(
    state: ApiState,
    config: HttpConfig,
    limits: web::Data<RateLimits>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let metrics_renderer = state.metrics.clone().map(web::Data::new);
    let cors = cors(&config.cors_allowed_origins);
    let mut app = App::new();
    if let Some(renderer) = metrics_renderer {
        app = app.app_data(renderer);
    }
    app.app_data(web::Data::new(config))
        .app_data(web::Data::from(state.users))
        .app_data(web::Data::from(state.health))
        .app_data(web::Data::from(state.auth))
        .app_data(web::Data::from(state.posts))
        .app_data(web::Data::from(state.idempotency))
        .app_data(web::Data::from(state.jobs))
        .app_data(web::Data::from(state.ws))
        .app_data(limits)
        .app_data(web::QueryConfig::default().error_handler(|error, _| {
            ApiError::problem(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Bad Request",
                format!("invalid query string: {error}"),
            ))
            .into()
        }))
        .app_data(web::PathConfig::default().error_handler(|_, _| {
            ApiError::problem(Problem::for_status(StatusCode::NOT_FOUND)).into()
        }))
        .service(
            web::scope(crate::routing::API)
                .configure(health::routes)
                .configure(auth::routes)
                .configure(users::routes)
                .configure(posts::routes)
                .configure(crate::ws::routes)
                .configure(openapi::routes)
                .service(
                    web::scope("/admin")
                        .wrap(from_fn(auth::require_admin))
                        .configure(users::admin_routes)
                        .configure(jobs::admin_routes),
                ),
        )
        .service(crate::routing::resource("", "/metrics").route(web::get().to(metrics)))
        .default_service(web::to(|| async {
            HttpResponse::build(StatusCode::NOT_FOUND).finish()
        }))
        .wrap(from_fn(middleware::problem_fallback))
        .wrap(actix_web::middleware::Condition::new(
            cors.is_some(),
            cors.unwrap_or_default(),
        ))
        .wrap(Compress::default())
        .wrap(from_fn(middleware::deadline))
        .wrap(from_fn(middleware::catch_panic))
        .wrap(from_fn(middleware::request_context))
}

/// CORS for the configured origins, or `None` when no origin is allowed (browsers then
/// keep cross-origin pages from reading responses, as without any CORS headers).
fn cors(origins: &[String]) -> Option<actix_cors::Cors> {
    use actix_web::http::header;
    if origins.is_empty() {
        return None;
    }
    let cors = origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        })
        .allowed_methods(["GET", "POST", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(3600);
    Some(cors)
}

/// An HTTP server on `listener`, not yet running: await it to serve, stop it through
/// its handle. Signals are left to the caller, which owns shutdown for every server.
pub fn server(
    listener: TcpListener,
    state: ApiState,
    config: HttpConfig,
) -> std::io::Result<actix_web::dev::Server> {
    let limits = web::Data::new(RateLimits::new(&config));
    let mut builder = {
        let config = config.clone();
        HttpServer::new(move || {
            // Called once per worker, on the worker's thread.
            if let Some(start) = &state.worker_start {
                start();
            }
            app_with(state.clone(), config.clone(), limits.clone())
        })
    }
    .disable_signals()
    .client_request_timeout(config.client_request_timeout)
    .keep_alive(config.keep_alive)
    .client_disconnect_timeout(config.client_disconnect_timeout)
    .shutdown_timeout(config.shutdown_grace.as_secs());
    let workers = config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    // actix counts connections per worker.
    builder = builder
        .workers(workers)
        .max_connections(config.max_connections.div_ceil(workers).max(1));
    Ok(builder.listen(listener)?.run())
}

/// The answer to a method a resource does not have: 405 with the methods it has in
/// `Allow` (RFC 9110 §15.5.6), as a problem. Each resource lists its own; a test checks
/// every list against the OpenAPI document.
pub(crate) fn allow(methods: &'static str) -> actix_web::Route {
    web::to(move || async move {
        let mut response = Problem::for_status(StatusCode::METHOD_NOT_ALLOWED).response();
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(methods),
        );
        response
    })
}
