//! The REST inbound adapter: actix-web routes, request and response DTOs, middleware,
//! RFC 9457 problem responses, and the OpenAPI document generated from the handlers.
//!
//! It depends on the driving ports only; which repositories stand behind them is the
//! `app` crate's business.
//!
//! Layout: `server.rs` composes the app and holds the route table; each resource's
//! handlers live in a file named for it (`users.rs`, `posts.rs`, …) and import only
//! leaf modules (`config`, `routing`, `extract`, `pagination`, `problem`, `etag`,
//! `idempotency`, `rate_limit`, `auth`). No handler file imports `server.rs`.

mod auth;
mod config;
mod etag;
mod extract;
mod health;
mod idempotency;
mod jobs;
mod middleware;
mod openapi;
mod pagination;
mod posts;
mod problem;
mod rate_limit;
mod request_metrics;
mod rooms;
mod routing;
mod server;
mod users;
mod ws;

pub use auth::Authenticated;
pub use config::HttpConfig;
pub use idempotency::{FingerprintKey, Idempotency};
pub use problem::{ApiError, Problem};
pub use routing::ServesRequests;
pub use server::{
    ApiState, MetricsRenderer, WorkerStart, app, metrics_server, openapi_document, openapi_yaml,
    server,
};
pub use users::UserResponse;
pub use ws::WsConfig;
