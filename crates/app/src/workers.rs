//! The background worker pool: a fixed number of tasks that claim jobs from the queue,
//! run each under its own timeout, and record the outcome with the retry policy.
//!
//! Shutdown: stop claiming; let in-flight jobs finish within the grace period; release
//! what is still running after it (another worker picks it up); join every task.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use domain::jobs::{Backoff, Job, JobQueue};
use futures_util::FutureExt;
use ports::jobs::JobRunner;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::JobSettings;

pub struct WorkerPool {
    tasks: JoinSet<()>,
    /// Cancelled first: no new claims.
    stop_claiming: CancellationToken,
    /// Cancelled after the grace period: in-flight jobs are released.
    abandon: CancellationToken,
}

#[derive(Clone)]
struct Worker {
    queue: Arc<dyn JobQueue>,
    runner: Arc<JobRunner>,
    settings: JobSettings,
    stop_claiming: CancellationToken,
    abandon: CancellationToken,
}

impl WorkerPool {
    /// Starts `settings.workers` workers (none when 0).
    pub fn start(queue: Arc<dyn JobQueue>, runner: Arc<JobRunner>, settings: &JobSettings) -> Self {
        let stop_claiming = CancellationToken::new();
        let abandon = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for n in 0..settings.workers {
            let worker = Worker {
                queue: queue.clone(),
                runner: runner.clone(),
                settings: settings.clone(),
                stop_claiming: stop_claiming.clone(),
                abandon: abandon.clone(),
            };
            tasks.spawn(worker.run().instrument(tracing::info_span!("worker", n)));
        }
        tracing::info!(workers = settings.workers, "job workers started");
        Self {
            tasks,
            stop_claiming,
            abandon,
        }
    }

    /// Stops the pool and returns how many worker tasks ended (all of them).
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        self.stop_claiming.cancel();
        let mut ended = 0;
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {
                ended += 1;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over: releasing unfinished jobs");
            self.abandon.cancel();
            while self.tasks.join_next().await.is_some() {
                ended += 1;
            }
        }
        tracing::info!(ended, "job workers stopped");
        ended
    }
}

impl Worker {
    async fn run(self) {
        loop {
            // Checked before claiming, never raced against a claim: dropping a claim
            // whose UPDATE already committed would strand the job until its lease ends.
            if self.stop_claiming.is_cancelled() {
                return;
            }
            let claimed = self.queue.claim(self.settings.lease).await;
            match claimed {
                Ok(Some(job)) => self.execute(job).await,
                Ok(None) => {
                    tokio::select! {
                        () = self.stop_claiming.cancelled() => return,
                        () = self.queue.wait_for_work(self.settings.poll_interval) => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "claiming a job failed");
                    tokio::select! {
                        () = self.stop_claiming.cancelled() => return,
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                    }
                }
            }
        }
    }

    async fn execute(&self, job: Job) {
        let span = tracing::info_span!(
            "job",
            job_id = %job.id,
            kind = job.payload.kind(),
            attempt = job.attempts
        );
        let kind = job.payload.kind();
        let started = std::time::Instant::now();
        async {
            // A panicking job is a failed attempt, not a dead worker.
            let attempt = AssertUnwindSafe(self.runner.run(&job)).catch_unwind();
            let attempt = tokio::time::timeout(self.settings.timeout, attempt);
            let outcome = tokio::select! {
                outcome = attempt => Some(outcome),
                () = self.abandon.cancelled() => None,
            };
            let recorded = match outcome {
                None => self.queue.release(&job).await.map(|()| "released"),
                Some(Ok(Ok(Ok(())))) => self.queue.complete(&job).await.map(|()| "completed"),
                Some(Ok(Ok(Err(failure)))) => self.fail(&job, &failure.to_string()).await,
                Some(Ok(Err(_panic))) => self.fail(&job, "the job panicked").await,
                Some(Err(_)) => {
                    let reason = format!("timed out after {:?}", self.settings.timeout);
                    self.fail(&job, &reason).await
                }
            };
            metrics::histogram!("job_duration_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            let counted = recorded.as_ref().map_or("unrecorded", |outcome| *outcome);
            metrics::counter!("job_attempts_total", "kind" => kind, "outcome" => counted)
                .increment(1);
            match recorded {
                Ok(outcome) => tracing::info!(outcome, "job attempt finished"),
                // Lease lost, or the database away: either way the lease decides who
                // runs it next.
                Err(error) => tracing::warn!(%error, "recording a job outcome failed"),
            }
        }
        .instrument(span)
        .await;
    }

    async fn fail(&self, job: &Job, reason: &str) -> Result<&'static str, domain::Error> {
        let backoff = Backoff {
            base: self.settings.backoff_base,
            max: self.settings.backoff_max,
        };
        let delay = backoff.delay(job.attempts, jitter());
        let state = self.queue.fail(job, reason, delay).await?;
        tracing::warn!(
            error = reason,
            state = state.as_str(),
            retry_in_ms = delay.as_millis() as u64,
            "job attempt failed"
        );
        Ok(state.as_str())
    }
}

/// A uniform random number in [0, 1).
fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
