//! The REST inbound adapter: actix-web routes, request and response DTOs, middleware,
//! RFC 9457 problem responses, and the OpenAPI document generated from the handlers.
//!
//! It depends on the driving ports only; which repositories stand behind them is the
//! `app` crate's business.
//!
//! Layout: `server.rs` composes the app and holds the route table; each resource's
//! handlers live in a file named for it (`users.rs`, `posts.rs`, …) and import the
//! modules below them (`config`, `routing`, `extract`, `pagination`, `problem`, `etag`,
//! `idempotency`, `rate_limit`, `auth`) and, for a DTO they show, another resource's
//! (`users` shows `posts::PostResponse`). **No handler file imports `server.rs`, and no
//! two modules import each other.**

mod accounts;
mod auth;
mod client;
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
pub use idempotency::{FingerprintKey, IDEMPOTENCY_KEY_LIFETIME, Idempotency};
pub use problem::{ApiError, Problem};
pub use routing::ServesRequests;
pub use server::{
    ApiState, MetricsRenderer, WorkerStart, app, metrics_server, openapi_document, openapi_yaml,
    server,
};
pub use users::UserResponse;
pub use ws::WsConfig;
