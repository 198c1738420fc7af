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
    /// How workers hear of new jobs.
    pub wakeup: JobWakeup,
    /// Completed jobs are deleted this long after they completed.
    pub retention_completed: Duration,
    /// Dead jobs are deleted this long after they died.
    pub retention_dead: Duration,
    /// Lifetime of the housekeeping lease: how soon another instance takes the
    /// periodic work over when its holder dies.
    pub leader_lease: Duration,
    /// How often the holder of the lease runs the retention sweeps.
    pub housekeeping_every: Duration,
}

/// How idle workers learn that a job was enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobWakeup {
    /// `LISTEN jobs` on a connection of its own: a new job is picked up at once.
    Listen,
    /// No listening connection (pgbouncer in transaction mode cannot carry one): idle
    /// workers look every `JOB_POLL_INTERVAL_MS`.
    Poll,
}

impl std::str::FromStr for JobWakeup {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        match raw {
            "listen" => Ok(Self::Listen),
            "poll" => Ok(Self::Poll),
            _ => Err(()),
        }
    }
}

const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

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
            wakeup: env.parse("JOB_WAKEUP", JobWakeup::Listen)?,
            retention_completed: env.duration(
                "JOB_RETENTION_COMPLETED_HOURS",
                24 * HOUR,
                |hours| Duration::from_secs(hours.saturating_mul(3600)),
                365 * DAY,
            )?,
            retention_dead: env.duration(
                "JOB_RETENTION_DEAD_DAYS",
                7 * DAY,
                |days| Duration::from_secs(days.saturating_mul(86_400)),
                365 * DAY,
            )?,
            leader_lease: env.secs("LEADER_LEASE_SECS", Duration::from_secs(15))?,
            housekeeping_every: env.secs("HOUSEKEEPING_INTERVAL_SECS", Duration::from_secs(60))?,
        };
        if jobs.leader_lease < Duration::from_secs(3) {
            return Err(ConfigError {
                var: "LEADER_LEASE_SECS",
                reason: "must be at least 3 (the holder renews every third of it)".into(),
            });
        }
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
