use std::fmt;

use super::{Claims, Principal, SessionId};
use crate::Error;

/// A signed, short-lived access token and its lifetime in seconds.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Issues and verifies stateless access tokens.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait AccessTokens: Send + Sync + 'static {
    /// A token proving `principal` in `session`, valid from now for the configured
    /// lifetime.
    fn issue(&self, principal: &Principal, session: SessionId) -> Result<AccessToken, Error>;

    /// What a token proves: the principal, its session, and when it expires (a live
    /// session opened with it ends then).
    ///
    /// MUST return [`Error::Unauthorized`] for anything but a token this service signed
    /// with a current or previous key, with the expected algorithm, issuer and audience,
    /// a session id, inside its validity window (`nbf` ≤ now < `exp`, within the
    /// configured leeway). Whether the session has ended is not its business.
    fn verify(&self, token: &str) -> Result<Claims, Error>;
}
