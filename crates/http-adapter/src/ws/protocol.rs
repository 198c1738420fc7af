//! The WebSocket protocol: JSON text frames tagged by `type`.

use domain::chat::ChatMessage;
use domain::events::{EventKind, Topic};
use ports::live::Delivery;
use serde::{Deserialize, Serialize};

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ClientFrame {
    Join {
        room: String,
        /// Resume after this message id instead of the last 50 messages.
        since: Option<String>,
    },
    Leave {
        room: String,
    },
    Message {
        room: String,
        text: String,
        client_id: Option<String>,
    },
    Subscribe {
        topic: String,
    },
    Ping,
}

/// A chat message as the protocol (and the REST history) shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct MessageView {
    pub(crate) id: String,
    pub(crate) room: String,
    pub(crate) author: AuthorView,
    pub(crate) text: String,
    /// RFC 3339, UTC.
    pub(crate) sent_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct AuthorView {
    pub(crate) id: String,
    pub(crate) name: String,
}

impl From<&ChatMessage> for MessageView {
    fn from(m: &ChatMessage) -> Self {
        Self {
            id: m.id.to_string(),
            room: m.room.as_str().to_owned(),
            author: AuthorView {
                id: m.author.id.to_string(),
                name: m.author.name.clone(),
            },
            text: m.text.as_str().to_owned(),
            sent_at: m
                .sent_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerFrame<'a> {
    Joined {
        room: &'a str,
        history: Vec<MessageView>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        history_truncated: bool,
    },
    Left {
        room: &'a str,
    },
    Subscribed {
        topic: &'a Topic,
    },
    Message {
        #[serde(flatten)]
        message: MessageView,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    Event {
        topic: &'a Topic,
        name: EventKind,
        data: &'a serde_json::Value,
    },
    Pong,
    Error {
        code: &'a str,
        message: String,
    },
}

impl<'a> From<&'a Delivery> for ServerFrame<'a> {
    fn from(delivery: &'a Delivery) -> Self {
        match delivery {
            Delivery::Message { message, client_id } => Self::Message {
                message: MessageView::from(&**message),
                client_id: client_id.as_deref().map(str::to_owned),
            },
            Delivery::Event(event) => Self::Event {
                topic: &event.topic,
                name: event.kind,
                data: &event.data,
            },
        }
    }
}

impl ServerFrame<'_> {
    pub(crate) fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"unserialisable frame"}"#.into()
        })
    }
}

pub(crate) fn error(code: &str, message: impl Into<String>) -> String {
    ServerFrame::Error {
        code,
        message: message.into(),
    }
    .to_text()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever a client sends, parsing answers a frame or an error, never a panic.
        #[test]
        fn arbitrary_text_frames_parse_or_fail_cleanly(raw in any::<String>()) {
            let _ = serde_json::from_str::<ClientFrame>(&raw);
        }

        /// Frame-shaped JSON with arbitrary field values.
        #[test]
        fn frame_shaped_json_parses_or_fails_cleanly(
            kind in "(join|leave|message|subscribe|ping|[a-z]{0,8})",
            room in any::<String>(),
            extra in any::<Option<String>>(),
        ) {
            let frame = serde_json::json!({"type": kind, "room": room, "text": extra, "since": extra});
            let _ = serde_json::from_str::<ClientFrame>(&frame.to_string());
        }
    }
}
