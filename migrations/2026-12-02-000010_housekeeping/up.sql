-- Leases: one row per piece of periodic work that one instance at a time does for all
-- (the retention sweeps). The holder renews it; when the holder dies it stops renewing,
-- and after expires_at (judged by this server's clock) another instance takes it.
CREATE TABLE leases (
    name        text        PRIMARY KEY,
    holder      uuid        NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- The retention sweeps find old finished jobs and expired tokens without scanning the
-- live ones. A plain build holds writes to the table while it runs: on a large `jobs`
-- table create these two first with CREATE INDEX CONCURRENTLY (same names), and this
-- migration keeps them.
CREATE INDEX IF NOT EXISTS jobs_finished_idx ON jobs (state, updated_at) WHERE state IN ('completed', 'dead');
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
