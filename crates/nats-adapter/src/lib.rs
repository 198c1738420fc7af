//! [`EventBus`] over NATS core publish/subscribe, through the official `async-nats`
//! client.
//!
//! **One subject per topic** (`live.posts`, `live.user.<id>`, `live.room.<name>`,
//! `live.accounts`), and an instance subscribes to a subject only while one of its
//! subscribers follows the topic: an event reaches the instances that need it and no
//! others. Events carry what they announce (chat messages whole, when they fit), so
//! delivering one costs no database read. Postgres stays the source of truth: NATS
//! core keeps nothing, and what an instance misses while disconnected it is told it
//! may have missed ([`Event::gap`]), so chat clients resume from storage with `since`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::Error;
use domain::events::{Event, EventBus, EventStream, Following, MAX_EVENT_BYTES, Topic};
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// How long following a topic may take before it counts as failed (NATS away).
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a publish may wait for room in the client's queue. While NATS is away the
/// client stops draining it; a write that has committed must not hang on the announcement
/// (receivers are told of the gap when NATS is back).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// Subjects one instance subscribes to at most. Each live subscriber may follow a bounded
/// number of topics (`LIVE_MAX_SUBSCRIPTIONS` per connection, connections capped per
/// address and account); this bounds their sum, so the subscriptions an instance holds
/// on the server cannot grow without limit. Past it, following a new topic fails.
pub const MAX_SUBJECTS: usize = 50_000;

/// Events queued for this instance's subscribers (the live hub) before a slow one is
/// told it lagged.
const LOCAL_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {url}: {reason}")]
pub struct ConnectError {
    /// Without its credentials.
    pub url: String,
    pub reason: String,
}

/// `url` without the user info (`nats://user:pass@host` → `nats://host`).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The bus, cheap to clone. Subscriptions end when the last clone is dropped.
#[derive(Clone)]
pub struct NatsEventBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    local: broadcast::Sender<Event>,
    follows: Mutex<HashMap<Topic, Follow>>,
}

/// One subject this instance subscribes to, and how many follow it here.
struct Follow {
    count: usize,
    state: watch::Receiver<State>,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Pending,
    Ready,
    Failed(String),
}

impl Drop for Inner {
    fn drop(&mut self) {
        let follows = self
            .follows
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for follow in follows.values() {
            follow.task.abort();
        }
    }
}

/// The subject of a topic; `None` for the gap marker's, which is never published.
fn subject(topic: &Topic) -> Option<String> {
    match topic {
        Topic::Posts => Some("live.posts".into()),
        Topic::User(id) => Some(format!("live.user.{id}")),
        // Room names are a-z, 0-9, - and _: nothing NATS reads as a token or wildcard.
        Topic::Room(room) => Some(format!("live.room.{}", room.as_str())),
        Topic::Accounts => Some("live.accounts".into()),
        Topic::All => None,
    }
}

impl NatsEventBus {
    /// Connects to `url` (for example `nats://127.0.0.1:4222`), failing within 5 s with
    /// the reason when no server answers. Later disconnects are retried for ever; each
    /// reconnection is announced to subscribers as a possible gap.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        let failed = |reason: String| ConnectError {
            url: redact(url),
            reason: reason.replace(url, &redact(url)),
        };
        let local = broadcast::channel(LOCAL_CAPACITY).0;
        let announcer = local.clone();
        let away = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let options = async_nats::ConnectOptions::new()
            .name("users-service")
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let announcer = announcer.clone();
                let away = away.clone();
                async move {
                    use std::sync::atomic::Ordering::Relaxed;
                    match event {
                        // Whatever was published while we were away did not reach us.
                        // (The first connection missed nothing: nothing came before.)
                        async_nats::Event::Connected => {
                            if away.swap(false, Relaxed) {
                                tracing::info!(
                                    "NATS reconnected: subscribers may have missed events"
                                );
                                let _ = announcer.send(Event::gap());
                            }
                        }
                        async_nats::Event::Disconnected => {
                            away.store(true, Relaxed);
                            tracing::warn!("NATS disconnected: reconnecting");
                        }
                        // The client dropped messages of a subscription it could not
                        // hand over fast enough.
                        async_nats::Event::SlowConsumer(_) => {
                            tracing::warn!(
                                "NATS slow consumer: subscribers may have missed events"
                            );
                            let _ = announcer.send(Event::gap());
                        }
                        other => tracing::debug!(event = %other, "NATS"),
                    }
                }
            });
        let client = tokio::time::timeout(
            Duration::from_secs(5),
            async_nats::connect_with_options(url, options),
        )
        .await
        .map_err(|_| failed("no answer within 5 s".into()))?
        .map_err(|e| failed(e.to_string()))?;
        let bus = Self {
            inner: Arc::new(Inner {
                client,
                local,
                follows: Mutex::new(HashMap::new()),
            }),
        };
        // Account changes concern every instance, always.
        bus.follow(&Topic::Accounts)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(bus)
    }

    fn follows(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, Follow>> {
        self.inner
            .follows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many subjects this instance subscribes to now.
    pub fn subscribed(&self) -> usize {
        self.follows().len()
    }

    /// Subscribes to `subject` and forwards what arrives; `ready` says when the server
    /// has the subscription (a flush after it), so nothing published later is missed.
    fn forward(&self, subject: String, ready: watch::Sender<State>) -> JoinHandle<()> {
        let client = self.inner.client.clone();
        let local = self.inner.local.clone();
        tokio::spawn(async move {
            let mut messages = match client.subscribe(subject.clone()).await {
                Ok(messages) => messages,
                Err(error) => {
                    let _ = ready.send(State::Failed(error.to_string()));
                    return;
                }
            };
            // A round trip: the server handles one connection's commands in order, so
            // once it answers a request sent after the SUB, the subscription is in force.
            // A request nobody serves is answered at once with "no responders".
            let probe = format!("_probe.{}", client.new_inbox());
            match client.request(probe, Vec::new().into()).await {
                Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {
                    let _ = ready.send(State::Ready);
                }
                Ok(_) => {
                    let _ = ready.send(State::Ready);
                }
                Err(error) => {
                    let _ = ready.send(State::Failed(error.to_string()));
                    return;
                }
            }
            while let Some(message) = messages.next().await {
                match serde_json::from_slice::<Event>(&message.payload) {
                    Ok(event) => {
                        let _ = local.send(event);
                    }
                    Err(error) => tracing::warn!(%error, subject, "unreadable event on NATS"),
                }
            }
            // The subscription ended: the next follow of this topic subscribes afresh.
            let _ = ready.send(State::Failed("the subscription ended".into()));
        })
    }
}

#[async_trait]
impl EventBus for NatsEventBus {
    async fn publish(&self, event: &Event) -> Result<(), Error> {
        let payload = serde_json::to_vec(event).map_err(Error::internal)?;
        if payload.len() > MAX_EVENT_BYTES {
            return Err(domain::FieldError::new("event", "is too large for the event bus").into());
        }
        let Some(subject) = subject(&event.topic) else {
            return Err(Error::internal("the gap marker is not published"));
        };
        let client = &self.inner.client;
        if client.connection_state() != async_nats::connection::State::Connected {
            return Err(Error::unavailable("NATS is not connected"));
        }
        tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(subject, payload.into()))
            .await
            .map_err(|_| Error::unavailable("NATS is not taking publications"))?
            .map_err(|e| Error::unavailable(format!("publishing on NATS: {e}")))
    }

    fn subscribe(&self) -> EventStream {
        memory_adapter::broadcast_stream(self.inner.local.subscribe())
    }

    fn follow(&self, topic: &Topic) -> Following {
        let Some(subject) = subject(topic) else {
            return Box::pin(std::future::ready(Ok(())));
        };
        let mut state = {
            let mut follows = self.follows();
            let full = follows.len() >= MAX_SUBJECTS;
            match follows.get_mut(topic) {
                Some(follow) => {
                    follow.count += 1;
                    if matches!(*follow.state.borrow(), State::Failed(_)) {
                        // The last try failed (NATS was away): try again.
                        let (ready, state) = watch::channel(State::Pending);
                        follow.task.abort();
                        follow.task = self.forward(subject, ready);
                        follow.state = state;
                    }
                    follow.state.clone()
                }
                None if full => {
                    return Box::pin(std::future::ready(Err(Error::unavailable(
                        "this instance follows as many topics as it may",
                    ))));
                }
                None => {
                    let (ready, state) = watch::channel(State::Pending);
                    let task = self.forward(subject, ready);
                    follows.insert(
                        topic.clone(),
                        Follow {
                            count: 1,
                            state: state.clone(),
                            task,
                        },
                    );
                    state
                }
            }
        };
        Box::pin(async move {
            let settled =
                tokio::time::timeout(FOLLOW_TIMEOUT, state.wait_for(|s| *s != State::Pending))
                    .await;
            match settled {
                Ok(Ok(settled)) => match &*settled {
                    State::Failed(reason) => Err(Error::unavailable(format!(
                        "subscribing on NATS failed: {reason}"
                    ))),
                    _ => Ok(()),
                },
                Ok(Err(_)) => Err(Error::unavailable("the NATS subscription ended")),
                Err(_) => Err(Error::unavailable(
                    "NATS did not confirm the subscription within 5 s",
                )),
            }
        })
    }

    fn unfollow(&self, topic: &Topic) {
        let mut follows = self.follows();
        let Some(follow) = follows.get_mut(topic) else {
            return;
        };
        follow.count -= 1;
        if follow.count == 0
            && let Some(gone) = follows.remove(topic)
        {
            // Dropping the subscriber unsubscribes on the server.
            gone.task.abort();
        }
    }
}
