use time::OffsetDateTime;

use super::Principal;
use crate::users::UserId;

crate::id::uuid_id!(
    /// A session: one login and every refresh descending from it (one refresh-token
    /// family). Access tokens name it (`sid`), so ending it ends them too.
    SessionId
);

/// Where a request came from, as a session's owner sees it listed. Both parts are
/// bounded, so a client cannot make a session row large.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenFrom {
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

impl SeenFrom {
    /// Characters of a user agent kept; the rest is cut.
    pub const MAX_USER_AGENT: usize = 256;

    pub fn new(address: Option<String>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(Self::MAX_USER_AGENT)
                    .collect::<String>()
            })
            .filter(|ua| !ua.is_empty());
        Self {
            address: address.map(|a| a.chars().take(64).collect()),
            user_agent,
        }
    }
}

/// A session as its owner sees it listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    /// At login.
    pub login: SeenFrom,
    /// At the latest refresh (the login's until the first).
    pub last: SeenFrom,
}

/// Which of a user's sessions to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndSessions {
    One(SessionId),
    /// Every session, except the one given.
    AllExcept(Option<SessionId>),
}

/// What a verified access token says: who, in which session, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub principal: Principal,
    pub session: SessionId,
    pub expires_at: OffsetDateTime,
}
