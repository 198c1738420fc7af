//! Driving ports: the use cases inbound adapters (HTTP today, gRPC later) call, their
//! command and query types, and the application services that implement them on top of
//! the domain's driven ports.
//!
//! Inbound adapters depend on the traits here, never on a concrete service, so their
//! tests can use the generated mocks (feature `mocks`).

pub mod auth;
pub mod chat;
pub mod health;
pub mod jobs;
pub mod live;
pub mod posts;
pub mod rate_limit;
pub mod users;

#[cfg(test)]
mod fanout_tests;

pub use domain::{Error, FieldError, ValidationErrors};
