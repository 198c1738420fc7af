//! Wiring: builds the adapters the configuration asks for, puts the use cases on top,
//! serves them over HTTP, and shuts everything down in order.

pub mod config;
pub mod layers;
pub mod telemetry;
pub mod workers;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context;
use auth_adapter::{Argon2Hasher, JwtTokens};
use domain::auth::{PasswordHasher, RefreshTokenStore};
use domain::chat::ChatRepository;
use domain::events::EventBus;
use domain::health::HealthProbe;
use domain::idempotency::IdempotencyStore;
use domain::jobs::JobQueue;
use domain::mail::Mailer;
use domain::posts::PostRepository;
use domain::users::UserRepository;
use http_adapter::ApiState;
use memory_adapter::{
    MemoryChatRepository, MemoryEventBus, MemoryIdempotencyStore, MemoryMailer, MemoryProbe,
    MemoryRefreshTokenStore, MemoryUserRepository,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ports::auth::Auth;
use ports::chat::Chat;
use ports::health::HealthChecker;
use ports::jobs::{JobRunner, Jobs};
use ports::live::Live;
use ports::posts::Posts;
use ports::users::{CreateUser, Users};
use postgres_adapter::{
    Database, PgChatRepository, PgEventBus, PgIdempotencyStore, PgJobQueue, PgPostRepository,
    PgProbe, PgRefreshTokenStore, PgUserRepository, PoolSettings,
};
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;
use workers::WorkerPool;

pub use config::Settings;

/// A built service, bound to its port but not yet serving.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    db: Option<Databases>,
    workers: Option<WorkerPool>,
    ws: Arc<http_adapter::WsHub>,
    grpc: Grpc,
    /// `/metrics` on its own address (`METRICS_ADDR`), when configured.
    metrics: Option<(u16, actix_web::dev::Server)>,
    /// Ends the background tasks of this application (the job counts of `/metrics`).
    background: CancellationToken,
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
        let db = connect(settings).await?;
        if db.is_none() {
            tracing::warn!(
                "DATABASE_URL is not set: serving from memory; all data is lost when the \
                 process stops"
            );
        }
        let secret = signing_secret(settings)?;
        let wiring = wire(settings, db.as_ref(), secret.clone())?;
        let workers = (settings.jobs.workers > 0).then(|| {
            WorkerPool::start(wiring.queue.clone(), wiring.runner.clone(), &settings.jobs)
        });
        let mut state = wiring.state;
        let ws = state.ws.clone();
        let background = CancellationToken::new();
        refresh_job_counts(wiring.queue.clone(), background.clone());
        let metrics = match (&settings.metrics_addr, state.metrics.take()) {
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
        let mut http = settings.http.clone();
        http.fingerprint_key = fingerprint_key(&secret);

        let address = format!("{}:{}", settings.host, settings.port);
        let listener =
            TcpListener::bind(&address).with_context(|| format!("cannot listen on {address}"))?;
        let port = listener.local_addr()?.port();
        let server =
            http_adapter::server(listener, state, http).context("cannot start the HTTP server")?;
        let grpc_address = format!("{}:{}", settings.host, settings.grpc_port);
        let grpc_listener = tokio::net::TcpListener::bind(&grpc_address)
            .await
            .with_context(|| format!("cannot listen for gRPC on {grpc_address}"))?;
        let grpc_port = grpc_listener.local_addr()?.port();
        tracing::info!(
            address = %format!("{}:{port}", settings.host),
            grpc_address = %format!("{}:{grpc_port}", settings.host),
            "listening"
        );
        Ok(Self {
            port,
            server,
            db,
            workers,
            ws,
            grpc: Grpc {
                listener: grpc_listener,
                port: grpc_port,
                state: wiring.grpc,
                config: settings.grpc.clone(),
            },
            metrics,
            background,
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
        self.ws.close_all();
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
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            if let Ok(Err(error)) = task.await {
                tracing::warn!(%error, "the metrics server failed");
            }
        }
        if let Some(db) = self.db {
            db.main.close();
            db.jobs.close();
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

/// The request pool and, apart from it, the job workers' small pool: request load
/// cannot starve jobs, and a job backlog cannot exhaust the request pool.
pub struct Databases {
    main: Database,
    jobs: Database,
    url: String,
}

/// Connects and migrates when a database is configured.
async fn connect(settings: &Settings) -> anyhow::Result<Option<Databases>> {
    let Some(url) = &settings.database_url else {
        return Ok(None);
    };
    // The request pool's connections are split between the HTTP workers' own pools and
    // one shared by everything else (gRPC, background tasks): DB_MAX_CONNECTIONS in all.
    let pools = settings.http_workers() + 1;
    let request_pool = settings.pool_settings(url);
    let main = Database::connect(PoolSettings {
        max_size: request_pool.max_size.div_ceil(pools),
        min_idle: request_pool.min_idle.div_ceil(pools),
        ..request_pool
    })
    .await?;
    let applied = postgres_adapter::run_migrations(url).await?;
    let jobs = Database::connect(PoolSettings {
        // One connection per worker and one to spare for the admin API.
        max_size: settings.jobs.workers + 1,
        min_idle: 1,
        ..settings.pool_settings(url)
    })
    .await?;
    tracing::info!(
        database = %postgres_adapter::redact_url(url),
        migrations_applied = applied.len(),
        "database ready"
    );
    Ok(Some(Databases {
        main,
        jobs,
        url: url.clone(),
    }))
}

/// The driven adapters behind the use cases: Postgres when there is a database, memory
/// otherwise; argon2 and JWT for auth either way.
/// What `wire` builds: the HTTP state, and what the workers need.
struct Wiring {
    state: ApiState,
    grpc: grpc_adapter::GrpcState,
    queue: Arc<dyn JobQueue>,
    runner: Arc<JobRunner>,
}

fn wire(settings: &Settings, db: Option<&Databases>, secret: Vec<u8>) -> anyhow::Result<Wiring> {
    struct Stores {
        users: Arc<dyn UserRepository>,
        posts: Arc<dyn PostRepository>,
        refresh_tokens: Arc<dyn RefreshTokenStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        queue: Arc<dyn JobQueue>,
        chat: Arc<dyn ChatRepository>,
        bus: Arc<dyn EventBus>,
        probe: Arc<dyn HealthProbe>,
    }
    let stores = match db {
        Some(Databases { main, jobs, url }) => Stores {
            users: Arc::new(PgUserRepository::new(main.clone())),
            posts: Arc::new(PgPostRepository::new(main.clone())),
            refresh_tokens: Arc::new(PgRefreshTokenStore::new(main.clone())),
            idempotency: Arc::new(PgIdempotencyStore::new(main.clone())),
            queue: Arc::new(PgJobQueue::new(jobs.clone(), url)),
            chat: Arc::new(PgChatRepository::new(main.clone())),
            bus: if settings.postgres_event_bus {
                Arc::new(PgEventBus::new(main.clone(), url))
            } else {
                Arc::new(MemoryEventBus::default())
            },
            probe: Arc::new(PgProbe::new(main.clone())),
        },
        None => {
            // Users and posts share their tables, so deleting a user takes their posts.
            let users = MemoryUserRepository::new();
            Stores {
                posts: Arc::new(users.posts()),
                queue: Arc::new(users.jobs()),
                users: Arc::new(users),
                refresh_tokens: Arc::new(MemoryRefreshTokenStore::new()),
                idempotency: Arc::new(MemoryIdempotencyStore::new()),
                chat: Arc::new(MemoryChatRepository::new()),
                bus: Arc::new(MemoryEventBus::default()),
                probe: Arc::new(MemoryProbe),
            }
        }
    };
    let Stores {
        users,
        posts,
        refresh_tokens,
        idempotency,
        queue,
        chat,
        bus,
        probe,
    } = stores;
    let mailer: Arc<dyn Mailer> = match &settings.mail.smtp_url {
        Some(url) => Arc::new(mail_adapter::SmtpMailer::new(
            url,
            &settings.mail.from,
            settings.mail.timeout,
        )?),
        None => {
            tracing::warn!("SMTP_URL is not set: e-mails are logged, not sent");
            Arc::new(MemoryMailer::new())
        }
    };
    let runner = Arc::new(JobRunner::new(mailer, settings.mail.domain()));
    let hasher: Arc<dyn PasswordHasher> = Arc::new(
        Argon2Hasher::new(settings.auth.argon2, settings.auth.hash_capacity)
            .map_err(anyhow::Error::msg)?,
    );
    let tokens = Arc::new(JwtTokens::new(settings.auth.jwt(secret))?);
    let live = Live::start(
        Arc::new(Chat::new(chat, users.clone(), bus.clone())),
        bus.clone(),
        settings.live.clone(),
    );
    let metrics = metrics_renderer(db, live.clone());
    // Each HTTP worker gets request connections of its own, driven on its thread.
    let worker_start: Option<http_adapter::WorkerStart> = db.map(|db| {
        let main = db.main.clone();
        Arc::new(move || main.attach_current_thread()) as http_adapter::WorkerStart
    });
    let state = ApiState {
        worker_start,
        users: Arc::new(
            Users::new(
                users.clone(),
                posts.clone(),
                hasher.clone(),
                refresh_tokens.clone(),
                settings.fanout_deadline,
            )
            .with_job_max_attempts(settings.jobs.max_attempts)
            .with_registration_limit(settings.registration_rate_limit_per_minute)
            .with_events(bus.clone()),
        ),
        jobs: Arc::new(Jobs::new(queue.clone())),
        posts: Arc::new(Posts::new(posts, users.clone()).with_events(bus.clone())),
        ws: http_adapter::WsHub::new(live.clone(), settings.ws.clone()),
        metrics,
        idempotency,
        health: Arc::new(HealthChecker::new(vec![probe])),
        auth: Arc::new(
            Auth::new(
                users,
                hasher,
                tokens,
                refresh_tokens,
                settings.auth.refresh_ttl,
            )
            .with_refresh_absolute_ttl(settings.auth.refresh_absolute_ttl),
        ),
    };
    let grpc = grpc_adapter::GrpcState {
        users: state.users.clone(),
        auth: state.auth.clone(),
        health: state.health.clone(),
        live,
    };
    Ok(Wiring {
        state,
        grpc,
        queue,
        runner,
    })
}

/// The process-wide Prometheus recorder. Installed once: tests run several
/// applications in one process, and they share it.
fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed: /metrics is off");
                return None;
            }
            // Histograms buffer samples until upkeep folds them in; without a scrape
            // they would grow, so fold them in on a timer too.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "metrics upkeep thread did not start");
            }
            metrics::gauge!("build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .clone()
}

/// `GET /metrics`: samples what is cheap to read at scrape time (pool sizes, live
/// connections), then renders everything off the HTTP worker. Nothing here touches the
/// database: job counts come from [`refresh_job_counts`].
fn metrics_renderer(
    db: Option<&Databases>,
    live: Arc<Live>,
) -> Option<http_adapter::MetricsRenderer> {
    let handle = prometheus()?;
    let pools: Vec<(&'static str, Database)> = db
        .map(|db| vec![("main", db.main.clone()), ("jobs", db.jobs.clone())])
        .unwrap_or_default();
    Some(Arc::new(move || {
        let handle = handle.clone();
        let pools = pools.clone();
        let live = live.clone();
        Box::pin(async move {
            for (name, pool) in &pools {
                let stats = pool.stats();
                metrics::gauge!("db_pool_max_connections", "pool" => *name)
                    .set(stats.max_size as f64);
                metrics::gauge!("db_pool_connections", "pool" => *name).set(stats.size as f64);
                metrics::gauge!("db_pool_idle_connections", "pool" => *name).set(stats.idle as f64);
                metrics::gauge!("db_pool_waiting", "pool" => *name).set(stats.waiting as f64);
            }
            let stats = live.stats();
            metrics::gauge!("live_connections").set(stats.open as f64);
            metrics::counter!("live_dropped_slow_total").absolute(stats.dropped_too_slow);
            // Rendering walks every series: on the blocking pool, an HTTP worker keeps
            // serving meanwhile.
            tokio::task::spawn_blocking(move || handle.render())
                .await
                .unwrap_or_default()
        })
    }))
}

/// How often the job counts of `/metrics` are read from the queue.
const JOB_COUNTS_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Keeps the `jobs{state}` gauges current: one task reads the counts every
/// [`JOB_COUNTS_EVERY`], however often `/metrics` is scraped, until `stop`.
fn refresh_job_counts(queue: Arc<dyn JobQueue>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(JOB_COUNTS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            // While the database is away the gauges keep their last values.
            match tokio::time::timeout(std::time::Duration::from_secs(5), queue.counts()).await {
                Ok(Ok(counts)) => {
                    for (state, n) in counts {
                        metrics::gauge!("jobs", "state" => state.as_str()).set(n as f64);
                    }
                }
                Ok(Err(error)) => tracing::debug!(%error, "job counts unavailable for metrics"),
                Err(_) => tracing::debug!("job counts timed out for metrics"),
            }
        }
    });
}

/// Runs only the job workers (`app worker`), until `shutdown` completes.
pub async fn run_workers(
    settings: &Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.database_url.is_some(),
        "`app worker` needs DATABASE_URL: in memory there is no queue to share"
    );
    anyhow::ensure!(settings.jobs.workers > 0, "WORKERS is 0: nothing to run");
    let db = connect(settings).await?;
    let wiring = wire(settings, db.as_ref(), signing_secret(settings)?)?;
    let pool = WorkerPool::start(wiring.queue, wiring.runner, &settings.jobs);
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight jobs");
    pool.shutdown(settings.http.shutdown_grace).await;
    if let Some(db) = db {
        db.main.close();
        db.jobs.close();
    }
    Ok(())
}

/// The JWT signing key: `JWT_SECRET`, or a random one when there is no database (the
/// configuration refuses a database without a secret).
fn signing_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    Ok(match &settings.auth.jwt_secret {
        Some(secret) => secret.clone(),
        None => {
            tracing::warn!(
                "JWT_SECRET is not set: signing tokens with a random key; every token is \
                 invalid after a restart"
            );
            JwtTokens::random_secret()?
        }
    })
}

/// The `Idempotency-Key` fingerprint key, derived from the signing secret so every
/// instance sharing `JWT_SECRET` agrees, without reusing the signing key itself.
fn fingerprint_key(secret: &[u8]) -> http_adapter::FingerprintKey {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(b"idempotency-fingerprint\0");
    hash.update(secret);
    http_adapter::FingerprintKey(hash.finalize().into())
}

/// Creates or promotes an admin (`app create-admin`). Needs a database: an admin in
/// memory would vanish with this process.
pub async fn create_admin(
    settings: &Settings,
    name: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<domain::users::User> {
    anyhow::ensure!(
        settings.database_url.is_some(),
        "create-admin needs DATABASE_URL: without a database the admin would vanish"
    );
    let command = CreateUser::parse(name, email, password)
        .map_err(|errors| anyhow::anyhow!("{}", domain::Error::Validation(errors)))?;
    let db = connect(settings).await?;
    let wiring = wire(settings, db.as_ref(), signing_secret(settings)?)?;
    let admin = wiring.state.users.ensure_admin(command).await?;
    if let Some(db) = db {
        db.main.close();
        db.jobs.close();
    }
    Ok(admin)
}

/// Asks the server on this host's `port` whether it is ready (`app healthcheck`).
pub async fn healthcheck(port: u16) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /api/health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        anyhow::Ok(head)
    };
    let head = tokio::time::timeout(std::time::Duration::from_secs(3), check)
        .await
        .context("no answer within 3 s")?
        .context("cannot ask the server")?;
    // "HTTP/1.x 200"
    anyhow::ensure!(
        &head[9..12] == b"200",
        "not ready: {}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
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
