//! The users use case's own bounds.

use std::time::Duration;

use ports::users::Users;

use super::ConfigError;
use super::env::{Env, FromEnv};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersSettings {
    /// Bound on fetching a user and their posts together (`?include=posts`).
    pub fanout_deadline: Duration,
    /// Registrations per client address (IPv6: per /64) and minute, every transport
    /// together.
    pub registration_rate_limit_per_minute: u32,
}

impl FromEnv for UsersSettings {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            fanout_deadline: env.millis("FANOUT_DEADLINE_MS", Duration::from_millis(5000))?,
            registration_rate_limit_per_minute: env.positive(
                "REGISTRATION_RATE_LIMIT_PER_MINUTE",
                Users::REGISTRATIONS_PER_MINUTE,
            )?,
        })
    }
}
