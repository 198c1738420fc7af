//! Chat rooms: sending, history, and the events that carry messages to every instance.

use std::sync::Arc;

use async_trait::async_trait;
use domain::auth::Principal;
use domain::chat::{ChatMessage, ChatRepository, MessageId, MessageText, RoomName, Since};
use domain::events::{Event, EventBus, EventKind, Topic};
use domain::users::UserRepository;
use domain::{Cursor, Error, Limit, Page, ValidationErrors};

/// How many messages a join shows, and how many a resume may replay.
pub const HISTORY: u32 = 50;
pub const RESUME_BOUND: u32 = 500;

/// The chat use cases.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ChatService: Send + Sync + 'static {
    /// Stores a message by `actor` and announces it on the room's topic, with the
    /// sender's own `client_id` (≤ 64 characters) so their clients can match the echo.
    async fn send(
        &self,
        actor: Principal,
        room: &str,
        text: &str,
        client_id: Option<String>,
    ) -> Result<ChatMessage, Error>;

    /// What a joining client sees: the last [`HISTORY`] messages, or with `since` the
    /// messages after it (up to [`RESUME_BOUND`], then `truncated`). Oldest first.
    async fn join(&self, room: &str, since: Option<MessageId>) -> Result<Since, Error>;

    /// One message (to deliver an announced one).
    async fn get(&self, id: MessageId) -> Result<ChatMessage, Error>;

    /// A room's history, newest first.
    async fn history(
        &self,
        room: &str,
        limit: Limit,
        cursor: Option<Cursor>,
    ) -> Result<Page<ChatMessage>, Error>;
}

pub struct Chat {
    messages: Arc<dyn ChatRepository>,
    users: Arc<dyn UserRepository>,
    bus: Arc<dyn EventBus>,
}

impl Chat {
    pub fn new(
        messages: Arc<dyn ChatRepository>,
        users: Arc<dyn UserRepository>,
        bus: Arc<dyn EventBus>,
    ) -> Self {
        Self {
            messages,
            users,
            bus,
        }
    }
}

fn room(raw: &str) -> Result<RoomName, Error> {
    RoomName::parse(raw).map_err(Error::from)
}

#[async_trait]
impl ChatService for Chat {
    async fn send(
        &self,
        actor: Principal,
        room_name: &str,
        text: &str,
        client_id: Option<String>,
    ) -> Result<ChatMessage, Error> {
        let mut errors = ValidationErrors::new();
        let room = errors.collect(RoomName::parse(room_name));
        let text = errors.collect(MessageText::parse(text));
        if client_id.as_ref().is_some_and(|c| c.chars().count() > 64) {
            errors.push(domain::FieldError::new(
                "client_id",
                "must be at most 64 characters",
            ));
        }
        let (Some(room), Some(text)) = (room, text) else {
            return Err(errors.into());
        };
        let author = self.users.get(&actor.user_id).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::Unauthorized("the account no longer exists"),
            other => other,
        })?;
        let message = ChatMessage::new(room, &author, text);
        self.messages.append(&message).await?;
        // The message is stored first: a receiver that misses the event (or the
        // event itself) still finds it by resuming. So a failed announcement is
        // logged, not reported: a retry by the sender would store the message twice.
        let announced = self.bus.publish(&announcement(&message, client_id)).await;
        if let Err(error) = announced {
            tracing::warn!(%error, message_id = %message.id, "announcing a chat message failed");
        }
        Ok(message)
    }

    async fn join(&self, room_name: &str, since: Option<MessageId>) -> Result<Since, Error> {
        let room = room(room_name)?;
        match since {
            Some(after) => self.messages.since(&room, &after, RESUME_BOUND).await,
            None => Ok(Since {
                messages: self.messages.recent(&room, HISTORY).await?,
                truncated: false,
            }),
        }
    }

    async fn get(&self, id: MessageId) -> Result<ChatMessage, Error> {
        self.messages.get(&id).await
    }

    async fn history(
        &self,
        room_name: &str,
        limit: Limit,
        cursor: Option<Cursor>,
    ) -> Result<Page<ChatMessage>, Error> {
        self.messages.page(&room(room_name)?, limit, cursor).await
    }
}

/// The event announcing `message`: the whole message when it fits on the bus (no
/// instance then reads it back from storage), else its id.
fn announcement(message: &ChatMessage, client_id: Option<String>) -> Event {
    let id = message.id.to_string();
    let whole = Event {
        topic: Topic::Room(message.room.clone()),
        kind: EventKind::ChatMessage,
        data: serde_json::json!({
            "id": id,
            "client_id": client_id,
            "message": {
                "id": id,
                "room": message.room.as_str(),
                "author_id": message.author.id.to_string(),
                "author_name": message.author.name,
                "text": message.text.as_str(),
                "sent_at": message.sent_at.unix_timestamp_nanos().to_string(),
            },
        }),
    };
    let fits =
        serde_json::to_vec(&whole).is_ok_and(|json| json.len() <= domain::events::MAX_EVENT_BYTES);
    if fits {
        whole
    } else {
        Event {
            data: serde_json::json!({ "id": id, "client_id": client_id }),
            ..whole
        }
    }
}

/// The message an event carries, if it carries a readable one.
pub(crate) fn message_from_event(data: &serde_json::Value) -> Option<ChatMessage> {
    let text = |key: &str| data.get(key).and_then(serde_json::Value::as_str);
    let nanos: i128 = text("sent_at")?.parse().ok()?;
    Some(ChatMessage {
        id: text("id")?.parse().ok()?,
        room: RoomName::parse(text("room")?).ok()?,
        author: domain::chat::Author {
            id: text("author_id")?.parse().ok()?,
            name: text("author_name")?.to_owned(),
        },
        text: MessageText::parse(text("text")?).ok()?,
        sent_at: time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?,
    })
}

#[cfg(test)]
mod announcement_tests {
    use domain::users::{Email, User, UserName};

    use super::*;

    fn author() -> User {
        User::new(
            UserName::parse("Ada").unwrap(),
            Email::parse("ada@example.com").unwrap(),
        )
    }

    #[test]
    fn a_message_that_fits_travels_whole_and_reads_back_equal() {
        let room = RoomName::parse("general").unwrap();
        let message = ChatMessage::new(room, &author(), MessageText::parse("hi ✓").unwrap());
        let event = announcement(&message, Some("c1".into()));
        assert_eq!(event.data["client_id"], "c1");
        assert_eq!(message_from_event(&event.data["message"]), Some(message));
    }

    #[test]
    fn a_message_too_long_for_the_bus_travels_as_its_id() {
        let room = RoomName::parse("general").unwrap();
        let long = "𝄞".repeat(MessageText::MAX_CHARS);
        let message = ChatMessage::new(room, &author(), MessageText::parse(&long).unwrap());
        let event = announcement(&message, None);
        assert!(event.data.get("message").is_none());
        assert_eq!(event.data["id"], message.id.to_string());
        let json = serde_json::to_vec(&event).unwrap();
        assert!(json.len() <= domain::events::MAX_EVENT_BYTES);
    }
}
