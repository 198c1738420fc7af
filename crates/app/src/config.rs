//! Settings from the environment (and a local `.env`), each with a documented default.
//! Every setting is parsed up front: a bad value stops start-up with the variable's
//! name and the reason, never a panic.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http_adapter::HttpConfig;
use postgres_adapter::PoolSettings;

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,actix_server=warn";

/// No duration setting may exceed this; larger values are typos, and some overflow
/// timer arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The effective configuration of one process.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None` serves from memory.
    pub database_url: Option<String>,
    pub host: String,
    pub port: u16,
    pub pool: PoolSettingsWithoutUrl,
    pub http: HttpConfig,
    pub log_format: LogFormat,
    /// The `RUST_LOG` directives, checked at start-up.
    pub log_filter: String,
}

/// Pool sizing and bounds; the URL is kept apart because it may be absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettingsWithoutUrl {
    pub max_size: usize,
    pub min_idle: usize,
    pub max_lifetime: Duration,
    pub idle_timeout: Duration,
    pub acquire_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Settings {
    /// Pool settings for `url` with this process's sizing.
    pub fn pool_settings(&self, url: &str) -> PoolSettings {
        PoolSettings {
            url: url.to_owned(),
            max_size: self.pool.max_size,
            min_idle: self.pool.min_idle,
            max_lifetime: self.pool.max_lifetime,
            idle_timeout: self.pool.idle_timeout,
            acquire_timeout: self.pool.acquire_timeout,
            connect_timeout: self.pool.connect_timeout,
            // A statement cannot usefully outlive the request that issued it.
            statement_timeout: Some(self.http.request_timeout),
        }
    }
}

// Hand-written so the database password can never reach a log through `{:?}`.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field(
                "database_url",
                &self
                    .database_url
                    .as_deref()
                    .map(postgres_adapter::redact_url),
            )
            .field("host", &self.host)
            .field("port", &self.port)
            .field("pool", &self.pool)
            .field("http", &self.http)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .finish()
    }
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
        let env = Env(&lookup);
        let defaults = PoolSettings::new("");
        let http_defaults = HttpConfig::default();
        let settings = Self {
            database_url: env.raw("DATABASE_URL"),
            host: env.raw("HOST").unwrap_or_else(|| "127.0.0.1".into()),
            port: env.parse("PORT", 8080)?,
            pool: PoolSettingsWithoutUrl {
                max_size: env.positive("DB_MAX_CONNECTIONS", defaults.max_size)?,
                min_idle: env.parse("DB_MIN_IDLE", defaults.min_idle)?,
                max_lifetime: env.secs("DB_MAX_LIFETIME_SECS", defaults.max_lifetime)?,
                idle_timeout: env.secs("DB_IDLE_TIMEOUT_SECS", defaults.idle_timeout)?,
                acquire_timeout: env.millis("DB_ACQUIRE_TIMEOUT_MS", defaults.acquire_timeout)?,
                connect_timeout: env.secs("DB_CONNECT_TIMEOUT_SECS", defaults.connect_timeout)?,
            },
            http: HttpConfig {
                request_timeout: env.secs("REQUEST_TIMEOUT_SECS", http_defaults.request_timeout)?,
                client_request_timeout: env.secs(
                    "CLIENT_REQUEST_TIMEOUT_SECS",
                    http_defaults.client_request_timeout,
                )?,
                keep_alive: env.secs("KEEP_ALIVE_SECS", http_defaults.keep_alive)?,
                client_disconnect_timeout: env.secs(
                    "CLIENT_DISCONNECT_TIMEOUT_SECS",
                    http_defaults.client_disconnect_timeout,
                )?,
                shutdown_grace: env.secs("SHUTDOWN_GRACE_SECS", http_defaults.shutdown_grace)?,
                body_limit: env.positive("BODY_LIMIT_BYTES", http_defaults.body_limit)?,
                workers: env.optional_positive("HTTP_WORKERS")?,
            },
            log_filter: env
                .raw("RUST_LOG")
                .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned()),
            log_format: match env.raw("LOG_FORMAT").as_deref() {
                None | Some("pretty") => LogFormat::Pretty,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError {
                        var: "LOG_FORMAT",
                        reason: format!("expected `pretty` or `json`, got `{other}`"),
                    });
                }
            },
        };
        tracing_subscriber::EnvFilter::builder()
            .parse(&settings.log_filter)
            .map_err(|e| ConfigError {
                var: "RUST_LOG",
                reason: e.to_string(),
            })?;
        if settings.pool.min_idle > settings.pool.max_size {
            return Err(ConfigError {
                var: "DB_MIN_IDLE",
                reason: format!(
                    "{} exceeds DB_MAX_CONNECTIONS ({})",
                    settings.pool.min_idle, settings.pool.max_size
                ),
            });
        }
        Ok(settings)
    }
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The value, or `None` when unset or blank (so `VAR=` in a `.env` means "default").
    fn raw(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    fn parse<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| ConfigError {
                var,
                reason: format!("`{raw}` is not a valid {}", kind::<T>()),
            }),
        }
    }

    fn positive(&self, var: &'static str, default: usize) -> Result<usize, ConfigError> {
        let value = self.parse(var, default)?;
        if value == 0 {
            return Err(ConfigError {
                var,
                reason: "must be at least 1".into(),
            });
        }
        Ok(value)
    }

    fn optional_positive(&self, var: &'static str) -> Result<Option<usize>, ConfigError> {
        self.raw(var).map(|_| self.positive(var, 1)).transpose()
    }

    fn secs(&self, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.duration(var, default, Duration::from_secs)
    }

    fn millis(&self, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.duration(var, default, Duration::from_millis)
    }

    fn duration(
        &self,
        var: &'static str,
        default: Duration,
        unit: fn(u64) -> Duration,
    ) -> Result<Duration, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(_) => {
                let n: u64 = self.parse(var, 0)?;
                if n == 0 {
                    return Err(ConfigError {
                        var,
                        reason: "must be greater than 0".into(),
                    });
                }
                let value = unit(n);
                if value > MAX_DURATION {
                    return Err(ConfigError {
                        var,
                        reason: format!("must be at most {}s", MAX_DURATION.as_secs()),
                    });
                }
                Ok(value)
            }
        }
    }
}

fn kind<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    if name.ends_with("u16") {
        "port number (0-65535)"
    } else {
        "non-negative integer"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_match_the_documentation() {
        let s = from(&[]).unwrap();
        assert_eq!(s.database_url, None);
        assert_eq!(s.port, 8080);
        assert_eq!(s.pool.max_size, 25);
        assert_eq!(s.pool.min_idle, 10);
        assert_eq!(s.pool.max_lifetime, Duration::from_secs(300));
        assert_eq!(s.pool.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.pool.acquire_timeout, Duration::from_millis(2000));
        assert_eq!(s.pool.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.http.request_timeout, Duration::from_secs(60));
        assert_eq!(s.http.client_request_timeout, Duration::from_secs(15));
        assert_eq!(s.http.keep_alive, Duration::from_secs(60));
        assert_eq!(s.http.shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.http.body_limit, 64 * 1024);
        assert_eq!(s.log_format, LogFormat::Pretty);
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
        ];
        for (var, value, named) in cases {
            let err = from(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, named, "{var}={value}");
            assert!(err.to_string().contains(named));
        }
    }

    #[test]
    fn blank_means_default_and_debug_hides_the_password() {
        let s = from(&[
            ("PORT", " "),
            ("DATABASE_URL", "postgres://app:hunter22@db/app"),
        ])
        .unwrap();
        assert_eq!(s.port, 8080);
        let debug = format!("{s:?}");
        assert!(debug.contains("db/app"), "{debug}");
        assert!(!debug.contains("hunter22"), "{debug}");
    }
}
