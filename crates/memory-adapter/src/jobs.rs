use std::time::Duration;

use async_trait::async_trait;
use domain::jobs::{
    Job, JobId, JobQueue, JobState, LEASE_EXPIRED_ON_LAST_ATTEMPT, MAX_ERROR_CHARS, NewJob,
};
use domain::{Cursor, Error, Limit, Page};

use crate::tables::Shared;

/// A job as stored, from a new one.
pub(crate) fn stored(job: &NewJob) -> Job {
    let now = domain::now();
    Job {
        id: job.id,
        payload: job.payload.clone(),
        state: JobState::Queued,
        attempts: 0,
        max_attempts: job.max_attempts,
        last_error: None,
        run_at: now + job.delay,
        created_at: now,
        updated_at: now,
    }
}

/// A [`JobQueue`] in the shared in-memory tables.
#[derive(Debug, Clone)]
pub struct MemoryJobQueue {
    store: Shared,
}

impl MemoryJobQueue {
    pub(crate) fn new(store: Shared) -> Self {
        Self { store }
    }
}

fn runnable(job: &Job, lease: Option<&time::OffsetDateTime>, now: time::OffsetDateTime) -> bool {
    match job.state {
        JobState::Queued | JobState::Failed => job.run_at <= now,
        JobState::Running => lease.is_some_and(|until| *until < now),
        JobState::Completed | JobState::Dead => false,
    }
}

/// The job, if `claimed`'s lease still holds it.
fn leased<'a>(
    jobs: &'a mut std::collections::HashMap<JobId, Job>,
    claimed: &Job,
) -> Result<&'a mut Job, Error> {
    match jobs.get_mut(&claimed.id) {
        None => Err(Error::not_found("job", claimed.id)),
        Some(job) if job.state == JobState::Running && job.attempts == claimed.attempts => Ok(job),
        Some(_) => Err(Error::Conflict("the job's lease was lost")),
    }
}

#[async_trait]
impl JobQueue for MemoryJobQueue {
    async fn enqueue(&self, job: &NewJob) -> Result<(), Error> {
        self.store.lock().jobs.insert(job.id, stored(job));
        self.store.job_added.notify_one();
        Ok(())
    }

    async fn claim(&self, lease: Duration) -> Result<Option<Job>, Error> {
        let now = domain::now();
        let mut tables = self.store.lock();
        let tables = &mut *tables;
        // Leases that expired on the last attempt end the job.
        for job in tables.jobs.values_mut() {
            let expired = tables.leases.get(&job.id).is_some_and(|until| *until < now);
            if job.state == JobState::Running && expired && job.attempts >= job.max_attempts {
                job.state = JobState::Dead;
                job.last_error = Some(LEASE_EXPIRED_ON_LAST_ATTEMPT.into());
                job.updated_at = now;
                tables.leases.remove(&job.id);
            }
        }
        let next = tables
            .jobs
            .values()
            .filter(|j| runnable(j, tables.leases.get(&j.id), now))
            .min_by_key(|j| (j.run_at, j.id))
            .map(|j| j.id);
        let Some(id) = next else {
            return Ok(None);
        };
        let job = tables
            .jobs
            .get_mut(&id)
            .ok_or_else(|| Error::internal("job vanished under the lock"))?;
        job.state = JobState::Running;
        job.attempts += 1;
        job.updated_at = now;
        tables.leases.insert(id, now + lease);
        let claimed = job.clone();
        // There may be more: the next idle worker looks too.
        self.store.job_added.notify_one();
        Ok(Some(claimed))
    }

    async fn complete(&self, claimed: &Job) -> Result<(), Error> {
        let mut tables = self.store.lock();
        let job = leased(&mut tables.jobs, claimed)?;
        job.state = JobState::Completed;
        job.updated_at = domain::now();
        tables.leases.remove(&claimed.id);
        Ok(())
    }

    async fn fail(
        &self,
        claimed: &Job,
        error: &str,
        retry_in: Duration,
    ) -> Result<JobState, Error> {
        let mut tables = self.store.lock();
        let job = leased(&mut tables.jobs, claimed)?;
        job.state = if job.attempts >= job.max_attempts {
            JobState::Dead
        } else {
            JobState::Failed
        };
        job.last_error = Some(error.chars().take(MAX_ERROR_CHARS).collect());
        job.run_at = domain::now() + retry_in;
        job.updated_at = domain::now();
        let state = job.state;
        tables.leases.remove(&claimed.id);
        Ok(state)
    }

    async fn release(&self, claimed: &Job) -> Result<(), Error> {
        let mut tables = self.store.lock();
        let job = leased(&mut tables.jobs, claimed)?;
        job.state = JobState::Queued;
        job.attempts = job.attempts.saturating_sub(1);
        job.run_at = domain::now();
        job.updated_at = job.run_at;
        tables.leases.remove(&claimed.id);
        drop(tables);
        self.store.job_added.notify_one();
        Ok(())
    }

    async fn retry(&self, id: &JobId) -> Result<Job, Error> {
        let mut tables = self.store.lock();
        let job = tables
            .jobs
            .get_mut(id)
            .ok_or_else(|| Error::not_found("job", id))?;
        if !matches!(job.state, JobState::Failed | JobState::Dead) {
            return Err(Error::Conflict("only failed or dead jobs can be retried"));
        }
        job.state = JobState::Queued;
        job.attempts = 0;
        job.run_at = domain::now();
        job.updated_at = job.run_at;
        let job = job.clone();
        drop(tables);
        self.store.job_added.notify_one();
        Ok(job)
    }

    async fn list(
        &self,
        state: Option<JobState>,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Job>, Error> {
        let key = |j: &Job| (j.created_at, j.id.as_uuid());
        let mut rows: Vec<Job> = self
            .store
            .lock()
            .jobs
            .values()
            .filter(|j| state.is_none_or(|s| j.state == s))
            .filter(|j| after.is_none_or(|c| key(j) < (c.created_at, c.id)))
            .cloned()
            .collect();
        rows.sort_by_key(|j| std::cmp::Reverse(key(j)));
        rows.truncate(limit.get() as usize + 1);
        Ok(Page::from_rows(rows, limit, Job::cursor))
    }

    async fn counts(&self) -> Result<Vec<(JobState, u64)>, Error> {
        let store = self.store.lock();
        Ok(JobState::ALL
            .iter()
            .map(|&state| {
                let n = store.jobs.values().filter(|j| j.state == state).count();
                (state, n as u64)
            })
            .collect())
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.store.job_added.notified()).await;
    }
}
