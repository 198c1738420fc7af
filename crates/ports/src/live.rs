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

use domain::auth::{Principal, SessionId};
use domain::chat::{ChatMessage, MessageId, RoomName, Since};
use domain::events::{Event, EventBus, EventKind, Topic};
use domain::users::{Role, UserId};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::Error;
use crate::chat::ChatService;
use crate::rate_limit::ClientKey;

/// The event that tells every instance an account changed: `role` is the role stored
/// now, `None` when the account was deleted.
pub fn account_changed(user: UserId, role: Option<Role>) -> Event {
    Event {
        topic: Topic::Accounts,
        kind: EventKind::AccountChanged,
        data: serde_json::json!({
            "user_id": user.to_string(),
            "role": role.map(Role::as_str),
        }),
    }
}

/// Whose live session this is: the principal with the role stored when it opened,
/// where it connects from, and when the token that opened it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub principal: Principal,
    /// The session the token belongs to: ending it ends this too.
    pub session: SessionId,
    pub client: ClientKey,
    pub expires_at: time::OffsetDateTime,
}

/// Limits shared by every transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    /// Deliveries queued for one subscriber before it counts as too slow.
    pub queue: usize,
    /// Subscribers (WebSocket connections and gRPC chat streams) on this instance.
    pub max_subscribers: usize,
    /// Rooms and topics one subscriber may follow at once.
    pub max_subscriptions: usize,
    /// Subscribers of one user at once, on this instance.
    pub max_per_user: usize,
    /// Subscribers from one client address (IPv6: /64) at once, on this instance.
    pub max_per_client: usize,
    /// Chat messages one user may send per second, over all their subscribers.
    pub messages_per_sec_per_user: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            queue: 256,
            max_subscribers: 10_000,
            max_subscriptions: 100,
            max_per_user: 20,
            max_per_client: 200,
            messages_per_sec_per_user: 40,
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
    /// The account is gone, or the session ended (signed out, password changed).
    Revoked,
    /// The access token the session was opened with has expired.
    Expired,
}

/// What a subscriber did wrong, or why the use case behind it failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("this instance already serves its maximum of live connections")]
    Full,
    #[error("at most {0} live connections per user; close one first")]
    TooManyForUser(usize),
    #[error("at most {0} live connections from one address")]
    TooManyFromClient(usize),
    #[error("too many messages; slow down")]
    RateLimited,
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
            Self::TooManyForUser(_) | Self::TooManyFromClient(_) => "too_many_connections",
            Self::RateLimited => "rate_limited",
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
    topics: HashSet<Topic>,
    owner: Principal,
    session: SessionId,
    client: ClientKey,
}

/// Everything the hub tracks, under one lock.
#[derive(Default)]
struct Registry {
    subscribers: HashMap<u64, Subscriber>,
    /// Subscribers per user.
    users: HashMap<UserId, usize>,
    /// Subscribers per client address.
    clients: HashMap<ClientKey, usize>,
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
    /// Told which topics this instance's subscribers follow, so a bus that delivers
    /// only followed topics (NATS) brings this instance what it needs and no more.
    bus: Arc<dyn EventBus>,
    registry: Mutex<Registry>,
    /// Chat messages per user over all their subscribers. Kept apart from the
    /// subscribers: closing every connection and opening new ones gives no fresh budget.
    messages: crate::rate_limit::TokenBuckets,
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
        let messages = crate::rate_limit::TokenBuckets::new(
            config.messages_per_sec_per_user,
            std::time::Duration::from_secs(1),
        );
        let live = Arc::new(Self {
            config,
            chat,
            bus: bus.clone(),
            registry: Mutex::new(Registry::default()),
            messages,
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

    /// The chat use cases behind the rooms (for history pages).
    pub fn chat(&self) -> &Arc<dyn ChatService> {
        &self.chat
    }

    /// Ends every subscription with [`Ended::ShuttingDown`] and stops the dispatcher.
    pub fn close_all(&self) {
        self.closing.cancel();
        for subscriber in self.lock().subscribers.values() {
            subscriber.ended.end(Ended::ShuttingDown);
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
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

    /// A new subscriber for `owner`. [`LiveError::Full`] at the instance's cap and
    /// while shutting down; [`LiveError::TooManyForUser`], [`LiveError::TooManyFromClient`]
    /// at the owner's. It ends by itself ([`Ended::Expired`]) when the owner's token
    /// expires.
    pub fn connect(self: &Arc<Self>, owner: Owner) -> Result<Subscription, LiveError> {
        // Count first, then check: concurrent connects cannot slip past the cap together.
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.config.queue.max(1));
        let ended = Arc::new(EndSignal::default());
        let mut registry = self.lock();
        let refused = if open > self.config.max_subscribers || self.is_closing() {
            // Checked under the lock `close_all` sweeps with: a subscriber is either
            // refused here or registered before the sweep, never missed by it.
            Some(LiveError::Full)
        } else if registry
            .users
            .get(&owner.principal.user_id)
            .is_some_and(|n| *n >= self.config.max_per_user)
        {
            Some(LiveError::TooManyForUser(self.config.max_per_user))
        } else if registry
            .clients
            .get(&owner.client)
            .is_some_and(|n| *n >= self.config.max_per_client)
        {
            Some(LiveError::TooManyFromClient(self.config.max_per_client))
        } else {
            None
        };
        if let Some(refused) = refused {
            drop(registry);
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(refused);
        }
        *registry.users.entry(owner.principal.user_id).or_default() += 1;
        *registry.clients.entry(owner.client.clone()).or_default() += 1;
        registry.subscribers.insert(
            id,
            Subscriber {
                deliveries: tx,
                ended: ended.clone(),
                topics: HashSet::new(),
                owner: owner.principal,
                session: owner.session,
                client: owner.client,
            },
        );
        drop(registry);
        // The session lasts as long as its token: past `exp` it proves nothing.
        let lifetime = owner.expires_at - time::OffsetDateTime::now_utc();
        let lifetime = std::time::Duration::try_from(lifetime).unwrap_or_default();
        let expiry = ended.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(lifetime) => { expiry.end(Ended::Expired); }
                () = expiry.token.cancelled() => {}
            }
        });
        Ok(Subscription {
            live: self.clone(),
            id,
            deliveries: rx,
            ended,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn dispatch(&self, event: Event) {
        if event.is_gap() {
            // Live messages may have been lost: room members rejoin with `since`, which
            // reads the gap from storage. So may an account change: whoever follows
            // another user's topic reconnects, and is authorized afresh.
            for subscriber in self.lock().subscribers.values() {
                let own = subscriber.owner.user_id;
                if subscriber.topics.iter().any(|t| match t {
                    Topic::Room(_) => true,
                    Topic::User(user) => *user != own,
                    _ => false,
                }) {
                    subscriber.ended.end(Ended::Gap);
                }
            }
            return;
        }
        if event.topic == Topic::Accounts {
            if event.kind == EventKind::SessionsEnded {
                let ended: HashSet<SessionId> = crate::sessions::ended_sessions(&event)
                    .into_iter()
                    .collect();
                self.end_sessions(|session| ended.contains(&session));
            } else {
                self.account_changed(&event);
            }
            return;
        }
        let delivery = if event.kind == EventKind::ChatMessage {
            // The event carries the whole message when it fits on the bus; a longer one
            // carries its id, and is loaded once per instance, not once per subscriber.
            let carried = event
                .data
                .get("message")
                .and_then(crate::chat::message_from_event);
            let message = match carried {
                Some(message) => message,
                None => {
                    let Some(id) = event.data["id"]
                        .as_str()
                        .and_then(|s| s.parse::<MessageId>().ok())
                    else {
                        return;
                    };
                    match self.chat.get(id).await {
                        Ok(message) => message,
                        Err(error) => {
                            tracing::warn!(%error, "an announced chat message cannot be loaded");
                            return;
                        }
                    }
                }
            };
            Delivery::Message {
                message: Arc::new(message),
                client_id: event.data["client_id"].as_str().map(Arc::from),
            }
        } else {
            Delivery::Event(Arc::new(event.clone()))
        };
        for subscriber in self.lock().subscribers.values() {
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

impl Live {
    /// Ends every subscriber whose session `ended` says has ended.
    fn end_sessions(&self, ended: impl Fn(SessionId) -> bool) {
        for subscriber in self.lock().subscribers.values() {
            if ended(subscriber.session) {
                subscriber.ended.end(Ended::Revoked);
            }
        }
    }

    /// Checks every subscriber against `revocations` each `every`, until the hub
    /// closes: a session whose ending reached this instance by a reload (after a bus
    /// gap) rather than by its event is closed too.
    pub fn watch_revocations(
        self: &Arc<Self>,
        revocations: Arc<crate::sessions::Revocations>,
        every: std::time::Duration,
    ) {
        let live = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = live.closing.cancelled() => return,
                    _ = tick.tick() => {
                        if !revocations.is_empty() {
                            live.end_sessions(|session| revocations.is_ended(session));
                        }
                    }
                }
            }
        });
    }

    /// Applies an account change to this instance's sessions of that account: a deleted
    /// account's sessions end; a new role is what they may follow from now on.
    fn account_changed(&self, event: &Event) {
        let Some(user) = event.data["user_id"]
            .as_str()
            .and_then(|s| s.parse::<UserId>().ok())
        else {
            return;
        };
        let role = event.data["role"]
            .as_str()
            .and_then(|r| Role::parse(r).ok());
        let mut registry = self.lock();
        for subscriber in registry.subscribers.values_mut() {
            if subscriber.owner.user_id != user {
                continue;
            }
            match role {
                None => {
                    subscriber.ended.end(Ended::Revoked);
                }
                Some(role) => {
                    subscriber.owner.role = role;
                    if role != Role::Admin {
                        subscriber.topics.retain(|t| {
                            let keep = !matches!(t, Topic::User(other) if *other != user);
                            if !keep {
                                self.bus.unfollow(t);
                            }
                            keep
                        });
                    }
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
        let topic = Topic::Room(RoomName::parse(room).map_err(Error::from)?);
        let following = self.follow_topic(topic.clone())?;
        let newly = following.is_some();
        if let Some(following) = following {
            // In force before storage is read: nothing published after the read is
            // missed by this instance.
            if let Err(error) = following.await {
                self.unfollow(&topic);
                return Err(error.into());
            }
        }
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
        RoomName::parse(room).is_ok_and(|name| self.unfollow(&Topic::Room(name)))
    }

    /// Sends a message to a joined room. It comes back through the bus like everyone
    /// else's, tagged with `client_id`.
    ///
    /// [`LiveError::RateLimited`] past the owner's message budget, which all of their
    /// subscribers share.
    pub async fn send(
        &self,
        room: &str,
        text: &str,
        client_id: Option<String>,
    ) -> Result<ChatMessage, LiveError> {
        let topic = RoomName::parse(room).map(Topic::Room).ok();
        let actor = {
            let registry = self.live.lock();
            let Some(me) = registry.subscribers.get(&self.id) else {
                return Err(LiveError::NotJoined { room: room.into() });
            };
            if !topic.as_ref().is_some_and(|t| me.topics.contains(t)) {
                return Err(LiveError::NotJoined { room: room.into() });
            }
            me.owner
        };
        self.live
            .messages
            .check(&[&actor.user_id.to_string()])
            .map_err(|_| LiveError::RateLimited)?;
        Ok(self.live.chat.send(actor, room, text, client_id).await?)
    }

    /// Follows `posts` (anyone) or `user:{id}` (that user or an admin, by the role the
    /// session holds now). Returns the topic in the canonical form events are published
    /// under.
    pub fn subscribe(&self, topic: &str) -> Result<Topic, LiveError> {
        let Some(actor) = self.live.lock().subscribers.get(&self.id).map(|s| s.owner) else {
            return Err(LiveError::Full);
        };
        let canonical = match topic.parse::<Topic>() {
            Ok(Topic::Posts) => Topic::Posts,
            Ok(Topic::User(user)) => {
                if !actor.may_manage(user) {
                    return Err(Error::Forbidden("only that user or an admin may subscribe").into());
                }
                Topic::User(user)
            }
            // A user topic with something else than an id is a mistake in the id.
            Err(invalid) if topic.starts_with("user:") => return Err(Error::from(invalid).into()),
            // Rooms are joined, not subscribed to; the rest is not for subscribers.
            _ => return Err(LiveError::UnknownTopic),
        };
        if let Some(following) = self.follow_topic(canonical.clone())? {
            // Live updates have no resume: what is published while the bus sets the
            // interest up is not awaited for.
            tokio::spawn(async move {
                if let Err(error) = following.await {
                    tracing::warn!(%error, "following a topic on the bus failed");
                }
            });
        }
        Ok(canonical)
    }

    /// Adds the topic to this subscriber's, and when it is new to it, tells the bus,
    /// under the same lock every removal takes: a follow and its unfollow reach the
    /// bus in the order the registry saw them. The future says when the bus delivers it.
    fn follow_topic(&self, topic: Topic) -> Result<Option<domain::events::Following>, LiveError> {
        let mut registry = self.live.lock();
        let Some(me) = registry.subscribers.get_mut(&self.id) else {
            return Ok(None);
        };
        if me.topics.contains(&topic) {
            return Ok(None);
        }
        if me.topics.len() >= self.live.config.max_subscriptions {
            return Err(LiveError::TooManySubscriptions(
                self.live.config.max_subscriptions,
            ));
        }
        let following = self.live.bus.follow(&topic);
        me.topics.insert(topic);
        Ok(Some(following))
    }

    fn unfollow(&self, topic: &Topic) -> bool {
        let mut registry = self.live.lock();
        let removed = registry
            .subscribers
            .get_mut(&self.id)
            .is_some_and(|me| me.topics.remove(topic));
        if removed {
            self.live.bus.unfollow(topic);
        }
        removed
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut registry = self.live.lock();
        if let Some(gone) = registry.subscribers.remove(&self.id) {
            for topic in &gone.topics {
                self.live.bus.unfollow(topic);
            }
            if let Some(n) = registry.users.get_mut(&gone.owner.user_id) {
                *n -= 1;
                if *n == 0 {
                    registry.users.remove(&gone.owner.user_id);
                }
            }
            if let Some(n) = registry.clients.get_mut(&gone.client) {
                *n -= 1;
                if *n == 0 {
                    registry.clients.remove(&gone.client);
                }
            }
        }
        drop(registry);
        self.live.open.fetch_sub(1, Ordering::Relaxed);
        // Stops the expiry timer with the session.
        self.ended.token.cancel();
    }
}

#[cfg(test)]
mod follow_tests {
    use std::collections::HashMap;

    use async_trait::async_trait;
    use domain::chat::ChatMessage;
    use domain::events::{EventStream, Following};
    use domain::{Cursor, Limit, Page};

    use super::*;

    /// A bus that only counts follows per topic.
    #[derive(Default)]
    struct CountingBus {
        follows: Mutex<HashMap<Topic, i64>>,
    }

    impl CountingBus {
        fn count(&self, topic: &Topic) -> i64 {
            self.follows
                .lock()
                .unwrap()
                .get(topic)
                .copied()
                .unwrap_or(0)
        }
    }

    #[async_trait]
    impl EventBus for CountingBus {
        async fn publish(&self, _: &Event) -> Result<(), Error> {
            Ok(())
        }
        fn subscribe(&self) -> EventStream {
            Box::pin(futures_util::stream::pending())
        }
        fn follow(&self, topic: &Topic) -> Following {
            *self
                .follows
                .lock()
                .unwrap()
                .entry(topic.clone())
                .or_default() += 1;
            Box::pin(std::future::ready(Ok(())))
        }
        fn unfollow(&self, topic: &Topic) {
            *self
                .follows
                .lock()
                .unwrap()
                .entry(topic.clone())
                .or_default() -= 1;
        }
    }

    /// Rooms whose name starts with `broken` fail to load.
    struct Rooms;

    #[async_trait]
    impl ChatService for Rooms {
        async fn send(
            &self,
            _: Principal,
            _: &str,
            _: &str,
            _: Option<String>,
        ) -> Result<ChatMessage, Error> {
            Err(Error::internal("not in this test"))
        }
        async fn join(&self, room: &str, _: Option<MessageId>) -> Result<Since, Error> {
            if room.starts_with("broken") {
                return Err(Error::unavailable("storage away"));
            }
            Ok(Since {
                messages: Vec::new(),
                truncated: false,
            })
        }
        async fn get(&self, _: MessageId) -> Result<ChatMessage, Error> {
            Err(Error::internal("not in this test"))
        }
        async fn history(
            &self,
            _: &str,
            _: Limit,
            _: Option<Cursor>,
        ) -> Result<Page<ChatMessage>, Error> {
            Err(Error::internal("not in this test"))
        }
    }

    fn owner() -> Owner {
        Owner {
            principal: Principal {
                user_id: UserId::generate(),
                role: Role::User,
            },
            session: SessionId::generate(),
            client: ClientKey::of(None),
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_ended_elsewhere_closes_its_subscribers_and_no_others() {
        let live = Live::start(
            Arc::new(Rooms),
            Arc::new(CountingBus::default()),
            LiveConfig::default(),
        );
        // Learnt of by a reload, say: no event reaches the hub, only the set changes.
        let revocations = Arc::new(crate::sessions::Revocations::new(
            Arc::new(domain::auth::MockRefreshTokenStore::new()),
            std::time::Duration::from_secs(60),
        ));
        live.watch_revocations(revocations.clone(), std::time::Duration::from_secs(1));
        let ended = owner();
        let session = ended.session;
        let a = live.connect(ended).unwrap();
        let b = live.connect(owner()).unwrap();
        revocations.announce(UserId::generate(), &[session]).await;
        tokio::time::timeout(std::time::Duration::from_secs(2), a.ending())
            .await
            .expect("closed within a sweep");
        assert_eq!(a.ended(), Some(Ended::Revoked));
        assert_eq!(b.ended(), None);
    }

    #[tokio::test]
    async fn a_sessions_ended_event_closes_only_the_sessions_it_names() {
        let live = Live::start(
            Arc::new(Rooms),
            Arc::new(CountingBus::default()),
            LiveConfig::default(),
        );
        let ended = owner();
        let session = ended.session;
        let a = live.connect(ended).unwrap();
        let b = live.connect(owner()).unwrap();
        live.dispatch(crate::sessions::sessions_ended(
            UserId::generate(),
            &[session],
        ))
        .await;
        assert_eq!(a.ended(), Some(Ended::Revoked));
        assert_eq!(b.ended(), None, "an ended session is not an account change");
    }

    #[tokio::test]
    async fn every_follow_the_hub_tells_the_bus_is_matched_by_one_unfollow() {
        let bus = Arc::new(CountingBus::default());
        let live = Live::start(Arc::new(Rooms), bus.clone(), LiveConfig::default());
        let room = Topic::Room(RoomName::parse("general").unwrap());
        let (a, b) = (
            live.connect(owner()).unwrap(),
            live.connect(owner()).unwrap(),
        );
        a.join("general", None).await.unwrap();
        a.join("general", None).await.unwrap(); // again: no second follow
        b.join("general", None).await.unwrap();
        assert_eq!(bus.count(&room), 2);
        assert!(a.leave("general"));
        assert!(!a.leave("general"));
        assert_eq!(bus.count(&room), 1);
        // A join that fails takes its follow back.
        assert!(b.join("broken", None).await.is_err());
        assert_eq!(
            bus.count(&Topic::Room(RoomName::parse("broken").unwrap())),
            0
        );
        b.subscribe("posts").unwrap();
        assert_eq!(bus.count(&Topic::Posts), 1);
        // A subscriber that goes unfollows everything it followed.
        drop(b);
        assert_eq!((bus.count(&room), bus.count(&Topic::Posts)), (0, 0));
        drop(a);
        live.close_all();
    }
}
