//! Postgres implementations of the domain's driven ports, on diesel + diesel-async with a
//! deadpool connection pool.
//!
//! The pool ([`Database`]) is the one place that knows about connections; repositories
//! borrow it and map every database failure to a [`domain::Error`] in [`error`].
//!
//! **Two ways to write a statement, one rule.** A statement diesel's query builder can
//! express is written with it, over the tables in `schema.rs` (which describes every
//! table; a test holds it to the migrations). Raw SQL (`sql_query`, every value a bound
//! parameter, never formatted in) is for what the builder cannot say, and says why in a
//! comment: `FOR UPDATE SKIP LOCKED` claims and `ON CONFLICT … DO UPDATE … WHERE`
//! upserts (jobs, idempotency, chat sequence reads, leases), `pg_notify`, advisory locks,
//! session settings, and the database's own functions (`pg_terminate_backend`).

mod accounts;
mod cancel;
mod chat;
mod error;
mod events;
mod health;
mod housekeeping;
mod idempotency;
mod jobs;
mod lease;
mod listener;
mod lost;
mod migrations;
mod pool;
mod posts;
mod rate_limit;
mod refresh;
mod schema;
mod tls;
mod users;
mod versioned;

pub use accounts::PgAccountStore;
pub use chat::PgChatRepository;
pub use events::PgEventBus;
pub use health::PgProbe;
pub use housekeeping::PgHousekeeping;
pub use idempotency::PgIdempotencyStore;
pub use jobs::PgJobQueue;
pub use lease::PgLeaseStore;
pub use migrations::{MigrateError, check_schema, run_migrations};
pub use pool::{ConnectError, Database, PoolConfig, PoolSettings, redact_url};
pub use posts::PgPostRepository;
pub use rate_limit::PgRateLimitStore;
pub use refresh::PgRefreshTokenStore;
pub use tls::{SslMode, Target};
pub use users::PgUserRepository;
