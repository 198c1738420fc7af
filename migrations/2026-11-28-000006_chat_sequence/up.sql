-- Storage order for chat. Message ids (UUID v7) come from each instance's clock, so
-- under clock skew they can sort a message before one stored earlier; resuming
-- ("since id") and history follow this database-assigned sequence instead.
ALTER TABLE chat_messages ADD COLUMN seq bigserial;
DROP INDEX chat_messages_room_id_idx;
CREATE INDEX chat_messages_room_seq_idx ON chat_messages (room, seq);
