//! Rate limits as a driven port: budgets of attempts per key, counted where every
//! instance sharing the store sees the same count (Postgres), or in the process for the
//! embedded default.

use std::time::Duration;

use async_trait::async_trait;

use crate::Error;

/// `limit` attempts per `window` for each key, given back evenly (one every
/// `window / limit`), so no key spends more than `limit` in any window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Budget {
    /// Names the budget in stores and in `RateLimit` headers (`login`).
    pub name: &'static str,
    limit: u32,
    window: Duration,
}

impl Budget {
    /// At least one attempt, over at least a second.
    pub fn new(name: &'static str, limit: u32, window: Duration) -> Self {
        Self {
            name,
            limit: limit.max(1),
            window: window.max(Duration::from_secs(1)),
        }
    }

    pub fn per_minute(name: &'static str, limit: u32) -> Self {
        Self::new(name, limit, Duration::from_secs(60))
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long one attempt takes to come back.
    pub fn interval(&self) -> Duration {
        self.window / self.limit
    }

    /// How far ahead of now a key's "full again" time may be while it still has an
    /// attempt left.
    pub fn burst(&self) -> Duration {
        self.window.saturating_sub(self.interval())
    }

    /// The state of a key whose bucket is full again `ahead` from now.
    pub fn remaining(&self, ahead: Duration) -> Remaining {
        let interval = self.interval().as_micros().max(1);
        let ahead = ahead.as_micros();
        let spent = ahead.div_ceil(interval);
        Remaining {
            left: u32::try_from(u128::from(self.limit).saturating_sub(spent)).unwrap_or(0),
            reset: Duration::from_micros(u64::try_from(ahead % interval).unwrap_or(0)),
        }
    }

    /// The answer for a key whose bucket is full again `ahead` from now, before an
    /// attempt: refused when even the burst is spent.
    pub fn decide(&self, ahead: Duration) -> Taken {
        if ahead > self.burst() {
            Taken::Refused {
                retry_after: (ahead - self.burst()).max(Duration::from_secs(1)),
            }
        } else {
            Taken::Allowed(self.remaining(ahead))
        }
    }
}

/// A key's budget after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    /// Attempts it may still make now.
    pub left: u32,
    /// Until one more comes back (zero when the bucket is full).
    pub reset: Duration,
}

/// What [`RateLimitStore::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Spent; what is left after it.
    Allowed(Remaining),
    /// Nothing was spent; an attempt comes back after `retry_after` (at least 1 s).
    Refused { retry_after: Duration },
}

/// Budgets per key, shared by every instance that shares the store.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RateLimitStore: Send + Sync + 'static {
    /// Spends one attempt of `budget` under `key`. MUST refuse, spending nothing, when
    /// none is left; MUST be atomic per key, so concurrent calls from every instance
    /// together never spend more than the budget.
    async fn take(&self, budget: &Budget, key: &str) -> Result<Taken, Error>;

    /// What [`take`](Self::take) would decide now, spending nothing: for budgets that
    /// count only some outcomes (failed logins), checked before and recorded after.
    async fn peek(&self, budget: &Budget, key: &str) -> Result<Taken, Error>;

    /// Spends one attempt even past the limit (it happened).
    async fn record(&self, budget: &Budget, key: &str) -> Result<(), Error>;

    /// Gives back one attempt spent under `key` (a login that turned out to succeed).
    /// MUST NOT give back more than was spent.
    async fn refund(&self, budget: &Budget, key: &str) -> Result<(), Error>;
}
