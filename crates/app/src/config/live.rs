//! Live connections: the limits of `ports::live::Live`, shared by WebSockets and gRPC
//! chat streams, and the WebSocket transport's own. Both start from their owners'
//! defaults. (The shared limits were `WS_*` before gRPC chat; see `env::RENAMED`.)

use http_adapter::WsConfig;
use ports::live::LiveConfig;

use super::ConfigError;
use super::env::{Env, FromEnv};

impl FromEnv for LiveConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            queue: env.positive("LIVE_OUTBOUND_QUEUE", defaults.queue)?,
            max_subscribers: env.positive("LIVE_MAX_CONNECTIONS", defaults.max_subscribers)?,
            max_per_user: env.positive("LIVE_MAX_CONNECTIONS_PER_USER", defaults.max_per_user)?,
            max_per_client: env.positive("LIVE_MAX_CONNECTIONS_PER_IP", defaults.max_per_client)?,
            messages_per_sec_per_user: env.positive(
                "LIVE_MAX_MESSAGES_PER_SEC_PER_USER",
                defaults.messages_per_sec_per_user,
            )?,
            ..defaults
        })
    }
}

impl FromEnv for WsConfig {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            heartbeat: env.secs("WS_HEARTBEAT_SECS", defaults.heartbeat)?,
            max_messages_per_sec: env
                .parse("LIVE_MAX_FRAMES_PER_SEC", defaults.max_messages_per_sec)?
                .max(1),
            ..defaults
        })
    }
}
