//! The HTTP server's limits and timeouts: `http_adapter`'s own configuration, its
//! defaults included, with the environment's overrides.

use http_adapter::HttpConfig;
use ports::client::TrustedProxies;

use super::ConfigError;
use super::env::{Env, FromEnv};

impl FromEnv for HttpConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            request_timeout: env.secs("REQUEST_TIMEOUT_SECS", defaults.request_timeout)?,
            client_request_timeout: env.secs(
                "CLIENT_REQUEST_TIMEOUT_SECS",
                defaults.client_request_timeout,
            )?,
            keep_alive: env.secs("KEEP_ALIVE_SECS", defaults.keep_alive)?,
            client_disconnect_timeout: env.secs(
                "CLIENT_DISCONNECT_TIMEOUT_SECS",
                defaults.client_disconnect_timeout,
            )?,
            shutdown_grace: env.secs("SHUTDOWN_GRACE_SECS", defaults.shutdown_grace)?,
            body_limit: env.positive("BODY_LIMIT_BYTES", defaults.body_limit)?,
            workers: env.optional_positive("HTTP_WORKERS")?.or(defaults.workers),
            max_connections: env.positive("HTTP_MAX_CONNECTIONS", defaults.max_connections)?,
            auth_rate_limit_per_minute: env.positive(
                "AUTH_RATE_LIMIT_PER_MINUTE",
                defaults.auth_rate_limit_per_minute,
            )?,
            auth_account_failures_per_hour: env.positive(
                "AUTH_ACCOUNT_FAILURES_PER_HOUR",
                defaults.auth_account_failures_per_hour,
            )?,
            cors_allowed_origins: env
                .list("CORS_ALLOWED_ORIGINS")
                .unwrap_or(defaults.cors_allowed_origins),
            hsts: env.parse("HSTS", defaults.hsts)?,
            trusted_proxies: trusted_proxies(env, defaults.trusted_proxies)?,
        })
    }
}

/// `TRUSTED_PROXIES`, which HTTP and gRPC both honour.
pub(super) fn trusted_proxies(
    env: &Env<'_>,
    default: TrustedProxies,
) -> Result<TrustedProxies, ConfigError> {
    match env.raw("TRUSTED_PROXIES") {
        None => Ok(default),
        Some(raw) => TrustedProxies::parse(&raw).map_err(|reason| ConfigError {
            var: "TRUSTED_PROXIES",
            reason,
        }),
    }
}
