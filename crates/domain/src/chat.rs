//! Chat: rooms, messages, and where messages are kept.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::users::{User, UserId};
use crate::{Cursor, Error, FieldError, Limit, Page};

crate::id::uuid_id!(
    /// A chat message's identity; UUID v7, so ids follow sending order.
    MessageId
);

/// A room name: 1 to 64 characters of `[a-z0-9-_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

impl RoomName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let ok = (1..=Self::MAX_CHARS).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new(
                "room",
                "must be 1 to 64 characters of a-z, 0-9, - and _",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Message text: 1 to 4,000 characters after trimming, no control characters but line
/// breaks and tabs (a NUL would not even fit in a Postgres `text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let text = raw.trim();
        let chars = text.chars().count();
        if chars == 0 {
            return Err(FieldError::new("text", "must not be empty"));
        }
        if chars > Self::MAX_CHARS {
            return Err(FieldError::new("text", "must be at most 4000 characters"));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(FieldError::new(
                "text",
                "must not contain control characters (line breaks and tabs are fine)",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who wrote a message, as shown to readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub id: UserId,
    pub name: String,
}

/// A message in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: MessageId,
    pub room: RoomName,
    pub author: Author,
    pub text: MessageText,
    pub sent_at: OffsetDateTime,
}

impl ChatMessage {
    pub fn new(room: RoomName, author: &User, text: MessageText) -> Self {
        Self {
            id: MessageId::generate(),
            room,
            author: Author {
                id: author.id,
                name: author.name.as_str().to_owned(),
            },
            text,
            sent_at: crate::now(),
        }
    }

    /// This message's position in its room's newest-first listing.
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.sent_at, self.id.as_uuid())
    }
}

/// Messages after a point, for a client that reconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// Oldest first.
    pub messages: Vec<ChatMessage>,
    /// More were missed than were returned; the client should page the REST history.
    pub truncated: bool,
}

impl Since {
    /// The first `bound` of `newer` (oldest first; fetch one more than `bound`, so a
    /// longer list says that more were missed).
    pub fn bounded(mut newer: Vec<ChatMessage>, bound: u32) -> Self {
        let truncated = newer.len() > bound as usize;
        newer.truncate(bound as usize);
        Self {
            messages: newer,
            truncated,
        }
    }
}

/// Where chat messages are kept.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ChatRepository: Send + Sync + 'static {
    /// Stores a message.
    async fn append(&self, message: &ChatMessage) -> Result<(), Error>;

    /// MUST return [`Error::NotFound`] for an unknown id.
    async fn get(&self, id: &MessageId) -> Result<ChatMessage, Error>;

    /// The latest `count` messages of a room, in storage order (oldest first).
    async fn recent(&self, room: &RoomName, count: u32) -> Result<Vec<ChatMessage>, Error>;

    /// The messages of a room stored after `after`, in storage order, at most `bound`;
    /// `truncated` when more exist (the first `bound` are returned).
    ///
    /// MUST follow the order messages were stored in, not their ids: ids come from the
    /// clocks of several instances and may disagree with it. An unknown `after`
    /// replays the room from its start (bounded).
    async fn since(&self, room: &RoomName, after: &MessageId, bound: u32) -> Result<Since, Error>;

    /// A room's messages newest first `(sent_at DESC, id DESC)`.
    async fn page(
        &self,
        room: &RoomName,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<ChatMessage>, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_short_lowercase_slugs() {
        for ok in ["general", "a", "team-7_x", &"r".repeat(64)] {
            assert!(RoomName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "General", "with space", "ü", &"r".repeat(65), "a/b"] {
            assert_eq!(RoomName::parse(bad).unwrap_err().field, "room", "{bad}");
        }
    }

    #[test]
    fn message_text_is_trimmed_and_bounded() {
        assert_eq!(MessageText::parse("  hi ").unwrap().as_str(), "hi");
        assert!(MessageText::parse(&"x".repeat(4000)).is_ok());
        assert!(MessageText::parse(&"x".repeat(4001)).is_err());
        assert!(MessageText::parse("   ").is_err());
    }

    #[test]
    fn message_text_refuses_control_characters_but_line_breaks_and_tabs() {
        for bad in [
            "a\0b",
            "bell\u{7}",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "c1\u{85}x",
        ] {
            let err = MessageText::parse(bad).unwrap_err();
            assert_eq!(err.field, "text", "{bad:?}");
        }
        for good in ["two\nlines", "crlf\r\nline", "a\tb", "bidi \u{202e} text"] {
            assert!(MessageText::parse(good).is_ok(), "{good:?}");
        }
    }
}
