//! The application layer: the **driving** ports and the services behind them.
//!
//! - Driving ports are the use-case traits the inbound adapters (HTTP, gRPC, the live
//!   transports) call — `UserService`, `AuthService`, `PostService`, `ChatService`,
//!   `JobService`, `HealthService` — with their command and query types
//!   (`CreateUser::parse`, …), which cannot hold invalid input.
//! - The services (`Users`, `Auth`, `Posts`, `Chat`, `Jobs`, `HealthChecker`, and
//!   `Live` for live sessions) implement them on top of the **driven** ports, which are
//!   not here: the domain owns those (`domain::users::UserRepository`,
//!   `domain::events::EventBus`, …), and the outbound adapters implement them.
//!
//! The crate's name is fixed by the product's design; "ports" here means the ports the
//! outside drives the application through. Inbound adapters depend on the traits here,
//! never on a concrete service, so their tests can use the generated mocks (feature
//! `mocks`).

pub mod account_mail;
pub mod accounts;
pub mod auth;
pub mod chat;
pub mod client;
pub mod health;
pub mod housekeeping;
pub mod jobs;
pub mod live;
pub mod posts;
pub mod rate_limit;
pub mod sessions;
pub mod users;

#[cfg(test)]
mod fanout_tests;

pub use domain::{Error, FieldError, ValidationErrors};
