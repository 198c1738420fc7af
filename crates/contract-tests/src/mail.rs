//! The [`Mailer`] contract, for a mail system that accepts messages.

use domain::mail::{EmailMessage, Mailer};
use domain::users::Email;

fn message(to: &str, subject: &str) -> EmailMessage {
    EmailMessage {
        to: Email::parse(to).expect("valid address"),
        subject: subject.to_owned(),
        text: "Hello in plain text.".to_owned(),
        html: Some("<p>Hello in <b>HTML</b>.</p>".to_owned()),
        message_id: Some(format!(
            "test-{subject_len}@example.com",
            subject_len = subject.len()
        )),
    }
}

pub async fn a_well_formed_message_is_accepted(mailer: &impl Mailer) {
    mailer
        .send(&message("ada@example.com", "Welcome, Ada"))
        .await
        .expect("accepted");
}

pub async fn text_only_and_non_ascii_subjects_are_accepted(mailer: &impl Mailer) {
    let mut plain = message("grace@example.com", "Grüße, Grace — 你好");
    plain.html = None;
    mailer.send(&plain).await.expect("accepted");
}
