//! The [`LeaseStore`] and [`Housekeeping`] contracts, together: a sweep is fenced by a
//! lease of the same store.

use std::sync::Arc;
use std::time::Duration;

use domain::Error;
use domain::Limit;
use domain::housekeeping::{Fence, Holder, Housekeeping, LeaseName, LeaseStore, Sweep};
use domain::jobs::{JobPayload, JobQueue, JobState, NewJob};
use uuid::Uuid;

/// A lease store, the sweeps fenced by it, and a job queue over the same storage.
pub struct Housekept {
    pub leases: Arc<dyn LeaseStore>,
    pub housekeeping: Arc<dyn Housekeeping>,
    pub queue: Arc<dyn JobQueue>,
}

const NAME: LeaseName = LeaseName::HOUSEKEEPING;
const TTL: Duration = Duration::from_secs(60);
const LEASE: Duration = Duration::from_secs(60);

fn job(max_attempts: u32) -> NewJob {
    NewJob::now(
        JobPayload::WelcomeEmail {
            user_id: Uuid::now_v7(),
            email: "ada@example.com".into(),
            name: "Ada".into(),
        },
        max_attempts,
    )
}

async fn completed_job(queue: &dyn JobQueue) {
    queue.enqueue(&job(3)).await.expect("enqueue");
    let claimed = queue.claim(LEASE).await.expect("claim").expect("due");
    queue.complete(&claimed).await.expect("complete");
}

async fn count(queue: &dyn JobQueue, state: JobState) -> usize {
    queue
        .list(Some(state), Limit::DEFAULT, None)
        .await
        .expect("list")
        .items
        .len()
}

pub async fn a_lease_has_one_holder_until_released(s: &Housekept) {
    let (a, b) = (Holder::generate(), Holder::generate());
    assert!(s.leases.acquire(NAME, a, TTL).await.expect("acquire"));
    assert!(
        !s.leases.acquire(NAME, b, TTL).await.expect("acquire"),
        "held by a"
    );
    assert!(
        s.leases.acquire(NAME, a, TTL).await.expect("renew"),
        "a renews"
    );
    // Only the holder can give it up.
    s.leases.release(NAME, b).await.expect("release");
    assert!(
        !s.leases.acquire(NAME, b, TTL).await.expect("acquire"),
        "still a's"
    );
    s.leases.release(NAME, a).await.expect("release");
    assert!(
        s.leases.acquire(NAME, b, TTL).await.expect("acquire"),
        "free: b"
    );
    assert!(
        !s.leases.acquire(NAME, a, TTL).await.expect("acquire"),
        "now b's"
    );
}

pub async fn an_expired_lease_is_taken_over(s: &Housekept) {
    let (a, b) = (Holder::generate(), Holder::generate());
    let short = Duration::from_millis(300);
    assert!(s.leases.acquire(NAME, a, short).await.expect("acquire"));
    assert!(
        !s.leases.acquire(NAME, b, TTL).await.expect("acquire"),
        "not yet"
    );
    // a stops renewing (it died): b gets the lease once it expires, and not much later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !s.leases.acquire(NAME, b, TTL).await.expect("acquire") {
        assert!(tokio::time::Instant::now() < deadline, "never taken over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !s.leases.acquire(NAME, a, TTL).await.expect("acquire"),
        "b's now"
    );
}

pub async fn a_sweep_without_the_lease_deletes_nothing(s: &Housekept) {
    completed_job(&*s.queue).await;
    let (a, b) = (Holder::generate(), Holder::generate());
    let stranger = Fence {
        name: NAME,
        holder: b,
    };
    // Nobody holds it, then someone else does: either way b may not sweep.
    for _ in 0..2 {
        assert!(matches!(
            s.housekeeping
                .sweep(Sweep::CompletedJobs, Duration::ZERO, 100, stranger)
                .await,
            Err(Error::Conflict(_))
        ));
        assert!(s.leases.acquire(NAME, a, TTL).await.expect("acquire"));
    }
    assert_eq!(count(&*s.queue, JobState::Completed).await, 1);
    // b takes over once a gives up: now a's fence fails, b's holds.
    s.leases.release(NAME, a).await.expect("release");
    assert!(s.leases.acquire(NAME, b, TTL).await.expect("acquire"));
    assert!(matches!(
        s.housekeeping
            .sweep(
                Sweep::CompletedJobs,
                Duration::ZERO,
                100,
                Fence {
                    name: NAME,
                    holder: a
                }
            )
            .await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        s.housekeeping
            .sweep(Sweep::CompletedJobs, Duration::ZERO, 100, stranger)
            .await
            .expect("sweep"),
        1
    );
}

pub async fn sweeps_delete_finished_jobs_past_their_retention_in_batches(s: &Housekept) {
    let fence = Fence {
        name: NAME,
        holder: Holder::generate(),
    };
    assert!(
        s.leases
            .acquire(NAME, fence.holder, TTL)
            .await
            .expect("acquire")
    );
    for _ in 0..3 {
        completed_job(&*s.queue).await;
    }
    // One dead (its only attempt failed) and one still waiting.
    s.queue.enqueue(&job(1)).await.expect("enqueue");
    let doomed = s.queue.claim(LEASE).await.expect("claim").expect("due");
    let state = s
        .queue
        .fail(&doomed, "550 no such mailbox", Duration::ZERO)
        .await
        .expect("fail");
    assert_eq!(state, JobState::Dead);
    let mut waiting = job(3);
    waiting.delay = Duration::from_secs(3600);
    s.queue.enqueue(&waiting).await.expect("enqueue");

    let sweep = |what, retention| s.housekeeping.sweep(what, retention, 2, fence);
    let hour = Duration::from_secs(3600);
    assert_eq!(
        sweep(Sweep::CompletedJobs, hour).await.expect("sweep"),
        0,
        "too young"
    );
    assert_eq!(
        sweep(Sweep::CompletedJobs, Duration::ZERO)
            .await
            .expect("sweep"),
        2
    );
    assert_eq!(
        sweep(Sweep::CompletedJobs, Duration::ZERO)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(
        sweep(Sweep::CompletedJobs, Duration::ZERO)
            .await
            .expect("sweep"),
        0
    );
    assert_eq!(count(&*s.queue, JobState::Dead).await, 1, "another sweep's");
    assert_eq!(
        sweep(Sweep::DeadJobs, hour).await.expect("sweep"),
        0,
        "too young"
    );
    assert_eq!(
        sweep(Sweep::DeadJobs, Duration::ZERO).await.expect("sweep"),
        1
    );
    assert_eq!(count(&*s.queue, JobState::Queued).await, 1, "untouched");
    // The other sweeps run on any store (there may be nothing for them to do).
    for other in [
        Sweep::ExpiredRefreshTokens,
        Sweep::IdempotencyKeys,
        Sweep::EndedSessions,
        Sweep::ExpiredAccountTokens,
    ] {
        sweep(other, Duration::ZERO).await.expect("sweep");
    }
}
