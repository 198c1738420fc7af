use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::auth::PasswordHash;
use domain::users::{Credentials, Email, User, UserChanges, UserId, UserRepository};
use domain::{Cursor, Error, Limit, Page};

/// A [`UserRepository`] in a map guarded by a mutex.
///
/// Each method holds the lock for its whole check-then-write, which is what makes
/// e-mail uniqueness atomic here (Postgres gets it from a unique index).
#[derive(Debug, Default)]
pub struct MemoryUserRepository {
    users: Mutex<HashMap<UserId, Credentials>>,
}

impl MemoryUserRepository {
    pub fn new() -> Self {
        Self::default()
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
    async fn create(&self, user: &User, password_hash: &PasswordHash) -> Result<User, Error> {
        let mut users = crate::lock(&self.users);
        if email_taken(&users, &user.email.normalized(), None) {
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
        Ok(user.clone())
    }

    async fn get(&self, id: &UserId) -> Result<User, Error> {
        crate::lock(&self.users)
            .get(id)
            .map(|c| c.user.clone())
            .ok_or_else(|| Error::not_found("user", id))
    }

    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, Error> {
        let wanted = email.normalized();
        Ok(crate::lock(&self.users)
            .values()
            .find(|c| c.user.email.normalized() == wanted)
            .cloned())
    }

    async fn set_password_hash(&self, id: &UserId, hash: &PasswordHash) -> Result<(), Error> {
        let mut users = crate::lock(&self.users);
        let credentials = users
            .get_mut(id)
            .ok_or_else(|| Error::not_found("user", id))?;
        credentials.password_hash = Some(hash.clone());
        Ok(())
    }

    async fn delete(&self, id: &UserId) -> Result<(), Error> {
        crate::lock(&self.users)
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("user", id))
    }

    async fn update(&self, id: &UserId, changes: &UserChanges) -> Result<User, Error> {
        let mut users = crate::lock(&self.users);
        if !users.contains_key(id) {
            return Err(Error::not_found("user", id));
        }
        if let Some(email) = &changes.email
            && email_taken(&users, &email.normalized(), Some(*id))
        {
            return Err(duplicate_email());
        }
        let credentials = users
            .get_mut(id)
            .ok_or_else(|| Error::not_found("user", id))?;
        changes.apply_to(&mut credentials.user);
        Ok(credentials.user.clone())
    }

    async fn list(&self, limit: Limit, after: Option<Cursor>) -> Result<Page<User>, Error> {
        let key = |u: &User| (u.created_at, u.id.as_uuid());
        let mut rows: Vec<User> = crate::lock(&self.users)
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
