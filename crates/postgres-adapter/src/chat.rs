use async_trait::async_trait;
use diesel::OptionalExtension;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use domain::chat::{Author, ChatMessage, ChatRepository, MessageId, MessageText, RoomName, Since};
use domain::users::UserId;
use domain::{Cursor, Error, Limit, Page};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Database;

/// [`ChatRepository`] on the `chat_messages` table.
#[derive(Clone)]
pub struct PgChatRepository {
    db: Database,
}

impl PgChatRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    room: String,
    #[diesel(sql_type = SqlUuid)]
    author_id: Uuid,
    #[diesel(sql_type = Text)]
    author_name: String,
    #[diesel(sql_type = Text)]
    text: String,
    #[diesel(sql_type = Timestamptz)]
    sent_at: OffsetDateTime,
}

impl TryFrom<Row> for ChatMessage {
    type Error = Error;

    fn try_from(row: Row) -> Result<Self, Error> {
        Ok(ChatMessage {
            id: MessageId::from_uuid(row.id),
            room: RoomName::parse(&row.room).map_err(Error::internal)?,
            author: Author {
                id: UserId::from_uuid(row.author_id),
                name: row.author_name,
            },
            text: MessageText::parse(&row.text).map_err(Error::internal)?,
            sent_at: row.sent_at,
        })
    }
}

const COLUMNS: &str = "id, room, author_id, author_name, text, sent_at";

fn query_error(e: diesel::result::Error) -> Error {
    crate::error::query(e, &[("chat_messages_pkey", "message", "id")])
}

fn messages(rows: Vec<Row>) -> Result<Vec<ChatMessage>, Error> {
    rows.into_iter().map(ChatMessage::try_from).collect()
}

#[async_trait]
impl ChatRepository for PgChatRepository {
    async fn append(&self, m: &ChatMessage) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        diesel::sql_query(format!(
            "INSERT INTO chat_messages ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind::<SqlUuid, _>(m.id.as_uuid())
        .bind::<Text, _>(m.room.as_str())
        .bind::<SqlUuid, _>(m.author.id.as_uuid())
        .bind::<Text, _>(&m.author.name)
        .bind::<Text, _>(m.text.as_str())
        .bind::<Timestamptz, _>(m.sent_at)
        .execute(&mut conn)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            ) => Error::not_found("user", m.author.id),
            other => query_error(other),
        })?;
        Ok(())
    }

    async fn get(&self, id: &MessageId) -> Result<ChatMessage, Error> {
        let mut conn = self.db.get().await?;
        let row: Option<Row> =
            diesel::sql_query(format!("SELECT {COLUMNS} FROM chat_messages WHERE id = $1"))
                .bind::<SqlUuid, _>(id.as_uuid())
                .get_result(&mut conn)
                .await
                .optional()
                .map_err(query_error)?;
        row.ok_or_else(|| Error::not_found("message", id))?
            .try_into()
    }

    async fn recent(&self, room: &RoomName, count: u32) -> Result<Vec<ChatMessage>, Error> {
        let mut conn = self.db.get().await?;
        let rows: Vec<Row> = diesel::sql_query(format!(
            "SELECT {COLUMNS} FROM (SELECT {COLUMNS}, seq FROM chat_messages WHERE room = $1 \
             ORDER BY seq DESC LIMIT $2) latest ORDER BY seq"
        ))
        .bind::<Text, _>(room.as_str())
        .bind::<BigInt, _>(i64::from(count))
        .load(&mut conn)
        .await
        .map_err(query_error)?;
        messages(rows)
    }

    async fn since(&self, room: &RoomName, after: &MessageId, bound: u32) -> Result<Since, Error> {
        let mut conn = self.db.get().await?;
        // After `after` in storage order. An unknown `after` (never stored here)
        // replays from the start, bounded, rather than nothing.
        let rows: Vec<Row> = diesel::sql_query(format!(
            "SELECT {COLUMNS} FROM chat_messages WHERE room = $1 \
               AND seq > COALESCE((SELECT seq FROM chat_messages WHERE id = $2), 0) \
             ORDER BY seq LIMIT $3"
        ))
        .bind::<Text, _>(room.as_str())
        .bind::<SqlUuid, _>(after.as_uuid())
        .bind::<BigInt, _>(i64::from(bound) + 1)
        .load(&mut conn)
        .await
        .map_err(query_error)?;
        Ok(Since::bounded(messages(rows)?, bound))
    }

    async fn page(
        &self,
        room: &RoomName,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<ChatMessage>, Error> {
        let mut conn = self.db.get().await?;
        let rows: Vec<Row> = diesel::sql_query(format!(
            "SELECT {COLUMNS} FROM chat_messages WHERE room = $1 \
               AND ($2::timestamptz IS NULL OR (sent_at, id) < ($2, $3)) \
             ORDER BY sent_at DESC, id DESC LIMIT $4"
        ))
        .bind::<Text, _>(room.as_str())
        .bind::<Nullable<Timestamptz>, _>(after.map(|c| c.created_at))
        .bind::<SqlUuid, _>(after.map_or(Uuid::nil(), |c| c.id))
        .bind::<BigInt, _>(i64::from(limit.get()) + 1)
        .load(&mut conn)
        .await
        .map_err(query_error)?;
        Ok(Page::from_rows(messages(rows)?, limit, ChatMessage::cursor))
    }
}
