DROP INDEX jobs_user_id_idx;
ALTER TABLE jobs DROP COLUMN user_id;
