//! The SMTP adapter against a real SMTP server (the test sink), not a mock.

#![allow(clippy::unwrap_used)] // tests unwrap: a failure there is the test failing

use std::time::Duration;

use domain::mail::{EmailMessage, MailError, Mailer};
use domain::users::Email;
use mail_adapter::SmtpMailer;
use test_support::SmtpSink;

fn welcome() -> EmailMessage {
    EmailMessage {
        to: Email::parse("ada@example.com").unwrap(),
        subject: "Welcome, Ada".into(),
        text: "Hello Ada, plain.".into(),
        html: Some("<p>Hello <b>Ada</b></p>".into()),
        message_id: Some("job-123@users.example".into()),
    }
}

async fn sink_mailer() -> (SmtpMailer, SmtpSink) {
    let sink = SmtpSink::start().await;
    let mailer = SmtpMailer::new(
        &sink.url(),
        "Users service <no-reply@users.example>",
        Duration::from_secs(5),
    )
    .unwrap();
    (mailer, sink)
}

mod contract {
    contract_tests::mailer_contract!(super::sink_mailer);
}

#[tokio::test]
async fn a_message_arrives_with_recipient_subject_parts_and_message_id() {
    let (mailer, sink) = sink_mailer().await;
    mailer.send(&welcome()).await.unwrap();
    let mails = sink
        .wait_until(Duration::from_secs(5), |m| !m.is_empty())
        .await;
    let mail = &mails[0];
    assert_eq!(mail.to, ["<ada@example.com>"]);
    assert_eq!(mail.from, "<no-reply@users.example>");
    assert_eq!(mail.header("Subject").as_deref(), Some("Welcome, Ada"));
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some("<job-123@users.example>")
    );
    assert!(mail.data.contains("multipart/alternative"), "{}", mail.data);
    assert!(mail.data.contains("Hello Ada, plain."));
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mailer = SmtpMailer::new(
        &format!("smtp://127.0.0.1:{port}"),
        "no-reply@users.example",
        Duration::from_secs(2),
    )
    .unwrap();
    match mailer.send(&welcome()).await {
        Err(MailError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn bad_configuration_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert!(SmtpMailer::new("http://not-smtp", "a@b.co", Duration::from_secs(1)).is_err());
        assert!(
            SmtpMailer::new(
                "smtp://127.0.0.1:25",
                "not a mailbox",
                Duration::from_secs(1)
            )
            .is_err()
        );
    });
}
