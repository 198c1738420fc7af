use async_trait::async_trait;
use time::OffsetDateTime;

use super::secret::{SecretToken, TokenHash};
use super::session::{EndSessions, SeenFrom, Session, SessionId};
use crate::Error;
use crate::users::UserId;

/// A refresh token as the client holds it. Only its hash is ever stored.
pub type RefreshToken = SecretToken;

/// How a refresh token is looked up and stored.
pub type RefreshTokenHash = TokenHash;

/// The most sessions [`RefreshTokenStore::sessions`] lists.
pub const MAX_LISTED_SESSIONS: usize = 100;

/// A refresh token to store: a new login starts a family; each rotation adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub hash: RefreshTokenHash,
    pub user_id: UserId,
    /// Every token descending from one login shares a family, so reuse of any of them
    /// can revoke the whole line.
    pub family_id: SessionId,
    pub expires_at: OffsetDateTime,
    /// When the family ends, however often it is rotated: the session's absolute
    /// lifetime. Never before `expires_at`.
    pub family_expires_at: OffsetDateTime,
    /// Where the request that made it came from (the session's "last seen").
    pub seen: SeenFrom,
    /// For the first token of a login: the password hash the login checked. The
    /// session starts only while it is still the stored one, so a login that raced a
    /// password change cannot outlive it.
    pub proof: Option<super::PasswordHash>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was valid; it is now used up and `next` is stored in its family.
    Rotated { user_id: UserId, session: SessionId },
    /// The token had already been used: someone holds a copy. Its whole family is now
    /// revoked.
    Reused { user_id: UserId, session: SessionId },
    /// Unknown, expired or revoked, or its session ended.
    Invalid,
}

/// Where refresh tokens are kept.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RefreshTokenStore: Send + Sync + 'static {
    /// Stores a token. The first token of a family starts its session, seen from
    /// `token.seen`, at login. MUST store nothing and return [`Error::Unauthorized`]
    /// when `token.proof` is given and is no longer the user's stored password hash
    /// (checked in the same step as the insert, so a password change either sees the
    /// new session and ends it, or refuses it).
    async fn insert(&self, token: &NewRefreshToken) -> Result<(), Error>;

    /// Whose token `presented` is, whatever its state (spent, revoked, expired); `None`
    /// when it is unknown. Changes nothing: a caller reads what it needs before
    /// spending the token, so a failure there leaves the token usable.
    async fn owner(&self, presented: &RefreshTokenHash) -> Result<Option<UserId>, Error>;

    /// Spends `presented` and stores `next` (same user, same family, expiring at
    /// `next_expires_at` or when the family ends, whichever is first) in one atomic
    /// step, and records `seen` and now as the session's last use.
    ///
    /// MUST return [`Rotation::Rotated`] at most once per token, even under concurrent
    /// calls; MUST, for a token already spent, end its session (revoking every token of
    /// its family, the one just issued from it included) and return
    /// [`Rotation::Reused`]; MUST return [`Rotation::Invalid`] for an unknown, expired
    /// or revoked token, or one whose session has ended, storing nothing.
    async fn rotate(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: OffsetDateTime,
        seen: &SeenFrom,
    ) -> Result<Rotation, Error>;

    /// Ends the session `presented` belongs to (logout) and returns it; `None` for an
    /// unknown token, or one whose session had ended already (so a repeated logout
    /// announces nothing twice).
    async fn end_by_token(
        &self,
        presented: &RefreshTokenHash,
    ) -> Result<Option<(UserId, SessionId)>, Error>;

    /// The user's sessions that can still be refreshed (not ended, within their
    /// absolute lifetime, with an unspent unexpired token), newest first, at most
    /// [`MAX_LISTED_SESSIONS`].
    async fn sessions(&self, user: &UserId) -> Result<Vec<Session>, Error>;

    /// Ends `which` of `user`'s sessions that have not ended yet, revoking their
    /// tokens, and returns their ids. MUST NOT touch another user's sessions: a
    /// [`EndSessions::One`] naming one returns nothing. A session once ended stays
    /// ended, and stays known to [`RefreshTokenStore::ended_since`] for as long as its
    /// access tokens may live, even when the user is deleted.
    async fn end_sessions(
        &self,
        user: &UserId,
        which: EndSessions,
    ) -> Result<Vec<SessionId>, Error>;

    /// Sessions ended at or after `since`, by any of the means above: what an instance
    /// refuses access tokens of. Bounded by how many sessions end in that window.
    async fn ended_since(&self, since: OffsetDateTime) -> Result<Vec<SessionId>, Error>;
}
