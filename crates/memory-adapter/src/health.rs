use async_trait::async_trait;
use domain::Error;
use domain::health::HealthProbe;

/// The readiness probe of the in-memory store: always reachable.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryProbe;

#[async_trait]
impl HealthProbe for MemoryProbe {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), Error> {
        Ok(())
    }
}
