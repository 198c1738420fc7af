//! Values that must never reach a log. Every secret in [`super::Settings`] is one of these
//! types, so `{:?}` of the settings (`app config` prints it) is safe to show, and the
//! sections can derive `Debug` instead of each hand-writing a redacting one.

use std::fmt;

/// A value whose `Debug` prints `Secret(<redacted>)`. Reading it takes
/// [`Secret::expose`], so every place a secret leaves its wrapper can be found by name.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself: for the code that needs it, never for a log.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An address that may carry credentials (user info, a password in the query string):
/// `Debug` and `Display` show where it points (host, port, path) and nothing else, so it
/// can be logged as it is. Reading the whole URL takes [`RedactedUrl::expose`].
///
/// The redaction itself is `postgres_adapter::redact_url`, which the adapter needs for
/// its own connection errors; it also understands Postgres' `key=value` form.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its credentials: for connecting, never for a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Where the URL points, without credentials.
    pub fn redacted(&self) -> String {
        postgres_adapter::redact_url(&self.0)
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedactedUrl")
            .field(&self.redacted())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_display_shows_a_secret() {
        let secret = Secret::new(b"hunter22".to_vec());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(secret.expose(), b"hunter22");
        let url = RedactedUrl::new("postgres://app:hunter22@db:5432/app?sslmode=require");
        assert_eq!(url.to_string(), "db:5432/app");
        assert_eq!(format!("{url:?}"), "RedactedUrl(\"db:5432/app\")");
        assert!(url.expose().contains("hunter22"));
    }
}
