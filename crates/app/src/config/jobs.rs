//! The background worker pool and its retry policy. The pool is the app's own
//! (`crate::workers`), so its defaults live here.

use std::time::Duration;

use super::ConfigError;
use super::env::{Env, FromEnv};

/// Workers in one process at most: each holds a database connection.
const MAX_WORKERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// Concurrent workers in this process; 0 runs none.
    pub workers: usize,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a claimed job stays leased to its worker.
    pub lease: Duration,
    /// Bound on one attempt of one job.
    pub timeout: Duration,
    /// How often idle workers look for due jobs when no notification arrives.
    pub poll_interval: Duration,
}

impl FromEnv for JobSettings {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let jobs = Self {
            workers: env.parse("WORKERS", 4)?,
            max_attempts: env.parse::<u32>("JOB_MAX_ATTEMPTS", 5)?.max(1),
            backoff_base: env.millis("JOB_BACKOFF_BASE_MS", Duration::from_millis(2000))?,
            backoff_max: env.millis("JOB_BACKOFF_MAX_MS", Duration::from_millis(600_000))?,
            lease: env.secs("JOB_LEASE_SECS", Duration::from_secs(60))?,
            timeout: env.secs("JOB_TIMEOUT_SECS", Duration::from_secs(30))?,
            poll_interval: env.millis("JOB_POLL_INTERVAL_MS", Duration::from_millis(5000))?,
        };
        if jobs.lease <= jobs.timeout {
            return Err(ConfigError {
                var: "JOB_LEASE_SECS",
                reason: format!(
                    "must be longer than JOB_TIMEOUT_SECS ({}s), or a job still running \
                     could be taken by another worker",
                    jobs.timeout.as_secs()
                ),
            });
        }
        if jobs.workers > MAX_WORKERS {
            return Err(ConfigError {
                var: "WORKERS",
                reason: format!("must be at most {MAX_WORKERS} (each holds a database connection)"),
            });
        }
        Ok(jobs)
    }
}
