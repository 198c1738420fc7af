//! The e-mails of the account flows, written when their job runs. A link's token is
//! made then, and only its hash stored: the queue never holds a secret, and the
//! newest e-mail's link is the one that works (issuing a token ends the older ones of
//! its kind).

use std::sync::Arc;
use std::time::Duration;

use domain::Error;
use domain::accounts::{AccountStore, NewAccountToken, TokenPurpose};
use domain::auth::SecretToken;
use domain::jobs::JobPayload;
use domain::users::{Email, UserId, UserRepository};

use crate::users::existing_user;

/// An e-mail's content, before it is addressed as a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Email,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Writes the account flows' e-mails.
pub struct AccountMail {
    users: Arc<dyn UserRepository>,
    store: Arc<dyn AccountStore>,
    /// Where the links point: the client application's address (`PUBLIC_BASE_URL`).
    base_url: String,
    email_token_ttl: Duration,
    reset_ttl: Duration,
}

impl AccountMail {
    pub fn new(
        users: Arc<dyn UserRepository>,
        store: Arc<dyn AccountStore>,
        base_url: &str,
        email_token_ttl: Duration,
        reset_ttl: Duration,
    ) -> Self {
        Self {
            users,
            store,
            base_url: base_url.trim_end_matches('/').to_owned(),
            email_token_ttl,
            reset_ttl,
        }
    }

    /// The e-mail `payload` sends now; `None` when there is none to send any more
    /// (the account is gone, the address changed or is verified already, no account
    /// has the address a reset was asked for).
    pub async fn write(&self, payload: &JobPayload) -> Result<Option<Mail>, Error> {
        match payload {
            JobPayload::WelcomeEmail {
                user_id,
                email,
                name,
            } => {
                let to = parse(email)?;
                let link = self
                    .verification_link(UserId::from_uuid(*user_id), &to)
                    .await?;
                Ok(Some(welcome(to, name, link.as_deref())))
            }
            JobPayload::VerificationEmail { user_id, email } => {
                let to = parse(email)?;
                let Some(link) = self
                    .verification_link(UserId::from_uuid(*user_id), &to)
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(letter(
                    to,
                    "Verify your e-mail address",
                    "please confirm this is your address by opening this link",
                    Some(&link),
                    self.email_token_ttl,
                )))
            }
            JobPayload::PasswordReset { email } => {
                let Some(found) = self.users.credentials_by_email(&parse(email)?).await? else {
                    return Ok(None);
                };
                let user = found.user;
                let Some(token) = self
                    .issue(
                        TokenPurpose::ResetPassword,
                        user.id,
                        &user.email,
                        self.reset_ttl,
                    )
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(letter(
                    user.email,
                    "Reset your password",
                    "someone, hopefully you, asked to reset your password. To choose a new \
                     one, open this link. If it was not you, ignore this e-mail: your \
                     password stays as it is",
                    Some(&self.link("reset-password", &token)),
                    self.reset_ttl,
                )))
            }
            JobPayload::PasswordChanged { email, .. } => Ok(Some(letter(
                parse(email)?,
                "Your password was changed",
                "your password was just changed, and every other session of your account \
                 was signed out. If it was not you, reset your password now",
                None,
                Duration::ZERO,
            ))),
            JobPayload::EmailChange { user_id, email } => {
                let to = parse(email)?;
                let Some(user) = existing_user(&*self.users, UserId::from_uuid(*user_id)).await?
                else {
                    return Ok(None);
                };
                // A newer request replaced this one: its own e-mail carries the link.
                if user.pending_email.as_ref() != Some(&to) {
                    return Ok(None);
                }
                let Some(token) = self
                    .issue(
                        TokenPurpose::ChangeEmail,
                        user.id,
                        &to,
                        self.email_token_ttl,
                    )
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(letter(
                    to,
                    "Confirm your new e-mail address",
                    "to make this the address of your account, open this link",
                    Some(&self.link("confirm-email-change", &token)),
                    self.email_token_ttl,
                )))
            }
            JobPayload::EmailChangeNotice {
                email, new_email, ..
            } => Ok(Some(letter(
                parse(email)?,
                "A change of your e-mail address was asked for",
                &format!(
                    "someone signed in to your account asked to move it to {new_email}. \
                     It moves only once that address confirms it. If it was not you, \
                     change your password now"
                ),
                None,
                Duration::ZERO,
            ))),
        }
    }

    /// A fresh verification link for `to`, if it is still the account's unverified
    /// address.
    async fn verification_link(&self, user: UserId, to: &Email) -> Result<Option<String>, Error> {
        let Some(user) = existing_user(&*self.users, user).await? else {
            return Ok(None);
        };
        if user.email_verified_at.is_some() || !user.email.same_as(to) {
            return Ok(None);
        }
        let token = self
            .issue(
                TokenPurpose::VerifyEmail,
                user.id,
                &user.email,
                self.email_token_ttl,
            )
            .await?;
        Ok(token.map(|t| self.link("verify-email", &t)))
    }

    async fn issue(
        &self,
        purpose: TokenPurpose,
        user_id: UserId,
        email: &Email,
        ttl: Duration,
    ) -> Result<Option<SecretToken>, Error> {
        let token = SecretToken::generate()?;
        let stored = self
            .store
            .issue(&NewAccountToken {
                hash: token.hash(),
                user_id,
                purpose,
                email: email.clone(),
                expires_at: domain::now() + ttl,
            })
            .await;
        match stored {
            Ok(()) => Ok(Some(token)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn link(&self, page: &str, token: &SecretToken) -> String {
        format!("{}/{page}?token={}", self.base_url, token.expose())
    }
}

fn parse(email: &str) -> Result<Email, Error> {
    Email::parse(email).map_err(Error::internal)
}

/// Text safe inside HTML.
pub(crate) fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn valid_for(ttl: Duration) -> String {
    let minutes = ttl.as_secs() / 60;
    if minutes >= 120 && minutes.is_multiple_of(60) {
        format!("{} hours", minutes / 60)
    } else {
        format!("{minutes} minutes")
    }
}

/// A short e-mail: a greeting, what happened, the link when there is one.
fn letter(to: Email, subject: &str, body: &str, link: Option<&str>, ttl: Duration) -> Mail {
    let (text_link, html_link) = match link {
        Some(link) => (
            format!("\n\n{link}\n\nThe link works once, for {}.", valid_for(ttl)),
            format!(
                "<p><a href=\"{0}\">{0}</a></p><p>The link works once, for {1}.</p>",
                escape_html(link),
                valid_for(ttl)
            ),
        ),
        None => (String::new(), String::new()),
    };
    Mail {
        to,
        subject: subject.to_owned(),
        text: format!("Hello,\n\n{body}.{text_link}\n\n— The team\n"),
        html: format!(
            "<p>Hello,</p><p>{}.</p>{html_link}<p>— The team</p>",
            escape_html(body)
        ),
    }
}

/// The welcome e-mail, with its verification link when there is one.
pub fn welcome(to: Email, name: &str, link: Option<&str>) -> Mail {
    let html_name = escape_html(name);
    let (text_link, html_link) = match link {
        Some(link) => (
            format!("\n\nPlease confirm your e-mail address by opening this link:\n\n{link}\n"),
            format!(
                "<p>Please confirm your e-mail address by opening this link:</p>\
                 <p><a href=\"{0}\">{0}</a></p>",
                escape_html(link)
            ),
        ),
        None => (String::new(), String::new()),
    };
    Mail {
        to,
        subject: format!("Welcome, {name}"),
        text: format!(
            "Hello {name},\n\nyour account is ready. Welcome aboard!{text_link}\n\n— The team\n"
        ),
        html: format!(
            "<p>Hello {html_name},</p><p>your account is ready. Welcome aboard!</p>\
             {html_link}<p>— The team</p>"
        ),
    }
}
