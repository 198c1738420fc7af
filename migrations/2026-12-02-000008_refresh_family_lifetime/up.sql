-- A session (a refresh-token family) ends at an absolute time, however often it is
-- rotated. Families that exist now end 30 days after their first token. The default
-- keeps instances of the previous release inserting tokens during a rolling deploy
-- (they do not know the column); this release always sets it.
ALTER TABLE refresh_tokens
    ADD COLUMN family_expires_at timestamptz NOT NULL DEFAULT (now() + interval '30 days');

UPDATE refresh_tokens t
SET family_expires_at = f.started + interval '30 days'
FROM (SELECT family_id, min(created_at) AS started FROM refresh_tokens GROUP BY family_id) f
WHERE f.family_id = t.family_id;
