-- 10,000 users (with the password of the user registered through the API as
-- seed@bench.test) and five posts each. Ids are derived from n, so pgbench can pick
-- the same rows the HTTP load does.
INSERT INTO users (id, name, email, role, password_hash, created_at, updated_at, version)
SELECT md5('bench-' || n)::uuid, 'User ' || n, 'user-' || n || '@bench.test', 'user',
       (SELECT password_hash FROM users WHERE email = 'seed@bench.test'),
       date_trunc('milliseconds', now()) - make_interval(secs => n), date_trunc('milliseconds', now()), 1
FROM generate_series(1, 10000) AS n;

INSERT INTO posts (id, author_id, title, body, created_at, updated_at, version)
SELECT md5('post-' || n || '-' || k)::uuid, md5('bench-' || n)::uuid, 'Post ' || k,
       'The body of post ' || k || '.', date_trunc('milliseconds', now()) - make_interval(mins => k),
       date_trunc('milliseconds', now()), 1
FROM generate_series(1, 10000) AS n, generate_series(1, 5) AS k;

ANALYZE;
