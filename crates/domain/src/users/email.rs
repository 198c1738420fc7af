use std::fmt;

use crate::FieldError;

/// A plausible e-mail address.
///
/// Stored as typed (after trimming); compared case-insensitively through
/// [`Email::normalized`]. Only ASCII addresses are accepted: internationalised
/// addresses (RFC 6531) need SMTPUTF8 end to end, which we do not promise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit on a forward path.
    pub const MAX_LEN: usize = 254;
    const MAX_LOCAL_LEN: usize = 64;
    const MAX_LABEL_LEN: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim();
        let err = |message: &str| Err(FieldError::new("email", message));
        if email.is_empty() {
            return err("must not be empty");
        }
        if !email.is_ascii() {
            return err("must contain only ASCII characters");
        }
        if email.len() > Self::MAX_LEN {
            return err("must be at most 254 characters");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return err("must contain an @");
        };
        if !valid_local_part(local) {
            return err("has an invalid part before the @");
        }
        if !valid_domain(domain) {
            return err("has an invalid domain");
        }
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is decided on: two addresses differing only in case are one.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// Whether both are one address (they differ in case at most).
    pub fn same_as(&self, other: &Email) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The dot-atom form of RFC 5322 (quoted local parts are not accepted).
fn valid_local_part(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.len() <= Email::MAX_LOCAL_LEN
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
        })
}

/// A DNS host name with at least two labels and an alphabetic top-level label.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= Email::MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation_table() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let too_long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("valid", "user@example.com", Some("user@example.com")),
            ("trimmed", "  user@example.com \n", Some("user@example.com")),
            (
                "case kept",
                "Ada.Lovelace@Example.COM",
                Some("Ada.Lovelace@Example.COM"),
            ),
            (
                "plus tag",
                "ada+news@mail.example.org",
                Some("ada+news@mail.example.org"),
            ),
            ("missing @", "userexample.com", None),
            ("missing domain", "user@", None),
            ("missing local part", "@example.com", None),
            ("domain without dot", "user@localhost", None),
            ("empty", "", None),
            ("blank", "   ", None),
            ("unicode local part", "jürgen@example.com", None),
            ("unicode domain", "user@exämple.com", None),
            ("over-long", &too_long, None),
            ("over-long local part", &long_local, None),
            ("two @", "a@b@example.com", None),
            ("double dot", "a..b@example.com", None),
            ("leading dot", ".a@example.com", None),
            ("space inside", "a b@example.com", None),
            ("hyphen label edge", "a@-example.com", None),
            ("numeric tld", "a@example.123", None),
        ];
        for (case, raw, expected) in cases {
            let got = Email::parse(raw);
            match expected {
                Some(want) => assert_eq!(got.expect(case).as_str(), *want, "{case}"),
                None => assert_eq!(got.expect_err(case).field, "email", "{case}"),
            }
        }
    }

    #[test]
    fn normalized_ignores_case() {
        let a = Email::parse("Ada@Example.com").unwrap();
        let b = Email::parse("ada@example.COM").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.normalized(), b.normalized());
    }
}
