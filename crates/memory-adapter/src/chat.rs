use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::chat::{ChatMessage, ChatRepository, MessageId, RoomName, Since};
use domain::{Cursor, Error, Limit, Page};

/// A [`ChatRepository`] in a map guarded by a mutex.
#[derive(Debug, Default)]
pub struct MemoryChatRepository {
    messages: Mutex<HashMap<MessageId, ChatMessage>>,
}

impl MemoryChatRepository {
    pub fn new() -> Self {
        Self::default()
    }

    /// A room's messages in id order (UUID v7: sending order).
    fn room(&self, room: &RoomName) -> Vec<ChatMessage> {
        let mut all: Vec<ChatMessage> = crate::lock(&self.messages)
            .values()
            .filter(|m| m.room == *room)
            .cloned()
            .collect();
        all.sort_by_key(|m| m.id);
        all
    }
}

#[async_trait]
impl ChatRepository for MemoryChatRepository {
    async fn append(&self, message: &ChatMessage) -> Result<(), Error> {
        crate::lock(&self.messages).insert(message.id, message.clone());
        Ok(())
    }

    async fn get(&self, id: &MessageId) -> Result<ChatMessage, Error> {
        crate::lock(&self.messages)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("message", id))
    }

    async fn recent(&self, room: &RoomName, count: u32) -> Result<Vec<ChatMessage>, Error> {
        let all = self.room(room);
        let skip = all.len().saturating_sub(count as usize);
        Ok(all.into_iter().skip(skip).collect())
    }

    async fn since(&self, room: &RoomName, after: &MessageId, bound: u32) -> Result<Since, Error> {
        let mut newer: Vec<ChatMessage> = self
            .room(room)
            .into_iter()
            .filter(|m| m.id > *after)
            .collect();
        let truncated = newer.len() > bound as usize;
        newer.truncate(bound as usize);
        Ok(Since {
            messages: newer,
            truncated,
        })
    }

    async fn page(
        &self,
        room: &RoomName,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<ChatMessage>, Error> {
        let key = |m: &ChatMessage| (m.sent_at, m.id.as_uuid());
        let mut rows: Vec<ChatMessage> = self
            .room(room)
            .into_iter()
            .filter(|m| after.is_none_or(|c| key(m) < (c.created_at, c.id)))
            .collect();
        rows.sort_by_key(|m| std::cmp::Reverse(key(m)));
        rows.truncate(limit.get() as usize + 1);
        Ok(Page::from_rows(rows, limit, ChatMessage::cursor))
    }
}
