//! Wiring: builds the adapters the configuration asks for, puts the use cases on top,
//! serves them over HTTP, and shuts everything down in order.

pub mod config;
pub mod telemetry;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context;
use auth_adapter::{Argon2Hasher, JwtTokens};
use domain::auth::{PasswordHasher, RefreshTokenStore};
use domain::health::HealthProbe;
use domain::idempotency::IdempotencyStore;
use domain::posts::PostRepository;
use domain::users::UserRepository;
use http_adapter::ApiState;
use memory_adapter::{
    MemoryIdempotencyStore, MemoryProbe, MemoryRefreshTokenStore, MemoryUserRepository,
};
use ports::auth::Auth;
use ports::health::HealthChecker;
use ports::posts::Posts;
use ports::users::{CreateUser, Users};
use postgres_adapter::{
    Database, PgIdempotencyStore, PgPostRepository, PgProbe, PgRefreshTokenStore, PgUserRepository,
};

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
        let db = connect(settings).await?;
        if db.is_none() {
            tracing::warn!(
                "DATABASE_URL is not set: serving from memory; all data is lost when the \
                 process stops"
            );
        }
        let secret = signing_secret(settings)?;
        let state = wire(settings, db.as_ref(), secret.clone())?;
        let mut http = settings.http.clone();
        http.fingerprint_key = fingerprint_key(&secret);

        let address = format!("{}:{}", settings.host, settings.port);
        let listener =
            TcpListener::bind(&address).with_context(|| format!("cannot listen on {address}"))?;
        let port = listener.local_addr()?.port();
        let server =
            http_adapter::server(listener, state, http).context("cannot start the HTTP server")?;
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

/// Connects and migrates when a database is configured.
async fn connect(settings: &Settings) -> anyhow::Result<Option<Database>> {
    let Some(url) = &settings.database_url else {
        return Ok(None);
    };
    let db = Database::connect(settings.pool_settings(url)).await?;
    let applied = postgres_adapter::run_migrations(url).await?;
    tracing::info!(
        database = %postgres_adapter::redact_url(url),
        migrations_applied = applied.len(),
        "database ready"
    );
    Ok(Some(db))
}

/// The driven adapters behind the use cases: Postgres when there is a database, memory
/// otherwise; argon2 and JWT for auth either way.
fn wire(settings: &Settings, db: Option<&Database>, secret: Vec<u8>) -> anyhow::Result<ApiState> {
    struct Stores {
        users: Arc<dyn UserRepository>,
        posts: Arc<dyn PostRepository>,
        refresh_tokens: Arc<dyn RefreshTokenStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        probe: Arc<dyn HealthProbe>,
    }
    let stores = match db {
        Some(db) => Stores {
            users: Arc::new(PgUserRepository::new(db.clone())),
            posts: Arc::new(PgPostRepository::new(db.clone())),
            refresh_tokens: Arc::new(PgRefreshTokenStore::new(db.clone())),
            idempotency: Arc::new(PgIdempotencyStore::new(db.clone())),
            probe: Arc::new(PgProbe::new(db.clone())),
        },
        None => {
            // Users and posts share their tables, so deleting a user takes their posts.
            let users = MemoryUserRepository::new();
            Stores {
                posts: Arc::new(users.posts()),
                users: Arc::new(users),
                refresh_tokens: Arc::new(MemoryRefreshTokenStore::new()),
                idempotency: Arc::new(MemoryIdempotencyStore::new()),
                probe: Arc::new(MemoryProbe),
            }
        }
    };
    let Stores {
        users,
        posts,
        refresh_tokens,
        idempotency,
        probe,
    } = stores;
    let hasher: Arc<dyn PasswordHasher> =
        Arc::new(Argon2Hasher::new(settings.auth.argon2).map_err(anyhow::Error::msg)?);
    let tokens = Arc::new(JwtTokens::new(settings.auth.jwt(secret))?);
    Ok(ApiState {
        users: Arc::new(Users::new(
            users.clone(),
            posts.clone(),
            hasher.clone(),
            refresh_tokens.clone(),
            settings.fanout_deadline,
        )),
        posts: Arc::new(Posts::new(posts, users.clone())),
        idempotency,
        health: Arc::new(HealthChecker::new(vec![probe])),
        auth: Arc::new(Auth::new(
            users,
            hasher,
            tokens,
            refresh_tokens,
            settings.auth.refresh_ttl,
        )),
    })
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
    let state = wire(settings, db.as_ref(), signing_secret(settings)?)?;
    let admin = state.users.ensure_admin(command).await?;
    if let Some(db) = db {
        db.close();
    }
    Ok(admin)
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
