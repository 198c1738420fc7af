use async_trait::async_trait;

use crate::users::Email;

/// An e-mail ready to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    pub to: Email,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// A stable `Message-ID` (without angle brackets), so a message sent again after a
    /// retry is recognisable as the same one. `None` lets the mail system make one.
    pub message_id: Option<String>,
}

/// Why a message could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The mail server could not be reached or refused for now; a retry may succeed.
    #[error("mail server unavailable: {0}")]
    Unavailable(String),
    /// The message was refused for good (e.g. a rejected recipient); retrying will not help.
    #[error("message rejected: {0}")]
    Rejected(String),
}

/// Delivers e-mail.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Hands `message` to the delivery system.
    ///
    /// Returns `Ok` only once the message is accepted for delivery. MUST return
    /// [`MailError::Unavailable`] for failures worth retrying and [`MailError::Rejected`]
    /// for permanent ones.
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError>;
}
