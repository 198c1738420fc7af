//! Account flows the owner of an address takes part in: proving the address, resetting
//! a forgotten password, moving to a new address. Each is a single-use token sent by
//! e-mail; the driven port here stores them (hashed) and applies what they prove.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Error;
use crate::auth::{PasswordHash, SessionId, TokenHash};
use crate::jobs::NewJob;
use crate::users::{Email, UserId};

/// What a mailed token proves, once spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// The address it was sent to is the account's.
    VerifyEmail,
    /// Whoever reads the account's mail may set a new password.
    ResetPassword,
    /// The pending address it was sent to becomes the account's.
    ChangeEmail,
}

impl TokenPurpose {
    pub const ALL: [Self; 3] = [Self::VerifyEmail, Self::ResetPassword, Self::ChangeEmail];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

/// A token to store: only its hash, bound to the address it was mailed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccountToken {
    pub hash: TokenHash,
    pub user_id: UserId,
    pub purpose: TokenPurpose,
    /// The address the token was sent to: it proves that address and no other.
    pub email: Email,
    pub expires_at: OffsetDateTime,
}

/// A password change to apply: from a reset token, or by the signed-in owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordChange {
    pub user_id: UserId,
    pub hash: PasswordHash,
    /// The reset token that allows it, spent in the same step; `None` when the owner
    /// proved their current password instead.
    pub spend: Option<TokenHash>,
    /// The session that stays (the caller's); every other one ends.
    pub keep: Option<SessionId>,
    /// Stored with the change (the "your password was changed" notice).
    pub jobs: Vec<NewJob>,
}

/// Where mailed account tokens are kept, next to the accounts they act on.
///
/// Every step is atomic: a token is spent exactly when what it proves is applied.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Stores `token`, ending every earlier token of the same user and purpose (the
    /// newest e-mail is the one that works). MUST return [`Error::NotFound`] for an
    /// unknown user, storing nothing.
    async fn issue(&self, token: &NewAccountToken) -> Result<(), Error>;

    /// The user a live token (unspent, unexpired) of `purpose` belongs to; `None`
    /// otherwise. Changes nothing.
    async fn owner(
        &self,
        purpose: TokenPurpose,
        token: &TokenHash,
    ) -> Result<Option<UserId>, Error>;

    /// Spends a live [`TokenPurpose::VerifyEmail`] token and marks the user's address
    /// verified now, if it is still the address the token was sent to; returns the
    /// user. MUST return `None`, changing nothing, for a token that is unknown, spent,
    /// expired, of another purpose, or for an address since replaced.
    async fn verify_email(&self, token: &TokenHash) -> Result<Option<UserId>, Error>;

    /// Sets the password hash, spends `change.spend` when given (which also marks the
    /// address it was sent to verified), ends every session of the user but
    /// `change.keep`, cancels a pending address change (its address and its links: a
    /// new password is what the owner does when they did not ask for the move) and
    /// stores `change.jobs`, in one step; returns the sessions ended. MUST return
    /// `None`, changing nothing, when `change.spend` is not a live
    /// [`TokenPurpose::ResetPassword`] token of that user sent to the address the
    /// account has now; [`Error::NotFound`] for an unknown user.
    async fn change_password(
        &self,
        change: PasswordChange,
    ) -> Result<Option<Vec<SessionId>>, Error>;

    /// Spends a live [`TokenPurpose::ChangeEmail`] token and makes the pending address
    /// it was sent to the user's address, verified now, with nothing pending. MUST
    /// return `None`, changing nothing, for a token that is unknown, spent, expired, of
    /// another purpose, or whose address is no longer the pending one;
    /// [`Error::Duplicate`] with field `email`, changing nothing, when another account
    /// took the address meanwhile.
    async fn confirm_email_change(&self, token: &TokenHash) -> Result<Option<UserId>, Error>;
}
