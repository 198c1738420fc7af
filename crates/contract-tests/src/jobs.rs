//! The [`JobQueue`] contract. Cases get a user repository over the same storage, for
//! the transactional enqueue through `UserRepository::create`.

use std::collections::HashSet;
use std::time::Duration;

use domain::auth::PasswordHash;
use domain::jobs::{JobPayload, JobQueue, JobState, NewJob};
use domain::users::{Email, User, UserName, UserRepository};
use domain::{Error, Limit};
use uuid::Uuid;

fn welcome(n: usize, max_attempts: u32) -> NewJob {
    NewJob::now(
        JobPayload::WelcomeEmail {
            user_id: Uuid::now_v7(),
            email: format!("user{n}@example.com"),
            name: format!("User {n}"),
        },
        max_attempts,
    )
}

const LEASE: Duration = Duration::from_secs(60);

/// A retry an hour away: not due during the test.
const LATER: Duration = Duration::from_secs(3600);

pub async fn a_job_is_claimed_once_and_completed(
    queue: &impl JobQueue,
    _users: &impl UserRepository,
) {
    let job = welcome(1, 5);
    queue.enqueue(&job).await.expect("enqueue");
    let claimed = queue.claim(LEASE).await.expect("claim").expect("a job");
    assert_eq!(claimed.id, job.id);
    assert_eq!(claimed.payload, job.payload);
    assert_eq!((claimed.state, claimed.attempts), (JobState::Running, 1));
    assert!(queue.claim(LEASE).await.expect("claim").is_none(), "leased");
    queue.complete(&claimed).await.expect("complete");
    assert!(
        queue.claim(LEASE).await.expect("claim").is_none(),
        "completed"
    );
    let done = queue
        .list(Some(JobState::Completed), Limit::DEFAULT, None)
        .await
        .expect("list");
    assert_eq!(done.items.len(), 1);
    let counts = queue.counts().await.expect("counts");
    assert_eq!(
        counts,
        JobState::ALL
            .iter()
            .map(|&s| (s, u64::from(s == JobState::Completed)))
            .collect::<Vec<_>>()
    );
}

pub async fn many_concurrent_claimers_take_each_job_exactly_once(
    queue: &impl JobQueue,
    _users: &impl UserRepository,
) {
    for n in 0..12 {
        queue.enqueue(&welcome(n, 5)).await.expect("enqueue");
    }
    let worker = || async {
        let mut mine = Vec::new();
        while let Some(job) = queue.claim(LEASE).await.expect("claim") {
            queue.complete(&job).await.expect("complete");
            mine.push(job.id);
        }
        mine
    };
    let ((a, b), (c, d)) = futures_util::future::join(
        futures_util::future::join(worker(), worker()),
        futures_util::future::join(worker(), worker()),
    )
    .await;
    let all: Vec<_> = [a, b, c, d].concat();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 12, "every job done");
    assert_eq!(unique.len(), 12, "none done twice");
}

pub async fn an_expired_lease_lets_another_worker_claim_the_job(
    queue: &impl JobQueue,
    _users: &impl UserRepository,
) {
    let job = welcome(1, 5);
    queue.enqueue(&job).await.expect("enqueue");
    let first = queue
        .claim(Duration::from_millis(1))
        .await
        .expect("claim")
        .expect("job");
    // The first worker "dies": its lease runs out.
    std::thread::sleep(Duration::from_millis(20));
    let second = queue
        .claim(LEASE)
        .await
        .expect("claim")
        .expect("re-claimed");
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempts, 2);
    // The first worker wakes up late: its outcome no longer counts.
    assert!(matches!(
        queue.complete(&first).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        queue.fail(&first, "late", LATER).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        queue.release(&first).await,
        Err(Error::Conflict(_))
    ));
    queue
        .complete(&second)
        .await
        .expect("the current lease completes");
}

pub async fn a_lease_that_expires_on_the_last_attempt_kills_the_job(
    queue: &impl JobQueue,
    _users: &impl UserRepository,
) {
    let job = welcome(1, 1);
    queue.enqueue(&job).await.expect("enqueue");
    queue
        .claim(Duration::from_millis(1))
        .await
        .expect("claim")
        .expect("job");
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        queue.claim(LEASE).await.expect("claim").is_none(),
        "not claimed again"
    );
    let dead = queue
        .list(Some(JobState::Dead), Limit::DEFAULT, None)
        .await
        .expect("list");
    assert_eq!(dead.items.len(), 1);
    assert!(dead.items[0].last_error.is_some());
}

pub async fn failures_wait_for_their_retry_then_die_with_the_last_error(
    queue: &impl JobQueue,
    _users: &impl UserRepository,
) {
    let job = welcome(1, 3);
    queue.enqueue(&job).await.expect("enqueue");

    // A retry scheduled for later is not claimable before then.
    let first = queue.claim(LEASE).await.expect("claim").expect("job");
    let state = queue.fail(&first, "smtp down", LATER).await.expect("fail");
    assert_eq!(state, JobState::Failed);
    assert!(
        queue.claim(LEASE).await.expect("claim").is_none(),
        "not due yet"
    );
    let failed = queue
        .list(Some(JobState::Failed), Limit::DEFAULT, None)
        .await
        .expect("list");
    assert!(
        failed.items[0].run_at > domain::now(),
        "run_at is the retry time"
    );

    // Retries due now are claimed again, until the attempts run out.
    let another = welcome(2, 2);
    queue.enqueue(&another).await.expect("enqueue");
    let a1 = queue.claim(LEASE).await.expect("claim").expect("due");
    assert_eq!(a1.id, another.id);
    assert_eq!(
        queue
            .fail(&a1, "smtp down", Duration::ZERO)
            .await
            .expect("fail"),
        JobState::Failed
    );
    let a2 = queue.claim(LEASE).await.expect("claim").expect("due again");
    assert_eq!((a2.id, a2.attempts), (another.id, 2));
    assert_eq!(
        queue
            .fail(&a2, "smtp still down", LATER)
            .await
            .expect("fail"),
        JobState::Dead
    );
    let dead = queue
        .list(Some(JobState::Dead), Limit::DEFAULT, None)
        .await
        .expect("list");
    assert_eq!(dead.items[0].last_error.as_deref(), Some("smtp still down"));
    assert!(
        queue.claim(LEASE).await.expect("claim").is_none(),
        "dead stays dead"
    );
}

pub async fn dead_jobs_can_be_retried_and_others_cannot(
    queue: &impl JobQueue,
    _users: &impl UserRepository,
) {
    let job = welcome(1, 1);
    queue.enqueue(&job).await.expect("enqueue");
    assert!(matches!(
        queue.retry(&job.id).await,
        Err(Error::Conflict(_))
    ));
    let claimed = queue.claim(LEASE).await.expect("claim").expect("job");
    assert_eq!(
        queue.fail(&claimed, "boom", LATER).await.expect("fail"),
        JobState::Dead
    );
    let retried = queue.retry(&job.id).await.expect("retry");
    assert_eq!((retried.state, retried.attempts), (JobState::Queued, 0));
    let claimed = queue
        .claim(LEASE)
        .await
        .expect("claim")
        .expect("runnable again");
    assert_eq!(claimed.id, job.id);
    assert!(matches!(
        queue.retry(&domain::jobs::JobId::generate()).await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn a_released_job_is_queued_again_without_using_an_attempt(
    queue: &impl JobQueue,
    _users: &impl UserRepository,
) {
    let job = welcome(1, 5);
    queue.enqueue(&job).await.expect("enqueue");
    let claimed = queue.claim(LEASE).await.expect("claim").expect("job");
    queue.release(&claimed).await.expect("release");
    let again = queue.claim(LEASE).await.expect("claim").expect("job");
    assert_eq!(again.attempts, 1);
}

pub async fn a_users_jobs_are_stored_with_the_user_and_only_then(
    queue: &impl JobQueue,
    users: &impl UserRepository,
) {
    let user = User::new(
        UserName::parse("Ada").expect("name"),
        Email::parse("ada@example.com").expect("email"),
    );
    let job = welcome(1, 5);
    users
        .create(
            &user,
            &PasswordHash::new("$argon2id$x"),
            std::slice::from_ref(&job),
        )
        .await
        .expect("create");
    // A duplicate user fails, and so its job is not stored either.
    let twin = User::new(
        UserName::parse("Ada again").expect("name"),
        Email::parse("ADA@example.com").expect("email"),
    );
    let orphan = welcome(2, 5);
    assert!(
        users
            .create(
                &twin,
                &PasswordHash::new("$argon2id$x"),
                std::slice::from_ref(&orphan)
            )
            .await
            .is_err()
    );

    let all = queue.list(None, Limit::DEFAULT, None).await.expect("list");
    let ids: Vec<_> = all.items.iter().map(|j| j.id).collect();
    assert_eq!(ids, [job.id]);
}

/// A job's payload names its user (address, name) and its errors may too: deleting the
/// user deletes the job. Jobs about nobody stay.
pub async fn a_deleted_users_jobs_go_with_them(queue: &impl JobQueue, users: &impl UserRepository) {
    let ada = User::new(
        UserName::parse("Ada").expect("name"),
        Email::parse("ada@example.com").expect("email"),
    );
    let grace = User::new(
        UserName::parse("Grace").expect("name"),
        Email::parse("grace@example.com").expect("email"),
    );
    let ada_job = NewJob::now(
        JobPayload::WelcomeEmail {
            user_id: ada.id.as_uuid(),
            email: "ada@example.com".into(),
            name: "Ada".into(),
        },
        5,
    );
    let grace_job = NewJob::now(
        JobPayload::WelcomeEmail {
            user_id: grace.id.as_uuid(),
            email: "grace@example.com".into(),
            name: "Grace".into(),
        },
        5,
    );
    for (user, job) in [(&ada, &ada_job), (&grace, &grace_job)] {
        users
            .create(
                user,
                &PasswordHash::new("$argon2id$x"),
                std::slice::from_ref(job),
            )
            .await
            .expect("create");
    }
    // A failed attempt leaves an error beside the payload.
    let claimed = queue
        .claim(Duration::from_secs(30))
        .await
        .expect("claim")
        .expect("a job");
    queue
        .fail(&claimed, "550 no such mailbox: ada@example.com", LATER)
        .await
        .expect("fail");
    users.delete(&ada.id).await.expect("delete");
    let left = queue.list(None, Limit::DEFAULT, None).await.expect("list");
    let ids: Vec<_> = left.items.iter().map(|j| j.id).collect();
    assert_eq!(ids, [grace_job.id], "only the job of the user still there");
}

pub async fn a_waiting_worker_wakes_when_a_job_is_enqueued(
    queue: &impl JobQueue,
    _users: &impl UserRepository,
) {
    // The bound is far above what a notification takes, so only a working wake-up
    // ends the wait in time.
    let started = std::time::Instant::now();
    let (_, ()) = futures_util::future::join(queue.wait_for_work(Duration::from_secs(30)), async {
        queue.enqueue(&welcome(1, 5)).await.expect("enqueue");
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the enqueue"
    );
    assert!(queue.claim(LEASE).await.expect("claim").is_some());
}
