-- Roles: every existing and new user is a plain `user` until an admin promotes them.
ALTER TABLE users
    ADD COLUMN role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    -- argon2id PHC string. NULL for accounts made before passwords existed: they cannot
    -- log in until a password is set (`app create-admin` sets one for admins).
    ADD COLUMN password_hash text;

-- Refresh tokens are stored as SHA-256 hashes only. A login starts a family; each
-- rotation spends one token (used_at) and adds its successor to the family, so the reuse
-- of a spent token can revoke the whole family.
CREATE TABLE refresh_tokens (
    token_hash  bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    -- Deleting a user deletes their tokens in the same statement.
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,
    revoked_at  timestamptz
);

-- Revoking a family on reuse, and every token of a user.
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
