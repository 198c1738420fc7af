//! Postgres implementations of the domain's driven ports, on diesel + diesel-async with a
//! deadpool connection pool.
//!
//! The pool ([`Database`]) is the one place that knows about connections; repositories
//! borrow it and map every database failure to a [`domain::Error`] in [`error`].

mod error;
mod health;
mod migrations;
mod pool;
mod refresh;
mod schema;
mod users;

pub use health::PgProbe;
pub use migrations::{MigrateError, run_migrations};
pub use pool::{ConnectError, Database, PoolSettings, redact_url};
pub use refresh::PgRefreshTokenStore;
pub use users::PgUserRepository;
