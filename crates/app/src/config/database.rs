//! The database: whether there is one, how its pools are sized, and whether events go
//! through it.

use postgres_adapter::PoolConfig;

use super::ConfigError;
use super::env::{Env, FromEnv};
use super::secret::RedactedUrl;

/// The bus live events travel on between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventBusKind {
    /// This process only.
    Memory,
    /// Postgres `LISTEN/NOTIFY`: every instance sharing the database gets every event.
    Postgres,
    /// NATS: each instance gets the topics its subscribers follow.
    Nats,
}

/// Where data lives. The pool sizing is read and checked even without a database, so a
/// bad `DB_*` value is refused whether or not `DATABASE_URL` is set today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// `None` serves from memory.
    pub url: Option<RedactedUrl>,
    /// Sizing and bounds, from `postgres_adapter`'s defaults. `statement_timeout` is
    /// left unset here: it follows the request timeout (see `Settings::pool_settings`).
    pub pool: PoolConfig,
    /// Which bus carries live events between instances.
    pub event_bus: EventBusKind,
    /// The NATS server for `EVENT_BUS=nats`.
    pub nats_url: RedactedUrl,
    /// `true`: start-up applies pending migrations; `false`: they are a deploy step
    /// (`app migrate`), and start-up refuses a schema that lacks any.
    pub migrate_on_start: bool,
}

impl FromEnv for DatabaseSettings {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let url = env.raw("DATABASE_URL").map(RedactedUrl::new);
        let pool = pool(env)?;
        let event_bus = match env.raw("EVENT_BUS").as_deref() {
            None if url.is_some() => EventBusKind::Postgres,
            None => EventBusKind::Memory,
            Some("postgres") if url.is_some() => EventBusKind::Postgres,
            Some("postgres") => {
                return Err(ConfigError {
                    var: "EVENT_BUS",
                    reason: "`postgres` needs DATABASE_URL".into(),
                });
            }
            Some("nats") => EventBusKind::Nats,
            Some("memory") => EventBusKind::Memory,
            Some(other) => {
                return Err(ConfigError {
                    var: "EVENT_BUS",
                    reason: format!("expected `memory`, `postgres` or `nats`, got `{other}`"),
                });
            }
        };
        let nats_url = RedactedUrl::new(
            env.raw("NATS_URL")
                .unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
        );
        Ok(Self {
            url,
            pool,
            event_bus,
            nats_url,
            migrate_on_start: env.parse("MIGRATE_ON_START", true)?,
        })
    }
}

/// The pool's sizing, starting from the adapter's defaults.
fn pool(env: &Env<'_>) -> Result<PoolConfig, ConfigError> {
    let defaults = PoolConfig::default();
    let pool = PoolConfig {
        max_size: env.positive("DB_MAX_CONNECTIONS", defaults.max_size)?,
        min_idle: env.parse("DB_MIN_IDLE", defaults.min_idle)?,
        max_lifetime: env.secs("DB_MAX_LIFETIME_SECS", defaults.max_lifetime)?,
        idle_timeout: env.secs("DB_IDLE_TIMEOUT_SECS", defaults.idle_timeout)?,
        acquire_timeout: env.millis("DB_ACQUIRE_TIMEOUT_MS", defaults.acquire_timeout)?,
        connect_timeout: env.secs("DB_CONNECT_TIMEOUT_SECS", defaults.connect_timeout)?,
        ..defaults
    };
    // The pool refuses this too, but only once it connects; say so at start-up.
    if pool.min_idle > pool.max_size {
        return Err(ConfigError {
            var: "DB_MIN_IDLE",
            reason: format!(
                "{} exceeds DB_MAX_CONNECTIONS ({})",
                pool.min_idle, pool.max_size
            ),
        });
    }
    Ok(pool)
}
