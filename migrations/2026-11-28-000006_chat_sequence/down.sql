DROP INDEX chat_messages_room_seq_idx;
CREATE INDEX chat_messages_room_id_idx ON chat_messages (room, id);
ALTER TABLE chat_messages DROP COLUMN seq;
