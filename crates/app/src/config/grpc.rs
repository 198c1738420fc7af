//! The gRPC server's limits: `grpc_adapter`'s own configuration, its defaults included,
//! with the environment's overrides.

use grpc_adapter::{ChatConfig, GrpcConfig};

use super::ConfigError;
use super::env::{Env, FromEnv};

impl FromEnv for GrpcConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            chat: ChatConfig {
                // The WebSocket's budget: a chat client gets the same on either transport.
                events_per_sec: env
                    .parse("LIVE_MAX_FRAMES_PER_SEC", defaults.chat.events_per_sec)?
                    .max(1),
                ..defaults.chat
            },
            max_connections: env.positive("GRPC_MAX_CONNECTIONS", defaults.max_connections)?,
            handshake_timeout: env
                .secs("GRPC_HANDSHAKE_TIMEOUT_SECS", defaults.handshake_timeout)?,
            max_connection_age: env
                .secs("GRPC_MAX_CONNECTION_AGE_SECS", defaults.max_connection_age)?,
            trusted_proxies: super::http::trusted_proxies(env, defaults.trusted_proxies.clone())?,
            ..defaults
        })
    }
}
