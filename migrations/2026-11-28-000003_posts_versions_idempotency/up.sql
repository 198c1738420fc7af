-- Optimistic concurrency: every update bumps the version in the same statement that
-- checks it (UPDATE … WHERE id = $1 AND version = $2), so no read-then-write race.
ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version >= 1);

CREATE TABLE posts (
    id          uuid        PRIMARY KEY,
    -- Deleting a user deletes their posts in the same statement.
    author_id   uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body        text        NOT NULL CHECK (char_length(body) BETWEEN 1 AND 20000),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint      NOT NULL DEFAULT 1 CHECK (version >= 1)
);

-- A user's posts are listed newest first with the keyset (created_at, id), and the
-- fan-out reads the latest 20: this index serves the author filter, the order and the
-- cursor condition in one range scan, and the foreign key's cascade lookups too.
CREATE INDEX posts_author_created_at_id_idx ON posts (author_id, created_at DESC, id DESC);

-- Idempotency-Key records: one per (caller scope, key). `response_status` is NULL
-- while the first request is being handled.
CREATE TABLE idempotency_keys (
    scope            text        NOT NULL,
    key              text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    fingerprint      bytea       NOT NULL,
    response_status  smallint,
    response_location text,
    response_body    bytea,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Expired keys (older than 24 h) are purged by age.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
