//! SMTP delivery for the domain's [`Mailer`] port, with lettre's async transport.
//!
//! `SMTP_URL` selects the transport security: `smtp://host:port` (plain, for local mail
//! catchers), `smtp://host:port?tls=required` (STARTTLS), `smtps://host:port` (implicit
//! TLS); credentials go in the URL's user info.

use std::time::Duration;

use async_trait::async_trait;
use domain::mail::{EmailMessage, MailError, Mailer};
use lettre::message::header::MessageId;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("SMTP_URL is not a usable SMTP URL: {0}")]
    Url(String),
    #[error("SMTP_FROM is not a valid mailbox: {0}")]
    From(String),
}

/// A [`Mailer`] that hands messages to an SMTP server.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// Builds the (pooled) transport; connections open on first send. Must be called
    /// inside a tokio runtime.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, SmtpConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| SmtpConfigError::Url(e.to_string()))?
            .timeout(Some(timeout))
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| SmtpConfigError::From(e.to_string()))?;
        Ok(Self { transport, from })
    }

    fn build(&self, message: &EmailMessage) -> Result<Message, MailError> {
        let to: Mailbox = message
            .to
            .as_str()
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Rejected(e.to_string()))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone());
        if let Some(id) = &message.message_id {
            builder = builder.header(MessageId::from(format!("<{id}>")));
        }
        let built = match &message.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(SinglePart::plain(message.text.clone())),
        };
        built.map_err(|e| MailError::Rejected(e.to_string()))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        let email = self.build(message)?;
        self.transport.send(email).await.map(|_| ()).map_err(|e| {
            // 5xx replies are final; everything else (4xx, timeouts, connection
            // failures) is worth another try.
            if e.is_permanent() {
                MailError::Rejected(e.to_string())
            } else {
                MailError::Unavailable(e.to_string())
            }
        })
    }
}
