use async_trait::async_trait;
use domain::Error;
use domain::auth::{
    EndSessions, MAX_LISTED_SESSIONS, NewRefreshToken, RefreshTokenHash, RefreshTokenStore,
    Rotation, SeenFrom, Session, SessionId,
};
use domain::users::UserId;
use time::OffsetDateTime;

use crate::tables::{Shared, StoredRefreshToken, StoredSession};

/// A [`RefreshTokenStore`] in the shared tables; each step holds their lock
/// throughout, which makes it atomic (with a password change, too).
#[derive(Debug, Default, Clone)]
pub struct MemoryRefreshTokenStore {
    tables: Shared,
}

impl MemoryRefreshTokenStore {
    /// A store of its own. [`crate::MemoryUserRepository::refresh_tokens`] gives one
    /// over the users' tables.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn over(tables: Shared) -> Self {
        Self { tables }
    }
}

/// Expired tokens and long-ended sessions are dropped now and then, so the maps
/// cannot grow without bound.
const PURGE_EVERY: usize = 1024;

/// How long an ended session stays known: longer than any access token lives.
const ENDED_KEPT: time::Duration = time::Duration::days(1);

#[async_trait]
impl RefreshTokenStore for MemoryRefreshTokenStore {
    async fn insert(&self, token: &NewRefreshToken) -> Result<(), Error> {
        let mut tables = self.tables.lock();
        if let Some(proof) = &token.proof
            && let Some(stored) = tables.users.get(&token.user_id)
            && stored.password_hash.as_ref() != Some(proof)
        {
            return Err(Error::Unauthorized("the password changed"));
        }
        let now = domain::now();
        if tables.refresh_tokens.len() % PURGE_EVERY == PURGE_EVERY - 1 {
            tables.refresh_tokens.retain(|_, t| t.expires_at > now);
            tables.sessions.retain(|_, s| {
                s.expires_at > now && s.ended_at.is_none_or(|at| at > now - ENDED_KEPT)
            });
        }
        tables
            .sessions
            .entry(token.family_id)
            .or_insert_with(|| StoredSession {
                session: Session {
                    id: token.family_id,
                    user_id: token.user_id,
                    created_at: now,
                    last_used_at: now,
                    login: token.seen.clone(),
                    last: token.seen.clone(),
                },
                expires_at: token.family_expires_at,
                ended_at: None,
            });
        tables.refresh_tokens.insert(
            token.hash,
            StoredRefreshToken {
                user_id: token.user_id,
                session: token.family_id,
                expires_at: token.expires_at.min(token.family_expires_at),
                used: false,
                revoked: false,
            },
        );
        Ok(())
    }

    async fn owner(&self, presented: &RefreshTokenHash) -> Result<Option<UserId>, Error> {
        Ok(self
            .tables
            .lock()
            .refresh_tokens
            .get(presented)
            .map(|t| t.user_id))
    }

    async fn rotate(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: OffsetDateTime,
        seen: &SeenFrom,
    ) -> Result<Rotation, Error> {
        let mut tables = self.tables.lock();
        let Some(current) = tables.refresh_tokens.get(presented).cloned() else {
            return Ok(Rotation::Invalid);
        };
        let now = domain::now();
        let Some(session) = tables.sessions.get(&current.session).cloned() else {
            return Ok(Rotation::Invalid);
        };
        if current.revoked
            || current.expires_at <= now
            || session.expires_at <= now
            || session.ended_at.is_some()
        {
            return Ok(Rotation::Invalid);
        }
        let user_id = current.user_id;
        if current.used {
            tables.end_sessions(user_id, |s| s == current.session);
            return Ok(Rotation::Reused {
                user_id,
                session: current.session,
            });
        }
        if let Some(spent) = tables.refresh_tokens.get_mut(presented) {
            spent.used = true;
        }
        tables.refresh_tokens.insert(
            *next,
            StoredRefreshToken {
                used: false,
                revoked: false,
                expires_at: next_expires_at.min(session.expires_at),
                ..current
            },
        );
        if let Some(stored) = tables.sessions.get_mut(&current.session) {
            stored.session.last_used_at = now;
            stored.session.last = seen.clone();
        }
        Ok(Rotation::Rotated {
            user_id,
            session: current.session,
        })
    }

    async fn end_by_token(
        &self,
        presented: &RefreshTokenHash,
    ) -> Result<Option<(UserId, SessionId)>, Error> {
        let mut tables = self.tables.lock();
        let Some(token) = tables.refresh_tokens.get(presented).cloned() else {
            return Ok(None);
        };
        let ended = tables.end_sessions(token.user_id, |s| s == token.session);
        Ok((!ended.is_empty()).then_some((token.user_id, token.session)))
    }

    async fn sessions(&self, user: &UserId) -> Result<Vec<Session>, Error> {
        let now = domain::now();
        let tables = self.tables.lock();
        // A session whose newest token expired unused can no longer be refreshed.
        let refreshable = |id: SessionId| {
            tables
                .refresh_tokens
                .values()
                .any(|t| t.session == id && !t.used && !t.revoked && t.expires_at > now)
        };
        let mut sessions: Vec<Session> = tables
            .sessions
            .values()
            .filter(|s| s.session.user_id == *user && s.ended_at.is_none() && s.expires_at > now)
            .filter(|s| refreshable(s.session.id))
            .map(|s| s.session.clone())
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        sessions.truncate(MAX_LISTED_SESSIONS);
        Ok(sessions)
    }

    async fn end_sessions(
        &self,
        user: &UserId,
        which: EndSessions,
    ) -> Result<Vec<SessionId>, Error> {
        let mut tables = self.tables.lock();
        Ok(match which {
            EndSessions::One(id) => tables.end_sessions(*user, |s| s == id),
            EndSessions::AllExcept(keep) => tables.end_sessions(*user, |s| Some(s) != keep),
        })
    }

    async fn ended_since(&self, since: OffsetDateTime) -> Result<Vec<SessionId>, Error> {
        Ok(self
            .tables
            .lock()
            .sessions
            .values()
            .filter(|s| s.ended_at.is_some_and(|at| at >= since))
            .map(|s| s.session.id)
            .collect())
    }
}
