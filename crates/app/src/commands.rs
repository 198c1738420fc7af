//! The binary's commands besides serving: `worker`, `create-admin`, `healthcheck`, and
//! the signals that end a run.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use auth_adapter::Argon2Hasher;
use ports::users::{CreateUser, UserService, Users};
use postgres_adapter::{PgPostRepository, PgRefreshTokenStore, PgUserRepository};

use crate::config::Settings;
use crate::wiring::{Databases, signing_secret, wire};
use crate::workers::WorkerPool;

/// Runs only the job workers (`app worker`), until `shutdown` completes.
pub async fn run_workers(
    settings: &Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.database.url.is_some(),
        "`app worker` needs DATABASE_URL: in memory there is no queue to share"
    );
    anyhow::ensure!(settings.jobs.workers > 0, "WORKERS is 0: nothing to run");
    let db = Databases::connect(settings).await?;
    // Without the bus the running instances learn of it at their next reload (30 s):
    // an unreachable NATS does not stop an operator from restoring an admin.
    let nats = match crate::wiring::connect_nats(settings).await {
        Ok(nats) => nats,
        Err(error) => {
            tracing::warn!(%error, "NATS unreachable: other instances learn of ended sessions at their next reload");
            None
        }
    };
    let wiring = wire(settings, db.as_ref(), signing_secret(settings)?, nats)?;
    let pool = WorkerPool::start(wiring.queue, wiring.runner, &settings.jobs);
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight jobs");
    pool.shutdown(settings.http.shutdown_grace).await;
    if let Some(db) = db {
        db.close();
    }
    Ok(())
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
        settings.database.url.is_some(),
        "create-admin needs DATABASE_URL: without a database the admin would vanish"
    );
    let command = CreateUser::parse(name, email, password)
        .map_err(|errors| anyhow::anyhow!("{}", domain::Error::Validation(errors)))?;
    let Some(db) = Databases::connect(settings).await? else {
        anyhow::bail!("create-admin needs DATABASE_URL");
    };
    // Only what creating an account needs: no queue workers, mailer or tokens.
    let hasher = Arc::new(
        Argon2Hasher::new(settings.auth.argon2, settings.auth.hash_capacity)
            .map_err(anyhow::Error::msg)?,
    );
    // A new password ends the account's sessions: the running instances learn of it
    // from the bus (or, without one they share, at their next reload).
    let refresh_tokens: Arc<dyn domain::auth::RefreshTokenStore> =
        Arc::new(PgRefreshTokenStore::new(db.main.clone()));
    let mut revocations = ports::sessions::Revocations::new(
        refresh_tokens.clone(),
        settings.auth.jwt_ttl + settings.auth.jwt_leeway,
    );
    // Without the bus the running instances learn of it at their next reload (30 s):
    // an unreachable NATS does not stop an operator from restoring an admin.
    let nats = match crate::wiring::connect_nats(settings).await {
        Ok(nats) => nats,
        Err(error) => {
            tracing::warn!(%error, "NATS unreachable: other instances learn of ended sessions at their next reload");
            None
        }
    };
    if let Some(bus) = crate::wiring::shared_bus(settings, &db, nats) {
        revocations = revocations.with_bus(bus);
    }
    let users = Users::new(
        Arc::new(PgUserRepository::new(db.main.clone())),
        Arc::new(PgPostRepository::new(db.main.clone())),
        hasher,
        refresh_tokens,
        settings.users.fanout_deadline,
    )
    .with_job_max_attempts(settings.jobs.max_attempts)
    .with_revocations(Arc::new(revocations));
    let admin = users.ensure_admin(command).await;
    db.close();
    Ok(admin?)
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
