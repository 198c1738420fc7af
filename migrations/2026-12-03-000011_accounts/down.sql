DROP TABLE account_tokens;
DROP TABLE sessions;
ALTER TABLE users DROP COLUMN pending_email, DROP COLUMN email_verified_at;
