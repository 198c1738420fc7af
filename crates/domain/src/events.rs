//! Domain events and the bus that carries them to every instance.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;

use async_trait::async_trait;
use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::chat::RoomName;
use crate::users::UserId;
use crate::{Error, FieldError};

/// The largest event, serialized as JSON, that every bus accepts: Postgres `NOTIFY`
/// payloads must stay under 8,000 bytes, and code that works on one bus must work on
/// all of them.
pub const MAX_EVENT_BYTES: usize = 7900;

/// Where an event is published, and what a subscriber follows. On the wire (the bus,
/// the live protocols) it is its [`Display`](fmt::Display) form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Topic {
    /// Every post's creation, change and deletion: `posts`.
    Posts,
    /// One user's posts: `user:{id}`.
    User(UserId),
    /// A chat room's messages: `room:{name}`.
    Room(RoomName),
    /// Account changes (a deletion, a new role, ended sessions): `accounts`. Never delivered to
    /// subscribers; each instance applies them to its live sessions.
    Accounts,
    /// Every topic at once: `*`, carried only by [`Event::gap`].
    All,
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Posts => f.write_str("posts"),
            Self::User(id) => write!(f, "user:{id}"),
            Self::Room(room) => write!(f, "room:{}", room.as_str()),
            Self::Accounts => f.write_str("accounts"),
            Self::All => f.write_str("*"),
        }
    }
}

impl FromStr for Topic {
    type Err = FieldError;

    fn from_str(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "posts" => Ok(Self::Posts),
            "accounts" => Ok(Self::Accounts),
            "*" => Ok(Self::All),
            _ => {
                if let Some(id) = raw.strip_prefix("user:") {
                    id.parse()
                        .map(Self::User)
                        .map_err(|_| FieldError::new("topic", "user:{id} needs a user id"))
                } else if let Some(room) = raw.strip_prefix("room:") {
                    RoomName::parse(room)
                        .map(Self::Room)
                        .map_err(|e| FieldError::new("topic", e.message))
                } else {
                    Err(FieldError::new(
                        "topic",
                        "must be `posts`, `user:{id}` or `room:{name}`",
                    ))
                }
            }
        }
    }
}

impl From<Topic> for String {
    fn from(topic: Topic) -> Self {
        topic.to_string()
    }
}

impl TryFrom<String> for Topic {
    type Error = FieldError;

    fn try_from(raw: String) -> Result<Self, FieldError> {
        raw.parse()
    }
}

/// What happened. On the wire it is its [`EventKind::as_str`] form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum EventKind {
    PostCreated,
    PostUpdated,
    PostDeleted,
    /// A chat message was sent; the event carries its id, not the message.
    ChatMessage,
    /// An account was deleted or changed role.
    AccountChanged,
    /// Sessions ended: their access tokens are refused from now on.
    SessionsEnded,
    /// A stream may have lost events here (see [`Event::gap`]).
    Gap,
}

impl EventKind {
    const ALL: [Self; 7] = [
        Self::PostCreated,
        Self::PostUpdated,
        Self::PostDeleted,
        Self::ChatMessage,
        Self::AccountChanged,
        Self::SessionsEnded,
        Self::Gap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PostCreated => "post.created",
            Self::PostUpdated => "post.updated",
            Self::PostDeleted => "post.deleted",
            Self::ChatMessage => "chat.message",
            Self::AccountChanged => "account.changed",
            Self::SessionsEnded => "sessions.ended",
            Self::Gap => "bus.gap",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = FieldError;

    fn from_str(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| FieldError::new("name", "is not a known event"))
    }
}

impl From<EventKind> for &'static str {
    fn from(kind: EventKind) -> Self {
        kind.as_str()
    }
}

impl TryFrom<String> for EventKind {
    type Error = FieldError;

    fn try_from(raw: String) -> Result<Self, FieldError> {
        raw.parse()
    }
}

/// Something that happened, for whoever listens on its topic. Payloads stay small (ids
/// and a few fields): see [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub topic: Topic,
    /// Serialized as `name`, as every instance on the bus expects.
    #[serde(rename = "name")]
    pub kind: EventKind,
    pub data: serde_json::Value,
}

/// Every event published on any instance sharing the bus, from now on.
pub type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

impl Event {
    /// The marker for a possible gap in a stream (it fell behind, or the bus
    /// reconnected): it concerns every topic.
    pub fn gap() -> Self {
        Self {
            topic: Topic::All,
            kind: EventKind::Gap,
            data: serde_json::Value::Null,
        }
    }

    pub fn is_gap(&self) -> bool {
        self.kind == EventKind::Gap
    }
}

/// Completes when a [`EventBus::follow`] is in force.
pub type Following = Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>>;

/// Publishes events to every subscriber, on this instance and on every other instance
/// sharing the bus.
///
/// A bus may deliver every topic to every instance (memory, Postgres), or only the
/// topics an instance follows (NATS): consumers call [`EventBus::follow`] and
/// [`EventBus::unfollow`] as their interest starts and ends, and a bus of the first kind
/// ignores them. [`Topic::Accounts`] is always delivered.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// MUST deliver `event` to every current subscriber, including this instance's.
    /// MUST refuse with [`Error::Validation`] an event whose JSON is longer than
    /// [`MAX_EVENT_BYTES`], and MUST accept every smaller one.
    async fn publish(&self, event: &Event) -> Result<(), Error>;

    /// A stream of all events published after this call. A subscriber too slow to
    /// keep up MAY miss events; where it may have, the stream MUST yield
    /// [`Event::gap`], so consumers that must not lose data (chat) know to fetch what
    /// they missed from storage.
    fn subscribe(&self) -> EventStream;

    /// Starts delivering `topic` to this instance's [`EventBus::subscribe`] streams.
    /// Counted: the topic stays delivered until it is unfollowed as many times as it was
    /// followed. The interest is registered at the call; the future completes once
    /// every event published on the topic after that is delivered here, so a consumer
    /// that awaits it before reading storage misses nothing in between.
    fn follow(&self, topic: &Topic) -> Following {
        let _ = topic;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Ends one [`EventBus::follow`] of `topic`. MUST ignore a topic not followed.
    fn unfollow(&self, topic: &Topic) {
        let _ = topic;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn topics_and_kinds_read_back_what_they_write() {
        let user = UserId::generate();
        for topic in [
            Topic::Posts,
            Topic::User(user),
            Topic::Room(RoomName::parse("general").unwrap()),
            Topic::Accounts,
            Topic::All,
        ] {
            assert_eq!(topic.to_string().parse::<Topic>().unwrap(), topic);
        }
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
        }
        for bad in [
            "",
            "user:",
            "user:42",
            "room:",
            "room:UPPER",
            "post",
            "rooms:x",
        ] {
            assert!(bad.parse::<Topic>().is_err(), "{bad}");
        }
        assert!("post.exploded".parse::<EventKind>().is_err());
    }

    #[test]
    fn the_wire_form_is_unchanged() {
        let event = Event {
            topic: Topic::Posts,
            kind: EventKind::PostCreated,
            data: serde_json::json!({"id": 1}),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"topic": "posts", "name": "post.created", "data": {"id": 1}})
        );
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
    }
}
