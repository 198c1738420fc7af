//! The domain: entities, value objects, rules, and the driven ports the domain owns.
//!
//! Nothing in here knows about HTTP, SQL or a runtime. Adapters implement the port
//! traits ([`users::UserRepository`], [`mail::Mailer`], [`health::HealthProbe`]) and the
//! `ports` crate composes them into use cases.

pub mod accounts;
pub mod auth;
pub mod chat;
pub mod error;
pub mod events;
pub mod health;
pub mod housekeeping;
mod id;
pub mod idempotency;
pub mod jobs;
pub mod mail;
pub mod pagination;
pub mod posts;
pub mod rate_limit;
pub mod users;
mod version;

#[cfg(test)]
mod properties;

pub use error::{Error, FieldError, ValidationErrors};
pub use pagination::{Cursor, Limit, Page};
pub use version::Version;

/// The current instant, truncated to microseconds.
///
/// Postgres stores timestamps with microsecond precision; truncating here means a value
/// read back from any repository equals the value that was written.
pub fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    let micros = now.microsecond();
    now.replace_microsecond(micros).unwrap_or(now)
}
