use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Error;
use crate::users::UserId;

/// An opaque refresh token as the client holds it: 256 random bits, base64url.
/// Only its [`RefreshTokenHash`] is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new token from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A token presented by a client, as given.
    pub fn presented(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// SHA-256 of the token. A fast hash is enough: the token has 256 bits of entropy,
    /// so unlike a password it cannot be guessed from its hash.
    pub fn hash(&self) -> RefreshTokenHash {
        RefreshTokenHash(Sha256::digest(self.0.as_bytes()).into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// How a refresh token is looked up and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshTokenHash(pub [u8; 32]);

/// A refresh token to store: a new login starts a family; each rotation adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub hash: RefreshTokenHash,
    pub user_id: UserId,
    /// Every token descending from one login shares a family, so reuse of any of them
    /// can revoke the whole line.
    pub family_id: Uuid,
    pub expires_at: OffsetDateTime,
    /// When the family ends, however often it is rotated: the session's absolute
    /// lifetime. Never before `expires_at`.
    pub family_expires_at: OffsetDateTime,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was valid; it is now used up and `next` is stored in its family.
    Rotated { user_id: UserId },
    /// The token had already been used: someone holds a copy. Its whole family is now
    /// revoked.
    Reused { user_id: UserId },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Where refresh tokens are kept.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RefreshTokenStore: Send + Sync + 'static {
    /// Stores a token.
    async fn insert(&self, token: &NewRefreshToken) -> Result<(), Error>;

    /// Whose token `presented` is, whatever its state (spent, revoked, expired); `None`
    /// when it is unknown. Changes nothing: a caller reads what it needs before
    /// spending the token, so a failure there leaves the token usable.
    async fn owner(&self, presented: &RefreshTokenHash) -> Result<Option<UserId>, Error>;

    /// Spends `presented` and stores `next` (same user, same family, expiring at
    /// `next_expires_at` or when the family ends, whichever is first) in one atomic
    /// step.
    ///
    /// MUST return [`Rotation::Rotated`] at most once per token, even under concurrent
    /// calls; MUST, for a token already spent, revoke every token of its family (the
    /// one just issued from it included) and return [`Rotation::Reused`]; MUST return
    /// [`Rotation::Invalid`] for an unknown, expired or revoked token, or one whose
    /// family has ended, storing nothing.
    async fn rotate(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: OffsetDateTime,
    ) -> Result<Rotation, Error>;

    /// Revokes one token (logout). Idempotent; unknown tokens are not an error.
    async fn revoke(&self, presented: &RefreshTokenHash) -> Result<(), Error>;

    /// Revokes every token of a user (account deleted, password changed).
    async fn revoke_all_for_user(&self, user: &UserId) -> Result<(), Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_unique_and_hash_stably() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(RefreshToken::presented(a.expose()).hash(), a.hash());
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
