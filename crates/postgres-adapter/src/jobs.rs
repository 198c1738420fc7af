use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use diesel::OptionalExtension;
use diesel::sql_types::{Double, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::jobs::{
    Job, JobId, JobPayload, JobQueue, JobState, LEASE_EXPIRED_ON_LAST_ATTEMPT, MAX_ERROR_CHARS,
    NewJob,
};
use domain::{Cursor, Error, Limit, Page};
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::Database;
use crate::listener::Listening;

/// The channel enqueuers notify and workers listen on.
const CHANNEL: &str = "jobs";

/// [`JobQueue`] on the `jobs` table, woken by `LISTEN jobs`.
///
/// Give it its own small [`Database`] so workers and request handlers never compete for
/// connections; the listener holds one more connection of its own.
#[derive(Clone)]
pub struct PgJobQueue {
    db: Database,
    wake: Arc<Notify>,
    _listener: Option<Arc<Listening>>,
}

impl PgJobQueue {
    /// The queue, with a task listening for notifications on a connection of its own
    /// to `db`'s database (reconnecting after failures). The task ends when the last
    /// clone of the queue is dropped.
    pub fn new(db: Database) -> Self {
        let wake = Arc::new(Notify::new());
        let waker = wake.clone();
        // Any notification, and every (re)connection (something may have been missed),
        // wakes one idle worker to look; a worker that claims something wakes the next.
        let task = crate::listener::spawn(
            db.target().clone(),
            CHANNEL,
            Box::new(move |_| waker.notify_one()),
        );
        Self {
            db,
            wake,
            _listener: Some(Arc::new(Listening(task))),
        }
    }

    /// The queue without a listening connection (behind pgbouncer in transaction
    /// mode, `LISTEN` cannot work): idle workers find new jobs when they next poll.
    pub fn polling(db: Database) -> Self {
        Self {
            db,
            wake: Arc::new(Notify::new()),
            _listener: None,
        }
    }
}

#[derive(diesel::QueryableByName)]
struct JobRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Integer)]
    max_attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    run_at: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    created_at: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    updated_at: OffsetDateTime,
}

impl TryFrom<JobRow> for Job {
    type Error = Error;

    fn try_from(row: JobRow) -> Result<Self, Error> {
        Ok(Job {
            id: JobId::from_uuid(row.id),
            payload: serde_json::from_value::<JobPayload>(row.payload)
                .map_err(|e| Error::internal(format!("unreadable job payload: {e}")))?,
            state: JobState::parse(&row.state).map_err(Error::internal)?,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            max_attempts: u32::try_from(row.max_attempts).unwrap_or(1),
            last_error: row.last_error,
            run_at: row.run_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str =
    "id, payload, state, attempts, max_attempts, last_error, run_at, created_at, updated_at";

/// The attempt number of a claim: with the id, it identifies the lease.
fn attempt(claimed: &Job) -> i32 {
    i32::try_from(claimed.attempts).unwrap_or(i32::MAX)
}

fn lease_held(updated: usize) -> Result<(), Error> {
    if updated == 0 {
        Err(Error::Conflict("the job's lease was lost"))
    } else {
        Ok(())
    }
}

fn query_error(e: diesel::result::Error) -> Error {
    crate::error::query(e, &[("jobs_pkey", "job", "id")])
}

/// Inserts `jobs` and notifies workers; the notification is delivered when the
/// surrounding transaction commits, and never if it rolls back.
pub(crate) async fn insert_jobs(
    conn: &mut AsyncPgConnection,
    jobs: &[NewJob],
) -> Result<(), diesel::result::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    for job in jobs {
        let payload = serde_json::to_value(&job.payload)
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
        diesel::sql_query(
            "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, \
             created_at, updated_at, user_id) \
             VALUES ($1, $2, $3, 'queued', 0, $4, now() + make_interval(secs => $5), \
               now(), now(), $6)",
        )
        .bind::<SqlUuid, _>(job.id.as_uuid())
        .bind::<Text, _>(job.payload.kind())
        .bind::<Jsonb, _>(payload)
        .bind::<Integer, _>(i32::try_from(job.max_attempts).unwrap_or(i32::MAX))
        .bind::<Double, _>(job.delay.as_secs_f64())
        .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(job.payload.user_id())
        .execute(conn)
        .await?;
    }
    diesel::sql_query(format!("NOTIFY {CHANNEL}"))
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl JobQueue for PgJobQueue {
    async fn enqueue(&self, job: &NewJob) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        insert_jobs(&mut conn, std::slice::from_ref(job))
            .await
            .map_err(query_error)
    }

    async fn claim(&self, lease: Duration) -> Result<Option<Job>, Error> {
        let mut conn = self.db.get().await?;
        // Due times and leases are judged by the database's clock (`now()`), the same
        // for every instance whatever their own clocks say.
        // A job whose lease expired on its last attempt dies here rather than loop (it
        // may be what kills its workers).
        diesel::sql_query(
            "UPDATE jobs SET state = 'dead', last_error = $1, lease_until = NULL, \
               updated_at = now() \
             WHERE state = 'running' AND lease_until < now() AND attempts >= max_attempts",
        )
        .bind::<Text, _>(LEASE_EXPIRED_ON_LAST_ATTEMPT)
        .execute(&mut conn)
        .await
        .map_err(query_error)?;
        // SKIP LOCKED: concurrent claimers each lock a different row instead of
        // queueing behind one another; the row lock is held until this UPDATE commits.
        let row: Option<JobRow> = diesel::sql_query(format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, \
               lease_until = now() + make_interval(secs => $1), updated_at = now() \
             WHERE id = ( \
               SELECT id FROM jobs \
               WHERE (state IN ('queued', 'failed') AND run_at <= now()) \
                  OR (state = 'running' AND lease_until < now()) \
               ORDER BY run_at, id \
               LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {COLUMNS}"
        ))
        .bind::<Double, _>(lease.as_secs_f64())
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(query_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        // There may be more: the next idle worker looks too.
        self.wake.notify_one();
        let id = row.id;
        match Job::try_from(row) {
            Ok(job) => Ok(Some(job)),
            Err(error) => {
                // Unreadable (e.g. a kind this version does not know): dead-letter it
                // with the reason instead of failing every claim.
                diesel::sql_query(
                    "UPDATE jobs SET state = 'dead', last_error = $2, lease_until = NULL \
                     WHERE id = $1",
                )
                .bind::<SqlUuid, _>(id)
                .bind::<Text, _>(error.to_string())
                .execute(&mut conn)
                .await
                .map_err(query_error)?;
                Ok(None)
            }
        }
    }

    async fn complete(&self, claimed: &Job) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        let updated = diesel::sql_query(
            "UPDATE jobs SET state = 'completed', lease_until = NULL, updated_at = now() \
             WHERE id = $1 AND state = 'running' AND attempts = $2",
        )
        .bind::<SqlUuid, _>(claimed.id.as_uuid())
        .bind::<Integer, _>(attempt(claimed))
        .execute(&mut conn)
        .await
        .map_err(query_error)?;
        lease_held(updated)
    }

    async fn fail(
        &self,
        claimed: &Job,
        error: &str,
        retry_in: Duration,
    ) -> Result<JobState, Error> {
        let mut conn = self.db.get().await?;
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let row: Option<JobRow> = diesel::sql_query(format!(
            "UPDATE jobs SET \
               state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'failed' END, \
               last_error = $3, run_at = now() + make_interval(secs => $4), \
               lease_until = NULL, updated_at = now() \
             WHERE id = $1 AND state = 'running' AND attempts = $2 RETURNING {COLUMNS}"
        ))
        .bind::<SqlUuid, _>(claimed.id.as_uuid())
        .bind::<Integer, _>(attempt(claimed))
        .bind::<Text, _>(&error)
        .bind::<Double, _>(retry_in.as_secs_f64())
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(query_error)?;
        let job: Job = row
            .ok_or(Error::Conflict("the job's lease was lost"))?
            .try_into()?;
        Ok(job.state)
    }

    async fn release(&self, claimed: &Job) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        let updated = diesel::sql_query(
            "UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0), \
               run_at = now(), lease_until = NULL, updated_at = now() \
             WHERE id = $1 AND state = 'running' AND attempts = $2",
        )
        .bind::<SqlUuid, _>(claimed.id.as_uuid())
        .bind::<Integer, _>(attempt(claimed))
        .execute(&mut conn)
        .await
        .map_err(query_error)?;
        let _ = diesel::sql_query(format!("NOTIFY {CHANNEL}"))
            .execute(&mut conn)
            .await;
        lease_held(updated)
    }

    async fn retry(&self, id: &JobId) -> Result<Job, Error> {
        let mut conn = self.db.get().await?;
        let row: Option<JobRow> = diesel::sql_query(format!(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = now(), updated_at = now() \
             WHERE id = $1 AND state IN ('failed', 'dead') RETURNING {COLUMNS}"
        ))
        .bind::<SqlUuid, _>(id.as_uuid())
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(query_error)?;
        match row {
            Some(row) => {
                let _ = diesel::sql_query(format!("NOTIFY {CHANNEL}"))
                    .execute(&mut conn)
                    .await;
                row.try_into()
            }
            None => {
                let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
                    &format!("EXISTS (SELECT 1 FROM jobs WHERE id = '{}')", id.as_uuid()),
                ))
                .get_result(&mut conn)
                .await
                .map_err(query_error)?;
                Err(if exists {
                    Error::Conflict("only failed or dead jobs can be retried")
                } else {
                    Error::not_found("job", id)
                })
            }
        }
    }

    async fn list(
        &self,
        state: Option<JobState>,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Job>, Error> {
        let mut conn = self.db.get().await?;
        let rows: Vec<JobRow> = diesel::sql_query(format!(
            "SELECT {COLUMNS} FROM jobs \
             WHERE ($1::text IS NULL OR state = $1) \
               AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind::<Nullable<Text>, _>(state.map(JobState::as_str))
        .bind::<Nullable<Timestamptz>, _>(after.map(|c| c.created_at))
        .bind::<SqlUuid, _>(after.map_or(Uuid::nil(), |c| c.id))
        .bind::<diesel::sql_types::BigInt, _>(i64::from(limit.get()) + 1)
        .load(&mut conn)
        .await
        .map_err(query_error)?;
        let jobs = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(jobs, limit, Job::cursor))
    }

    async fn counts(&self) -> Result<Vec<(JobState, u64)>, Error> {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = Text)]
            state: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db.get().await?;
        let rows: Vec<Count> =
            diesel::sql_query("SELECT state, count(*) AS n FROM jobs GROUP BY state")
                .load(&mut conn)
                .await
                .map_err(query_error)?;
        Ok(JobState::ALL
            .iter()
            .map(|&state| {
                let n = rows
                    .iter()
                    .find(|r| r.state == state.as_str())
                    .map_or(0, |r| u64::try_from(r.n).unwrap_or(0));
                (state, n)
            })
            .collect())
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.wake.notified()).await;
    }
}
