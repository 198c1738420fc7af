//! The per-instance hub: one subscription to the event bus, fanned out to this
//! instance's connections by topic, each through its own bounded queue.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use domain::chat::MessageId;
use domain::events::{Event, EventBus};
use futures_util::StreamExt;
use ports::chat::ChatService;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::protocol::{MessageView, ServerFrame};

/// WebSocket limits and timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    pub heartbeat: std::time::Duration,
    pub max_frame_bytes: usize,
    pub max_messages_per_sec: u32,
    pub outbound_queue: usize,
    pub max_connections: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            heartbeat: std::time::Duration::from_secs(30),
            max_frame_bytes: 64 * 1024,
            max_messages_per_sec: 20,
            outbound_queue: 256,
            max_connections: 10_000,
        }
    }
}

pub(crate) struct Connection {
    pub(crate) outbound: mpsc::Sender<String>,
    /// Cancelled when the client cannot keep up: the connection closes with 1013.
    pub(crate) too_slow: CancellationToken,
    topics: HashSet<String>,
}

/// Connections of this instance and what each listens to.
pub struct WsHub {
    pub(crate) config: WsConfig,
    connections: Mutex<HashMap<u64, Connection>>,
    next_id: AtomicU64,
    pub(crate) open: AtomicUsize,
    /// Cancelled on shutdown: every connection closes with 1001.
    pub(crate) closing: CancellationToken,
    pub(crate) chat: Arc<dyn ChatService>,
}

impl WsHub {
    /// The hub, with its task forwarding bus events to connections. Call inside a tokio
    /// runtime; the task ends when the hub closes.
    pub fn start(
        chat: Arc<dyn ChatService>,
        bus: Arc<dyn EventBus>,
        config: WsConfig,
    ) -> Arc<Self> {
        let hub = Arc::new(Self {
            config,
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            closing: CancellationToken::new(),
            chat,
        });
        let mut events = bus.subscribe();
        let dispatcher = hub.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = dispatcher.closing.cancelled() => return,
                    event = events.next() => match event {
                        Some(event) => dispatcher.dispatch(event).await,
                        None => return,
                    },
                }
            }
        });
        hub
    }

    /// Closes every connection with 1001 (going away) and stops the dispatcher.
    pub fn close_all(&self) {
        self.closing.cancel();
    }

    /// Connections open on this instance.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn register(&self, outbound: mpsc::Sender<String>) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let too_slow = CancellationToken::new();
        self.lock().insert(
            id,
            Connection {
                outbound,
                too_slow: too_slow.clone(),
                topics: HashSet::new(),
            },
        );
        (id, too_slow)
    }

    pub(crate) fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub(crate) fn subscribe(&self, id: u64, topic: String) {
        if let Some(conn) = self.lock().get_mut(&id) {
            conn.topics.insert(topic);
        }
    }

    /// Whether the connection was subscribed.
    pub(crate) fn unsubscribe(&self, id: u64, topic: &str) -> bool {
        self.lock()
            .get_mut(&id)
            .is_some_and(|conn| conn.topics.remove(topic))
    }

    pub(crate) fn subscriptions(&self, id: u64) -> usize {
        self.lock().get(&id).map_or(0, |conn| conn.topics.len())
    }

    pub(crate) fn is_subscribed(&self, id: u64, topic: &str) -> bool {
        self.lock()
            .get(&id)
            .is_some_and(|conn| conn.topics.contains(topic))
    }

    async fn dispatch(&self, event: Event) {
        if event.is_gap() {
            // Live frames may have been lost: clients in rooms reconnect and resume
            // (1013 says "try again"), which reads the gap from storage.
            for conn in self.lock().values() {
                if conn.topics.iter().any(|t| t.starts_with("room:")) {
                    conn.too_slow.cancel();
                }
            }
            return;
        }
        let frame = if event.name == "chat.message" {
            // The bus carries only the id (payloads are small); load the message once
            // per instance, not once per connection.
            let Some(id) = event.data["id"]
                .as_str()
                .and_then(|s| s.parse::<MessageId>().ok())
            else {
                return;
            };
            let message = match self.chat.get(id).await {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "an announced chat message cannot be loaded");
                    return;
                }
            };
            ServerFrame::Message {
                message: MessageView::from(&message),
                client_id: event.data["client_id"].as_str().map(str::to_owned),
            }
            .to_text()
        } else {
            ServerFrame::Event {
                topic: &event.topic,
                name: &event.name,
                data: &event.data,
            }
            .to_text()
        };
        for conn in self.lock().values() {
            if !conn.topics.contains(&event.topic) {
                continue;
            }
            if conn.outbound.try_send(frame.clone()).is_err() {
                // Full (or closed): never buffer without bound for a slow reader.
                conn.too_slow.cancel();
            }
        }
    }
}
