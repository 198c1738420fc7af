//! The credential endpoints' budgets, counted in the shared [`RateLimitStore`] (with a
//! database, every instance together), and the `RateLimit` headers that tell a client
//! where it stands.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header::{HeaderName, HeaderValue};
use domain::rate_limit::{Budget, RateLimitStore, Taken};
use ports::rate_limit::RecentKeys;

use crate::config::HttpConfig;
use crate::problem::{ApiError, Problem};

/// How long a successful login makes its address known for that account.
const KNOWN_ADDRESS_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Budgets for the credential endpoints.
pub(crate) struct CredentialLimits {
    pub(crate) store: Arc<dyn RateLimitStore>,
    /// Every login attempt, per client address.
    pub(crate) login: Budget,
    /// Failed logins per account from every address together, per hour: the ceiling on
    /// guessing one password from many addresses. Spent before an attempt and given
    /// back when it succeeds, so attempts in flight together cannot overshoot it.
    pub(crate) account_failures: Budget,
    /// Addresses each account logged in from lately (`account|ip`): they are not held
    /// to the account's ceiling, so failures from elsewhere never lock the owner out
    /// where they signed in before. Kept by each instance: one that has not seen the
    /// owner's login holds them to the ceiling, which only costs them the exemption.
    pub(crate) known_addresses: RecentKeys,
    /// Refresh attempts, per client address and per token.
    pub(crate) refresh: Budget,
}

impl CredentialLimits {
    pub(crate) fn new(config: &HttpConfig, store: Arc<dyn RateLimitStore>) -> Self {
        Self {
            store,
            login: Budget::per_minute("login", config.auth_rate_limit_per_minute),
            account_failures: Budget::new(
                "login-failures",
                config.auth_account_failures_per_hour,
                Duration::from_secs(3600),
            ),
            known_addresses: RecentKeys::new(KNOWN_ADDRESS_TTL),
            refresh: Budget::per_minute("refresh", config.auth_rate_limit_per_minute),
        }
    }

    /// Spends one attempt of `budget` under `key`: the headers to send, or the `429`.
    pub(crate) async fn take(&self, budget: &Budget, key: &str) -> Result<Standing, ApiError> {
        match self.store.take(budget, key).await? {
            Taken::Allowed(remaining) => Ok(Standing {
                budget: *budget,
                left: remaining.left,
                reset: remaining.reset,
            }),
            Taken::Refused { retry_after } => Err(rate_limited(budget, retry_after)),
        }
    }
}

/// Where a client stands in a budget after an attempt, for the `RateLimit-Policy` and
/// `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Standing {
    budget: Budget,
    left: u32,
    reset: Duration,
}

impl Standing {
    /// `response` with the headers added.
    pub(crate) fn on(self, mut response: HttpResponse) -> HttpResponse {
        insert(&mut response, &self.budget, self.left, self.reset);
        response
    }
}

/// The two header values: the budget, and where the client stands in it.
fn values(budget: &Budget, left: u32, reset: Duration) -> (String, String) {
    let policy = format!(
        "\"{}\";q={};w={}",
        budget.name,
        budget.limit(),
        budget.window().as_secs()
    );
    let standing = format!(
        "\"{}\";r={left};t={}",
        budget.name,
        reset.as_secs() + u64::from(reset.subsec_nanos() > 0)
    );
    (policy, standing)
}

fn insert(response: &mut HttpResponse, budget: &Budget, left: u32, reset: Duration) {
    let (policy, standing) = values(budget, left, reset);
    for (name, value) in [("ratelimit-policy", policy), ("ratelimit", standing)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
}

/// The `429` for a refused attempt: `Retry-After` and the `RateLimit` headers.
pub(crate) fn rate_limited(budget: &Budget, wait: Duration) -> ApiError {
    let mut problem = Problem::for_status(actix_web::http::StatusCode::TOO_MANY_REQUESTS);
    problem.detail = "too many attempts; retry later".into();
    problem.retry_after = Some(wait.as_secs().max(1));
    problem.rate_limit = Some(values(budget, 0, wait));
    ApiError::problem(problem)
}
