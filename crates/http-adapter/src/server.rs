//! The composition of the HTTP side: the state the handlers draw on, the route table
//! (the one file that names every resource), the middleware stack, CORS, `/metrics`,
//! and the server around it all.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};

use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use ports::auth::AuthService;
use ports::health::HealthService;
use ports::jobs::JobService;
use ports::live::Live;
use ports::posts::PostService;
use ports::users::UserService;

use crate::config::HttpConfig;
use crate::idempotency::Idempotency;
use crate::problem::{ApiError, Problem};
use crate::rate_limit::CredentialLimits;
use crate::routing::{ADMIN, API, ResourceEntry, Routes, ServesRequests};
use crate::ws::WsConfig;
use crate::{accounts, auth, health, jobs, middleware, openapi, posts, rooms, users, ws};

/// The use cases the routes call.
#[derive(Clone)]
pub struct ApiState {
    pub users: Arc<dyn UserService>,
    pub health: Arc<dyn HealthService>,
    pub auth: Arc<dyn AuthService>,
    /// The account flows: verification, password reset and change, sessions.
    pub accounts: Arc<dyn ports::accounts::AccountService>,
    pub posts: Arc<dyn PostService>,
    /// Remembers `Idempotency-Key`s of creating requests.
    pub idempotency: Idempotency,
    pub jobs: Arc<dyn JobService>,
    /// Where the credential endpoints' budgets are counted (with a database: shared by
    /// every instance).
    pub rate_limits: Arc<dyn domain::rate_limit::RateLimitStore>,
    /// This instance's live sessions and the chat use cases behind them, shared with
    /// every streaming transport.
    pub live: Arc<Live>,
    /// The WebSocket transport's own limits.
    pub ws: WsConfig,
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

/// Every resource of the API, in the order they are matched: **each endpoint is
/// registered here once**, and the app, the OpenAPI document and the `Allow` sets are
/// all read off this table.
fn routes() -> Routes {
    let mut routes = Routes::default();
    health::routes(&mut routes);
    auth::routes(&mut routes);
    accounts::routes(&mut routes);
    users::routes(&mut routes);
    posts::routes(&mut routes);
    ws::routes(&mut routes);
    rooms::routes(&mut routes);
    jobs::routes(&mut routes);
    routes
        .resource("/api/openapi.json")
        .undocumented(Method::GET, || async {
            HttpResponse::Ok().json(openapi_document())
        });
    routes
        .resource("/api/docs")
        .undocumented(Method::GET, || async {
            HttpResponse::PermanentRedirect()
                .insert_header(("Location", "/api/docs/"))
                .finish()
        });
    routes
}

/// The OpenAPI 3.1 document of the API, built once from the route table.
pub fn openapi_document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| openapi::document(&routes()))
}

/// The document as YAML, exactly as committed in `docs/openapi.yaml`.
pub fn openapi_yaml() -> String {
    openapi_document()
        .to_yaml()
        .unwrap_or_else(|e| format!("# cannot render the OpenAPI document: {e}\n"))
}

/// The application: routes and middleware, ready for `HttpServer` or `actix_web::test`.
pub fn app(state: ApiState, config: HttpConfig) -> App<impl ServesRequests> {
    let limits = web::Data::new(CredentialLimits::new(&config, state.rate_limits.clone()));
    app_with(state, config, limits)
}

fn app_with(
    state: ApiState,
    config: HttpConfig,
    limits: web::Data<CredentialLimits>,
) -> App<impl ServesRequests> {
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
        .app_data(web::Data::from(state.accounts))
        .app_data(web::Data::from(state.posts))
        .app_data(web::Data::new(state.idempotency))
        .app_data(web::Data::from(state.jobs))
        .app_data(web::Data::from(state.live))
        .app_data(web::Data::new(state.ws))
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
        .service(api_scope())
        .service(
            {
                let mut metrics_resource = ResourceEntry::new("/metrics");
                metrics_resource.undocumented(Method::GET, metrics);
                metrics_resource
            }
            .into_resource(""),
        )
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

/// `/api`: the route table, with the admin resources inside their guard, and the
/// reference page.
fn api_scope() -> actix_web::Scope<impl ServesRequests> {
    let (api, admin) = routes().into_scopes();
    let admin_relative = ADMIN.strip_prefix(API).unwrap_or(ADMIN);
    let mut admin_scope = web::scope(admin_relative).wrap(from_fn(auth::require_admin));
    for resource in admin {
        admin_scope = admin_scope.service(resource.into_resource(ADMIN));
    }
    let mut scope = web::scope(API);
    for resource in api {
        scope = scope.service(resource.into_resource(API));
    }
    scope
        .service(openapi::reference_page())
        .service(admin_scope)
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
    let limits = web::Data::new(CredentialLimits::new(&config, state.rate_limits.clone()));
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
