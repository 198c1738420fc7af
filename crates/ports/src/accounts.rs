//! The account flows an owner drives: proving their address, resetting a forgotten
//! password, changing it, confirming a new address, and seeing and ending their
//! sessions. Every e-mail is a job stored with the state it announces; the links'
//! tokens are made when the e-mail is delivered (see `account_mail`), so no secret
//! ever sits in the queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::Error;
use domain::accounts::{AccountStore, PasswordChange, TokenPurpose};
use domain::auth::{
    Claims, EndSessions, Password, PasswordCheck, PasswordHasher, Principal, RefreshTokenStore,
    SecretToken, Session, SessionId,
};
use domain::jobs::{JobPayload, JobQueue, NewJob};
use domain::rate_limit::{Budget, RateLimitStore, Taken};
use domain::users::{Email, UserRepository};

use crate::rate_limit::ClientKey;
use crate::sessions::Revocations;
use crate::users::{existing_user, signed_in_user};

/// A session as its owner sees it listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub session: Session,
    /// Whether the request asking is made in this session.
    pub current: bool,
}

/// The account use cases.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait AccountService: Send + Sync + 'static {
    /// Marks the address a verification link was sent to as verified.
    /// [`Error::LinkInvalid`] for a token unknown, spent, expired, or sent to an
    /// address the account no longer has — which of these is not said.
    async fn verify_email(&self, token: &str) -> Result<(), Error>;

    /// Sends a new verification link, which ends the older ones.
    /// [`Error::RateLimited`] past the per-account budget; [`Error::Conflict`] when
    /// the address is already verified.
    async fn resend_verification(&self, actor: Principal) -> Result<(), Error>;

    /// Sends a reset link to the account at `email`, if there is one. Answers the
    /// same, after the same work, whether there is or not; [`Error::RateLimited`]
    /// past the budget of `client` (a spent per-address budget is not told: the
    /// request is answered and no e-mail goes out).
    async fn forgot_password(&self, email: &str, client: ClientKey) -> Result<(), Error>;

    /// Sets a new password with a reset link's token, ends every session of the
    /// account and tells its owner. [`Error::Validation`] naming `password` first,
    /// then [`Error::LinkInvalid`].
    async fn reset_password(&self, token: &str, password: &str) -> Result<(), Error>;

    /// Changes the caller's password, ending every other session of theirs and telling
    /// them. [`Error::Validation`] naming `new_password`; [`Error::Forbidden`] when
    /// `current` is not their password.
    async fn change_password(&self, caller: Claims, current: &str, new: &str) -> Result<(), Error>;

    /// Moves the account to the pending address a confirmation link was sent to.
    /// [`Error::LinkInvalid`] as for [`AccountService::verify_email`] (a newer pending
    /// address makes older links invalid); [`Error::Duplicate`] when another account
    /// took the address meanwhile.
    async fn confirm_email_change(&self, token: &str) -> Result<(), Error>;

    /// The caller's sessions that have not ended, newest first.
    async fn sessions(&self, caller: Claims) -> Result<Vec<SessionView>, Error>;

    /// Ends one of the caller's sessions. [`Error::NotFound`] for an id that is not
    /// one of their live sessions.
    async fn end_session(&self, caller: Claims, id: SessionId) -> Result<(), Error>;

    /// Ends every session of the caller but the current one, or every one.
    async fn logout_all(&self, caller: Claims, including_current: bool) -> Result<(), Error>;
}

/// The application service behind [`AccountService`].
pub struct Accounts {
    users: Arc<dyn UserRepository>,
    store: Arc<dyn AccountStore>,
    hasher: Arc<dyn PasswordHasher>,
    queue: Arc<dyn JobQueue>,
    revocations: Arc<Revocations>,
    refresh_tokens: Arc<dyn RefreshTokenStore>,
    rate_limits: Arc<dyn RateLimitStore>,
    job_max_attempts: u32,
    resend: Budget,
    reset_per_client: Budget,
    reset_per_address: Budget,
}

const HOUR: Duration = Duration::from_secs(60 * 60);

impl Accounts {
    pub fn new(
        users: Arc<dyn UserRepository>,
        store: Arc<dyn AccountStore>,
        hasher: Arc<dyn PasswordHasher>,
        queue: Arc<dyn JobQueue>,
        refresh_tokens: Arc<dyn RefreshTokenStore>,
        revocations: Arc<Revocations>,
    ) -> Self {
        Self {
            users,
            store,
            hasher,
            queue,
            refresh_tokens,
            revocations,
            rate_limits: Arc::new(crate::rate_limit::LocalRateLimits::default()),
            job_max_attempts: 5,
            resend: Budget::new("verification-resend", 5, HOUR),
            reset_per_client: Budget::new("password-reset", 20, HOUR),
            reset_per_address: Budget::new("password-reset-address", 5, HOUR),
        }
    }

    /// Counts the budgets in `store` (shared by every instance on it).
    pub fn with_rate_limits(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.rate_limits = store;
        self
    }

    /// How many times the e-mail jobs started here are tried.
    pub fn with_job_max_attempts(mut self, attempts: u32) -> Self {
        self.job_max_attempts = attempts.max(1);
        self
    }

    fn job(&self, payload: JobPayload) -> NewJob {
        NewJob::now(payload, self.job_max_attempts)
    }

    async fn take(&self, budget: &Budget, key: &str) -> Result<Taken, Error> {
        self.rate_limits.take(budget, key).await
    }
}

fn token_hash(raw: &str) -> domain::auth::TokenHash {
    SecretToken::presented(raw.trim()).hash()
}

#[async_trait]
impl AccountService for Accounts {
    async fn verify_email(&self, token: &str) -> Result<(), Error> {
        match self.store.verify_email(&token_hash(token)).await? {
            Some(user) => {
                tracing::info!(user_id = %user, "e-mail address verified");
                Ok(())
            }
            None => Err(Error::LinkInvalid),
        }
    }

    async fn resend_verification(&self, actor: Principal) -> Result<(), Error> {
        if let Taken::Refused { retry_after } =
            self.take(&self.resend, &actor.user_id.to_string()).await?
        {
            return Err(Error::RateLimited { retry_after });
        }
        let user = signed_in_user(&*self.users, actor.user_id).await?;
        if user.email_verified_at.is_some() {
            return Err(Error::Conflict("the address is already verified"));
        }
        self.queue
            .enqueue(&self.job(JobPayload::VerificationEmail {
                user_id: user.id.as_uuid(),
                email: user.email.as_str().to_owned(),
            }))
            .await
    }

    async fn forgot_password(&self, email: &str, client: ClientKey) -> Result<(), Error> {
        let email = Email::parse(email).map_err(|e| e.for_field("email"))?;
        if let Taken::Refused { retry_after } =
            self.take(&self.reset_per_client, client.as_str()).await?
        {
            return Err(Error::RateLimited { retry_after });
        }
        let address = crate::rate_limit::fingerprint(&email.normalized());
        if let Taken::Refused { .. } = self.take(&self.reset_per_address, &address).await? {
            // Told to nobody: the answer is the same, and the owner's inbox is spared.
            tracing::info!("password reset e-mails to one address are at their limit");
            return Ok(());
        }
        // The same work for every address: whether an account has it is decided when
        // the job runs, so the answer's timing says nothing.
        self.queue
            .enqueue(&self.job(JobPayload::PasswordReset {
                email: email.into_inner(),
            }))
            .await
    }

    async fn reset_password(&self, token: &str, password: &str) -> Result<(), Error> {
        let password = Password::parse(password).map_err(|e| e.for_field("password"))?;
        let token = token_hash(token);
        let Some(user_id) = self
            .store
            .owner(TokenPurpose::ResetPassword, &token)
            .await?
        else {
            return Err(Error::LinkInvalid);
        };
        let user = existing_user(&*self.users, user_id)
            .await?
            .ok_or(Error::LinkInvalid)?;
        let hash = self.hasher.hash(&password).await?;
        let notice = vec![self.job(JobPayload::PasswordChanged {
            user_id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
        })];
        let ended = self
            .store
            .change_password(PasswordChange {
                user_id,
                hash,
                spend: Some(token),
                keep: None,
                jobs: notice,
            })
            .await?
            .ok_or(Error::LinkInvalid)?;
        self.revocations.announce(user_id, &ended).await;
        tracing::info!(user_id = %user_id, sessions_ended = ended.len(), "password reset");
        Ok(())
    }

    async fn change_password(&self, caller: Claims, current: &str, new: &str) -> Result<(), Error> {
        let new = Password::parse(new).map_err(|e| e.for_field("new_password"))?;
        let user_id = caller.principal.user_id;
        let gone = || Error::Unauthorized("invalid or expired token");
        let user = signed_in_user(&*self.users, user_id).await?;
        let stored = self
            .users
            .credentials_by_email(&user.email)
            .await?
            .filter(|c| c.user.id == user_id)
            .ok_or_else(gone)?;
        let current = Password::candidate(current);
        let valid = match &stored.password_hash {
            Some(hash) => self.hasher.verify(&current, hash).await?,
            None => {
                self.hasher.verify_dummy(&current).await?;
                PasswordCheck::Invalid
            }
        };
        if valid == PasswordCheck::Invalid {
            return Err(Error::Forbidden("the current password is not right"));
        }
        let hash = self.hasher.hash(&new).await?;
        let notice = vec![self.job(JobPayload::PasswordChanged {
            user_id: user_id.as_uuid(),
            email: user.email.as_str().to_owned(),
        })];
        let ended = self
            .store
            .change_password(PasswordChange {
                user_id,
                hash,
                spend: None,
                keep: Some(caller.session),
                jobs: notice,
            })
            .await?
            .unwrap_or_default();
        self.revocations.announce(user_id, &ended).await;
        tracing::info!(user_id = %user_id, sessions_ended = ended.len(), "password changed");
        Ok(())
    }

    async fn confirm_email_change(&self, token: &str) -> Result<(), Error> {
        match self.store.confirm_email_change(&token_hash(token)).await? {
            Some(user) => {
                tracing::info!(user_id = %user, "e-mail address changed");
                Ok(())
            }
            None => Err(Error::LinkInvalid),
        }
    }

    async fn sessions(&self, caller: Claims) -> Result<Vec<SessionView>, Error> {
        let sessions = self
            .refresh_tokens
            .sessions(&caller.principal.user_id)
            .await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionView {
                current: session.id == caller.session,
                session,
            })
            .collect())
    }

    async fn end_session(&self, caller: Claims, id: SessionId) -> Result<(), Error> {
        let ended = self
            .revocations
            .end(caller.principal.user_id, EndSessions::One(id))
            .await?;
        if ended.is_empty() {
            return Err(Error::not_found("session", id));
        }
        Ok(())
    }

    async fn logout_all(&self, caller: Claims, including_current: bool) -> Result<(), Error> {
        let except = (!including_current).then_some(caller.session);
        let ended = self
            .revocations
            .end(caller.principal.user_id, EndSessions::AllExcept(except))
            .await?;
        tracing::info!(user_id = %caller.principal.user_id, sessions_ended = ended.len(), "signed out everywhere");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use domain::accounts::MockAccountStore;
    use domain::auth::{MockPasswordHasher, MockRefreshTokenStore, PasswordHash};
    use domain::jobs::MockJobQueue;
    use domain::users::{MockUserRepository, Role, User, UserId, UserName};

    use super::*;

    fn accounts(
        users: MockUserRepository,
        store: MockAccountStore,
        queue: MockJobQueue,
        refresh: MockRefreshTokenStore,
    ) -> Accounts {
        let refresh: Arc<dyn RefreshTokenStore> = Arc::new(refresh);
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("$argon2id$new")));
        Accounts::new(
            Arc::new(users),
            Arc::new(store),
            Arc::new(hasher),
            Arc::new(queue),
            refresh.clone(),
            Arc::new(Revocations::new(refresh, Duration::from_secs(60))),
        )
    }

    fn client() -> ClientKey {
        ClientKey::of(Some([192, 0, 2, 1].into()))
    }

    #[tokio::test]
    async fn a_reset_request_does_the_same_work_for_every_address() {
        // No repository expectation: looking the address up here would panic. The job
        // decides when it runs, so the request's work cannot depend on the account.
        let mut queue = MockJobQueue::new();
        queue
            .expect_enqueue()
            .withf(|job| matches!(&job.payload, JobPayload::PasswordReset { email } if email == "nobody@example.com"))
            .times(1)
            .returning(|_| Ok(()));
        let accounts = accounts(
            MockUserRepository::new(),
            MockAccountStore::new(),
            queue,
            MockRefreshTokenStore::new(),
        );
        accounts
            .forgot_password("nobody@example.com", client())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn past_the_address_budget_a_reset_request_is_answered_and_sends_nothing() {
        let mut queue = MockJobQueue::new();
        queue.expect_enqueue().times(5).returning(|_| Ok(()));
        let accounts = accounts(
            MockUserRepository::new(),
            MockAccountStore::new(),
            queue,
            MockRefreshTokenStore::new(),
        );
        for n in 0..6u8 {
            // From six addresses: the per-client budget is not what stops the sixth.
            let from = ClientKey::of(Some([192, 0, 2, n].into()));
            accounts
                .forgot_password("ada@example.com", from)
                .await
                .unwrap();
        }
        let malformed = accounts.forgot_password("not an address", client()).await;
        assert!(
            matches!(malformed, Err(Error::Validation(_))),
            "{malformed:?}"
        );
    }

    #[tokio::test]
    async fn an_invalid_new_password_is_reported_before_the_link_is_looked_at() {
        let accounts = accounts(
            MockUserRepository::new(),
            MockAccountStore::new(),
            MockJobQueue::new(),
            MockRefreshTokenStore::new(),
        );
        let err = accounts
            .reset_password("whatever", "short")
            .await
            .unwrap_err();
        let Error::Validation(errors) = err else {
            panic!("{err:?}");
        };
        assert_eq!(errors.errors()[0].field, "password");
    }

    #[tokio::test]
    async fn a_reset_link_spent_by_a_concurrent_request_is_invalid_and_ends_nothing() {
        let user = User::new(
            UserName::parse("Ada").unwrap(),
            Email::parse("ada@example.com").unwrap(),
        );
        let id = user.id;
        let mut users = MockUserRepository::new();
        users.expect_get().returning(move |_| Ok(user.clone()));
        let mut store = MockAccountStore::new();
        store.expect_owner().returning(move |_, _| Ok(Some(id)));
        // The owner was read, but by the time of the change the token is spent.
        store.expect_change_password().returning(|_| Ok(None));
        let accounts = accounts(
            users,
            store,
            MockJobQueue::new(),
            MockRefreshTokenStore::new(),
        );
        let err = accounts
            .reset_password("raced", "a brand new horse battery")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::LinkInvalid), "{err:?}");
    }

    #[tokio::test]
    async fn ending_someone_elses_session_is_not_found() {
        let mut refresh = MockRefreshTokenStore::new();
        refresh.expect_end_sessions().returning(|_, _| Ok(vec![]));
        let accounts = accounts(
            MockUserRepository::new(),
            MockAccountStore::new(),
            MockJobQueue::new(),
            refresh,
        );
        let caller = Claims {
            principal: Principal {
                user_id: UserId::generate(),
                role: Role::User,
            },
            session: SessionId::generate(),
            expires_at: domain::now() + time::Duration::minutes(5),
        };
        let err = accounts
            .end_session(caller, SessionId::generate())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }
}
