CREATE TABLE chat_messages (
    -- UUID v7: ids follow sending order, which "messages since id X" relies on.
    id           uuid        PRIMARY KEY,
    room         text        NOT NULL CHECK (room ~ '^[a-z0-9_-]{1,64}$'),
    -- A deleted user's messages go with them.
    author_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    author_name  text        NOT NULL,
    text         text        NOT NULL CHECK (char_length(text) BETWEEN 1 AND 4000),
    sent_at      timestamptz NOT NULL
);

-- Resuming ("since id") and the latest-50 history walk a room by id.
CREATE INDEX chat_messages_room_id_idx ON chat_messages (room, id);
-- The REST history pages a room newest first by (sent_at, id).
CREATE INDEX chat_messages_room_sent_at_id_idx ON chat_messages (room, sent_at DESC, id DESC);
-- The foreign key's cascade looks messages up by author.
CREATE INDEX chat_messages_author_id_idx ON chat_messages (author_id);
