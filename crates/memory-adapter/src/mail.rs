use std::sync::Mutex;

use async_trait::async_trait;
use domain::mail::{EmailMessage, MailError, Mailer};

/// A [`Mailer`] that keeps every message in memory instead of sending it.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<EmailMessage>>,
}

impl MemoryMailer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message accepted so far, oldest first.
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
        crate::lock(&self.sent).push(message.clone());
        Ok(())
    }
}
