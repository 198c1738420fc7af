//! HTTP-level limits and timeouts: what the server and the shared extractors and
//! middleware read. Nothing secret lives here (the idempotency fingerprint key sits
//! beside its store, in [`crate::Idempotency`]).

use std::time::Duration;

use ports::client::TrustedProxies;

/// The request deadline when no [`HttpConfig`] is registered.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The JSON body limit when no [`HttpConfig`] is registered.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// HTTP-level limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// A handler running longer is cancelled and the client gets `504`.
    pub request_timeout: Duration,
    /// Time a client has to send the request head.
    pub client_request_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub keep_alive: Duration,
    /// Time to finish writing to a client that is closing the connection.
    pub client_disconnect_timeout: Duration,
    /// How long a graceful stop waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Worker threads; `None` for one per core.
    pub workers: Option<usize>,
    /// Connections open at once, over every worker; past it new ones wait in the
    /// listen backlog.
    pub max_connections: usize,
    /// Login and refresh attempts allowed per minute and client address; failed logins
    /// per minute, account and client address.
    pub auth_rate_limit_per_minute: u32,
    /// Failed logins per account and hour, from every address together.
    pub auth_account_failures_per_hour: u32,
    /// Origins allowed to call the API from a browser (CORS); empty: none, and no CORS
    /// headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// Send `Strict-Transport-Security` (only when clients reach the service over TLS,
    /// e.g. behind a TLS-terminating proxy).
    pub hsts: bool,
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the client; empty: the TCP peer
    /// is the client.
    pub trusted_proxies: TrustedProxies,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            client_request_timeout: Duration::from_secs(15),
            keep_alive: Duration::from_secs(60),
            client_disconnect_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            body_limit: DEFAULT_BODY_LIMIT,
            workers: None,
            max_connections: 10_000,
            auth_rate_limit_per_minute: 10,
            auth_account_failures_per_hour: 100,
            cors_allowed_origins: Vec::new(),
            hsts: false,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}
