//! Where the service listens. HTTP and gRPC share the host, each on its own port.

use super::ConfigError;
use super::env::{Env, FromEnv};

/// The API's addresses (`/metrics` may have its own: `TelemetrySettings::metrics_addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSettings {
    /// `127.0.0.1` unless set: nothing is exposed by accident (`0.0.0.0` in containers).
    pub host: String,
    /// The HTTP port; 0 picks a free one.
    pub port: u16,
    /// The gRPC port; 0 picks a free one.
    pub grpc_port: u16,
}

impl FromEnv for ListenSettings {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            host: env.raw("HOST").unwrap_or_else(|| "127.0.0.1".into()),
            port: env.parse("PORT", 8080)?,
            grpc_port: env.parse("GRPC_PORT", 50051)?,
        })
    }
}
