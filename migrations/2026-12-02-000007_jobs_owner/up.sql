-- A job about a user (the welcome e-mail: their address and name in its payload, and
-- any error naming them) is deleted with that user, in the user's DELETE transaction.
-- No foreign key: a job may be enqueued about a user another instance is deleting.
ALTER TABLE jobs ADD COLUMN user_id uuid;

UPDATE jobs SET user_id = (payload->>'user_id')::uuid WHERE payload ? 'user_id';

-- Jobs about users deleted before this migration: their payloads go now.
DELETE FROM jobs
WHERE user_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = jobs.user_id);

CREATE INDEX jobs_user_id_idx ON jobs (user_id) WHERE user_id IS NOT NULL;
