ALTER TABLE refresh_tokens DROP COLUMN family_expires_at;
