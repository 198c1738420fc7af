use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::auth::{Password, PasswordHasher, Principal, RefreshTokenStore};
use domain::jobs::{JobPayload, NewJob};
use domain::posts::{Post, PostRepository};
use domain::users::{Email, Role, User, UserChanges, UserId, UserName, UserRepository};
use domain::{Cursor, Error, Limit, Page, ValidationErrors, Version};

use crate::rate_limit::ClientKey;
use crate::sessions::Revocations;
use domain::auth::EndSessions;
use domain::rate_limit::{Budget, RateLimitStore, Taken};

/// Registers a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateUser {
    pub name: UserName,
    pub email: Email,
    pub password: Password,
}

impl CreateUser {
    /// Validates raw input, reporting every broken rule at once.
    pub fn parse(name: &str, email: &str, password: &str) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let name = errors.collect(UserName::parse(name));
        let email = errors.collect(Email::parse(email));
        let password = errors.collect(Password::parse(password));
        match (name, email, password) {
            (Some(name), Some(email), Some(password)) => Ok(Self {
                name,
                email,
                password,
            }),
            _ => Err(errors),
        }
    }
}

/// Changes some of a user's fields; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateUser {
    pub name: Option<UserName>,
    pub email: Option<Email>,
    pub role: Option<Role>,
}

impl UpdateUser {
    pub fn parse(
        name: Option<&str>,
        email: Option<&str>,
        role: Option<&str>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let name = name.and_then(|n| errors.collect(UserName::parse(n)));
        let email = email.and_then(|e| errors.collect(Email::parse(e)));
        let role = role.and_then(|r| errors.collect(Role::parse(r)));
        errors.into_result()?;
        Ok(Self { name, email, role })
    }

    /// The change as `actor` asks for it, in the order every transport answers:
    /// [`Error::Forbidden`] first when someone who is not an admin asks for a role
    /// (whatever its value: asking is the forbidden part), then every invalid field.
    /// [`UserService::update`] checks again against the role stored now.
    pub fn parse_as(
        actor: &Principal,
        name: Option<&str>,
        email: Option<&str>,
        role: Option<&str>,
    ) -> Result<Self, Error> {
        if role.is_some() && !actor.is_admin() {
            return Err(Error::Forbidden("only an admin can change a role"));
        }
        Ok(Self::parse(name, email, role)?)
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.role.is_none()
    }
}

/// What anyone signed in may see of another user: no e-mail address, no role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicProfile {
    pub id: UserId,
    pub name: UserName,
    pub created_at: time::OffsetDateTime,
}

/// A user as one caller may see them: the whole record for the user themself and for
/// admins (by the role stored now), the public profile for everyone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserView {
    Full(User),
    Public(PublicProfile),
}

impl UserView {
    /// `viewer` must carry the role stored now (see [`UserService::current_principal`]).
    fn of(user: User, viewer: &Principal) -> Self {
        if viewer.may_manage(user.id) {
            Self::Full(user)
        } else {
            Self::Public(PublicProfile {
                id: user.id,
                name: user.name,
                created_at: user.created_at,
            })
        }
    }

    pub fn id(&self) -> UserId {
        match self {
            Self::Full(user) => user.id,
            Self::Public(profile) => profile.id,
        }
    }

    /// The listing position of this user, for cursors.
    pub fn cursor(&self) -> Cursor {
        match self {
            Self::Full(user) => user.cursor(),
            Self::Public(profile) => Cursor::new(profile.created_at, profile.id.as_uuid()),
        }
    }
}

/// A user with their latest posts (the fan-out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWithPosts {
    pub user: UserView,
    /// At most [`UserWithPosts::LATEST`], newest first.
    pub posts: Vec<Post>,
}

impl UserWithPosts {
    pub const LATEST: u32 = 20;
}

/// One page of the newest-first user listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListUsers {
    pub limit: Limit,
    pub cursor: Option<Cursor>,
}

/// The user use cases. Operations on behalf of someone take their [`Principal`] and
/// enforce who may do what here, so every transport gets the same rules.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UserService: Send + Sync + 'static {
    /// Registers a user with the `user` role, for an anonymous caller from `client`.
    /// [`Error::RateLimited`] past the registration budget of `client` (every transport
    /// counts against the same one), before anything else is looked at;
    /// [`Error::Duplicate`] when the e-mail is taken (ignoring case), found before the
    /// password is hashed.
    async fn create(&self, command: CreateUser, client: ClientKey) -> Result<User, Error>;

    /// The principal `claimed` (by an access token) with the role stored now: a token
    /// outlives a demotion, so admin rights MUST be decided on this, never on the claim.
    /// A claim of `user` is taken as it is (it can only claim less than is stored).
    /// [`Error::Unauthorized`] when an admin's account no longer exists.
    async fn current_principal(&self, claimed: Principal) -> Result<Principal, Error>;

    /// The account `claimed` as stored now, whatever role the token claims: what a
    /// live session (which outlasts many requests) starts from. [`Error::Unauthorized`]
    /// when the account no longer exists.
    async fn session_principal(&self, claimed: Principal) -> Result<Principal, Error>;

    /// A user as `actor` may see them ([`UserView`]). [`Error::NotFound`] when no user
    /// has this id.
    async fn get(&self, actor: Principal, id: UserId) -> Result<UserView, Error>;

    /// The user (as `actor` may see them) and their latest posts, fetched concurrently
    /// under the fan-out deadline. [`Error::NotFound`] when no user has this id;
    /// [`Error::DeadlineExceeded`] past the deadline, with the outstanding work dropped.
    async fn get_with_posts(&self, actor: Principal, id: UserId) -> Result<UserWithPosts, Error>;

    /// Changes a user, if `expected` (when given) is still their version.
    /// [`Error::Forbidden`] unless `actor` is that user or an admin (by the role stored
    /// now), or when a non-admin asks for a role; a changed role ends the user's
    /// sessions; the owner's new e-mail is only recorded as pending, with a
    /// confirmation link sent to it and a notice to the current one (an admin's
    /// change of another account applies at once, verified; [`Error::RateLimited`]
    /// past 5 requests an hour for one account); [`Error::NotFound`] for an unknown id,
    /// [`Error::Duplicate`] when the new e-mail belongs to another user,
    /// [`Error::VersionMismatch`] when `expected` is stale, [`Error::Conflict`] when an
    /// admin would demote themselves. An empty update returns the user unchanged.
    async fn update(
        &self,
        actor: Principal,
        id: UserId,
        command: UpdateUser,
        expected: Option<Version>,
    ) -> Result<User, Error>;

    /// Users newest first, each as `actor` may see them.
    async fn list(&self, actor: Principal, query: ListUsers) -> Result<Page<UserView>, Error>;

    /// Deletes a user with everything they own and ends their sessions.
    /// [`Error::Forbidden`] unless `actor` is an admin (by the role stored now); [`Error::Conflict`] for the
    /// actor's own account (an admin never locks themselves out by a slip);
    /// [`Error::NotFound`] for an unknown id.
    async fn delete(&self, actor: Principal, id: UserId) -> Result<(), Error>;

    /// Makes `email` an admin with this name and password: creates the account, or
    /// promotes and re-keys an existing one. For operators (`app create-admin`).
    async fn ensure_admin(&self, command: CreateUser) -> Result<User, Error>;
}

/// `claimed` with the role stored now, for every use case that grants admin rights
/// (see [`UserService::current_principal`]).
pub(crate) async fn stored_principal(
    users: &dyn UserRepository,
    claimed: Principal,
) -> Result<Principal, Error> {
    if !claimed.is_admin() {
        return Ok(claimed);
    }
    stored_account(users, claimed.user_id).await
}

/// The principal of account `id` as stored now; [`Error::Unauthorized`] when it is gone
/// (the token that named it proves nothing any more).
async fn stored_account(users: &dyn UserRepository, id: UserId) -> Result<Principal, Error> {
    let user = signed_in_user(users, id).await?;
    Ok(Principal {
        user_id: user.id,
        role: user.role,
    })
}

/// The account a token named, as stored now; [`Error::Unauthorized`] when it is gone
/// (the token proves nothing any more).
pub(crate) async fn signed_in_user(users: &dyn UserRepository, id: UserId) -> Result<User, Error> {
    existing_user(users, id)
        .await?
        .ok_or(Error::Unauthorized("invalid or expired token"))
}

/// The account `id` as stored now; `None` when there is none.
pub(crate) async fn existing_user(
    users: &dyn UserRepository,
    id: UserId,
) -> Result<Option<User>, Error> {
    match users.get(&id).await {
        Ok(user) => Ok(Some(user)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The application service behind [`UserService`].
pub struct Users {
    repo: Arc<dyn UserRepository>,
    posts: Arc<dyn PostRepository>,
    hasher: Arc<dyn PasswordHasher>,
    fanout_deadline: Duration,
    job_max_attempts: u32,
    /// Registrations per client address; shared by every transport (and, in a shared
    /// store, by every instance).
    registrations: Budget,
    rate_limits: Arc<dyn RateLimitStore>,
    /// Where account changes go, so every instance's live sessions follow them.
    events: Option<Arc<dyn domain::events::EventBus>>,
    /// Ends sessions everywhere (on deletion, a role change, a new password).
    revocations: Arc<Revocations>,
    /// Address changes an account may ask for (each mails the new address).
    email_changes: Budget,
}

impl Users {
    pub fn new(
        repo: Arc<dyn UserRepository>,
        posts: Arc<dyn PostRepository>,
        hasher: Arc<dyn PasswordHasher>,
        refresh_tokens: Arc<dyn RefreshTokenStore>,
        fanout_deadline: Duration,
    ) -> Self {
        Self {
            repo,
            posts,
            hasher,
            fanout_deadline,
            job_max_attempts: 5,
            registrations: Budget::per_minute("registration", Self::REGISTRATIONS_PER_MINUTE),
            rate_limits: Arc::new(crate::rate_limit::LocalRateLimits::default()),
            events: None,
            revocations: Arc::new(Revocations::new(
                refresh_tokens,
                Duration::from_secs(24 * 60 * 60),
            )),
            email_changes: Budget::new(
                "email-change",
                Self::EMAIL_CHANGES_PER_HOUR,
                Duration::from_secs(60 * 60),
            ),
        }
    }

    /// Address changes one account may ask for per hour.
    pub const EMAIL_CHANGES_PER_HOUR: u32 = 5;

    /// Ends sessions through `revocations`, so every instance refuses their tokens.
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = revocations;
        self
    }

    /// Announces deletions and role changes on `bus`: live sessions on every instance
    /// end or lose what the account may no longer follow.
    pub fn with_events(mut self, bus: Arc<dyn domain::events::EventBus>) -> Self {
        self.events = Some(bus);
        self
    }

    async fn announce(&self, user: UserId, role: Option<Role>) {
        if let Some(bus) = &self.events
            && let Err(error) = bus.publish(&crate::live::account_changed(user, role)).await
        {
            // The sessions then live until their tokens expire (JWT_TTL_SECS at most).
            tracing::warn!(%error, user_id = %user, "announcing an account change failed");
        }
    }

    /// Registrations allowed per client address and minute unless configured.
    pub const REGISTRATIONS_PER_MINUTE: u32 = 5;

    /// At most `per_minute` registrations per client address (IPv6: per /64).
    pub fn with_registration_limit(mut self, per_minute: u32) -> Self {
        self.registrations = Budget::per_minute("registration", per_minute);
        self
    }

    /// Counts registrations in `store` (shared by every instance on it) instead of in
    /// this process.
    pub fn with_rate_limits(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.rate_limits = store;
        self
    }

    /// How many times background jobs started here (the welcome e-mail) are tried.
    pub fn with_job_max_attempts(mut self, attempts: u32) -> Self {
        self.job_max_attempts = attempts.max(1);
        self
    }
}

#[async_trait]
impl UserService for Users {
    async fn create(&self, command: CreateUser, client: ClientKey) -> Result<User, Error> {
        if let Taken::Refused { retry_after } = self
            .rate_limits
            .take(&self.registrations, client.as_str())
            .await?
        {
            return Err(Error::RateLimited { retry_after });
        }
        // A taken address is answered before the (costly, bounded) hash. It says no
        // more than the 409 after a hash would: that the address is registered.
        if self
            .repo
            .credentials_by_email(&command.email)
            .await?
            .is_some()
        {
            return Err(Error::Duplicate {
                entity: "user",
                field: "email",
            });
        }
        let hash = self.hasher.hash(&command.password).await?;
        let user = User::new(command.name, command.email);
        // Stored with the user in one transaction: every registered user gets the
        // e-mail, and a failed registration sends none.
        let welcome = NewJob::now(
            JobPayload::WelcomeEmail {
                user_id: user.id.as_uuid(),
                email: user.email.as_str().to_owned(),
                name: user.name.as_str().to_owned(),
            },
            self.job_max_attempts,
        );
        let user = self.repo.create(&user, &hash, &[welcome]).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    async fn current_principal(&self, claimed: Principal) -> Result<Principal, Error> {
        stored_principal(&*self.repo, claimed).await
    }

    async fn session_principal(&self, claimed: Principal) -> Result<Principal, Error> {
        stored_account(&*self.repo, claimed.user_id).await
    }

    async fn get(&self, actor: Principal, id: UserId) -> Result<UserView, Error> {
        let actor = self.current_principal(actor).await?;
        Ok(UserView::of(self.repo.get(&id).await?, &actor))
    }

    async fn get_with_posts(&self, actor: Principal, id: UserId) -> Result<UserWithPosts, Error> {
        let actor = self.current_principal(actor).await?;
        let latest = Limit::new(UserWithPosts::LATEST)?;
        // Two independent reads, run concurrently: the wait is the slower of the two,
        // not their sum. try_join! drops the other branch as soon as one fails, and the
        // timeout drops both at the deadline; dropped reads are cancelled on the server.
        let both = async {
            tokio::try_join!(
                self.repo.get(&id),
                self.posts.list_by_author(&id, latest, None)
            )
        };
        match tokio::time::timeout(self.fanout_deadline, both).await {
            Ok(Ok((user, page))) => Ok(UserWithPosts {
                user: UserView::of(user, &actor),
                posts: page.items,
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::DeadlineExceeded(
                "fetching the user and their posts took too long",
            )),
        }
    }

    async fn update(
        &self,
        actor: Principal,
        id: UserId,
        command: UpdateUser,
        expected: Option<Version>,
    ) -> Result<User, Error> {
        let actor = self.current_principal(actor).await?;
        if !actor.may_manage(id) {
            return Err(Error::Forbidden("you may only change your own account"));
        }
        if command.role.is_some() && !actor.is_admin() {
            return Err(Error::Forbidden("only an admin can change a role"));
        }
        if id == actor.user_id && actor.is_admin() && command.role == Some(Role::User) {
            // Otherwise a sole admin could lock themselves out of administration.
            return Err(Error::Conflict(
                "an admin cannot demote themselves; another admin can",
            ));
        }
        if command.is_empty() {
            let user = self.repo.get(&id).await?;
            return match expected {
                Some(v) if v != user.version => Err(Error::VersionMismatch { entity: "user" }),
                _ => Ok(user),
            };
        }
        let before = match (&command.email, command.role) {
            (None, None) => None,
            _ => Some(self.repo.get(&id).await?),
        };
        // A role change ends the user's sessions: a refresh would otherwise carry the
        // old rights on for the family's lifetime.
        let role_changes = match (command.role, &before) {
            (Some(role), Some(before)) => before.role != role,
            _ => false,
        };
        let mut changes = UserChanges::new(command.name, None).with_role(command.role);
        let mut jobs = Vec::new();
        if let (Some(email), Some(before)) = (command.email, &before) {
            if actor.is_admin() && id != actor.user_id {
                // An admin vouches for the address: it applies now, verified.
                changes.email = Some(email);
                changes = changes.verified_at(Some(domain::now()));
            } else if email.same_as(&before.email) {
                // The same address in another case: nothing to prove.
                changes.email = Some(email);
            } else {
                // The owner moves once the new address proves it is theirs. Each
                // request mails an address the caller chose: a budget per account.
                if let Taken::Refused { retry_after } = self
                    .rate_limits
                    .take(&self.email_changes, &id.to_string())
                    .await?
                {
                    return Err(Error::RateLimited { retry_after });
                }
                if let Some(taken) = self.repo.credentials_by_email(&email).await?
                    && taken.user.id != id
                {
                    return Err(Error::Duplicate {
                        entity: "user",
                        field: "email",
                    });
                }
                jobs.push(NewJob::now(
                    JobPayload::EmailChange {
                        user_id: id.as_uuid(),
                        email: email.as_str().to_owned(),
                    },
                    self.job_max_attempts,
                ));
                jobs.push(NewJob::now(
                    JobPayload::EmailChangeNotice {
                        user_id: id.as_uuid(),
                        email: before.email.as_str().to_owned(),
                        new_email: email.as_str().to_owned(),
                    },
                    self.job_max_attempts,
                ));
                changes = changes.pending(Some(email));
            }
        }
        let user = self.repo.update(&id, &changes, expected, &jobs).await?;
        if role_changes {
            self.revocations
                .end(id, EndSessions::AllExcept(None))
                .await?;
            self.announce(id, Some(user.role)).await;
            tracing::info!(user_id = %id, by = %actor.user_id, role = user.role.as_str(), "role changed; sessions ended");
        }
        Ok(user)
    }

    async fn list(&self, actor: Principal, query: ListUsers) -> Result<Page<UserView>, Error> {
        let actor = self.current_principal(actor).await?;
        let page = self.repo.list(query.limit, query.cursor).await?;
        Ok(page.map(|user| UserView::of(user, &actor)))
    }

    async fn delete(&self, actor: Principal, id: UserId) -> Result<(), Error> {
        let actor = self.current_principal(actor).await?;
        if !actor.is_admin() {
            return Err(Error::Forbidden("only an admin can delete users"));
        }
        if id == actor.user_id {
            return Err(Error::Conflict(
                "an admin cannot delete their own account; another admin can",
            ));
        }
        // The sessions end first, everywhere: if the deletion then fails, the account
        // is only signed out; the other way round a failure would leave a deleted
        // account's tokens working. The store keeps knowing them as ended for as long
        // as their access tokens could live.
        self.revocations
            .end(id, EndSessions::AllExcept(None))
            .await?;
        self.repo.delete(&id).await?;
        // And again: a login that committed in between has a session too.
        self.revocations
            .end(id, EndSessions::AllExcept(None))
            .await?;
        self.announce(id, None).await;
        tracing::info!(user_id = %id, by = %actor.user_id, "user deleted");
        Ok(())
    }

    async fn ensure_admin(&self, command: CreateUser) -> Result<User, Error> {
        let hash = self.hasher.hash(&command.password).await?;
        let existing = self.repo.credentials_by_email(&command.email).await?;
        let admin = match existing {
            Some(found) => {
                let id = found.user.id;
                self.repo.set_password_hash(&id, &hash).await?;
                // A new password ends every session made with the old one.
                self.revocations
                    .end(id, EndSessions::AllExcept(None))
                    .await?;
                let changes =
                    UserChanges::new(Some(command.name), None).with_role(Some(Role::Admin));
                self.repo.update(&id, &changes, None, &[]).await?
            }
            None => {
                let mut user = User::new(command.name, command.email);
                user.role = Role::Admin;
                self.repo.create(&user, &hash, &[]).await?
            }
        };
        tracing::info!(user_id = %admin.id, "admin ensured");
        Ok(admin)
    }
}

#[cfg(test)]
mod tests {
    use domain::users::MockUserRepository;
    use mockall::predicate::eq;

    use super::*;

    use domain::auth::{MockPasswordHasher, MockRefreshTokenStore, PasswordHash};
    use domain::posts::MockPostRepository;

    fn user(name: &str, email: &str) -> User {
        User::new(UserName::parse(name).unwrap(), Email::parse(email).unwrap())
    }

    fn hasher() -> MockPasswordHasher {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("$argon2id$hashed")));
        hasher
    }

    fn users(repo: MockUserRepository) -> Users {
        Users::new(
            Arc::new(repo),
            Arc::new(MockPostRepository::new()),
            Arc::new(hasher()),
            Arc::new(MockRefreshTokenStore::new()),
            Duration::from_secs(5),
        )
    }

    fn as_user(id: UserId) -> Principal {
        Principal {
            user_id: id,
            role: Role::User,
        }
    }

    fn as_admin() -> Principal {
        Principal {
            user_id: UserId::generate(),
            role: Role::Admin,
        }
    }

    /// `repo` answers that `admin` is stored with `role` now.
    fn stored(repo: &mut MockUserRepository, admin: Principal, role: Role) {
        repo.expect_get()
            .withf(move |id| *id == admin.user_id)
            .returning(move |_| {
                let mut u = user("Root", "root@example.com");
                u.id = admin.user_id;
                u.role = role;
                Ok(u)
            });
    }

    const PASSWORD: &str = "correct horse battery";

    #[test]
    fn create_user_reports_every_invalid_field() {
        let err = CreateUser::parse("", "not-an-email", "short").unwrap_err();
        let fields: Vec<_> = err.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "email", "password"]);
    }

    #[tokio::test]
    async fn create_stores_a_new_user_with_fresh_id_and_timestamps() {
        let mut repo = MockUserRepository::new();
        repo.expect_create()
            .withf(|u, h, jobs| {
                u.name.as_str() == "Ada"
                    && u.role == Role::User
                    && u.created_at == u.updated_at
                    && h.expose() == "$argon2id$hashed"
                    && matches!(
                        jobs,
                        [job] if job.payload == JobPayload::WelcomeEmail {
                            user_id: u.id.as_uuid(),
                            email: "ada@example.com".into(),
                            name: "Ada".into(),
                        }
                    )
            })
            .times(1)
            .returning(|u, _, _| Ok(u.clone()));
        repo.expect_credentials_by_email().returning(|_| Ok(None));
        let users = users(repo);

        let created = users
            .create(
                CreateUser::parse("Ada", "ada@example.com", PASSWORD).unwrap(),
                ClientKey::of(None),
            )
            .await
            .unwrap();
        assert_eq!(created.email.as_str(), "ada@example.com");
    }

    #[tokio::test]
    async fn create_passes_duplicates_through() {
        let mut repo = MockUserRepository::new();
        repo.expect_create().returning(|_, _, _| {
            Err(Error::Duplicate {
                entity: "user",
                field: "email",
            })
        });
        repo.expect_credentials_by_email().returning(|_| Ok(None));
        let users = users(repo);
        let err = users
            .create(
                CreateUser::parse("Ada", "ada@example.com", PASSWORD).unwrap(),
                ClientKey::of(None),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Duplicate { field: "email", .. }));
    }

    #[tokio::test]
    async fn a_taken_address_is_refused_before_the_password_is_hashed() {
        let mut repo = MockUserRepository::new();
        let taken = user("Ada", "ada@example.com");
        repo.expect_credentials_by_email().returning(move |_| {
            Ok(Some(domain::users::Credentials {
                user: taken.clone(),
                password_hash: None,
            }))
        });
        repo.expect_create().never();
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_hash().never();
        let users = Users::new(
            Arc::new(repo),
            Arc::new(MockPostRepository::new()),
            Arc::new(hasher),
            Arc::new(MockRefreshTokenStore::new()),
            Duration::from_secs(5),
        );
        let err = users
            .create(
                CreateUser::parse("Ada", "ADA@example.com", PASSWORD).unwrap(),
                ClientKey::of(None),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Duplicate { field: "email", .. }));
    }

    #[tokio::test]
    async fn registrations_past_the_budget_of_a_client_are_refused_before_any_work() {
        let mut repo = MockUserRepository::new();
        repo.expect_credentials_by_email()
            .times(2)
            .returning(|_| Ok(None));
        repo.expect_create()
            .times(2)
            .returning(|u, _, _| Ok(u.clone()));
        let users = users(repo).with_registration_limit(2);
        let client = ClientKey::of(Some("203.0.113.9".parse().unwrap()));
        let register =
            |n: u32| CreateUser::parse("Ada", &format!("ada{n}@example.com"), PASSWORD).unwrap();
        users.create(register(1), client.clone()).await.unwrap();
        users.create(register(2), client.clone()).await.unwrap();
        let refused = users.create(register(3), client).await.unwrap_err();
        assert!(
            matches!(refused, Error::RateLimited { retry_after } if retry_after >= Duration::from_secs(1)),
            "{refused:?}"
        );
        // Another address has its own budget (the mock would panic on a third create
        // if the refused one had reached the repository).
    }

    #[tokio::test]
    async fn empty_update_reads_instead_of_writing() {
        let existing = user("Ada", "ada@example.com");
        let id = existing.id;
        let mut repo = MockUserRepository::new();
        repo.expect_get()
            .with(eq(id))
            .times(1)
            .returning(move |_| Ok(existing.clone()));
        repo.expect_update().never();
        let users = users(repo);

        let got = users
            .update(as_user(id), id, UpdateUser::default(), None)
            .await
            .unwrap();
        assert_eq!(got.id, id);
    }

    #[tokio::test]
    async fn an_empty_update_still_checks_the_expected_version() {
        let existing = user("Ada", "ada@example.com");
        let id = existing.id;
        let mut repo = MockUserRepository::new();
        repo.expect_get().returning(move |_| Ok(existing.clone()));
        let users = users(repo);
        let stale = Version::new(7);
        assert!(matches!(
            users
                .update(as_user(id), id, UpdateUser::default(), stale)
                .await,
            Err(Error::VersionMismatch { .. })
        ));
        users
            .update(
                as_user(id),
                id,
                UpdateUser::default(),
                Some(Version::INITIAL),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn update_sends_only_the_given_fields() {
        let existing = user("Ada", "ada@example.com");
        let id = existing.id;
        let mut repo = MockUserRepository::new();
        repo.expect_update()
            .withf(move |got_id, c, _, _| {
                *got_id == id && c.email.is_none() && c.name.as_ref().unwrap().as_str() == "Grace"
            })
            .times(1)
            .returning(move |_, c, _, _| {
                let mut u = existing.clone();
                c.apply_to(&mut u);
                Ok(u)
            });
        let users = users(repo);

        let updated = users
            .update(
                as_user(id),
                id,
                UpdateUser::parse(Some("Grace"), None, None).unwrap(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(updated.name.as_str(), "Grace");
        assert_eq!(updated.email.as_str(), "ada@example.com");
    }

    #[tokio::test]
    async fn only_the_user_or_an_admin_may_update_and_only_admins_change_roles() {
        let target = UserId::generate();
        let mut repo = MockUserRepository::new();
        repo.expect_update().never();
        let users = users(repo);
        let rename = || UpdateUser::parse(Some("X"), None, None).unwrap();
        let promote = || UpdateUser::parse(None, None, Some("admin")).unwrap();

        let someone_else = users
            .update(as_user(UserId::generate()), target, rename(), None)
            .await;
        assert!(matches!(someone_else, Err(Error::Forbidden(_))));
        let self_promotion = users.update(as_user(target), target, promote(), None).await;
        assert!(matches!(self_promotion, Err(Error::Forbidden(_))));
    }

    #[tokio::test]
    async fn admins_may_change_roles_which_ends_the_sessions_of_that_user() {
        let existing = user("Ada", "ada@example.com");
        let id = existing.id;
        let admin = as_admin();
        let mut repo = MockUserRepository::new();
        stored(&mut repo, admin, Role::Admin);
        let before = existing.clone();
        repo.expect_get()
            .with(eq(id))
            .returning(move |_| Ok(before.clone()));
        repo.expect_update()
            .withf(|_, c, _, _| c.role == Some(Role::Admin))
            .times(1)
            .returning(move |_, c, _, _| {
                let mut u = existing.clone();
                c.apply_to(&mut u);
                Ok(u)
            });
        let mut tokens = MockRefreshTokenStore::new();
        tokens
            .expect_end_sessions()
            .withf(move |user, which| *user == id && *which == EndSessions::AllExcept(None))
            .times(1)
            .returning(|_, _| Ok(vec![]));
        let promoted = Users::new(
            Arc::new(repo),
            Arc::new(MockPostRepository::new()),
            Arc::new(hasher()),
            Arc::new(tokens),
            Duration::from_secs(5),
        )
        .update(
            admin,
            id,
            UpdateUser::parse(None, None, Some("admin")).unwrap(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(promoted.role, Role::Admin);
    }

    #[tokio::test]
    async fn a_demoted_admin_with_an_old_token_has_no_admin_rights() {
        let admin = as_admin();
        let target = UserId::generate();
        let mut repo = MockUserRepository::new();
        stored(&mut repo, admin, Role::User);
        repo.expect_update().never();
        repo.expect_delete().never();
        let users = users(repo);
        let promote = UpdateUser::parse(None, None, Some("admin")).unwrap();
        let promoted = users.update(admin, admin.user_id, promote, None).await;
        assert!(matches!(promoted, Err(Error::Forbidden(_))), "{promoted:?}");
        let deleted = users.delete(admin, target).await;
        assert!(matches!(deleted, Err(Error::Forbidden(_))), "{deleted:?}");
    }

    #[tokio::test]
    async fn only_admins_delete_and_deleting_ends_every_session() {
        let id = UserId::generate();
        let admin = as_admin();
        let mut repo = MockUserRepository::new();
        stored(&mut repo, admin, Role::Admin);
        repo.expect_delete()
            .with(eq(id))
            .times(1)
            .returning(|_| Ok(()));
        let mut tokens = MockRefreshTokenStore::new();
        // Before the deletion, and after it for a login that committed in between.
        tokens
            .expect_end_sessions()
            .withf(move |user, which| *user == id && *which == EndSessions::AllExcept(None))
            .times(2)
            .returning(|_, _| Ok(vec![]));
        let users = Users::new(
            Arc::new(repo),
            Arc::new(MockPostRepository::new()),
            Arc::new(hasher()),
            Arc::new(tokens),
            Duration::from_secs(5),
        );

        let refused = users.delete(as_user(id), id).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))));
        users.delete(admin, id).await.unwrap();
    }

    #[tokio::test]
    async fn an_admin_may_neither_delete_nor_demote_themselves() {
        let admin = as_admin();
        let mut repo = MockUserRepository::new();
        stored(&mut repo, admin, Role::Admin);
        repo.expect_delete().never();
        repo.expect_update().never();
        let users = users(repo);
        let deleted = users.delete(admin, admin.user_id).await;
        assert!(matches!(deleted, Err(Error::Conflict(_))), "{deleted:?}");
        let demote = UpdateUser::parse(None, None, Some("user")).unwrap();
        let demoted = users.update(admin, admin.user_id, demote, None).await;
        assert!(matches!(demoted, Err(Error::Conflict(_))), "{demoted:?}");
    }

    #[tokio::test]
    async fn ensure_admin_promotes_an_existing_account() {
        let existing = user("Ada", "ada@example.com");
        let id = existing.id;
        let mut repo = MockUserRepository::new();
        let found = existing.clone();
        repo.expect_credentials_by_email().returning(move |_| {
            Ok(Some(domain::users::Credentials {
                user: found.clone(),
                password_hash: None,
            }))
        });
        repo.expect_set_password_hash()
            .withf(move |got, _| *got == id)
            .times(1)
            .returning(|_, _| Ok(()));
        repo.expect_update()
            .withf(|_, c, _, _| c.role == Some(Role::Admin))
            .times(1)
            .returning(move |_, c, _, _| {
                let mut u = existing.clone();
                c.apply_to(&mut u);
                Ok(u)
            });
        repo.expect_create().never();
        let mut tokens = MockRefreshTokenStore::new();
        tokens
            .expect_end_sessions()
            .withf(move |user, which| *user == id && *which == EndSessions::AllExcept(None))
            .times(1)
            .returning(|_, _| Ok(vec![]));
        let admin = Users::new(
            Arc::new(repo),
            Arc::new(MockPostRepository::new()),
            Arc::new(hasher()),
            Arc::new(tokens),
            Duration::from_secs(5),
        )
        .ensure_admin(CreateUser::parse("Ada", "ada@example.com", PASSWORD).unwrap())
        .await
        .unwrap();
        assert_eq!(admin.role, Role::Admin);
    }
}
