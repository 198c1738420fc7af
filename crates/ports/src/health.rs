use std::sync::Arc;

use async_trait::async_trait;
use domain::health::HealthProbe;

/// The outcome of one readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Unavailable,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Every check by name, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub checks: Vec<(&'static str, CheckStatus)>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, s)| *s == CheckStatus::Ok)
    }
}

/// Whether the service can do its work now.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait HealthService: Send + Sync + 'static {
    /// Runs every readiness check once. Never fails: a failing dependency is reported
    /// in the result.
    async fn readiness(&self) -> Readiness;
}

/// [`HealthService`] over the domain's [`HealthProbe`]s.
pub struct HealthChecker {
    probes: Vec<Arc<dyn HealthProbe>>,
}

impl HealthChecker {
    pub fn new(probes: Vec<Arc<dyn HealthProbe>>) -> Self {
        Self { probes }
    }
}

#[async_trait]
impl HealthService for HealthChecker {
    async fn readiness(&self) -> Readiness {
        let mut checks = Vec::with_capacity(self.probes.len());
        for probe in &self.probes {
            let status = match probe.check().await {
                Ok(()) => CheckStatus::Ok,
                Err(error) => {
                    tracing::warn!(check = probe.name(), %error, "readiness check failed");
                    CheckStatus::Unavailable
                }
            };
            checks.push((probe.name(), status));
        }
        Readiness { checks }
    }
}

#[cfg(test)]
mod tests {
    use domain::Error;
    use domain::health::MockHealthProbe;

    use super::*;

    fn probe(name: &'static str, ok: bool) -> Arc<dyn HealthProbe> {
        let mut probe = MockHealthProbe::new();
        probe.expect_name().return_const(name);
        probe.expect_check().returning(move || {
            if ok {
                Ok(())
            } else {
                Err(Error::unavailable("connection refused"))
            }
        });
        Arc::new(probe)
    }

    #[tokio::test]
    async fn ready_only_when_every_probe_is_ok() {
        let ready = HealthChecker::new(vec![probe("database", true)])
            .readiness()
            .await;
        assert!(ready.is_ready());
        assert_eq!(ready.checks, vec![("database", CheckStatus::Ok)]);

        let down = HealthChecker::new(vec![probe("database", false)])
            .readiness()
            .await;
        assert!(!down.is_ready());
        assert_eq!(down.checks, vec![("database", CheckStatus::Unavailable)]);
    }
}
