//! What the process says about itself: logs, exported spans, metrics.

use std::net::SocketAddr;

use super::ConfigError;
use super::env::{Env, FromEnv};
use super::secret::RedactedUrl;

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,actix_server=warn";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// The `RUST_LOG` directives, checked at start-up.
    pub log_filter: String,
    /// Where spans are exported (OTLP over HTTP/protobuf); `None` exports nothing and
    /// connects nowhere. Redacted: a collector's URL may carry a token.
    pub otlp_endpoint: Option<RedactedUrl>,
    /// The `service.name` exported spans carry.
    pub service_name: String,
    /// Where `/metrics` is served alone (e.g. `127.0.0.1:9090`); `None` serves it on the
    /// API's port.
    pub metrics_addr: Option<SocketAddr>,
}

impl FromEnv for TelemetrySettings {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let log_format = match env.raw("LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    var: "LOG_FORMAT",
                    reason: format!("expected `pretty` or `json`, got `{other}`"),
                });
            }
        };
        let log_filter = env
            .raw("RUST_LOG")
            .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
        // Checked now: a typo would otherwise silence the logs that would report it.
        tracing_subscriber::EnvFilter::builder()
            .parse(&log_filter)
            .map_err(|e| ConfigError {
                var: "RUST_LOG",
                reason: e.to_string(),
            })?;
        let otlp_endpoint = match env.raw("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(RedactedUrl::new(url.trim_end_matches('/')))
            }
            Some(other) => {
                return Err(ConfigError {
                    var: "OTEL_EXPORTER_OTLP_ENDPOINT",
                    reason: format!("expected an http:// or https:// URL, got `{other}`"),
                });
            }
            None => None,
        };
        let metrics_addr = match env.raw("METRICS_ADDR") {
            None => None,
            Some(raw) => Some(raw.trim().parse().map_err(|_| ConfigError {
                var: "METRICS_ADDR",
                reason: format!("`{raw}` is not an address and port, e.g. 127.0.0.1:9090"),
            })?),
        };
        Ok(Self {
            log_format,
            log_filter,
            otlp_endpoint,
            service_name: env
                .raw("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| "users-service".to_owned()),
            metrics_addr,
        })
    }
}
