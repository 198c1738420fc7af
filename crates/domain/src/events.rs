//! Domain events and the bus that carries them to every instance.

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Something that happened, for whoever listens on its topic.
///
/// Topics: `posts`, `user:{id}`, `room:{name}`. Payloads stay small (ids and a few
/// fields): some buses limit their size (Postgres NOTIFY: 8,000 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub topic: String,
    /// e.g. `post.created`, `chat.message`.
    pub name: String,
    pub data: serde_json::Value,
}

/// Every event published on any instance sharing the bus, from now on.
pub type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// The name of the event a stream yields where it may have lost events (it fell behind,
/// or the bus reconnected). Its topic is `*`: it concerns every topic.
pub const GAP: &str = "bus.gap";

impl Event {
    /// The marker for a possible gap in a stream.
    pub fn gap() -> Self {
        Self {
            topic: "*".into(),
            name: GAP.into(),
            data: serde_json::Value::Null,
        }
    }

    pub fn is_gap(&self) -> bool {
        self.name == GAP && self.topic == "*"
    }
}

/// Publishes events to every subscriber, on this instance and on every other instance
/// sharing the bus.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// MUST deliver `event` to every current subscriber, including this instance's.
    /// MUST refuse with [`Error::Validation`] an event too large for the bus.
    async fn publish(&self, event: &Event) -> Result<(), Error>;

    /// A stream of all events published after this call. A subscriber too slow to
    /// keep up MAY miss events; where it may have, the stream MUST yield
    /// [`Event::gap`], so consumers that must not lose data (chat) know to fetch what
    /// they missed from storage.
    fn subscribe(&self) -> EventStream;
}
