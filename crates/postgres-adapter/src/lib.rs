//! Postgres implementations of the domain's driven ports, on diesel + diesel-async with a
//! deadpool connection pool.
//!
//! The pool ([`Database`]) is the one place that knows about connections; repositories
//! borrow it and map every database failure to a [`domain::Error`] in [`error`].

mod cancel;
mod chat;
mod error;
mod events;
mod health;
mod idempotency;
mod jobs;
mod listener;
mod lost;
mod migrations;
mod pool;
mod posts;
mod refresh;
mod schema;
mod users;

pub use chat::PgChatRepository;
pub use events::PgEventBus;
pub use health::PgProbe;
pub use idempotency::PgIdempotencyStore;
pub use jobs::PgJobQueue;
pub use migrations::{MigrateError, run_migrations};
pub use pool::{ConnectError, Database, PoolSettings, redact_url};
pub use posts::PgPostRepository;
pub use refresh::PgRefreshTokenStore;
pub use users::PgUserRepository;
