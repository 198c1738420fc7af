//! Leases and retention sweeps for one process: the lease is this process's to take,
//! and the sweeps delete finished jobs from the shared tables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::Error;
use domain::housekeeping::{Fence, Holder, Housekeeping, LeaseName, LeaseStore, Sweep};
use domain::jobs::JobState;

use crate::tables::Shared;

/// [`LeaseStore`] in memory, by this process's monotonic clock.
#[derive(Debug, Clone, Default)]
pub struct MemoryLeaseStore {
    leases: Arc<Mutex<HashMap<LeaseName, (Holder, Instant)>>>,
}

impl MemoryLeaseStore {
    fn holds(&self, fence: Fence) -> bool {
        crate::lock(&self.leases)
            .get(&fence.name)
            .is_some_and(|(holder, until)| *holder == fence.holder && *until > Instant::now())
    }
}

#[async_trait]
impl LeaseStore for MemoryLeaseStore {
    async fn acquire(&self, name: LeaseName, holder: Holder, ttl: Duration) -> Result<bool, Error> {
        let now = Instant::now();
        let mut leases = crate::lock(&self.leases);
        match leases.get(&name) {
            Some((current, until)) if *current != holder && *until > now => Ok(false),
            _ => {
                leases.insert(name, (holder, now + ttl));
                Ok(true)
            }
        }
    }

    async fn release(&self, name: LeaseName, holder: Holder) -> Result<(), Error> {
        let mut leases = crate::lock(&self.leases);
        if leases
            .get(&name)
            .is_some_and(|(current, _)| *current == holder)
        {
            leases.remove(&name);
        }
        Ok(())
    }
}

/// [`Housekeeping`] over the in-memory tables. Only jobs need sweeping here: the
/// memory refresh-token and idempotency stores bound themselves.
#[derive(Debug, Clone)]
pub struct MemoryHousekeeping {
    store: Shared,
    leases: MemoryLeaseStore,
}

impl MemoryHousekeeping {
    pub(crate) fn new(store: Shared, leases: MemoryLeaseStore) -> Self {
        Self { store, leases }
    }
}

#[async_trait]
impl Housekeeping for MemoryHousekeeping {
    async fn sweep(
        &self,
        sweep: Sweep,
        retention: Duration,
        batch: u32,
        fence: Fence,
    ) -> Result<u64, Error> {
        if !self.leases.holds(fence) {
            return Err(Error::Conflict("the housekeeping lease is held elsewhere"));
        }
        let state = match sweep {
            Sweep::CompletedJobs => JobState::Completed,
            Sweep::DeadJobs => JobState::Dead,
            // The memory stores drop these themselves as they grow.
            Sweep::ExpiredRefreshTokens
            | Sweep::IdempotencyKeys
            | Sweep::EndedSessions
            | Sweep::ExpiredAccountTokens => return Ok(0),
        };
        let before = domain::now() - retention;
        let mut tables = self.store.lock();
        let old: Vec<_> = tables
            .jobs
            .values()
            .filter(|job| job.state == state && job.updated_at <= before)
            .map(|job| job.id)
            .take(batch as usize)
            .collect();
        for id in &old {
            tables.jobs.remove(id);
        }
        Ok(old.len() as u64)
    }
}
