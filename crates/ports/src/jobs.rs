//! Background work: what each job kind does, and the admin view of the queue.

use std::sync::Arc;

use async_trait::async_trait;
use domain::jobs::{Job, JobId, JobPayload, JobQueue, JobState};
use domain::mail::{EmailMessage, MailError, Mailer};
use domain::users::Email;
use domain::{Cursor, Error, Limit, Page};

use crate::account_mail::{AccountMail, welcome};

/// Why a job attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// Worth retrying later (a mail server down).
    #[error("{0}")]
    Transient(String),
    /// Will never succeed as it is (a rejected address); still retried within the
    /// job's attempts, so an operator sees it dead with the reason.
    #[error("{0}")]
    Permanent(String),
}

/// Executes jobs. Each kind's effect must tolerate running more than once (a worker can
/// die after the effect and before recording it): the welcome e-mail carries a
/// Message-ID derived from the job, so a repeat is recognisably the same message.
pub struct JobRunner {
    mailer: Arc<dyn Mailer>,
    /// The domain of generated Message-IDs, e.g. the sender's.
    message_id_domain: String,
    /// Writes the account e-mails; without it only the plain welcome e-mail is sent.
    accounts: Option<AccountMail>,
}

impl JobRunner {
    pub fn new(mailer: Arc<dyn Mailer>, message_id_domain: impl Into<String>) -> Self {
        Self {
            mailer,
            message_id_domain: message_id_domain.into(),
            accounts: None,
        }
    }

    /// Sends the account flows' e-mails, with their links, through `accounts`.
    pub fn with_account_mail(mut self, accounts: AccountMail) -> Self {
        self.accounts = Some(accounts);
        self
    }

    pub async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let mail = match (&self.accounts, &job.payload) {
            (Some(accounts), payload) => accounts.write(payload).await.map_err(|e| match e {
                Error::Unavailable(_) => JobFailure::Transient(e.to_string()),
                _ => JobFailure::Permanent(e.to_string()),
            })?,
            (None, JobPayload::WelcomeEmail { email, name, .. }) => {
                let to = Email::parse(email).map_err(|e| JobFailure::Permanent(e.to_string()))?;
                Some(welcome(to, name, None))
            }
            (None, other) => {
                return Err(JobFailure::Permanent(format!(
                    "no account mail is configured for {}",
                    other.kind()
                )));
            }
        };
        let Some(mail) = mail else {
            tracing::info!(job_id = %job.id, kind = job.payload.kind(), "nothing to send any more");
            return Ok(());
        };
        let message = EmailMessage {
            to: mail.to,
            subject: mail.subject,
            text: mail.text,
            html: Some(mail.html),
            message_id: Some(message_id(job.id, &self.message_id_domain)),
        };
        self.mailer.send(&message).await.map_err(|e| match e {
            MailError::Unavailable(reason) => JobFailure::Transient(reason),
            MailError::Rejected(reason) => JobFailure::Permanent(reason),
        })
    }
}

/// The Message-ID of a job's e-mail: the same for every attempt of the job.
pub fn message_id(job: JobId, message_id_domain: &str) -> String {
    format!("job-{job}@{message_id_domain}")
}

/// The admin view of the job queue.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait JobService: Send + Sync + 'static {
    /// Jobs newest first, of one state when given.
    async fn list(
        &self,
        state: Option<JobState>,
        limit: Limit,
        cursor: Option<Cursor>,
    ) -> Result<Page<Job>, Error>;

    /// Requeues a failed or dead job. [`Error::NotFound`]; [`Error::Conflict`] for a
    /// job in another state.
    async fn retry(&self, id: JobId) -> Result<Job, Error>;
}

/// The application service behind [`JobService`].
pub struct Jobs {
    queue: Arc<dyn JobQueue>,
}

impl Jobs {
    pub fn new(queue: Arc<dyn JobQueue>) -> Self {
        Self { queue }
    }
}

#[async_trait]
impl JobService for Jobs {
    async fn list(
        &self,
        state: Option<JobState>,
        limit: Limit,
        cursor: Option<Cursor>,
    ) -> Result<Page<Job>, Error> {
        self.queue.list(state, limit, cursor).await
    }

    async fn retry(&self, id: JobId) -> Result<Job, Error> {
        let job = self.queue.retry(&id).await?;
        tracing::info!(job_id = %id, "job requeued by an admin");
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use domain::mail::MockMailer;

    use super::*;

    fn job(email: &str) -> Job {
        let now = domain::now();
        Job {
            id: JobId::generate(),
            payload: JobPayload::WelcomeEmail {
                user_id: uuid::Uuid::now_v7(),
                email: email.into(),
                name: "Ada <script>".into(),
            },
            state: JobState::Running,
            attempts: 1,
            max_attempts: 5,
            last_error: None,
            run_at: now,
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn the_welcome_email_has_a_stable_message_id_and_escaped_html() {
        let job = job("ada@example.com");
        let expected_id = format!("job-{}@users.example", job.id);
        let mut mailer = MockMailer::new();
        mailer
            .expect_send()
            .withf(move |m| {
                m.to.as_str() == "ada@example.com"
                    && m.subject == "Welcome, Ada <script>"
                    && m.html
                        .as_deref()
                        .is_some_and(|h| h.contains("Ada &lt;script&gt;"))
                    && m.message_id.as_deref() == Some(expected_id.as_str())
            })
            .times(2)
            .returning(|_| Ok(()));
        let runner = JobRunner::new(Arc::new(mailer), "users.example");
        runner.run(&job).await.unwrap();
        // A retry of the same job sends the same Message-ID.
        runner.run(&job).await.unwrap();
    }

    #[tokio::test]
    async fn mail_failures_map_to_transient_or_permanent() {
        let mut mailer = MockMailer::new();
        mailer
            .expect_send()
            .returning(|_| Err(MailError::Unavailable("connection refused".into())));
        let runner = JobRunner::new(Arc::new(mailer), "x.example");
        assert!(matches!(
            runner.run(&job("ada@example.com")).await,
            Err(JobFailure::Transient(_))
        ));
        let runner = JobRunner::new(Arc::new(MockMailer::new()), "x.example");
        assert!(matches!(
            runner.run(&job("not an email")).await,
            Err(JobFailure::Permanent(_))
        ));
    }
}
