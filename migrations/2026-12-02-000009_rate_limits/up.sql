-- Rate-limit buckets every instance shares (login, refresh, registration): one row per
-- budget and key, holding when that key's bucket is full again (GCRA). UNLOGGED: writes
-- skip the WAL, and a crash only forgets the buckets, which start full again.
CREATE UNLOGGED TABLE rate_limits (
    budget   text        NOT NULL,
    key      text        NOT NULL CHECK (char_length(key) <= 200),
    full_at  timestamptz NOT NULL,
    PRIMARY KEY (budget, key)
);
-- Rows whose bucket is full again carry nothing: pruned by full_at.
CREATE INDEX rate_limits_full_at_idx ON rate_limits (full_at);
