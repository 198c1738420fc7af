use std::fmt;

use async_trait::async_trait;

use crate::{Error, FieldError};

/// A plaintext password. Never printed: `Debug` shows a placeholder and there is no
/// `Display`, so it cannot reach a log or a response by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 128;

    /// A new password, checked against the policy: 12 to 128 characters, kept exactly as
    /// typed (no trimming: spaces are part of a passphrase).
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(FieldError::new(
                "password",
                format!("must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(FieldError::new(
                "password",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A password offered at login. Not checked against the policy — a wrong password
    /// is simply wrong — but bounded, so nobody can make us hash a megabyte.
    pub fn candidate(raw: &str) -> Self {
        let bounded: String = raw.chars().take(Self::MAX_CHARS * 4).collect();
        Self(bounded)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password hash in PHC string format. Redacted in `Debug` as well: a hash is an
/// offline-crackable secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// The outcome of checking a password against a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The password matches. `needs_rehash` when the hash was made with other
    /// parameters than the ones configured now.
    Valid {
        needs_rehash: bool,
    },
    Invalid,
}

/// Hashes and verifies passwords.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// A fresh salted hash of `password` with the configured parameters.
    ///
    /// MUST NOT run the hash on an async worker thread: hashing is deliberately slow.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, Error>;

    /// Checks `password` against `hash`. A hash that cannot be parsed is `Invalid`, not
    /// an error, so a corrupt row locks one account instead of failing requests.
    async fn verify(
        &self,
        password: &Password,
        hash: &PasswordHash,
    ) -> Result<PasswordCheck, Error>;

    /// Does the work of [`PasswordHasher::verify`] against a fixed dummy hash.
    ///
    /// Used when there is no account, so that "no such e-mail" and "wrong password" take
    /// about the same time. MUST cost about as much as a real verification.
    async fn verify_dummy(&self, password: &Password) -> Result<(), Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_12_to_128_characters_kept_as_typed() {
        let cases: &[(String, bool)] = &[
            ("correct horse".into(), true),
            ("  twelve chr".into(), true),
            ("ü".repeat(12), true),
            ("x".repeat(128), true),
            ("short".into(), false),
            ("elevenchars".into(), false),
            ("x".repeat(129), false),
            (String::new(), false),
        ];
        for (raw, ok) in cases {
            let got = Password::parse(raw);
            assert_eq!(got.is_ok(), *ok, "{} chars", raw.chars().count());
            if let Ok(p) = got {
                assert_eq!(p.expose(), raw);
            } else if let Err(e) = got {
                assert_eq!(e.field, "password");
            }
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let password = Password::parse("correct horse battery").unwrap();
        let hash = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
        let shown = format!("{password:?} {hash:?}");
        assert!(!shown.contains("horse"), "{shown}");
        assert!(!shown.contains("argon2"), "{shown}");
    }
}
