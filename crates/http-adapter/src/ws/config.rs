//! The WebSocket transport's own limits; the rooms, topics and bounded queues behind it
//! are [`ports::live::Live`]'s, shared by every streaming transport.

use std::time::Duration;

/// WebSocket limits and timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    pub heartbeat: Duration,
    pub max_frame_bytes: usize,
    pub max_messages_per_sec: u32,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(30),
            max_frame_bytes: 64 * 1024,
            max_messages_per_sec: 20,
        }
    }
}
