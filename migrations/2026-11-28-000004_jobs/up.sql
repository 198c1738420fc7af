-- The durable job queue. Workers claim with FOR UPDATE SKIP LOCKED, so several workers
-- and several instances never take the same job; a claim leases the job until
-- lease_until, after which another worker may take it (its worker died).
CREATE TABLE jobs (
    id            uuid        PRIMARY KEY,
    kind          text        NOT NULL,
    payload       jsonb       NOT NULL,
    state         text        NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'completed', 'failed', 'dead')),
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  integer     NOT NULL CHECK (max_attempts >= 1),
    last_error    text,
    run_at        timestamptz NOT NULL,
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Claiming looks for due jobs and for expired leases; two partial indexes keep both
-- lookups small however many completed jobs accumulate.
CREATE INDEX jobs_due_idx ON jobs (run_at, id) WHERE state IN ('queued', 'failed');
CREATE INDEX jobs_lease_idx ON jobs (lease_until) WHERE state = 'running';
-- The admin listing: newest first, optionally by state.
CREATE INDEX jobs_created_at_id_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_state_created_at_id_idx ON jobs (state, created_at DESC, id DESC);
