//! Background jobs: what they are, their lifecycle, the retry schedule, and the queue
//! port that stores them durably.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Cursor, Error, FieldError, Limit, Page};

crate::id::uuid_id!(
    /// A job's identity.
    JobId
);

/// What a job does, with its typed payload. Stored as JSON tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobPayload {
    /// Send the welcome e-mail to a newly registered user, with the link that
    /// verifies their address.
    WelcomeEmail {
        user_id: Uuid,
        email: String,
        name: String,
    },
    /// Send a new verification link to the user's address.
    VerificationEmail { user_id: Uuid, email: String },
    /// Someone asked to reset the password of the account at `email`, if there is one:
    /// send it a reset link. Deciding that at delivery keeps the request's work the
    /// same whether the account exists or not.
    PasswordReset { email: String },
    /// Tell the owner their password was changed.
    PasswordChanged { user_id: Uuid, email: String },
    /// Send the link confirming a move to the pending address `email`.
    EmailChange { user_id: Uuid, email: String },
    /// Tell the current address `email` that a move to `new_email` was asked for.
    EmailChangeNotice {
        user_id: Uuid,
        email: String,
        new_email: String,
    },
}

impl JobPayload {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WelcomeEmail { .. } => "welcome_email",
            Self::VerificationEmail { .. } => "verification_email",
            Self::PasswordReset { .. } => "password_reset",
            Self::PasswordChanged { .. } => "password_changed",
            Self::EmailChange { .. } => "email_change",
            Self::EmailChangeNotice { .. } => "email_change_notice",
        }
    }

    /// The user this job is about: deleting them deletes the job, its payload and its
    /// errors with them.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::WelcomeEmail { user_id, .. }
            | Self::VerificationEmail { user_id, .. }
            | Self::PasswordChanged { user_id, .. }
            | Self::EmailChange { user_id, .. }
            | Self::EmailChangeNotice { user_id, .. } => Some(*user_id),
            // No account is known when it is stored; the address is kept only until
            // the retention sweep takes the finished job.
            Self::PasswordReset { .. } => None,
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting to run (from `run_at`).
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    Completed,
    /// Failed, waiting for its retry at `run_at`.
    Failed,
    /// Failed `max_attempts` times; kept with its last error until an admin retries it.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                FieldError::new(
                    "state",
                    "must be queued, running, completed, failed or dead",
                )
            })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub id: JobId,
    pub payload: JobPayload,
    /// How long after it is stored the job becomes due, by the store's clock.
    pub delay: Duration,
    pub max_attempts: u32,
}

impl NewJob {
    /// A job to run as soon as a worker is free.
    pub fn now(payload: JobPayload, max_attempts: u32) -> Self {
        Self {
            id: JobId::generate(),
            payload,
            delay: Duration::ZERO,
            max_attempts: max_attempts.max(1),
        }
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub payload: JobPayload,
    pub state: JobState,
    /// Attempts started so far (a claim starts one).
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: Option<String>,
    pub run_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Job {
    /// The job's position in the newest-first admin listing.
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at, self.id.as_uuid())
    }
}

/// Exponential backoff with jitter: the n-th retry waits `base · 2^(n-1)`, capped at
/// `max`, then scaled by a random factor in [0.5, 1) so that jobs failing together
/// (an outage) do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before the retry that follows failed attempt number `attempt` (1-based);
    /// `jitter` in [0, 1) picks where in [0.5, 1) of the full delay it lands.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let full = self
            .base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max);
        full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// Error text kept on a job is bounded: enough to diagnose, not a place to store a
/// megabyte of HTML from a mail server.
pub const MAX_ERROR_CHARS: usize = 2000;

/// Why a job died without a recorded failure.
pub const LEASE_EXPIRED_ON_LAST_ATTEMPT: &str =
    "the worker stopped responding on the last attempt (lease expired)";

/// Where jobs wait, durably.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Stores a job.
    async fn enqueue(&self, job: &NewJob) -> Result<(), Error>;

    /// Takes one runnable job: `queued` or `failed` with `run_at` ≤ now, or `running`
    /// with an expired lease (its worker died). The job becomes `running`, its attempts
    /// grow by one and it is leased for `lease`. "Now" and lease expiry are the store's
    /// clock, one for every instance, never the claimer's.
    ///
    /// A successful claim MUST wake one more waiting worker (there may be more work),
    /// so a burst spreads over the idle workers one claim at a time.
    ///
    /// MUST give a job to at most one claimer at a time, also across processes. A job
    /// whose lease expired on its last attempt MUST become `dead` instead (a job that
    /// kills its worker must not loop forever), and so MUST a job whose payload can no
    /// longer be read.
    async fn claim(&self, lease: Duration) -> Result<Option<Job>, Error>;

    /// The claimed attempt succeeded.
    ///
    /// `claimed` is the job as [`JobQueue::claim`] returned it: its id and attempt
    /// number identify the lease. MUST return [`Error::Conflict`] and change nothing
    /// when that lease is gone (it expired and the job was claimed again, or finished),
    /// so a slow worker cannot overwrite the outcome of the one that took over.
    async fn complete(&self, claimed: &Job) -> Result<(), Error>;

    /// The claimed attempt failed with `error`: the job becomes `dead` if it has used
    /// its attempts, else `failed` until `retry_in` from now (by the store's clock).
    /// Returns the new state. Same lease rule as [`JobQueue::complete`].
    async fn fail(&self, claimed: &Job, error: &str, retry_in: Duration)
    -> Result<JobState, Error>;

    /// Gives the claimed job back unfinished (shutdown): `queued` again, and the
    /// attempt does not count. Same lease rule as [`JobQueue::complete`].
    async fn release(&self, claimed: &Job) -> Result<(), Error>;

    /// Requeues a `failed` or `dead` job now, with a fresh set of attempts.
    /// MUST return [`Error::NotFound`] for an unknown id and [`Error::Conflict`] for a
    /// job in another state.
    async fn retry(&self, id: &JobId) -> Result<Job, Error>;

    /// Jobs newest first `(created_at DESC, id DESC)`, of one state when given.
    async fn list(
        &self,
        state: Option<JobState>,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Job>, Error>;

    /// How many jobs are in each state, every state listed (zero included), in the
    /// order of [`JobState::ALL`]. For metrics: an estimate is acceptable.
    async fn counts(&self) -> Result<Vec<(JobState, u64)>, Error>;

    /// Returns when a job may have become runnable (e.g. one was enqueued), or after
    /// `max_wait` at the latest. Spurious wake-ups are allowed. A new job SHOULD wake
    /// one waiting worker of this process, not all of them.
    async fn wait_for_work(&self, max_wait: Duration);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_with_jitter_in_the_upper_half() {
        let b = Backoff {
            base: Duration::from_millis(2000),
            max: Duration::from_millis(600_000),
        };
        let full = |attempt| b.delay(attempt, 1.0 - f64::EPSILON);
        let least = |attempt| b.delay(attempt, 0.0);
        assert_eq!(least(1), Duration::from_millis(1000));
        assert!(full(1) <= Duration::from_millis(2000) && full(1) > Duration::from_millis(1999));
        assert_eq!(least(2), Duration::from_millis(2000));
        assert_eq!(least(3), Duration::from_millis(4000));
        assert_eq!(least(9), Duration::from_millis(256_000));
        assert_eq!(
            least(10),
            Duration::from_millis(300_000),
            "capped at max, then jittered"
        );
        assert_eq!(least(1000), Duration::from_millis(300_000));
    }

    #[test]
    fn payloads_are_tagged_json() {
        let payload = JobPayload::WelcomeEmail {
            user_id: Uuid::nil(),
            email: "ada@example.com".into(),
            name: "Ada".into(),
        };
        let json = serde_json::to_value(&payload).unwrap();
        assert_eq!(json["kind"], "welcome_email");
        assert_eq!(serde_json::from_value::<JobPayload>(json).unwrap(), payload);
    }

    #[test]
    fn states_round_trip() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()).unwrap(), state);
        }
        assert_eq!(JobState::parse("zombie").unwrap_err().field, "state");
    }
}
