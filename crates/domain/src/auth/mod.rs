//! Authentication and authorization: passwords, the principal behind a request, access
//! tokens and refresh tokens, with the driven ports that store and sign them.
//!
//! The domain decides *what* is checked; how (argon2, JWT, SQL) lives in adapters.

mod password;
mod principal;
mod refresh;
mod secret;
mod session;
mod tokens;

pub use password::{Password, PasswordCheck, PasswordHash, PasswordHasher};
pub use principal::Principal;
pub use refresh::{
    MAX_LISTED_SESSIONS, NewRefreshToken, RefreshToken, RefreshTokenHash, RefreshTokenStore,
    Rotation,
};
pub use secret::{SecretToken, TokenHash};
pub use session::{Claims, EndSessions, SeenFrom, Session, SessionId};
pub use tokens::{AccessToken, AccessTokens};

#[cfg(feature = "mocks")]
pub use password::MockPasswordHasher;
#[cfg(feature = "mocks")]
pub use refresh::MockRefreshTokenStore;
#[cfg(feature = "mocks")]
pub use tokens::MockAccessTokens;
