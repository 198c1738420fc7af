DROP INDEX refresh_tokens_expires_at_idx;
DROP INDEX jobs_finished_idx;
DROP TABLE leases;
