//! Live delivery for every streaming transport (WebSocket, gRPC): one subscription to
//! the event bus per instance, fanned out by topic to this instance's subscribers, each
//! through its own bounded queue.
//!
//! The rules of rooms and topics live here, so a WebSocket client and a gRPC client
//! follow the same ones and see each other's messages: who may follow which topic, that
//! a sender must have joined the room, how many rooms one subscriber may follow, and
//! what a subscriber that falls behind is told.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use domain::auth::Principal;
use domain::chat::{ChatMessage, MessageId, RoomName, Since};
use domain::events::{Event, EventBus};
use domain::users::UserId;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::Error;
use crate::chat::{ChatService, room_topic};

/// Limits shared by every transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    /// Deliveries queued for one subscriber before it counts as too slow.
    pub queue: usize,
    /// Subscribers (WebSocket connections and gRPC chat streams) on this instance.
    pub max_subscribers: usize,
    /// Rooms and topics one subscriber may follow at once.
    pub max_subscriptions: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            queue: 256,
            max_subscribers: 10_000,
            max_subscriptions: 100,
        }
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A chat message in a joined room, with the sender's `client_id` for their echo.
    Message {
        message: Arc<ChatMessage>,
        client_id: Option<Arc<str>>,
    },
    /// Any other event on a followed topic (`posts`, `user:{id}`).
    Event(Arc<Event>),
}

/// Why a subscription ended on the server's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The subscriber's queue was full: it does not read fast enough.
    TooSlow,
    /// The bus may have lost events: room members must rejoin with `since`.
    Gap,
    /// The instance is shutting down.
    ShuttingDown,
}

/// What a subscriber did wrong, or why the use case behind it failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("this instance already serves its maximum of live connections")]
    Full,
    #[error("join {room} before sending to it")]
    NotJoined { room: String },
    #[error("at most {0} rooms and topics at once; leave one first")]
    TooManySubscriptions(usize),
    #[error("topics are `posts` and `user:{{id}}`")]
    UnknownTopic,
    #[error(transparent)]
    Domain(#[from] Error),
}

impl LiveError {
    /// The stable code clients of every transport see in an error event.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Full => "unavailable",
            Self::NotJoined { .. } => "not_joined",
            Self::TooManySubscriptions(_) => "too_many_subscriptions",
            Self::UnknownTopic => "invalid_topic",
            Self::Domain(Error::Validation(_)) => "validation",
            Self::Domain(Error::Unauthorized(_)) => "unauthorized",
            Self::Domain(Error::Forbidden(_)) => "forbidden",
            Self::Domain(Error::NotFound { .. }) => "not_found",
            Self::Domain(Error::Unavailable(_)) => "unavailable",
            Self::Domain(_) => "internal",
        }
    }

    /// The message that goes with [`LiveError::code`]: internals stay inside.
    pub fn public_message(&self) -> String {
        match self {
            Self::Domain(Error::Unavailable(_)) => "try again shortly".into(),
            Self::Domain(e) if self.code() == "internal" => {
                tracing::error!(error = %e, "a live client event failed");
                "the server failed to handle the event".into()
            }
            other => other.to_string(),
        }
    }
}

struct Subscriber {
    deliveries: mpsc::Sender<Delivery>,
    ended: Arc<EndSignal>,
    topics: HashSet<String>,
}

/// Set once, by whoever ends the subscription first.
#[derive(Default)]
struct EndSignal {
    token: CancellationToken,
    cause: OnceLock<Ended>,
}

impl EndSignal {
    /// Whether this call decided the cause.
    fn end(&self, cause: Ended) -> bool {
        let first = self.cause.set(cause).is_ok();
        self.token.cancel();
        first
    }
}

/// This instance's live subscribers and what each follows.
pub struct Live {
    config: LiveConfig,
    chat: Arc<dyn ChatService>,
    subscribers: Mutex<HashMap<u64, Subscriber>>,
    next_id: AtomicU64,
    open: AtomicUsize,
    dropped_too_slow: AtomicU64,
    closing: CancellationToken,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveStats {
    /// Subscribers open now, over every transport.
    pub open: usize,
    /// Subscribers ended so far because they read too slowly.
    pub dropped_too_slow: u64,
}

impl Live {
    /// The hub, with its task forwarding bus events to subscribers. Call inside a tokio
    /// runtime; the task ends when the hub closes.
    pub fn start(
        chat: Arc<dyn ChatService>,
        bus: Arc<dyn EventBus>,
        config: LiveConfig,
    ) -> Arc<Self> {
        let live = Arc::new(Self {
            config,
            chat,
            subscribers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            dropped_too_slow: AtomicU64::new(0),
            closing: CancellationToken::new(),
        });
        let mut events = bus.subscribe();
        let dispatcher = live.clone();
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
        live
    }

    pub fn config(&self) -> &LiveConfig {
        &self.config
    }

    /// The chat use cases behind the rooms (for history pages).
    pub fn chat(&self) -> &Arc<dyn ChatService> {
        &self.chat
    }

    /// Ends every subscription with [`Ended::ShuttingDown`] and stops the dispatcher.
    pub fn close_all(&self) {
        self.closing.cancel();
        for subscriber in self.lock().values() {
            subscriber.ended.end(Ended::ShuttingDown);
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Subscribers open on this instance, over every transport.
    pub fn open_subscribers(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> LiveStats {
        LiveStats {
            open: self.open.load(Ordering::Relaxed),
            dropped_too_slow: self.dropped_too_slow.load(Ordering::Relaxed),
        }
    }

    fn count_too_slow(&self) {
        self.dropped_too_slow.fetch_add(1, Ordering::Relaxed);
    }

    /// A new subscriber. [`LiveError::Full`] at the cap, and while shutting down.
    pub fn connect(self: &Arc<Self>) -> Result<Subscription, LiveError> {
        // Count first, then check: concurrent connects cannot slip past the cap together.
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.config.queue.max(1));
        let ended = Arc::new(EndSignal::default());
        let mut subscribers = self.lock();
        // Checked under the lock `close_all` sweeps with: a subscriber is either
        // refused here or registered before the sweep, never missed by it.
        if open > self.config.max_subscribers || self.is_closing() {
            drop(subscribers);
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(LiveError::Full);
        }
        subscribers.insert(
            id,
            Subscriber {
                deliveries: tx,
                ended: ended.clone(),
                topics: HashSet::new(),
            },
        );
        drop(subscribers);
        Ok(Subscription {
            live: self.clone(),
            id,
            deliveries: rx,
            ended,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn dispatch(&self, event: Event) {
        if event.is_gap() {
            // Live messages may have been lost: room members rejoin with `since`, which
            // reads the gap from storage.
            for subscriber in self.lock().values() {
                if subscriber.topics.iter().any(|t| t.starts_with("room:")) {
                    subscriber.ended.end(Ended::Gap);
                }
            }
            return;
        }
        let delivery = if event.name == "chat.message" {
            // The bus carries only the id (payloads stay small); load the message once
            // per instance, not once per subscriber.
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
            Delivery::Message {
                message: Arc::new(message),
                client_id: event.data["client_id"].as_str().map(Arc::from),
            }
        } else {
            Delivery::Event(Arc::new(event.clone()))
        };
        for subscriber in self.lock().values() {
            if !subscriber.topics.contains(&event.topic) {
                continue;
            }
            if subscriber.deliveries.try_send(delivery.clone()).is_err() {
                // Full (or gone): never buffer without bound for a slow reader.
                if subscriber.ended.end(Ended::TooSlow) {
                    self.count_too_slow();
                }
            }
        }
    }
}

/// One subscriber: what it follows, and its queue of deliveries. Dropping it
/// unsubscribes from everything.
pub struct Subscription {
    live: Arc<Live>,
    id: u64,
    deliveries: mpsc::Receiver<Delivery>,
    ended: Arc<EndSignal>,
}

impl Subscription {
    /// The next delivery. Cancel-safe: use it in `select!`.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// Completes when the server ends this subscription; then [`Subscription::ended`]
    /// says why.
    pub fn ending(&self) -> WaitForCancellationFutureOwned {
        // Owned, so it can wait beside `next()` in one `select!`.
        self.ended.token.clone().cancelled_owned()
    }

    pub fn ended(&self) -> Option<Ended> {
        self.ended.cause.get().copied()
    }

    /// Declares this subscriber too slow (its transport could not write in time).
    pub fn too_slow(&self) {
        if self.ended.end(Ended::TooSlow) {
            self.live.count_too_slow();
        }
    }

    /// Joins a room: follows its messages, then returns its recent history (or with
    /// `since`, what came after that message). Following comes first, so a message sent
    /// meanwhile arrives twice (clients dedupe by id) rather than not at all.
    pub async fn join(&self, room: &str, since: Option<MessageId>) -> Result<Since, LiveError> {
        let topic = room_topic(&RoomName::parse(room).map_err(Error::from)?);
        let newly = self.follow_topic(topic.clone())?;
        match self.live.chat.join(room, since).await {
            Ok(found) => Ok(found),
            Err(e) => {
                if newly {
                    self.unfollow(&topic);
                }
                Err(e.into())
            }
        }
    }

    /// Leaves a room; false when it was not joined.
    pub fn leave(&self, room: &str) -> bool {
        RoomName::parse(room).is_ok_and(|name| self.unfollow(&room_topic(&name)))
    }

    /// Sends a message to a joined room. It comes back through the bus like everyone
    /// else's, tagged with `client_id`.
    pub async fn send(
        &self,
        actor: Principal,
        room: &str,
        text: &str,
        client_id: Option<String>,
    ) -> Result<ChatMessage, LiveError> {
        let joined = RoomName::parse(room).is_ok_and(|name| self.follows(&room_topic(&name)));
        if !joined {
            return Err(LiveError::NotJoined { room: room.into() });
        }
        Ok(self.live.chat.send(actor, room, text, client_id).await?)
    }

    /// Follows `posts` (anyone) or `user:{id}` (that user or an admin). Returns the
    /// topic in the canonical form events are published under.
    pub fn subscribe(&self, actor: &Principal, topic: &str) -> Result<String, LiveError> {
        let canonical = if topic == "posts" {
            topic.to_owned()
        } else if let Some(user) = topic.strip_prefix("user:") {
            let user = user.parse::<UserId>().map_err(|_| {
                Error::from(domain::FieldError::new(
                    "topic",
                    "user:{id} needs a user id",
                ))
            })?;
            if !actor.may_manage(user) {
                return Err(Error::Forbidden("only that user or an admin may subscribe").into());
            }
            format!("user:{user}")
        } else {
            return Err(LiveError::UnknownTopic);
        };
        self.follow_topic(canonical.clone())?;
        Ok(canonical)
    }

    /// Whether the topic is new to this subscriber.
    fn follow_topic(&self, topic: String) -> Result<bool, LiveError> {
        let mut subscribers = self.live.lock();
        let Some(me) = subscribers.get_mut(&self.id) else {
            return Ok(false);
        };
        if me.topics.contains(&topic) {
            return Ok(false);
        }
        if me.topics.len() >= self.live.config.max_subscriptions {
            return Err(LiveError::TooManySubscriptions(
                self.live.config.max_subscriptions,
            ));
        }
        me.topics.insert(topic);
        Ok(true)
    }

    fn unfollow(&self, topic: &str) -> bool {
        self.live
            .lock()
            .get_mut(&self.id)
            .is_some_and(|me| me.topics.remove(topic))
    }

    fn follows(&self, topic: &str) -> bool {
        self.live
            .lock()
            .get(&self.id)
            .is_some_and(|me| me.topics.contains(topic))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.live.lock().remove(&self.id);
        self.live.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A token bucket over everything one client sends: `per_sec` sustained, and as a
/// burst. Every transport applies the same budget.
#[derive(Debug)]
pub struct RateLimit {
    capacity: f64,
    tokens: f64,
    last: Instant,
    refused: u32,
}

impl RateLimit {
    pub fn new(per_sec: u32) -> Self {
        let capacity = f64::from(per_sec.max(1));
        Self {
            capacity,
            tokens: capacity,
            last: Instant::now(),
            refused: 0,
        }
    }

    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.capacity)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// Frames refused in a row; past the per-second budget the client is cut off.
    pub fn refused(&self) -> u32 {
        self.refused
    }
}
