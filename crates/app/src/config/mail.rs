//! Where e-mail goes.

use std::time::Duration;

use super::ConfigError;
use super::env::{Env, FromEnv};
use super::secret::RedactedUrl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// `None`: e-mails are recorded and logged, not sent. May carry the SMTP
    /// credentials as user info, hence redacted.
    pub smtp_url: Option<RedactedUrl>,
    pub from: String,
    pub timeout: Duration,
}

impl MailSettings {
    /// The domain of the sender address, for generated Message-IDs.
    pub fn domain(&self) -> String {
        self.from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').trim().to_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }
}

impl FromEnv for MailSettings {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            smtp_url: env.raw("SMTP_URL").map(RedactedUrl::new),
            from: env
                .raw("SMTP_FROM")
                .unwrap_or_else(|| "Users service <no-reply@localhost>".into()),
            timeout: env.secs("SMTP_TIMEOUT_SECS", Duration::from_secs(10))?,
        })
    }
}
