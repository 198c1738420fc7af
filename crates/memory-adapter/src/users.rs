use std::collections::HashMap;

use async_trait::async_trait;
use domain::auth::PasswordHash;
use domain::jobs::NewJob;
use domain::users::{Credentials, Email, User, UserChanges, UserId, UserRepository};
use domain::{Cursor, Error, Limit, Page, Version};

use crate::accounts::MemoryAccountStore;
use crate::housekeeping::{MemoryHousekeeping, MemoryLeaseStore};
use crate::jobs::MemoryJobQueue;
use crate::posts::MemoryPostRepository;
use crate::refresh::MemoryRefreshTokenStore;
use crate::tables::Shared;

/// A [`UserRepository`] in maps guarded by one mutex.
///
/// Each method holds the lock for its whole check-then-write, which is what makes
/// e-mail uniqueness and version checks atomic here (Postgres gets them from a unique
/// index and a conditional UPDATE).
#[derive(Debug, Default, Clone)]
pub struct MemoryUserRepository {
    tables: Shared,
}

impl MemoryUserRepository {
    pub fn new() -> Self {
        Self::default()
    }

    /// The posts repository over the same tables, so deleting a user deletes their
    /// posts in the same step, as Postgres's foreign key does.
    pub fn posts(&self) -> MemoryPostRepository {
        MemoryPostRepository::new(self.tables.clone())
    }

    /// The job queue over the same tables, so a user and their jobs are stored in one
    /// step.
    pub fn jobs(&self) -> MemoryJobQueue {
        MemoryJobQueue::new(self.tables.clone())
    }

    /// The refresh tokens and sessions over the same tables, so a password change
    /// ends sessions in the same step.
    pub fn refresh_tokens(&self) -> MemoryRefreshTokenStore {
        MemoryRefreshTokenStore::over(self.tables.clone())
    }

    /// The mailed account tokens over the same tables.
    pub fn accounts(&self) -> MemoryAccountStore {
        MemoryAccountStore::new(self.tables.clone())
    }

    /// The retention sweeps over the same tables, fenced by `leases`.
    pub fn housekeeping(&self, leases: MemoryLeaseStore) -> MemoryHousekeeping {
        MemoryHousekeeping::new(self.tables.clone(), leases)
    }
}

fn duplicate_email() -> Error {
    Error::Duplicate {
        entity: "user",
        field: "email",
    }
}

fn email_taken(users: &HashMap<UserId, Credentials>, email: &str, except: Option<UserId>) -> bool {
    users
        .values()
        .any(|c| Some(c.user.id) != except && c.user.email.normalized() == email)
}

#[async_trait]
impl UserRepository for MemoryUserRepository {
    async fn create(
        &self,
        user: &User,
        password_hash: &PasswordHash,
        jobs: &[NewJob],
    ) -> Result<User, Error> {
        let mut tables = self.tables.lock();
        let users = &mut tables.users;
        if email_taken(users, &user.email.normalized(), None) {
            return Err(duplicate_email());
        }
        if users.contains_key(&user.id) {
            return Err(Error::Duplicate {
                entity: "user",
                field: "id",
            });
        }
        users.insert(
            user.id,
            Credentials {
                user: user.clone(),
                password_hash: Some(password_hash.clone()),
            },
        );
        // Same lock, same step: the jobs exist exactly when the user does.
        for job in jobs {
            tables.jobs.insert(job.id, crate::jobs::stored(job));
        }
        drop(tables);
        if !jobs.is_empty() {
            self.tables.job_added.notify_one();
        }
        Ok(user.clone())
    }

    async fn get(&self, id: &UserId) -> Result<User, Error> {
        self.tables
            .lock()
            .users
            .get(id)
            .map(|c| c.user.clone())
            .ok_or_else(|| Error::not_found("user", id))
    }

    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, Error> {
        let wanted = email.normalized();
        Ok(self
            .tables
            .lock()
            .users
            .values()
            .find(|c| c.user.email.normalized() == wanted)
            .cloned())
    }

    async fn set_password_hash(&self, id: &UserId, hash: &PasswordHash) -> Result<(), Error> {
        let mut tables = self.tables.lock();
        let users = &mut tables.users;
        let credentials = users
            .get_mut(id)
            .ok_or_else(|| Error::not_found("user", id))?;
        credentials.password_hash = Some(hash.clone());
        Ok(())
    }

    async fn rehash_password(
        &self,
        id: &UserId,
        old: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, Error> {
        let mut tables = self.tables.lock();
        let credentials = tables
            .users
            .get_mut(id)
            .ok_or_else(|| Error::not_found("user", id))?;
        if credentials.password_hash.as_ref() != Some(old) {
            return Ok(false);
        }
        credentials.password_hash = Some(new.clone());
        Ok(true)
    }

    async fn delete(&self, id: &UserId) -> Result<(), Error> {
        let mut tables = self.tables.lock();
        tables
            .users
            .remove(id)
            .ok_or_else(|| Error::not_found("user", id))?;
        tables.posts.retain(|_, post| post.author_id != *id);
        tables.account_tokens.retain(|_, t| t.user_id != *id);
        tables.refresh_tokens.retain(|_, t| t.user_id != *id);
        // As the foreign key does in Postgres: jobs about the user go with them.
        tables
            .jobs
            .retain(|_, job| job.payload.user_id() != Some(id.as_uuid()));
        Ok(())
    }

    async fn update(
        &self,
        id: &UserId,
        changes: &UserChanges,
        expected: Option<Version>,
        jobs: &[NewJob],
    ) -> Result<User, Error> {
        let mut tables = self.tables.lock();
        let users = &mut tables.users;
        let current = users.get(id).ok_or_else(|| Error::not_found("user", id))?;
        if expected.is_some_and(|v| v != current.user.version) {
            return Err(Error::VersionMismatch { entity: "user" });
        }
        if let Some(email) = &changes.email
            && email_taken(users, &email.normalized(), Some(*id))
        {
            return Err(duplicate_email());
        }
        let credentials = users
            .get_mut(id)
            .ok_or_else(|| Error::not_found("user", id))?;
        changes.apply_to(&mut credentials.user);
        let user = credentials.user.clone();
        for job in jobs {
            tables.jobs.insert(job.id, crate::jobs::stored(job));
        }
        drop(tables);
        if !jobs.is_empty() {
            self.tables.job_added.notify_one();
        }
        Ok(user)
    }

    async fn list(&self, limit: Limit, after: Option<Cursor>) -> Result<Page<User>, Error> {
        let key = |u: &User| (u.created_at, u.id.as_uuid());
        let mut rows: Vec<User> = self
            .tables
            .lock()
            .users
            .values()
            .map(|c| &c.user)
            .filter(|u| after.is_none_or(|c| key(u) < (c.created_at, c.id)))
            .cloned()
            .collect();
        rows.sort_by_key(|u| std::cmp::Reverse(key(u)));
        rows.truncate(limit.get() as usize + 1);
        Ok(Page::from_rows(rows, limit, User::cursor))
    }
}
