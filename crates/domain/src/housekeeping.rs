//! Periodic work that one instance at a time does for all of them: who does it (a lease
//! on a name) and what it deletes (expired rows, in bounded batches).

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::Error;

/// One running process, as a lease holder. Generated at start: a restarted process is
/// a new holder and waits for the old lease to expire like everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Holder(Uuid);

impl Holder {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The name of a lease: one piece of work that must run in one place at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseName(&'static str);

impl LeaseName {
    /// The retention sweeps and the job-count figures of `/metrics`.
    pub const HOUSEKEEPING: LeaseName = LeaseName("housekeeping");

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

/// Proof of holding a lease, checked again by every fenced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub name: LeaseName,
    pub holder: Holder,
}

/// Leases: at most one holder per name, until it expires.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes `name` for `holder` until `ttl` from now, or renews it.
    ///
    /// MUST return `true` only when `holder` holds the lease afterwards: it was free,
    /// had expired, or was already `holder`'s. MUST NOT take an unexpired lease from
    /// another holder. Expiry MUST be judged by one clock for every instance (the
    /// store's), never by the callers' clocks.
    async fn acquire(&self, name: LeaseName, holder: Holder, ttl: Duration) -> Result<bool, Error>;

    /// Gives the lease up, so another instance need not wait for it to expire.
    /// MUST change nothing when `holder` does not hold it.
    async fn release(&self, name: LeaseName, holder: Holder) -> Result<(), Error>;
}

/// What a sweep deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sweep {
    /// Jobs `completed` longer ago than the retention.
    CompletedJobs,
    /// Jobs `dead` longer ago than the retention.
    DeadJobs,
    /// Refresh tokens past their expiry (they can no longer be used; the retention is
    /// extra time kept after it).
    ExpiredRefreshTokens,
    /// Idempotency keys recorded longer ago than the retention.
    IdempotencyKeys,
    /// Sessions ended, or past their absolute lifetime, longer ago than the retention
    /// (which must outlast every access token: until then they are refused by id).
    EndedSessions,
    /// Mailed account tokens past their expiry.
    ExpiredAccountTokens,
}

impl Sweep {
    pub const ALL: [Sweep; 6] = [
        Sweep::CompletedJobs,
        Sweep::DeadJobs,
        Sweep::ExpiredRefreshTokens,
        Sweep::IdempotencyKeys,
        Sweep::EndedSessions,
        Sweep::ExpiredAccountTokens,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sweep::CompletedJobs => "completed_jobs",
            Sweep::DeadJobs => "dead_jobs",
            Sweep::ExpiredRefreshTokens => "expired_refresh_tokens",
            Sweep::IdempotencyKeys => "idempotency_keys",
            Sweep::EndedSessions => "ended_sessions",
            Sweep::ExpiredAccountTokens => "expired_account_tokens",
        }
    }
}

/// Deletes what has outlived its use.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    /// Deletes at most `batch` rows of `sweep` older than `retention` (by the store's
    /// clock) in one short transaction, and returns how many it deleted; a caller
    /// repeats until fewer than `batch` come back.
    ///
    /// MUST delete nothing and return [`Error::Conflict`] unless `fence` still holds
    /// its lease when the batch commits, so an instance that lost the lease (paused,
    /// partitioned) never sweeps alongside the one that took it over.
    async fn sweep(
        &self,
        sweep: Sweep,
        retention: Duration,
        batch: u32,
        fence: Fence,
    ) -> Result<u64, Error>;
}
