//! The service as a whole: [`Application`] builds every part the configuration asks for
//! (through [`wiring`]), serves HTTP and gRPC, and shuts everything down in order. The
//! binary's other commands are in [`commands`].

pub mod commands;
pub mod config;
pub mod layers;
mod metrics;
pub mod telemetry;
mod wiring;
pub mod workers;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context;
use ports::live::Live;
use tokio_util::sync::CancellationToken;
use workers::WorkerPool;

pub use commands::{create_admin, healthcheck, run_workers, shutdown_signal};
pub use config::Settings;
use wiring::{Databases, signing_secret, wire};

/// A built service, bound to its port but not yet serving.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    db: Option<Databases>,
    workers: Option<WorkerPool>,
    live: Arc<Live>,
    grpc: Grpc,
    /// `/metrics` on its own address (`METRICS_ADDR`), when configured.
    metrics: Option<(u16, actix_web::dev::Server)>,
    /// Ends the background tasks of this application (the housekeeper).
    background: CancellationToken,
    /// The housekeeper: awaited at shutdown so that it gives its lease up.
    housekeeper: tokio::task::JoinHandle<()>,
    grace: std::time::Duration,
}

/// The gRPC side, bound but not yet serving.
struct Grpc {
    listener: tokio::net::TcpListener,
    port: u16,
    state: grpc_adapter::GrpcState,
    config: grpc_adapter::GrpcConfig,
}

impl Application {
    /// Connects to the database (when configured), applies pending migrations, and binds
    /// the listener. Fails with a readable error when any of that is impossible.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let db = Databases::connect(settings).await?;
        if db.is_none() {
            tracing::warn!(
                "DATABASE_URL is not set: serving from memory; all data is lost when the \
                 process stops"
            );
        }
        let secret = signing_secret(settings)?;
        let nats = wiring::connect_nats(settings).await?;
        let wiring = wire(settings, db.as_ref(), secret.clone(), nats)?;
        let workers = (settings.jobs.workers > 0).then(|| {
            WorkerPool::start(wiring.queue.clone(), wiring.runner.clone(), &settings.jobs)
        });
        let mut state = wiring.state;
        let live = state.live.clone();
        let background = CancellationToken::new();
        let housekeeper = tokio::spawn(wiring.housekeeper.run(background.clone()));
        // Serving starts once this instance knows which sessions have ended.
        wiring
            .revocations
            .follow(wiring.bus.clone(), background.clone())
            .await;
        let metrics = match (&settings.telemetry.metrics_addr, state.metrics.take()) {
            (Some(address), Some(renderer)) => {
                let listener = TcpListener::bind(address)
                    .with_context(|| format!("cannot listen for metrics on {address}"))?;
                let port = listener.local_addr()?.port();
                let server = http_adapter::metrics_server(listener, renderer)
                    .context("cannot start the metrics server")?;
                Some((port, server))
            }
            (None, renderer) => {
                // Served on the API's port, as before.
                state.metrics = renderer;
                None
            }
            (Some(_), None) => None,
        };
        let address = format!("{}:{}", settings.listen.host, settings.listen.port);
        let listener =
            TcpListener::bind(&address).with_context(|| format!("cannot listen on {address}"))?;
        let port = listener.local_addr()?.port();
        let server = http_adapter::server(listener, state, settings.http.clone())
            .context("cannot start the HTTP server")?;
        let grpc_address = format!("{}:{}", settings.listen.host, settings.listen.grpc_port);
        let grpc_listener = tokio::net::TcpListener::bind(&grpc_address)
            .await
            .with_context(|| format!("cannot listen for gRPC on {grpc_address}"))?;
        let grpc_port = grpc_listener.local_addr()?.port();
        tracing::info!(
            address = %format!("{}:{port}", settings.listen.host),
            grpc_address = %format!("{}:{grpc_port}", settings.listen.host),
            "listening"
        );
        Ok(Self {
            port,
            server,
            db,
            workers,
            live,
            grpc: Grpc {
                listener: grpc_listener,
                port: grpc_port,
                state: wiring.grpc,
                config: settings.grpc.clone(),
            },
            metrics,
            background,
            housekeeper,
            grace: settings.http.shutdown_grace,
        })
    }

    /// The port `/metrics` is served on when `METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn grpc_port(&self) -> u16 {
        self.grpc.port
    }

    /// Serves HTTP and gRPC until `shutdown` completes (or either server fails), then
    /// stops accepting on both, lets in-flight requests and calls finish within the
    /// grace period, and closes the pool.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let metrics = self.metrics.take().map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let mut http = Fused(Some(tokio::spawn(self.server)));
        let grpc_stop = CancellationToken::new();
        let mut grpc = Fused(Some(tokio::spawn(grpc_adapter::serve(
            self.grpc.listener,
            self.grpc.state,
            self.grpc.config,
            grpc_stop.clone().cancelled_owned(),
        ))));
        // Either server ending by itself is a failure: the other one stops too.
        let failed = tokio::select! {
            result = http.wait() => Some(result.and_then(|()| Err(anyhow::anyhow!("stopped"))).context("HTTP server")),
            result = grpc.wait() => Some(result.and_then(|()| Err(anyhow::anyhow!("stopped"))).context("gRPC server")),
            () = shutdown => None,
        };
        if let Some(Err(error)) = &failed {
            tracing::error!(error = format!("{error:#}"), "a server failed: stopping");
        }
        tracing::info!("shutting down: draining in-flight requests, calls and jobs");
        // Live streams (WebSockets, gRPC chat) would hold the graceful stop open: tell
        // them we are going away, so clients reconnect elsewhere.
        self.live.close_all();
        grpc_stop.cancel();
        let grace = self.grace;
        let workers = async {
            if let Some(pool) = self.workers.take() {
                pool.shutdown(grace).await;
            }
        };
        let grpc_drained = async {
            match tokio::time::timeout(grace, grpc.wait()).await {
                Ok(result) => result.context("gRPC server failed while stopping"),
                Err(_) => {
                    grpc.abort();
                    Err(anyhow::anyhow!(
                        "gRPC calls were still running after the grace period"
                    ))
                }
            }
        };
        let http_drained = async {
            handle.stop(true).await;
            http.wait()
                .await
                .context("HTTP server failed while stopping")
        };
        let (http_result, grpc_result, ()) = tokio::join!(http_drained, grpc_drained, workers);
        self.background.cancel();
        // Released now, the housekeeping lease moves to another instance at its next
        // beat instead of after it expires.
        if tokio::time::timeout(std::time::Duration::from_secs(3), self.housekeeper)
            .await
            .is_err()
        {
            tracing::warn!("the housekeeper did not stop within 3 s");
        }
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            if let Ok(Err(error)) = task.await {
                tracing::warn!(%error, "the metrics server failed");
            }
        }
        if let Some(db) = self.db {
            db.close();
        }
        if let Some(failure) = failed {
            failure?;
        }
        http_result?;
        grpc_result?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// A server task that can be awaited again: once it has ended, `wait` returns at once.
struct Fused<E>(Option<tokio::task::JoinHandle<Result<(), E>>>);

impl<E: std::error::Error + Send + Sync + 'static> Fused<E> {
    /// Cancel-safe.
    async fn wait(&mut self) -> anyhow::Result<()> {
        let Some(task) = self.0.as_mut() else {
            return Ok(());
        };
        let ended = task.await;
        self.0 = None;
        match ended {
            Ok(result) => Ok(result?),
            Err(e) => Err(anyhow::anyhow!("the server task failed: {e}")),
        }
    }

    fn abort(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
