//! The WebSocket side of this instance's live hub: the transport's own limits over
//! [`ports::live::Live`], which owns the rooms, topics and bounded queues that every
//! streaming transport shares.

use std::sync::Arc;

use ports::live::Live;

/// WebSocket limits and timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    pub heartbeat: std::time::Duration,
    pub max_frame_bytes: usize,
    pub max_messages_per_sec: u32,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            heartbeat: std::time::Duration::from_secs(30),
            max_frame_bytes: 64 * 1024,
            max_messages_per_sec: 20,
        }
    }
}

/// What `/api/ws` needs: the shared hub and the WebSocket limits.
pub struct WsHub {
    pub(crate) config: WsConfig,
    pub(crate) live: Arc<Live>,
}

impl WsHub {
    pub fn new(live: Arc<Live>, config: WsConfig) -> Arc<Self> {
        Arc::new(Self { config, live })
    }

    /// Closes every live subscription (1001 on WebSockets) and refuses new ones.
    pub fn close_all(&self) {
        self.live.close_all();
    }

    /// Live subscribers open on this instance, over every transport.
    pub fn open_connections(&self) -> usize {
        self.live.open_subscribers()
    }
}
