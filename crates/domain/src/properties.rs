//! Property tests: every parser of outside input, fed arbitrary strings, answers with a
//! value or a field error — never a panic — and what it accepts satisfies its rules.

use proptest::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::chat::{MessageText, RoomName};
use crate::users::{Email, Role, UserName};
use crate::{Cursor, Limit};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn emails_parse_or_refuse_and_what_parses_is_stable(raw in any::<String>()) {
        if let Ok(email) = Email::parse(&raw) {
            prop_assert!(email.as_str().len() <= 254);
            prop_assert!(email.as_str().contains('@'));
            // Parsing what we accepted accepts the same address.
            prop_assert_eq!(Email::parse(email.as_str()).ok(), Some(email.clone()));
        }
    }

    #[test]
    fn email_shaped_input_never_panics(local in "[a-zA-Z0-9.+_%-]{0,70}", domain in "[a-zA-Z0-9.-]{0,260}") {
        let _ = Email::parse(&format!("{local}@{domain}"));
    }

    #[test]
    fn names_parse_within_bounds(raw in any::<String>()) {
        if let Ok(name) = UserName::parse(&raw) {
            let n = name.as_str().chars().count();
            prop_assert!((1..=100).contains(&n), "{n}");
        }
    }

    #[test]
    fn rooms_texts_roles_and_limits_never_panic(raw in any::<String>()) {
        let _ = RoomName::parse(&raw);
        let _ = MessageText::parse(&raw);
        let _ = Role::parse(&raw);
        let _ = Limit::parse(&raw);
    }

    #[test]
    fn garbage_cursors_are_field_errors(raw in any::<String>()) {
        if let Err(error) = Cursor::decode(&raw) {
            prop_assert_eq!(error.field.as_str(), "cursor");
        }
    }

    #[test]
    fn cursors_round_trip(micros in 0i64..253_402_300_799_999_999, id in any::<u128>()) {
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap();
        let cursor = Cursor::new(created_at, Uuid::from_u128(id));
        prop_assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
    }
}
