use async_trait::async_trait;

use crate::Error;

/// A dependency whose reachability decides whether the service is ready.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait HealthProbe: Send + Sync + 'static {
    /// The name the readiness report shows for this check, e.g. `database`.
    fn name(&self) -> &'static str;

    /// Checks the dependency once.
    ///
    /// MUST return within a bounded time, and MUST return [`Error::Unavailable`] when the
    /// dependency cannot be reached, never hang.
    async fn check(&self) -> Result<(), Error>;
}
