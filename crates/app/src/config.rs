//! Settings from the environment (and a local `.env`), each with a documented default.
//! Every setting is parsed up front: a bad value stops start-up with the variable's
//! name and the reason, never a panic.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use auth_adapter::{Argon2Settings, HashCapacity, JwtSettings};
use http_adapter::HttpConfig;
use postgres_adapter::PoolSettings;

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,actix_server=warn";

/// No timeout setting may exceed a day; larger values are typos, and some overflow timer
/// arithmetic. Token lifetimes have their own caps.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

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
    /// Where spans are exported (OTLP over HTTP/protobuf); `None` exports nothing and
    /// connects nowhere.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` exported spans carry.
    pub service_name: String,
    pub auth: AuthSettings,
    /// Bound on fetching a user and their posts together (`?include=posts`).
    pub fanout_deadline: Duration,
    /// Registrations per client address (IPv6: per /64) and minute, every transport
    /// together.
    pub registration_rate_limit_per_minute: u32,
    pub mail: MailSettings,
    pub jobs: JobSettings,
    /// `true`: events go through Postgres LISTEN/NOTIFY (every instance sharing the
    /// database sees them); `false`: in-process only.
    pub postgres_event_bus: bool,
    pub ws: http_adapter::WsConfig,
    /// Limits of live subscriptions, shared by WebSockets and gRPC chat streams.
    pub live: ports::live::LiveConfig,
    /// Where `/metrics` is served alone (e.g. `127.0.0.1:9090`); `None` serves it on the
    /// API's port.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The gRPC port (`GRPC_PORT`, 0 picks a free one); gRPC listens on `host` too.
    pub grpc_port: u16,
    pub grpc: grpc_adapter::GrpcConfig,
}

/// Where e-mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// `None`: e-mails are recorded and logged, not sent.
    pub smtp_url: Option<String>,
    pub from: String,
    pub timeout: Duration,
}

impl MailSettings {
    /// The domain of the sender address, for generated Message-IDs.
    pub fn domain(&self) -> String {
        self.from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').trim().to_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }
}

/// The background worker pool and its retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// Concurrent workers in this process; 0 runs none.
    pub workers: usize,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a claimed job stays leased to its worker.
    pub lease: Duration,
    /// Bound on one attempt of one job.
    pub timeout: Duration,
    /// How often idle workers look for due jobs when no notification arrives.
    pub poll_interval: Duration,
}

/// Tokens and password hashing.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// `None` only without a database: a random key is made at start-up.
    pub jwt_secret: Option<Vec<u8>>,
    pub jwt_previous_secrets: Vec<Vec<u8>>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwt_ttl: Duration,
    pub jwt_leeway: Duration,
    pub refresh_ttl: Duration,
    /// A session's absolute lifetime, however often it is refreshed.
    pub refresh_absolute_ttl: Duration,
    pub argon2: Argon2Settings,
    /// How many hashes run and wait at once.
    pub hash_capacity: HashCapacity,
}

impl AuthSettings {
    /// JWT settings with `secret` as the signing key.
    pub fn jwt(&self, secret: Vec<u8>) -> JwtSettings {
        JwtSettings {
            secret,
            previous_secrets: self.jwt_previous_secrets.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            ttl: self.jwt_ttl,
            leeway: self.jwt_leeway,
        }
    }
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_previous_secrets", &self.jwt_previous_secrets.len())
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_ttl", &self.jwt_ttl)
            .field("jwt_leeway", &self.jwt_leeway)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("refresh_absolute_ttl", &self.refresh_absolute_ttl)
            .field("argon2", &self.argon2)
            .field("hash_capacity", &self.hash_capacity)
            .finish()
    }
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
    /// HTTP worker threads: `HTTP_WORKERS`, or one per core.
    pub fn http_workers(&self) -> usize {
        self.http.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        })
    }

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
            .field(
                "otlp_endpoint",
                &self
                    .otlp_endpoint
                    .as_deref()
                    .map(postgres_adapter::redact_url),
            )
            .field("service_name", &self.service_name)
            .field("auth", &self.auth)
            .field("fanout_deadline", &self.fanout_deadline)
            .field(
                "registration_rate_limit_per_minute",
                &self.registration_rate_limit_per_minute,
            )
            .field(
                "mail",
                &(
                    self.mail
                        .smtp_url
                        .as_deref()
                        .map(postgres_adapter::redact_url),
                    &self.mail.from,
                ),
            )
            .field("jobs", &self.jobs)
            .field("postgres_event_bus", &self.postgres_event_bus)
            .field("ws", &self.ws)
            .field("live", &self.live)
            .field("metrics_addr", &self.metrics_addr)
            .field("grpc_port", &self.grpc_port)
            .field("grpc", &self.grpc)
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
                max_connections: env
                    .positive("HTTP_MAX_CONNECTIONS", http_defaults.max_connections)?,
                workers: env.optional_positive("HTTP_WORKERS")?,
                auth_rate_limit_per_minute: env.positive(
                    "AUTH_RATE_LIMIT_PER_MINUTE",
                    http_defaults.auth_rate_limit_per_minute,
                )?,
                auth_account_failures_per_hour: env.positive(
                    "AUTH_ACCOUNT_FAILURES_PER_HOUR",
                    http_defaults.auth_account_failures_per_hour,
                )?,
                cors_allowed_origins: env
                    .raw("CORS_ALLOWED_ORIGINS")
                    .map(|raw| {
                        raw.split(',')
                            .map(str::trim)
                            .filter(|o| !o.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                hsts: env.parse("HSTS", false)?,
            },
            log_filter: env
                .raw("RUST_LOG")
                .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned()),
            otlp_endpoint: match env.raw("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                    Some(url.trim_end_matches('/').to_owned())
                }
                Some(other) => {
                    return Err(ConfigError {
                        var: "OTEL_EXPORTER_OTLP_ENDPOINT",
                        reason: format!("expected an http:// or https:// URL, got `{other}`"),
                    });
                }
                None => None,
            },
            service_name: env
                .raw("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| "users-service".to_owned()),
            fanout_deadline: env.millis("FANOUT_DEADLINE_MS", Duration::from_millis(5000))?,
            registration_rate_limit_per_minute: env.positive(
                "REGISTRATION_RATE_LIMIT_PER_MINUTE",
                ports::users::Users::REGISTRATIONS_PER_MINUTE,
            )?,
            mail: MailSettings {
                smtp_url: env.raw("SMTP_URL"),
                from: env
                    .raw("SMTP_FROM")
                    .unwrap_or_else(|| "Users service <no-reply@localhost>".into()),
                timeout: env.secs("SMTP_TIMEOUT_SECS", Duration::from_secs(10))?,
            },
            postgres_event_bus: false,
            ws: http_adapter::WsConfig {
                heartbeat: env.secs("WS_HEARTBEAT_SECS", Duration::from_secs(30))?,
                max_frame_bytes: 64 * 1024,
                max_messages_per_sec: env.parse("WS_MAX_MESSAGES_PER_SEC", 20u32)?.max(1),
            },
            live: ports::live::LiveConfig {
                queue: env.positive("WS_OUTBOUND_QUEUE", 256)?,
                max_subscribers: env.positive("WS_MAX_CONNECTIONS", 10_000)?,
                max_subscriptions: 100,
                max_per_user: env.positive(
                    "LIVE_MAX_CONNECTIONS_PER_USER",
                    ports::live::LiveConfig::default().max_per_user,
                )?,
                max_per_client: env.positive(
                    "LIVE_MAX_CONNECTIONS_PER_IP",
                    ports::live::LiveConfig::default().max_per_client,
                )?,
                messages_per_sec_per_user: env.positive(
                    "LIVE_MAX_MESSAGES_PER_SEC_PER_USER",
                    ports::live::LiveConfig::default().messages_per_sec_per_user,
                )?,
            },
            metrics_addr: match env.raw("METRICS_ADDR") {
                None => None,
                Some(raw) => Some(raw.trim().parse().map_err(|_| ConfigError {
                    var: "METRICS_ADDR",
                    reason: format!("`{raw}` is not an address and port, e.g. 127.0.0.1:9090"),
                })?),
            },
            grpc_port: env.parse("GRPC_PORT", 50051)?,
            grpc: grpc_adapter::GrpcConfig {
                chat: grpc_adapter::ChatConfig {
                    events_per_sec: env.parse("WS_MAX_MESSAGES_PER_SEC", 20u32)?.max(1),
                    ..grpc_adapter::ChatConfig::default()
                },
                max_connections: env.positive(
                    "GRPC_MAX_CONNECTIONS",
                    grpc_adapter::GrpcConfig::default().max_connections,
                )?,
                handshake_timeout: env.secs(
                    "GRPC_HANDSHAKE_TIMEOUT_SECS",
                    grpc_adapter::GrpcConfig::default().handshake_timeout,
                )?,
                max_connection_age: env.secs(
                    "GRPC_MAX_CONNECTION_AGE_SECS",
                    grpc_adapter::GrpcConfig::default().max_connection_age,
                )?,
                ..grpc_adapter::GrpcConfig::default()
            },
            jobs: JobSettings {
                workers: env.parse("WORKERS", 4)?,
                max_attempts: env.parse::<u32>("JOB_MAX_ATTEMPTS", 5)?.max(1),
                backoff_base: env.millis("JOB_BACKOFF_BASE_MS", Duration::from_millis(2000))?,
                backoff_max: env.millis("JOB_BACKOFF_MAX_MS", Duration::from_millis(600_000))?,
                lease: env.secs("JOB_LEASE_SECS", Duration::from_secs(60))?,
                timeout: env.secs("JOB_TIMEOUT_SECS", Duration::from_secs(30))?,
                poll_interval: env.millis("JOB_POLL_INTERVAL_MS", Duration::from_millis(5000))?,
            },
            auth: AuthSettings {
                jwt_secret: None,
                jwt_previous_secrets: Vec::new(),
                jwt_issuer: String::new(),
                jwt_audience: String::new(),
                jwt_ttl: Duration::ZERO,
                jwt_leeway: Duration::ZERO,
                refresh_ttl: Duration::ZERO,
                refresh_absolute_ttl: Duration::ZERO,
                argon2: Argon2Settings::default(),
                hash_capacity: HashCapacity::default(),
            },
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
        let jwt_secret = env.raw("JWT_SECRET").map(String::into_bytes);
        let auth = AuthSettings {
            jwt_previous_secrets: env
                .raw("JWT_PREVIOUS_SECRETS")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| s.as_bytes().to_vec())
                        .collect()
                })
                .unwrap_or_default(),
            jwt_issuer: env
                .raw("JWT_ISSUER")
                .unwrap_or_else(|| "users-service".into()),
            jwt_audience: env
                .raw("JWT_AUDIENCE")
                .unwrap_or_else(|| "users-service".into()),
            jwt_ttl: env.secs("JWT_TTL_SECS", Duration::from_secs(15 * 60))?,
            jwt_leeway: env.secs("JWT_LEEWAY_SECS", Duration::from_secs(5))?,
            refresh_ttl: env.duration(
                "REFRESH_TOKEN_TTL_SECS",
                Duration::from_secs(30 * 24 * 60 * 60),
                Duration::from_secs,
                DAY * 365,
            )?,
            refresh_absolute_ttl: env.duration(
                "REFRESH_ABSOLUTE_TTL_DAYS",
                ports::auth::Auth::REFRESH_ABSOLUTE_TTL,
                |days| DAY * u32::try_from(days).unwrap_or(u32::MAX),
                DAY * 365,
            )?,
            argon2: Argon2Settings {
                memory_kib: env.parse("ARGON2_MEMORY_KIB", Argon2Settings::default().memory_kib)?,
                iterations: env.parse("ARGON2_ITERATIONS", Argon2Settings::default().iterations)?,
                parallelism: env
                    .parse("ARGON2_PARALLELISM", Argon2Settings::default().parallelism)?,
            },
            hash_capacity: {
                let defaults = HashCapacity::default();
                HashCapacity {
                    concurrency: env.positive("PASSWORD_HASH_CONCURRENCY", defaults.concurrency)?,
                    queue: env.positive("PASSWORD_HASH_QUEUE", defaults.queue)?,
                    wait: env.millis("PASSWORD_HASH_WAIT_MS", defaults.wait)?,
                }
            },
            jwt_secret,
        };
        auth.argon2.validate().map_err(|reason| ConfigError {
            var: "ARGON2_MEMORY_KIB",
            reason,
        })?;
        check_secrets(&auth, settings.database_url.is_some())?;
        let mut settings = settings;
        settings.auth = auth;
        tracing_subscriber::EnvFilter::builder()
            .parse(&settings.log_filter)
            .map_err(|e| ConfigError {
                var: "RUST_LOG",
                reason: e.to_string(),
            })?;
        settings.postgres_event_bus = match env.raw("EVENT_BUS").as_deref() {
            None => settings.database_url.is_some(),
            Some("postgres") if settings.database_url.is_some() => true,
            Some("postgres") => {
                return Err(ConfigError {
                    var: "EVENT_BUS",
                    reason: "`postgres` needs DATABASE_URL".into(),
                });
            }
            Some("memory") => false,
            Some(other) => {
                return Err(ConfigError {
                    var: "EVENT_BUS",
                    reason: format!("expected `memory` or `postgres`, got `{other}`"),
                });
            }
        };
        if settings.jobs.lease <= settings.jobs.timeout {
            return Err(ConfigError {
                var: "JOB_LEASE_SECS",
                reason: format!(
                    "must be longer than JOB_TIMEOUT_SECS ({}s), or a job still running \
                     could be taken by another worker",
                    settings.jobs.timeout.as_secs()
                ),
            });
        }
        if settings.jobs.workers > 64 {
            return Err(ConfigError {
                var: "WORKERS",
                reason: "must be at most 64 (each holds a database connection)".into(),
            });
        }
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

/// A signing key must be long enough; and with a database, data outlives the process, so
/// tokens must too: a generated key would log everyone out on every restart and differ
/// between instances.
fn check_secrets(auth: &AuthSettings, has_database: bool) -> Result<(), ConfigError> {
    let min = auth_adapter::MIN_SECRET_BYTES;
    if let Some(secret) = &auth.jwt_secret
        && let Some(reason) = guessable(secret)
    {
        return Err(ConfigError {
            var: "JWT_SECRET",
            reason: format!("{reason}; generate one, e.g. `openssl rand -hex 32`"),
        });
    }
    if let Some(reason) = auth.jwt_previous_secrets.iter().find_map(|s| guessable(s)) {
        return Err(ConfigError {
            var: "JWT_PREVIOUS_SECRETS",
            reason: format!("a key {reason}"),
        });
    }
    match &auth.jwt_secret {
        Some(secret) if secret.len() < min => {
            return Err(ConfigError {
                var: "JWT_SECRET",
                reason: format!("must be at least {min} bytes, got {}", secret.len()),
            });
        }
        None if has_database => {
            return Err(ConfigError {
                var: "JWT_SECRET",
                reason: format!(
                    "must be set (at least {min} bytes) when DATABASE_URL is set, so tokens \
                     survive restarts and work on every instance; e.g. `openssl rand -hex 32`"
                ),
            });
        }
        _ => {}
    }
    if let Some(short) = auth.jwt_previous_secrets.iter().find(|s| s.len() < min) {
        return Err(ConfigError {
            var: "JWT_PREVIOUS_SECRETS",
            reason: format!(
                "every key must be at least {min} bytes, got {}",
                short.len()
            ),
        });
    }
    Ok(())
}

/// Distinct bytes a signing key must have at least.
const MIN_DISTINCT_BYTES: usize = 8;

/// The placeholder `.env.example` once shipped; anyone can read it.
const EXAMPLE_SECRET: &[u8] = b"change-me-to-the-output-of-openssl-rand-hex-32";

/// Why a signing key is one an attacker could guess, if it is: a published
/// placeholder, or too few distinct bytes to be random (`aaaa…`, `abab…`). The bound is
/// 8, not 16: a random hex key has only 16 symbols, and one of `openssl rand -hex 32`'s
/// keys in four misses at least one of them.
fn guessable(secret: &[u8]) -> Option<&'static str> {
    if secret == EXAMPLE_SECRET
        || secret
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"change-me"))
    {
        return Some("is a placeholder (it contains `change-me`)");
    }
    let distinct = secret
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    (distinct < MIN_DISTINCT_BYTES).then_some("has fewer than 8 distinct bytes: it is not random")
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

    /// A count that must be at least 1 (zero is the type's default).
    fn positive<T: FromStr + Default + PartialEq>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        let value = self.parse(var, default)?;
        if value == T::default() {
            return Err(ConfigError {
                var,
                reason: "must be at least 1".into(),
            });
        }
        Ok(value)
    }

    fn optional_positive(&self, var: &'static str) -> Result<Option<usize>, ConfigError> {
        self.raw(var)
            .map(|_| self.positive(var, 1usize))
            .transpose()
    }

    fn secs(&self, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.duration(var, default, Duration::from_secs, DAY)
    }

    fn millis(&self, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.duration(var, default, Duration::from_millis, DAY)
    }

    fn duration(
        &self,
        var: &'static str,
        default: Duration,
        unit: fn(u64) -> Duration,
        max: Duration,
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
                if value > max {
                    return Err(ConfigError {
                        var,
                        reason: format!("must be at most {}s", max.as_secs()),
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
        let s = from(&[
            ("PORT", " "),
            ("DATABASE_URL", "postgres://app:hunter22@db/app"),
            ("JWT_SECRET", SECRET),
        ])
        .unwrap();
        assert_eq!(s.port, 8080);
        let debug = format!("{s:?}");
        assert!(debug.contains("db/app"), "{debug}");
        assert!(!debug.contains("hunter22"), "{debug}");
        assert!(!debug.contains(SECRET), "{debug}");
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
    fn auth_defaults() {
        let s = from(&[]).unwrap();
        assert_eq!(s.auth.jwt_ttl, Duration::from_secs(900));
        assert_eq!(s.auth.refresh_ttl, Duration::from_secs(30 * 86400));
        assert_eq!(s.auth.refresh_absolute_ttl, Duration::from_secs(30 * 86400));
        assert_eq!(s.auth.argon2, Argon2Settings::default());
        assert_eq!(s.auth.hash_capacity.queue, 64);
        assert_eq!(s.registration_rate_limit_per_minute, 5);
        assert_eq!(s.auth.hash_capacity.wait, Duration::from_millis(2000));
        assert_eq!(
            s.auth.hash_capacity.concurrency,
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        );
        assert_eq!(s.http.auth_rate_limit_per_minute, 10);
        assert_eq!(s.http.auth_account_failures_per_hour, 100);
        assert_eq!(s.fanout_deadline, Duration::from_millis(5000));
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
