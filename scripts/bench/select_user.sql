\set n random(1, 10000)
SELECT id, name, email, role, created_at, updated_at, version FROM users WHERE id = md5('bench-' || :n)::uuid;
