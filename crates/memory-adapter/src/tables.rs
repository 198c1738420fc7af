use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use domain::accounts::NewAccountToken;
use domain::auth::{Session, SessionId, TokenHash};
use domain::jobs::{Job, JobId};
use domain::posts::{Post, PostId};
use domain::users::{Credentials, UserId};
use tokio::sync::Notify;

/// Every in-memory table behind one lock, so a step touching several (a user and their
/// welcome job; a user and their posts) is atomic, like one SQL transaction.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) users: HashMap<UserId, Credentials>,
    pub(crate) posts: HashMap<PostId, Post>,
    pub(crate) jobs: HashMap<JobId, Job>,
    /// Lease deadlines of running jobs.
    pub(crate) leases: HashMap<JobId, time::OffsetDateTime>,
    pub(crate) refresh_tokens: HashMap<TokenHash, StoredRefreshToken>,
    pub(crate) sessions: HashMap<SessionId, StoredSession>,
    /// Mailed account tokens; each is removed when spent or replaced.
    pub(crate) account_tokens: HashMap<TokenHash, NewAccountToken>,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredRefreshToken {
    pub(crate) user_id: UserId,
    pub(crate) session: SessionId,
    pub(crate) expires_at: time::OffsetDateTime,
    pub(crate) used: bool,
    pub(crate) revoked: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredSession {
    pub(crate) session: Session,
    /// The family's absolute end.
    pub(crate) expires_at: time::OffsetDateTime,
    pub(crate) ended_at: Option<time::OffsetDateTime>,
}

impl Tables {
    /// Ends the sessions of `user` that `which` picks and have not ended, revoking
    /// their tokens; returns them.
    pub(crate) fn end_sessions(
        &mut self,
        user: UserId,
        which: impl Fn(SessionId) -> bool,
    ) -> Vec<SessionId> {
        let now = domain::now();
        let mut ended = Vec::new();
        for stored in self.sessions.values_mut() {
            if stored.session.user_id == user
                && stored.ended_at.is_none()
                && which(stored.session.id)
            {
                stored.ended_at = Some(now);
                ended.push(stored.session.id);
            }
        }
        for token in self.refresh_tokens.values_mut() {
            if ended.contains(&token.session) {
                token.revoked = true;
            }
        }
        ended
    }
}

/// The tables and a signal for job workers waiting on new work.
#[derive(Debug, Default)]
pub(crate) struct Store {
    tables: Mutex<Tables>,
    pub(crate) job_added: Notify,
}

impl Store {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tables> {
        crate::lock(&self.tables)
    }
}

pub(crate) type Shared = Arc<Store>;
