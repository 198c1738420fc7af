use std::sync::Mutex;

use async_trait::async_trait;
use domain::mail::{EmailMessage, MailError, Mailer};

/// Messages kept at most: this is also the no-SMTP fallback of a running service, which
/// must not grow without bound.
const KEEP: usize = 1000;

/// A [`Mailer`] that keeps the latest messages in memory (and logs each) instead of
/// sending them.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<EmailMessage>>,
}

impl MemoryMailer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest messages accepted (up to 1000), oldest first.
    pub fn sent(&self) -> Vec<EmailMessage> {
        crate::lock(&self.sent).clone()
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        tracing::info!(
            to = %message.to,
            subject = %message.subject,
            "e-mail recorded, not sent (no SMTP_URL)"
        );
        let mut sent = crate::lock(&self.sent);
        if sent.len() >= KEEP {
            sent.remove(0);
        }
        sent.push(message.clone());
        Ok(())
    }
}
