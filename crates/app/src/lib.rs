//! Wiring: builds the adapters the configuration asks for, puts the use cases on top,
//! serves them over HTTP, and shuts everything down in order.

pub mod config;
pub mod telemetry;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context;
use domain::health::HealthProbe;
use domain::users::UserRepository;
use http_adapter::ApiState;
use memory_adapter::{MemoryProbe, MemoryUserRepository};
use ports::health::HealthChecker;
use ports::users::Users;
use postgres_adapter::{Database, PgProbe, PgUserRepository};

pub use config::Settings;

/// A built service, bound to its port but not yet serving.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    db: Option<Database>,
}

impl Application {
    /// Connects to the database (when configured), applies pending migrations, and binds
    /// the listener. Fails with a readable error when any of that is impossible.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let db = match &settings.database_url {
            Some(url) => {
                let db = Database::connect(settings.pool_settings(url)).await?;
                let applied = postgres_adapter::run_migrations(url).await?;
                tracing::info!(
                    database = %postgres_adapter::redact_url(url),
                    migrations_applied = applied.len(),
                    "database ready"
                );
                Some(db)
            }
            None => {
                tracing::warn!(
                    "DATABASE_URL is not set: serving from memory; all data is lost when the \
                     process stops"
                );
                None
            }
        };
        let state = wire(db.as_ref());

        let address = format!("{}:{}", settings.host, settings.port);
        let listener =
            TcpListener::bind(&address).with_context(|| format!("cannot listen on {address}"))?;
        let port = listener.local_addr()?.port();
        let server = http_adapter::server(listener, state, settings.http.clone())
            .context("cannot start the HTTP server")?;
        tracing::info!(address = %format!("{}:{port}", settings.host), "listening");
        Ok(Self { port, server, db })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish within the grace period, and closes the pool.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = self.server;
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result.context("HTTP server failed")?,
            () = shutdown => {
                tracing::info!("shutting down: draining in-flight requests");
                let ((), result) = tokio::join!(handle.stop(true), server);
                result.context("HTTP server failed while stopping")?;
            }
        }
        if let Some(db) = self.db {
            db.close();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The driven adapters behind the use cases: Postgres when there is a database, memory
/// otherwise.
fn wire(db: Option<&Database>) -> ApiState {
    let (users, probe): (Arc<dyn UserRepository>, Arc<dyn HealthProbe>) = match db {
        Some(db) => (
            Arc::new(PgUserRepository::new(db.clone())),
            Arc::new(PgProbe::new(db.clone())),
        ),
        None => (Arc::new(MemoryUserRepository::new()), Arc::new(MemoryProbe)),
    };
    ApiState {
        users: Arc::new(Users::new(users)),
        health: Arc::new(HealthChecker::new(vec![probe])),
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
