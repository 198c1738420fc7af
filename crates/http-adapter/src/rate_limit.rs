//! The credential endpoints' budgets, shared by every worker of a server.

use std::time::Duration;

use ports::rate_limit::{RecentKeys, TokenBuckets};

use crate::config::HttpConfig;

/// How long a successful login makes its address known for that account.
const KNOWN_ADDRESS_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Budgets for the credential endpoints, shared by every worker of a server.
#[derive(Debug)]
pub(crate) struct CredentialLimits {
    /// Every login attempt, per client address.
    pub(crate) login: TokenBuckets,
    /// Failed logins per account from every address together, per hour: the ceiling on
    /// guessing one password from many addresses. Spent before an attempt and given
    /// back when it succeeds, so attempts in flight together cannot overshoot it.
    pub(crate) account_failures: TokenBuckets,
    /// Addresses each account logged in from lately (`account|ip`): they are not held
    /// to the account's ceiling, so failures from elsewhere never lock the owner out
    /// where they signed in before.
    pub(crate) known_addresses: RecentKeys,
    pub(crate) refresh: TokenBuckets,
}

impl CredentialLimits {
    pub(crate) fn new(config: &HttpConfig) -> Self {
        Self {
            login: TokenBuckets::per_minute(config.auth_rate_limit_per_minute),
            account_failures: TokenBuckets::new(
                config.auth_account_failures_per_hour,
                Duration::from_secs(3600),
            ),
            known_addresses: RecentKeys::new(KNOWN_ADDRESS_TTL),
            refresh: TokenBuckets::per_minute(config.auth_rate_limit_per_minute),
        }
    }
}
