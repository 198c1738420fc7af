DROP TABLE refresh_tokens;
ALTER TABLE users DROP COLUMN password_hash, DROP COLUMN role;
