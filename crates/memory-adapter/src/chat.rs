use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::chat::{ChatMessage, ChatRepository, MessageId, RoomName, Since};
use domain::{Cursor, Error, Limit, Page};

/// A [`ChatRepository`] in a map guarded by a mutex.
#[derive(Debug, Default)]
pub struct MemoryChatRepository {
    /// Each message with its storage sequence number.
    messages: Mutex<HashMap<MessageId, (u64, ChatMessage)>>,
}

impl MemoryChatRepository {
    pub fn new() -> Self {
        Self::default()
    }

    /// A room's messages with their sequence numbers, in storage order.
    fn room(&self, room: &RoomName) -> Vec<(u64, ChatMessage)> {
        let mut all: Vec<(u64, ChatMessage)> = crate::lock(&self.messages)
            .values()
            .filter(|(_, m)| m.room == *room)
            .cloned()
            .collect();
        all.sort_by_key(|(seq, _)| *seq);
        all
    }
}

#[async_trait]
impl ChatRepository for MemoryChatRepository {
    async fn append(&self, message: &ChatMessage) -> Result<(), Error> {
        let mut messages = crate::lock(&self.messages);
        let seq = messages.len() as u64 + 1;
        messages.insert(message.id, (seq, message.clone()));
        Ok(())
    }

    async fn get(&self, id: &MessageId) -> Result<ChatMessage, Error> {
        crate::lock(&self.messages)
            .get(id)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| Error::not_found("message", id))
    }

    async fn recent(&self, room: &RoomName, count: u32) -> Result<Vec<ChatMessage>, Error> {
        let all = self.room(room);
        let skip = all.len().saturating_sub(count as usize);
        Ok(all.into_iter().skip(skip).map(|(_, m)| m).collect())
    }

    async fn since(&self, room: &RoomName, after: &MessageId, bound: u32) -> Result<Since, Error> {
        let all = self.room(room);
        let from = all
            .iter()
            .find(|(_, m)| m.id == *after)
            .map_or(0, |(seq, _)| *seq);
        let newer: Vec<ChatMessage> = all
            .into_iter()
            .filter(|(seq, _)| *seq > from)
            .map(|(_, m)| m)
            .collect();
        Ok(Since::bounded(newer, bound))
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
            .map(|(_, m)| m)
            .filter(|m| after.is_none_or(|c| key(m) < (c.created_at, c.id)))
            .collect();
        rows.sort_by_key(|m| std::cmp::Reverse(key(m)));
        rows.truncate(limit.get() as usize + 1);
        Ok(Page::from_rows(rows, limit, ChatMessage::cursor))
    }
}
