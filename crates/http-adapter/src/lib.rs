//! The REST inbound adapter: actix-web routes, request and response DTOs, middleware,
//! RFC 9457 problem responses, and the OpenAPI document generated from the handlers.
//!
//! It depends on the driving ports only; which repositories stand behind them is the
//! `app` crate's business.

mod auth;
mod etag;
mod extract;
mod health;
mod idempotency;
mod jobs;
mod middleware;
mod openapi;
mod posts;
mod problem;
mod request_metrics;
mod routing;
mod server;
mod users;
mod ws;

pub use auth::Authenticated;
pub use idempotency::FingerprintKey;
pub use openapi::{ApiDoc, openapi_yaml};
pub use problem::{ApiError, Problem};
pub use server::{ApiState, HttpConfig, MetricsRenderer, WorkerStart, app, metrics_server, server};
pub use users::UserResponse;
pub use ws::{WsConfig, WsHub};
