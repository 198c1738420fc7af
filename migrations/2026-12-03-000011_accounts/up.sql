-- Account flows: a proven address, a pending new one, mailed single-use tokens, and
-- sessions an owner can list and end.
ALTER TABLE users
    -- When the owner proved `email` is theirs; NULL until then.
    ADD COLUMN email_verified_at timestamptz,
    -- An address the owner asked to move to, until they confirm it from there.
    ADD COLUMN pending_email text;

-- A session is one refresh-token family (its id is the family id, and access tokens
-- carry it as `sid`). No foreign key to users: an ended session is kept, as ended, for
-- as long as one of its access tokens could still be presented, even after its user is
-- deleted. The housekeeping sweep deletes it after that.
CREATE TABLE sessions (
    id               uuid        PRIMARY KEY,
    user_id          uuid        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz NOT NULL DEFAULT now(),
    -- The family's absolute end.
    expires_at       timestamptz NOT NULL,
    login_address    text,
    login_user_agent text,
    last_address     text,
    last_user_agent  text,
    ended_at         timestamptz
);

-- Listing and ending a user's sessions; reloading the recently ended; the sweep.
CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_ended_at_idx ON sessions (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Families that exist now become sessions: ended when no token of theirs can be
-- refreshed any more (each revoked, spent or expired; a logout used to revoke only the
-- token presented, leaving its spent ancestors).
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, ended_at)
SELECT family_id,
       (array_agg(user_id))[1],
       min(created_at),
       max(created_at),
       max(family_expires_at),
       CASE WHEN bool_and(revoked_at IS NOT NULL OR used_at IS NOT NULL OR expires_at <= now())
            THEN now() END
FROM refresh_tokens
GROUP BY family_id;

-- Mailed tokens, stored only as SHA-256 hashes, each bound to the address it was sent
-- to. Spending one deletes it; issuing one deletes the older ones of its user and kind.
CREATE TABLE account_tokens (
    token_hash bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL
        CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
    email      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX account_tokens_user_purpose_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);
