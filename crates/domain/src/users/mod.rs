//! The user aggregate.

mod email;
mod name;
mod repository;
mod role;

pub use email::Email;
pub use name::UserName;
#[cfg(feature = "mocks")]
pub use repository::MockUserRepository;
pub use repository::{Credentials, UserRepository};
pub use role::Role;

use time::OffsetDateTime;

use crate::Version;

crate::id::uuid_id!(
    /// A user's identity.
    UserId
);

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: UserName,
    pub email: Email,
    pub role: Role,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: Version,
}

impl User {
    /// A new user with the `user` role, created now.
    pub fn new(name: UserName, email: Email) -> Self {
        let now = crate::now();
        Self {
            id: UserId::generate(),
            name,
            email,
            role: Role::User,
            created_at: now,
            updated_at: now,
            version: Version::INITIAL,
        }
    }

    /// This user's position in the newest-first listing.
    pub fn cursor(&self) -> crate::Cursor {
        crate::Cursor::new(self.created_at, self.id.as_uuid())
    }
}

/// A change to a user: each `Some` field is replaced, each `None` kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChanges {
    pub name: Option<UserName>,
    pub email: Option<Email>,
    pub role: Option<Role>,
    pub updated_at: OffsetDateTime,
}

impl UserChanges {
    pub fn new(name: Option<UserName>, email: Option<Email>) -> Self {
        Self {
            name,
            email,
            role: None,
            updated_at: crate::now(),
        }
    }

    pub fn with_role(mut self, role: Option<Role>) -> Self {
        self.role = role;
        self
    }

    /// Applies the change to `user` in memory, exactly as a repository applies it in
    /// storage: fields, timestamp, and the next version.
    pub fn apply_to(&self, user: &mut User) {
        if let Some(name) = &self.name {
            user.name = name.clone();
        }
        if let Some(email) = &self.email {
            user.email = email.clone();
        }
        if let Some(role) = self.role {
            user.role = role;
        }
        user.updated_at = self.updated_at;
        user.version = user.version.next();
    }
}
