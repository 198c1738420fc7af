//! Settings from the environment (and a local `.env`), each with a documented default.
//! Every setting is parsed up front: a bad value stops start-up with the variable's
//! name and the reason, never a panic.
//!
//! One module per section. Each reads its own variables, starting from the defaults of
//! whoever owns them (the adapter's `Default`, when the section is an adapter's
//! configuration, so a default is written once), and checks its own rules: a section is
//! complete when built. This module composes them and checks the rules between them.
//! Every secret is a [`Secret`] or a [`RedactedUrl`], so `{:?}` of the settings is safe
//! to print and every section derives `Debug`.

mod accounts;
mod auth;
mod database;
mod env;
mod grpc;
mod http;
mod jobs;
mod listen;
mod live;
mod mail;
mod secret;
mod telemetry;
mod users;

use grpc_adapter::GrpcConfig;
use http_adapter::{HttpConfig, WsConfig};
use ports::live::LiveConfig;
use postgres_adapter::{PoolConfig, PoolSettings};

pub use self::accounts::AccountSettings;
pub use self::auth::AuthSettings;
pub use self::database::{DatabaseSettings, EventBusKind};
use self::env::{Env, FromEnv};
pub use self::jobs::{JobSettings, JobWakeup};
pub use self::listen::ListenSettings;
pub use self::mail::MailSettings;
pub use self::secret::{RedactedUrl, Secret};
pub use self::telemetry::{DEFAULT_LOG_FILTER, LogFormat, TelemetrySettings};
pub use self::users::UsersSettings;

/// The effective configuration of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub listen: ListenSettings,
    pub database: DatabaseSettings,
    pub http: HttpConfig,
    pub grpc: GrpcConfig,
    pub ws: WsConfig,
    /// Limits of live subscriptions, shared by WebSockets and gRPC chat streams.
    pub live: LiveConfig,
    pub auth: AuthSettings,
    pub accounts: AccountSettings,
    pub users: UsersSettings,
    pub jobs: JobSettings,
    pub mail: MailSettings,
    pub telemetry: TelemetrySettings,
    /// What start-up logs as warnings once logging is set up (settings read under an
    /// old name).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads settings through `lookup`, which returns a variable's value if set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let settings = Self {
            listen: ListenSettings::from_env(&env)?,
            database: DatabaseSettings::from_env(&env)?,
            http: HttpConfig::from_env(&env)?,
            grpc: GrpcConfig::from_env(&env)?,
            ws: WsConfig::from_env(&env)?,
            live: LiveConfig::from_env(&env)?,
            auth: AuthSettings::from_env(&env)?,
            accounts: AccountSettings::from_env(&env)?,
            users: UsersSettings::from_env(&env)?,
            jobs: JobSettings::from_env(&env)?,
            mail: MailSettings::from_env(&env)?,
            telemetry: TelemetrySettings::from_env(&env)?,
            // Last: every section has been read.
            warnings: env.take_warnings(),
        };
        check_secrets(&settings.auth, &settings.database)?;
        Ok(settings)
    }

    /// HTTP worker threads: `HTTP_WORKERS`, or one per core.
    pub fn http_workers(&self) -> usize {
        self.http.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        })
    }

    /// The request pool's settings when there is a database: this process's sizing, and
    /// the request timeout as every session's statement timeout (a statement cannot
    /// usefully outlive the request that issued it).
    pub fn pool_settings(&self) -> Option<PoolSettings> {
        let url = self.database.url.as_ref()?;
        Some(PoolSettings {
            url: url.expose().to_owned(),
            pool: PoolConfig {
                statement_timeout: Some(self.http.request_timeout),
                ..self.database.pool.clone()
            },
        })
    }
}

/// With a database, data outlives the process, so tokens must too: a generated key
/// would log everyone out on every restart and differ between instances. (Whether a key
/// given is good enough is the auth section's own rule.)
fn check_secrets(auth: &AuthSettings, database: &DatabaseSettings) -> Result<(), ConfigError> {
    if auth.jwt_secret.is_none() && database.url.is_some() {
        let min = auth_adapter::MIN_SECRET_BYTES;
        return Err(ConfigError {
            var: "JWT_SECRET",
            reason: format!(
                "must be set (at least {min} bytes) when DATABASE_URL is set, so tokens \
                 survive restarts and work on every instance; e.g. `openssl rand -hex 32`"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::time::Duration;

    use auth_adapter::Argon2Settings;

    use super::auth::guessable;
    use super::*;

    /// Settings from `vars` alone. A name `Settings` never reads fails the test: a
    /// misspelt override would otherwise be ignored, and the test would check defaults.
    fn from(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let read = RefCell::new(HashSet::<String>::new());
        let settings = Settings::from_lookup(|k| {
            read.borrow_mut().insert(k.to_owned());
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        });
        let read = read.into_inner();
        for (name, _) in vars {
            assert!(
                read.contains(*name),
                "`{name}` is never read by Settings: misspelt?"
            );
        }
        settings
    }

    #[test]
    fn renamed_settings_are_read_under_their_old_names_with_a_warning() {
        let old = from(&[("WS_OUTBOUND_QUEUE", "7")]).unwrap();
        assert_eq!(old.live.queue, 7);
        assert_eq!(
            old.warnings,
            ["WS_OUTBOUND_QUEUE is the old name of LIVE_OUTBOUND_QUEUE; rename it"]
        );
        let both = from(&[("LIVE_OUTBOUND_QUEUE", "9"), ("WS_OUTBOUND_QUEUE", "7")]).unwrap();
        assert_eq!(both.live.queue, 9);
        assert_eq!(
            both.warnings,
            ["WS_OUTBOUND_QUEUE is ignored: LIVE_OUTBOUND_QUEUE is set"]
        );
        let new = from(&[("LIVE_MAX_FRAMES_PER_SEC", "5")]).unwrap();
        assert_eq!(
            (new.ws.max_messages_per_sec, new.grpc.chat.events_per_sec),
            (5, 5)
        );
        assert!(new.warnings.is_empty());
    }

    #[test]
    #[should_panic(expected = "never read")]
    fn a_misspelt_name_fails_the_test() {
        let _ = from(&[("PROT", "9000")]);
    }

    #[test]
    fn defaults_match_the_documentation() {
        let s = from(&[]).unwrap();
        assert_eq!(s.database.url, None);
        assert_eq!(s.listen.port, 8080);
        assert_eq!(s.database.pool.max_size, 25);
        assert_eq!(s.database.pool.min_idle, 10);
        assert_eq!(s.database.pool.max_lifetime, Duration::from_secs(300));
        assert_eq!(s.database.pool.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.database.pool.acquire_timeout, Duration::from_millis(2000));
        assert_eq!(s.database.pool.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.http.request_timeout, Duration::from_secs(60));
        assert_eq!(s.http.client_request_timeout, Duration::from_secs(15));
        assert_eq!(s.http.keep_alive, Duration::from_secs(60));
        assert_eq!(s.http.shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.http.body_limit, 64 * 1024);
        assert_eq!(s.telemetry.log_format, LogFormat::Pretty);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            ("PORT", "eighty", "PORT"),
            ("PORT", "70000", "PORT"),
            ("DB_MAX_CONNECTIONS", "0", "DB_MAX_CONNECTIONS"),
            ("DB_MIN_IDLE", "26", "DB_MIN_IDLE"),
            ("DB_ACQUIRE_TIMEOUT_MS", "-5", "DB_ACQUIRE_TIMEOUT_MS"),
            ("REQUEST_TIMEOUT_SECS", "0", "REQUEST_TIMEOUT_SECS"),
            ("LOG_FORMAT", "xml", "LOG_FORMAT"),
            ("KEEP_ALIVE_SECS", "99999999999", "KEEP_ALIVE_SECS"),
            (
                "DB_ACQUIRE_TIMEOUT_MS",
                "18446744073709551615",
                "DB_ACQUIRE_TIMEOUT_MS",
            ),
            ("RUST_LOG", "info,[=bad", "RUST_LOG"),
            ("JWT_SECRET", "too-short", "JWT_SECRET"),
            (
                "JWT_PREVIOUS_SECRETS",
                "a-long-enough-previous-secret-of-40-bytes,x",
                "JWT_PREVIOUS_SECRETS",
            ),
            ("ARGON2_MEMORY_KIB", "1", "ARGON2_MEMORY_KIB"),
            (
                "PASSWORD_HASH_CONCURRENCY",
                "0",
                "PASSWORD_HASH_CONCURRENCY",
            ),
            ("PASSWORD_HASH_QUEUE", "0", "PASSWORD_HASH_QUEUE"),
            ("PASSWORD_HASH_WAIT_MS", "0", "PASSWORD_HASH_WAIT_MS"),
            ("METRICS_ADDR", "localhost", "METRICS_ADDR"),
            (
                "REFRESH_ABSOLUTE_TTL_DAYS",
                "400",
                "REFRESH_ABSOLUTE_TTL_DAYS",
            ),
            (
                "REGISTRATION_RATE_LIMIT_PER_MINUTE",
                "0",
                "REGISTRATION_RATE_LIMIT_PER_MINUTE",
            ),
            (
                "REFRESH_TOKEN_TTL_SECS",
                "999999999",
                "REFRESH_TOKEN_TTL_SECS",
            ),
            (
                "AUTH_RATE_LIMIT_PER_MINUTE",
                "many",
                "AUTH_RATE_LIMIT_PER_MINUTE",
            ),
        ];
        for (var, value, named) in cases {
            let err = from(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, named, "{var}={value}");
            assert!(err.to_string().contains(named));
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn blank_means_default_and_debug_hides_secrets() {
        let previous = "fedcba9876543210fedcba9876543210-previous";
        let s = from(&[
            ("PORT", " "),
            ("DATABASE_URL", "postgres://app:hunter22@db/app"),
            ("JWT_SECRET", SECRET),
            ("JWT_PREVIOUS_SECRETS", previous),
            ("SMTP_URL", "smtp://mailer:hunter33@mail:587"),
        ])
        .unwrap();
        assert_eq!(s.listen.port, 8080);
        let debug = format!("{s:?}");
        assert!(debug.contains("db/app"), "{debug}");
        assert!(debug.contains("mail:587"), "{debug}");
        assert!(!debug.contains("hunter22"), "{debug}");
        assert!(!debug.contains("hunter33"), "{debug}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!debug.contains(previous), "{debug}");
    }

    #[test]
    fn guessable_signing_keys_are_refused() {
        for secret in [
            "change-me-to-the-output-of-openssl-rand-hex-32",
            "please-CHANGE-ME-0123456789abcdef0123456789",
            "abababababababababababababababababababab",
            "0123456012345601234560123456012345601234",
        ] {
            let err = from(&[("JWT_SECRET", secret)]).unwrap_err();
            assert_eq!(err.var, "JWT_SECRET", "{secret}");
            let err = from(&[("JWT_PREVIOUS_SECRETS", secret)]).unwrap_err();
            assert_eq!(err.var, "JWT_PREVIOUS_SECRETS", "{secret}");
        }
        from(&[("JWT_SECRET", SECRET)]).unwrap();
        // Random hex keys pass, however few of the 16 hex digits they happen to use.
        for _ in 0..2000 {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).unwrap();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert!(guessable(hex.as_bytes()).is_none(), "{hex}");
        }
    }

    #[test]
    fn a_database_needs_a_jwt_secret_but_memory_does_not() {
        let err = from(&[("DATABASE_URL", "postgres://db/app")]).unwrap_err();
        assert_eq!(err.var, "JWT_SECRET");
        assert_eq!(from(&[]).unwrap().auth.jwt_secret, None);
    }

    #[test]
    fn the_request_pool_follows_the_request_timeout() {
        assert_eq!(from(&[]).unwrap().pool_settings(), None);
        let s = from(&[
            ("DATABASE_URL", "postgres://db/app"),
            ("JWT_SECRET", SECRET),
            ("REQUEST_TIMEOUT_SECS", "7"),
            ("DB_MAX_CONNECTIONS", "3"),
            ("DB_MIN_IDLE", "1"),
        ])
        .unwrap();
        let pool = s.pool_settings().unwrap();
        assert_eq!(pool.url, "postgres://db/app");
        assert_eq!(pool.pool.max_size, 3);
        assert_eq!(pool.pool.statement_timeout, Some(Duration::from_secs(7)));
        assert_eq!(s.database.event_bus, EventBusKind::Postgres);
    }

    #[test]
    fn auth_defaults() {
        let s = from(&[]).unwrap();
        assert_eq!(s.auth.jwt_ttl, Duration::from_secs(900));
        assert_eq!(s.auth.refresh_ttl, Duration::from_secs(30 * 86400));
        assert_eq!(s.auth.refresh_absolute_ttl, Duration::from_secs(30 * 86400));
        assert_eq!(s.auth.argon2, Argon2Settings::default());
        assert_eq!(s.auth.hash_capacity.queue, 64);
        assert_eq!(s.users.registration_rate_limit_per_minute, 5);
        assert_eq!(s.auth.hash_capacity.wait, Duration::from_millis(2000));
        assert_eq!(
            s.auth.hash_capacity.concurrency,
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        );
        assert_eq!(s.http.auth_rate_limit_per_minute, 10);
        assert_eq!(s.http.auth_account_failures_per_hour, 100);
        assert_eq!(s.users.fanout_deadline, Duration::from_millis(5000));
        assert_eq!(s.jobs.workers, 4);
        assert_eq!(s.jobs.max_attempts, 5);
        assert_eq!(s.jobs.backoff_base, Duration::from_millis(2000));
        assert_eq!(s.jobs.backoff_max, Duration::from_millis(600_000));
        assert_eq!(s.mail.smtp_url, None);
        assert_eq!(s.mail.domain(), "localhost");
        let rotated = from(&[(
            "JWT_PREVIOUS_SECRETS",
            "0123456789abcdef0123456789abcdef-one, 0123456789abcdef0123456789abcdef-two",
        )])
        .unwrap();
        assert_eq!(rotated.auth.jwt_previous_secrets.len(), 2);
    }
}
