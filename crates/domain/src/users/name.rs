use std::fmt;

use crate::FieldError;

/// A user's display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 {
            return Err(FieldError::new("name", "must not be empty"));
        }
        if chars > Self::MAX_CHARS {
            return Err(FieldError::new(
                "name",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        let hundred = "é".repeat(100);
        let hundred_one = "é".repeat(101);
        let cases: &[(&str, Option<&str>)] = &[
            ("Ada Lovelace", Some("Ada Lovelace")),
            ("  Grace  ", Some("Grace")),
            ("李小龙", Some("李小龙")),
            (&hundred, Some(&hundred)),
            (&hundred_one, None),
            ("", None),
            ("   ", None),
            ("bad\u{0}name", None),
            ("two\nlines", None),
        ];
        for (raw, expected) in cases {
            let got = UserName::parse(raw);
            match expected {
                Some(want) => assert_eq!(got.unwrap().as_str(), *want, "{raw:?}"),
                None => assert_eq!(got.unwrap_err().field, "name", "{raw:?}"),
            }
        }
    }
}
