//! The account flows: how long mailed links work, whether login needs a verified
//! address, and where the links point.

use std::time::Duration;

use super::ConfigError;
use super::env::{DAY, Env, FromEnv};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    /// How long a verification or address-change link works.
    pub email_token_ttl: Duration,
    /// How long a password-reset link works.
    pub password_reset_ttl: Duration,
    /// Refuse login (403 `/problems/email-not-verified`) until the address is verified.
    pub require_verified_email: bool,
    /// The base of the links in e-mails: the client application that takes the token
    /// from `/verify-email?token=…` (and the others) and posts it to the API.
    pub public_base_url: String,
}

const MINUTE: u64 = 60;

impl FromEnv for AccountSettings {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let minutes = |n: u64| Duration::from_secs(n * MINUTE);
        let public_base_url = env
            .raw("PUBLIC_BASE_URL")
            .unwrap_or_else(|| "http://127.0.0.1:8080".into())
            .trim()
            .trim_end_matches('/')
            .to_owned();
        let scheme_ok =
            public_base_url.starts_with("https://") || public_base_url.starts_with("http://");
        if !scheme_ok
            || public_base_url.contains(char::is_whitespace)
            || public_base_url.contains('?')
        {
            return Err(ConfigError {
                var: "PUBLIC_BASE_URL",
                reason: "must be an http:// or https:// URL without a query".into(),
            });
        }
        Ok(Self {
            email_token_ttl: env.duration(
                "EMAIL_TOKEN_TTL_MINUTES",
                minutes(24 * 60),
                minutes,
                DAY * 30,
            )?,
            password_reset_ttl: env.duration(
                "PASSWORD_RESET_TTL_MINUTES",
                minutes(30),
                minutes,
                DAY,
            )?,
            require_verified_email: env.parse("REQUIRE_VERIFIED_EMAIL", false)?,
            public_base_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<AccountSettings, ConfigError> {
        let lookup = |var: &str| {
            vars.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        };
        AccountSettings::from_env(&Env::new(&lookup))
    }

    #[test]
    fn defaults_and_overrides() {
        let defaults = read(&[]).unwrap();
        assert_eq!(defaults.email_token_ttl, Duration::from_secs(24 * 60 * 60));
        assert_eq!(defaults.password_reset_ttl, Duration::from_secs(30 * 60));
        assert!(!defaults.require_verified_email);
        assert_eq!(defaults.public_base_url, "http://127.0.0.1:8080");
        let set = read(&[
            ("EMAIL_TOKEN_TTL_MINUTES", "5"),
            ("REQUIRE_VERIFIED_EMAIL", "true"),
            ("PUBLIC_BASE_URL", "https://app.example/"),
        ])
        .unwrap();
        assert_eq!(set.email_token_ttl, Duration::from_secs(300));
        assert!(set.require_verified_email);
        assert_eq!(set.public_base_url, "https://app.example");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("EMAIL_TOKEN_TTL_MINUTES", "0"),
            ("PASSWORD_RESET_TTL_MINUTES", "100000"),
            ("REQUIRE_VERIFIED_EMAIL", "yes"),
            ("PUBLIC_BASE_URL", "app.example"),
        ] {
            assert_eq!(read(&[(var, value)]).unwrap_err().var, var, "{var}={value}");
        }
    }
}
