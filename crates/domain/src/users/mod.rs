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
    /// When the owner proved `email` is theirs; `None` until then (and after an
    /// address change they have not confirmed).
    pub email_verified_at: Option<OffsetDateTime>,
    /// An address the owner asked to move to, waiting for them to confirm it.
    pub pending_email: Option<Email>,
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
            email_verified_at: None,
            pending_email: None,
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
    /// Applied at once; clears any pending address.
    pub email: Option<Email>,
    /// With `email`: when the new address counts as verified (an admin's change);
    /// `None` keeps the verification as it is (the same address in another case).
    pub email_verified_at: Option<OffsetDateTime>,
    /// Recorded for the owner to confirm; the address stays as it is until then.
    pub pending_email: Option<Email>,
    pub role: Option<Role>,
    pub updated_at: OffsetDateTime,
}

impl UserChanges {
    pub fn new(name: Option<UserName>, email: Option<Email>) -> Self {
        Self {
            name,
            email,
            email_verified_at: None,
            pending_email: None,
            role: None,
            updated_at: crate::now(),
        }
    }

    /// The address changes once the owner confirms it, not now.
    pub fn pending(mut self, email: Option<Email>) -> Self {
        self.pending_email = email;
        self
    }

    /// The new address counts as verified at `at`.
    pub fn verified_at(mut self, at: Option<OffsetDateTime>) -> Self {
        self.email_verified_at = at;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.email.is_none()
            && self.pending_email.is_none()
            && self.role.is_none()
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
            if !email.same_as(&user.email) {
                user.email_verified_at = None;
            }
            user.email = email.clone();
            user.pending_email = None;
            if let Some(at) = self.email_verified_at {
                user.email_verified_at = Some(at);
            }
        }
        if let Some(pending) = &self.pending_email {
            user.pending_email = Some(pending.clone());
        }
        if let Some(role) = self.role {
            user.role = role;
        }
        user.updated_at = self.updated_at;
        user.version = user.version.next();
    }
}
