use async_trait::async_trait;

use super::{Email, User, UserChanges, UserId};
use crate::auth::PasswordHash;
use crate::jobs::NewJob;
use crate::{Cursor, Error, Limit, Page, Version};

/// A user with what login needs to check them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: User,
    /// `None` for an account that has no password (it cannot log in).
    pub password_hash: Option<PasswordHash>,
}

/// Where users are kept.
///
/// Every implementation runs the shared contract suite (`contract-tests`), which is the
/// executable form of the rules written here.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new user as given (id, role and timestamps included) with their password
    /// hash, together with `jobs` (e.g. the welcome e-mail), and returns the user.
    ///
    /// This is the transactional-outbox seam: the user and every job MUST be stored
    /// atomically — a committed user always has its jobs, a failed insert leaves none.
    /// MUST return [`Error::Duplicate`] with field `email` when another user's e-mail
    /// equals this one ignoring ASCII case, and store nothing in that case.
    async fn create(
        &self,
        user: &User,
        password_hash: &PasswordHash,
        jobs: &[NewJob],
    ) -> Result<User, Error>;

    /// MUST return [`Error::NotFound`] when no user has this id.
    async fn get(&self, id: &UserId) -> Result<User, Error>;

    /// The user whose e-mail equals `email` ignoring ASCII case, with their password
    /// hash; `None` when there is none.
    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, Error>;

    /// Applies `changes` to the user (as [`UserChanges::apply_to`] does) and bumps the
    /// version by one, and stores `jobs` (the e-mails announcing the change), atomically,
    /// and only if the stored version equals `expected` (when given); returns the
    /// updated user.
    ///
    /// MUST return [`Error::NotFound`] when no user has this id, [`Error::VersionMismatch`]
    /// when `expected` is not the stored version, and [`Error::Duplicate`] with field
    /// `email` when the new e-mail belongs to another user (ignoring ASCII case); in each
    /// case nothing changes. The version check and the write MUST be one step. Changing
    /// one's own e-mail to a different case of itself is allowed.
    async fn update(
        &self,
        id: &UserId,
        changes: &UserChanges,
        expected: Option<Version>,
        jobs: &[NewJob],
    ) -> Result<User, Error>;

    /// Replaces the user's password hash. MUST return [`Error::NotFound`] for an unknown id.
    async fn set_password_hash(&self, id: &UserId, hash: &PasswordHash) -> Result<(), Error>;

    /// Replaces the password hash `old` with `new` (the same password, hashed with the
    /// parameters configured now), only if `old` is still stored, in one step; returns
    /// whether it did. A rehash racing a password change MUST NOT bring the old
    /// password back.
    async fn rehash_password(
        &self,
        id: &UserId,
        old: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, Error>;

    /// Deletes the user and everything they own (their posts), in one atomic step.
    ///
    /// MUST return [`Error::NotFound`] when no user has this id.
    async fn delete(&self, id: &UserId) -> Result<(), Error>;

    /// Lists users newest first, ordered by `(created_at DESC, id DESC)`, starting strictly
    /// after `after` when given.
    ///
    /// MUST return at most `limit` users and a `next_cursor` exactly when more users follow.
    async fn list(&self, limit: Limit, after: Option<Cursor>) -> Result<Page<User>, Error>;
}
