//! The periodic work one instance does for all of them: the retention sweeps and the
//! job counts of `/metrics`, done by whichever instance holds the housekeeping lease.
//!
//! Every instance that serves requests runs a [`Housekeeper`]; each renews or tries to
//! take the lease every third of its lifetime. The holder sweeps and counts; the others
//! only wait. When the holder dies it stops renewing, and within one lease lifetime
//! another takes over.
//! Sweeps are fenced batch by batch ([`Housekeeping::sweep`]), so a holder that lost
//! the lease without noticing never sweeps beside its successor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::housekeeping::{Fence, Holder, Housekeeping, LeaseName, LeaseStore, Sweep};
use domain::jobs::{JobQueue, JobState};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the housekeeper does and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HousekeepingPolicy {
    /// Lifetime of the lease: how long a dead holder keeps it at most.
    pub lease: Duration,
    /// How often the sweeps run.
    pub sweep_every: Duration,
    /// How often the job counts are read.
    pub count_every: Duration,
    /// Rows per sweep batch (one short transaction each).
    pub batch: u32,
    /// What each sweep keeps: rows younger than this stay.
    pub retention: Vec<(Sweep, Duration)>,
}

/// What the housekeeper reports: whether this instance leads, and the job counts it
/// read while leading (none otherwise, so a sum over instances counts each job once).
#[derive(Debug, Default)]
pub struct HousekeepingStatus {
    leader: AtomicBool,
    job_counts: Mutex<Option<Vec<(JobState, u64)>>>,
}

impl HousekeepingStatus {
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The latest counts, while this instance leads.
    pub fn job_counts(&self) -> Option<Vec<(JobState, u64)>> {
        self.job_counts
            .lock()
            .ok()
            .and_then(|counts| counts.clone())
    }

    fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
        if !leader {
            self.set_counts(None);
        }
    }

    fn set_counts(&self, counts: Option<Vec<(JobState, u64)>>) {
        if let Ok(mut slot) = self.job_counts.lock() {
            *slot = counts;
        }
    }
}

pub struct Housekeeper {
    pub leases: Arc<dyn LeaseStore>,
    pub store: Arc<dyn Housekeeping>,
    pub queue: Arc<dyn JobQueue>,
    pub policy: HousekeepingPolicy,
    pub status: Arc<HousekeepingStatus>,
}

impl Housekeeper {
    /// Runs until `stop`, then gives the lease up so a successor need not wait for it
    /// to expire.
    pub async fn run(self, stop: CancellationToken) {
        let fence = Fence {
            name: LeaseName::HOUSEKEEPING,
            holder: Holder::generate(),
        };
        // The holder renews every beat for two beats: a renewal may be a beat late
        // without losing the lease, and a follower trying every beat takes a dead
        // holder's lease within `lease` of its last renewal.
        let beat = self.policy.lease / 3;
        let term = self.policy.lease - beat;
        let mut ticks = tokio::time::interval(beat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewed_at: Option<Instant> = None;
        let mut next_sweep = Instant::now();
        let mut next_count = Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let attempt = Instant::now();
            let acquired =
                tokio::time::timeout(beat, self.leases.acquire(fence.name, fence.holder, term))
                    .await;
            let was_leader = self.status.is_leader();
            let leader = match acquired {
                Ok(Ok(held)) => {
                    renewed_at = held.then_some(attempt);
                    held
                }
                // Unknown: keep leading only while the last renewal is surely in force.
                Ok(Err(error)) => {
                    tracing::warn!(%error, "renewing the housekeeping lease failed");
                    renewed_at.is_some_and(|at| at.elapsed() < term)
                }
                Err(_) => {
                    tracing::warn!("renewing the housekeeping lease timed out");
                    renewed_at.is_some_and(|at| at.elapsed() < term)
                }
            };
            if leader != was_leader {
                tracing::info!(holder = %fence.holder, leader, "housekeeping leadership changed");
            }
            self.status.set_leader(leader);
            if !leader {
                continue;
            }
            // The work of one beat ends within half of it, so the next renewal is on
            // time however slow the database is.
            let work_until = attempt + beat / 2;
            if Instant::now() >= next_count {
                next_count = Instant::now() + self.policy.count_every;
                match tokio::time::timeout(beat / 4, self.queue.counts()).await {
                    Ok(Ok(counts)) => self.status.set_counts(Some(counts)),
                    Ok(Err(error)) => tracing::debug!(%error, "job counts unavailable"),
                    Err(_) => tracing::debug!("job counts timed out"),
                }
            }
            if Instant::now() >= next_sweep {
                // What is left over when the beat's time is up is taken up at the next.
                let done = self.sweep_round(fence, work_until, &stop).await;
                if done {
                    next_sweep = Instant::now() + self.policy.sweep_every;
                }
            }
        }
        if self.status.is_leader() {
            self.status.set_leader(false);
            if let Err(error) = self.leases.release(fence.name, fence.holder).await {
                tracing::debug!(%error, "releasing the housekeeping lease failed");
            }
        }
    }

    /// Sweeps in batches until every sweep is done (true) or `until` passes, the
    /// lease is lost or the store fails (false: resume later).
    async fn sweep_round(&self, fence: Fence, until: Instant, stop: &CancellationToken) -> bool {
        for &(sweep, retention) in &self.policy.retention {
            loop {
                if stop.is_cancelled() || Instant::now() >= until {
                    return false;
                }
                let left = until.saturating_duration_since(Instant::now());
                let batch = self.store.sweep(sweep, retention, self.policy.batch, fence);
                let Ok(swept) = tokio::time::timeout(left, batch).await else {
                    return false;
                };
                match swept {
                    Ok(deleted) => {
                        if deleted > 0 {
                            tracing::info!(sweep = sweep.as_str(), deleted, "swept");
                        }
                        if deleted < u64::from(self.policy.batch) {
                            break;
                        }
                    }
                    Err(domain::Error::Conflict(_)) => {
                        tracing::warn!("the housekeeping lease moved during a sweep");
                        self.status.set_leader(false);
                        return false;
                    }
                    Err(error) => {
                        tracing::warn!(%error, sweep = sweep.as_str(), "a sweep failed");
                        return false;
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use domain::housekeeping::{MockHousekeeping, MockLeaseStore};
    use domain::jobs::MockJobQueue;

    use super::*;

    fn policy() -> HousekeepingPolicy {
        HousekeepingPolicy {
            lease: Duration::from_secs(3),
            sweep_every: Duration::from_secs(60),
            count_every: Duration::from_secs(15),
            batch: 2,
            retention: vec![(Sweep::CompletedJobs, Duration::from_secs(1))],
        }
    }

    /// Runs a housekeeper over these mocks: its status, its stop, its task.
    fn start(
        leases: MockLeaseStore,
        store: MockHousekeeping,
        queue: MockJobQueue,
    ) -> (
        Arc<HousekeepingStatus>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let status = Arc::new(HousekeepingStatus::default());
        let stop = CancellationToken::new();
        let keeper = Housekeeper {
            leases: Arc::new(leases),
            store: Arc::new(store),
            queue: Arc::new(queue),
            policy: policy(),
            status: status.clone(),
        };
        (status, stop.clone(), tokio::spawn(keeper.run(stop)))
    }

    fn queue() -> MockJobQueue {
        let mut queue = MockJobQueue::new();
        queue
            .expect_counts()
            .returning(|| Ok(vec![(JobState::Queued, 1)]));
        queue
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_neither_sweeps_nor_reports_counts() {
        let mut leases = MockLeaseStore::new();
        leases.expect_acquire().returning(|_, _, _| Ok(false));
        let store = MockHousekeeping::new(); // any sweep would panic: none expected
        let (status, stop, run) = start(leases, store, MockJobQueue::new());
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!status.is_leader());
        assert_eq!(status.job_counts(), None);
        stop.cancel();
        run.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_sweeps_in_batches_and_stops_when_the_lease_moves() {
        let mut leases = MockLeaseStore::new();
        leases.expect_acquire().returning(|_, _, _| Ok(true));
        leases.expect_release().times(0);
        let mut store = MockHousekeeping::new();
        let mut seq = mockall::Sequence::new();
        // Full batches go on; then the fence fails: the leader steps down at once.
        store
            .expect_sweep()
            .times(2)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| Ok(2));
        store
            .expect_sweep()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| Err(domain::Error::Conflict("moved")));
        let (status, stop, run) = start(leases, store, queue());
        // One beat: the first round ran and hit the fence.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!status.is_leader());
        assert_eq!(status.job_counts(), None);
        stop.cancel();
        run.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_reports_counts_and_releases_the_lease_when_stopped() {
        let mut leases = MockLeaseStore::new();
        leases.expect_acquire().returning(|_, _, _| Ok(true));
        leases.expect_release().times(1).returning(|_, _| Ok(()));
        let mut store = MockHousekeeping::new();
        store.expect_sweep().returning(|_, _, _, _| Ok(0));
        let (status, stop, run) = start(leases, store, queue());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(status.is_leader());
        assert_eq!(status.job_counts(), Some(vec![(JobState::Queued, 1)]));
        stop.cancel();
        run.await.unwrap();
        assert!(!status.is_leader());
    }
}
