//! Tokens and password hashing. The signing keys are checked here for what makes a key
//! guessable or short; whether one is required at all depends on the database, so that
//! rule is `Settings`'.

use std::collections::HashSet;
use std::time::Duration;

use auth_adapter::{Argon2Settings, HashCapacity, JwtSettings, MIN_SECRET_BYTES};

use super::ConfigError;
use super::env::{DAY, Env, FromEnv};
use super::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// `None` only without a database: a random key is made at start-up.
    pub jwt_secret: Option<Secret<Vec<u8>>>,
    /// Earlier signing keys, still accepted for verification during a rotation.
    pub jwt_previous_secrets: Vec<Secret<Vec<u8>>>,
    /// Keys the `Idempotency-Key` request fingerprints, on every instance alike. `None`:
    /// derived from the signing key, so a key rotation turns retries into 422s.
    pub idempotency_secret: Option<Secret<Vec<u8>>>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwt_ttl: Duration,
    pub jwt_leeway: Duration,
    pub refresh_ttl: Duration,
    /// A session's absolute lifetime, however often it is refreshed.
    pub refresh_absolute_ttl: Duration,
    pub argon2: Argon2Settings,
    /// How many hashes run and wait at once.
    pub hash_capacity: HashCapacity,
}

impl AuthSettings {
    /// JWT settings with `secret` as the signing key.
    pub fn jwt(&self, secret: Vec<u8>) -> JwtSettings {
        JwtSettings {
            secret,
            previous_secrets: self
                .jwt_previous_secrets
                .iter()
                .map(|key| key.expose().clone())
                .collect(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            ttl: self.jwt_ttl,
            leeway: self.jwt_leeway,
        }
    }
}

impl FromEnv for AuthSettings {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let argon2 = {
            let defaults = Argon2Settings::default();
            Argon2Settings {
                memory_kib: env.parse("ARGON2_MEMORY_KIB", defaults.memory_kib)?,
                iterations: env.parse("ARGON2_ITERATIONS", defaults.iterations)?,
                parallelism: env.parse("ARGON2_PARALLELISM", defaults.parallelism)?,
            }
        };
        let hash_capacity = {
            let defaults = HashCapacity::default();
            HashCapacity {
                concurrency: env.positive("PASSWORD_HASH_CONCURRENCY", defaults.concurrency)?,
                queue: env.positive("PASSWORD_HASH_QUEUE", defaults.queue)?,
                wait: env.millis("PASSWORD_HASH_WAIT_MS", defaults.wait)?,
            }
        };
        let auth = Self {
            jwt_secret: env
                .raw("JWT_SECRET")
                .map(|key| Secret::new(key.into_bytes())),
            jwt_previous_secrets: env
                .list("JWT_PREVIOUS_SECRETS")
                .unwrap_or_default()
                .into_iter()
                .map(|key| Secret::new(key.into_bytes()))
                .collect(),
            idempotency_secret: env
                .raw("IDEMPOTENCY_SECRET")
                .map(|key| Secret::new(key.into_bytes())),
            jwt_issuer: env
                .raw("JWT_ISSUER")
                .unwrap_or_else(|| "users-service".into()),
            jwt_audience: env
                .raw("JWT_AUDIENCE")
                .unwrap_or_else(|| "users-service".into()),
            jwt_ttl: env.secs("JWT_TTL_SECS", Duration::from_secs(15 * 60))?,
            jwt_leeway: env.secs("JWT_LEEWAY_SECS", Duration::from_secs(5))?,
            refresh_ttl: env.duration(
                "REFRESH_TOKEN_TTL_SECS",
                Duration::from_secs(30 * 24 * 60 * 60),
                Duration::from_secs,
                DAY * 365,
            )?,
            refresh_absolute_ttl: env.duration(
                "REFRESH_ABSOLUTE_TTL_DAYS",
                ports::auth::Auth::REFRESH_ABSOLUTE_TTL,
                |days| DAY * u32::try_from(days).unwrap_or(u32::MAX),
                DAY * 365,
            )?,
            argon2,
            hash_capacity,
        };
        auth.argon2.validate().map_err(|reason| ConfigError {
            var: "ARGON2_MEMORY_KIB",
            reason,
        })?;
        auth.check_keys()?;
        Ok(auth)
    }
}

impl AuthSettings {
    /// Every signing key given must be one an attacker cannot guess, and long enough.
    fn check_keys(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.jwt_secret
            && let Some(reason) = guessable(secret.expose())
        {
            return Err(ConfigError {
                var: "JWT_SECRET",
                reason: format!("{reason}; generate one, e.g. `openssl rand -hex 32`"),
            });
        }
        if let Some(reason) = self
            .jwt_previous_secrets
            .iter()
            .find_map(|key| guessable(key.expose()))
        {
            return Err(ConfigError {
                var: "JWT_PREVIOUS_SECRETS",
                reason: format!("a key {reason}"),
            });
        }
        if let Some(secret) = &self.idempotency_secret
            && let Some(reason) = guessable(secret.expose())
                .or_else(|| (secret.expose().len() < MIN_SECRET_BYTES).then_some("is too short"))
        {
            return Err(ConfigError {
                var: "IDEMPOTENCY_SECRET",
                reason: format!(
                    "{reason} (at least {MIN_SECRET_BYTES} random bytes; e.g. `openssl rand -hex 32`)"
                ),
            });
        }
        let min = MIN_SECRET_BYTES;
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < min
        {
            return Err(ConfigError {
                var: "JWT_SECRET",
                reason: format!(
                    "must be at least {min} bytes, got {}",
                    secret.expose().len()
                ),
            });
        }
        if let Some(short) = self
            .jwt_previous_secrets
            .iter()
            .find(|key| key.expose().len() < min)
        {
            return Err(ConfigError {
                var: "JWT_PREVIOUS_SECRETS",
                reason: format!(
                    "every key must be at least {min} bytes, got {}",
                    short.expose().len()
                ),
            });
        }
        Ok(())
    }
}

/// Distinct bytes a signing key must have at least.
const MIN_DISTINCT_BYTES: usize = 8;

/// The placeholder `.env.example` once shipped; anyone can read it.
const EXAMPLE_SECRET: &[u8] = b"change-me-to-the-output-of-openssl-rand-hex-32";

/// Why a signing key is one an attacker could guess, if it is: a published
/// placeholder, or too few distinct bytes to be random (`aaaa…`, `abab…`). The bound is
/// 8, not 16: a random hex key has only 16 symbols, and one of `openssl rand -hex 32`'s
/// keys in four misses at least one of them.
pub(super) fn guessable(secret: &[u8]) -> Option<&'static str> {
    if secret == EXAMPLE_SECRET
        || secret
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"change-me"))
    {
        return Some("is a placeholder (it contains `change-me`)");
    }
    let distinct = secret.iter().collect::<HashSet<_>>().len();
    (distinct < MIN_DISTINCT_BYTES).then_some("has fewer than 8 distinct bytes: it is not random")
}
