DROP TABLE idempotency_keys;
DROP TABLE posts;
ALTER TABLE users DROP COLUMN version;
