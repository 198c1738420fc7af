//! The composition root: which adapter stands behind each driven port, and the use
//! cases on top of them. The only module that names every adapter.

use std::sync::Arc;

use auth_adapter::{Argon2Hasher, JwtTokens};
use domain::accounts::AccountStore;
use domain::auth::{PasswordHasher, RefreshTokenStore};
use domain::chat::ChatRepository;
use domain::events::EventBus;
use domain::health::HealthProbe;
use domain::housekeeping::{Housekeeping, LeaseStore, Sweep};
use domain::idempotency::IdempotencyStore;
use domain::jobs::JobQueue;
use domain::mail::Mailer;
use domain::posts::PostRepository;
use domain::rate_limit::RateLimitStore;
use domain::users::UserRepository;
use http_adapter::ApiState;
use memory_adapter::{
    MemoryChatRepository, MemoryEventBus, MemoryIdempotencyStore, MemoryLeaseStore, MemoryMailer,
    MemoryProbe, MemoryUserRepository,
};
use ports::account_mail::AccountMail;
use ports::accounts::Accounts;
use ports::auth::Auth;
use ports::chat::Chat;
use ports::health::HealthChecker;
use ports::housekeeping::{Housekeeper, HousekeepingPolicy, HousekeepingStatus};
use ports::jobs::{JobRunner, Jobs};
use ports::live::Live;
use ports::posts::Posts;
use ports::rate_limit::LocalRateLimits;
use ports::sessions::Revocations;
use ports::users::Users;
use postgres_adapter::{
    Database, PgAccountStore, PgChatRepository, PgEventBus, PgHousekeeping, PgIdempotencyStore,
    PgJobQueue, PgLeaseStore, PgPostRepository, PgProbe, PgRateLimitStore, PgRefreshTokenStore,
    PgUserRepository, PoolConfig, PoolSettings,
};

use crate::config::{EventBusKind, JobWakeup, Settings};

/// The request pool and, apart from it, the job workers' small pool: request load
/// cannot starve jobs, and a job backlog cannot exhaust the request pool.
pub(crate) struct Databases {
    pub(crate) main: Database,
    pub(crate) jobs: Database,
}

impl Databases {
    /// Connects and migrates when a database is configured.
    pub(crate) async fn connect(settings: &Settings) -> anyhow::Result<Option<Databases>> {
        let (Some(url), Some(request_pool)) = (&settings.database.url, settings.pool_settings())
        else {
            return Ok(None);
        };
        // The request pool's connections are split between the HTTP workers' own pools and
        // one shared by everything else (gRPC, background tasks): DB_MAX_CONNECTIONS in all.
        let pools = settings.http_workers() + 1;
        let main = Database::connect(PoolSettings {
            url: request_pool.url.clone(),
            pool: PoolConfig {
                max_size: request_pool.pool.max_size.div_ceil(pools),
                min_idle: request_pool.pool.min_idle.div_ceil(pools),
                ..request_pool.pool.clone()
            },
        })
        .await?;
        let applied = if settings.database.migrate_on_start {
            postgres_adapter::run_migrations(url.expose()).await?
        } else {
            postgres_adapter::check_schema(url.expose()).await?;
            Vec::new()
        };
        let jobs = Database::connect(PoolSettings {
            url: request_pool.url,
            pool: PoolConfig {
                // One connection per worker and one to spare for the admin API.
                max_size: settings.jobs.workers + 1,
                min_idle: 1,
                ..request_pool.pool
            },
        })
        .await?;
        tracing::info!(
            database = %url,
            migrations_applied = applied.len(),
            "database ready"
        );
        Ok(Some(Databases { main, jobs }))
    }

    /// Closes both pools: connections are returned and no new ones are made.
    pub(crate) fn close(self) {
        self.main.close();
        self.jobs.close();
    }
}

/// What `wire` builds: the HTTP and gRPC states, and what the job workers need.
pub(crate) struct Wiring {
    pub(crate) state: ApiState,
    pub(crate) grpc: grpc_adapter::GrpcState,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) runner: Arc<JobRunner>,
    /// Runs the periodic work when this instance holds the lease.
    pub(crate) housekeeper: Housekeeper,
    /// The sessions ended anywhere, which this instance must learn of from `bus`.
    pub(crate) revocations: Arc<Revocations>,
    pub(crate) bus: Arc<dyn EventBus>,
}

/// The driven adapters behind the use cases: Postgres when there is a database, memory
/// otherwise; argon2 and JWT for auth either way.
/// The NATS connection, when `EVENT_BUS=nats`.
pub(crate) async fn connect_nats(
    settings: &Settings,
) -> anyhow::Result<Option<nats_adapter::NatsEventBus>> {
    if settings.database.event_bus != EventBusKind::Nats {
        return Ok(None);
    }
    let bus = nats_adapter::NatsEventBus::connect(settings.database.nats_url.expose()).await?;
    tracing::info!(nats = %settings.database.nats_url, "event bus: NATS");
    Ok(Some(bus))
}

pub(crate) fn wire(
    settings: &Settings,
    db: Option<&Databases>,
    secret: Vec<u8>,
    nats: Option<nats_adapter::NatsEventBus>,
) -> anyhow::Result<Wiring> {
    let fingerprint_key = fingerprint_key(settings, &secret);
    struct Stores {
        users: Arc<dyn UserRepository>,
        posts: Arc<dyn PostRepository>,
        refresh_tokens: Arc<dyn RefreshTokenStore>,
        accounts: Arc<dyn AccountStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        rate_limits: Arc<dyn RateLimitStore>,
        queue: Arc<dyn JobQueue>,
        chat: Arc<dyn ChatRepository>,
        bus: Arc<dyn EventBus>,
        probe: Arc<dyn HealthProbe>,
        leases: Arc<dyn LeaseStore>,
        housekeeping: Arc<dyn Housekeeping>,
    }
    let stores = match db {
        Some(databases @ Databases { main, jobs }) => Stores {
            users: Arc::new(PgUserRepository::new(main.clone())),
            posts: Arc::new(PgPostRepository::new(main.clone())),
            refresh_tokens: Arc::new(PgRefreshTokenStore::new(main.clone())),
            accounts: Arc::new(PgAccountStore::new(main.clone())),
            idempotency: Arc::new(PgIdempotencyStore::new(main.clone())),
            rate_limits: Arc::new(PgRateLimitStore::new(main.clone())),
            queue: Arc::new(match settings.jobs.wakeup {
                JobWakeup::Listen => PgJobQueue::new(jobs.clone()),
                JobWakeup::Poll => PgJobQueue::polling(jobs.clone()),
            }),
            chat: Arc::new(PgChatRepository::new(main.clone())),
            bus: shared_bus(settings, databases, nats.clone())
                .unwrap_or_else(|| Arc::new(MemoryEventBus::default())),
            probe: Arc::new(PgProbe::new(main.clone())),
            leases: Arc::new(PgLeaseStore::new(jobs.clone())),
            housekeeping: Arc::new(PgHousekeeping::new(jobs.clone())),
        },
        None => {
            // Users and posts share their tables, so deleting a user takes their posts.
            let users = MemoryUserRepository::new();
            let leases = MemoryLeaseStore::default();
            Stores {
                housekeeping: Arc::new(users.housekeeping(leases.clone())),
                leases: Arc::new(leases),
                posts: Arc::new(users.posts()),
                queue: Arc::new(users.jobs()),
                refresh_tokens: Arc::new(users.refresh_tokens()),
                accounts: Arc::new(users.accounts()),
                users: Arc::new(users),
                idempotency: Arc::new(MemoryIdempotencyStore::new()),
                rate_limits: Arc::new(LocalRateLimits::default()),
                chat: Arc::new(MemoryChatRepository::new()),
                bus: match nats {
                    Some(nats) => Arc::new(nats),
                    None => Arc::new(MemoryEventBus::default()),
                },
                probe: Arc::new(MemoryProbe),
            }
        }
    };
    let Stores {
        users,
        posts,
        refresh_tokens,
        accounts,
        idempotency,
        rate_limits,
        queue,
        chat,
        bus,
        probe,
        leases,
        housekeeping,
    } = stores;
    // An ended session is refused for as long as one of its access tokens could be
    // presented: their lifetime and the leeway verification allows.
    let revocations = Arc::new(
        Revocations::new(
            refresh_tokens.clone(),
            settings.auth.jwt_ttl + settings.auth.jwt_leeway,
        )
        .with_bus(bus.clone()),
    );
    let housekeeper = Housekeeper {
        leases,
        store: housekeeping,
        queue: queue.clone(),
        policy: HousekeepingPolicy {
            lease: settings.jobs.leader_lease,
            sweep_every: settings.jobs.housekeeping_every,
            count_every: crate::metrics::JOB_COUNTS_EVERY,
            batch: 1000,
            retention: vec![
                (Sweep::CompletedJobs, settings.jobs.retention_completed),
                (Sweep::DeadJobs, settings.jobs.retention_dead),
                // An expired token can no longer be used: it goes at once.
                (Sweep::ExpiredRefreshTokens, std::time::Duration::ZERO),
                (
                    Sweep::IdempotencyKeys,
                    http_adapter::IDEMPOTENCY_KEY_LIFETIME,
                ),
                // Kept a day after they end: far longer than any access token lives
                // (JWT_TTL_SECS is at most a day), so instances reloading the set
                // still refuse their tokens.
                (
                    Sweep::EndedSessions,
                    std::time::Duration::from_secs(24 * 60 * 60),
                ),
                (Sweep::ExpiredAccountTokens, std::time::Duration::ZERO),
            ],
        },
        status: Arc::new(HousekeepingStatus::default()),
    };
    let mailer: Arc<dyn Mailer> = match &settings.mail.smtp_url {
        Some(url) => Arc::new(mail_adapter::SmtpMailer::new(
            url.expose(),
            &settings.mail.from,
            settings.mail.timeout,
        )?),
        None => {
            tracing::warn!("SMTP_URL is not set: e-mails are logged, not sent");
            Arc::new(MemoryMailer::new())
        }
    };
    let runner = Arc::new(
        JobRunner::new(mailer, settings.mail.domain()).with_account_mail(AccountMail::new(
            users.clone(),
            accounts.clone(),
            &settings.accounts.public_base_url,
            settings.accounts.email_token_ttl,
            settings.accounts.password_reset_ttl,
        )),
    );
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
    live.watch_revocations(revocations.clone(), std::time::Duration::from_secs(1));
    let metrics = crate::metrics::renderer(
        db,
        live.clone(),
        housekeeper.status.clone(),
        revocations.clone(),
    );
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
                settings.users.fanout_deadline,
            )
            .with_job_max_attempts(settings.jobs.max_attempts)
            .with_registration_limit(settings.users.registration_rate_limit_per_minute)
            .with_rate_limits(rate_limits.clone())
            .with_events(bus.clone())
            .with_revocations(revocations.clone()),
        ),
        accounts: Arc::new(
            Accounts::new(
                users.clone(),
                accounts,
                hasher.clone(),
                queue.clone(),
                refresh_tokens.clone(),
                revocations.clone(),
            )
            .with_rate_limits(rate_limits.clone())
            .with_job_max_attempts(settings.jobs.max_attempts),
        ),
        jobs: Arc::new(Jobs::new(queue.clone())),
        rate_limits,
        posts: Arc::new(Posts::new(posts, users.clone()).with_events(bus.clone())),
        live: live.clone(),
        ws: settings.ws.clone(),
        metrics,
        idempotency: http_adapter::Idempotency {
            store: idempotency,
            fingerprint_key,
        },
        health: Arc::new(HealthChecker::new(vec![probe])),
        auth: Arc::new(
            Auth::new(
                users,
                hasher,
                tokens,
                refresh_tokens,
                settings.auth.refresh_ttl,
            )
            .with_refresh_absolute_ttl(settings.auth.refresh_absolute_ttl)
            .with_revocations(revocations.clone())
            .requiring_verified_email(settings.accounts.require_verified_email),
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
        housekeeper,
        revocations,
        bus,
    })
}

/// The bus instances on one database share: NATS when connected, else Postgres
/// `NOTIFY` when `EVENT_BUS=postgres`; `None` for the in-process bus (shared with no one).
pub(crate) fn shared_bus(
    settings: &Settings,
    db: &Databases,
    nats: Option<nats_adapter::NatsEventBus>,
) -> Option<Arc<dyn EventBus>> {
    match (nats, settings.database.event_bus) {
        (Some(nats), _) => Some(Arc::new(nats)),
        (None, EventBusKind::Postgres) => Some(Arc::new(PgEventBus::new(db.main.clone()))),
        (None, _) => None,
    }
}

/// The JWT signing key: `JWT_SECRET`, or a random one when there is no database (the
/// configuration refuses a database without a secret).
pub(crate) fn signing_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    Ok(match &settings.auth.jwt_secret {
        Some(secret) => secret.expose().clone(),
        None => {
            tracing::warn!(
                "JWT_SECRET is not set: signing tokens with a random key; every token is \
                 invalid after a restart"
            );
            JwtTokens::random_secret()?
        }
    })
}

/// The `Idempotency-Key` fingerprint key: from `IDEMPOTENCY_SECRET`, which outlives
/// signing-key rotations; else derived from the signing key (without reusing it), so
/// instances sharing `JWT_SECRET` still agree until it rotates.
fn fingerprint_key(settings: &Settings, signing_key: &[u8]) -> http_adapter::FingerprintKey {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(b"idempotency-fingerprint\0");
    match &settings.auth.idempotency_secret {
        Some(secret) => hash.update(secret.expose()),
        None => {
            if settings.database.url.is_some() {
                tracing::warn!(
                    "IDEMPOTENCY_SECRET is not set: request fingerprints are keyed by \
                     JWT_SECRET, so rotating it turns retried requests into 422s"
                );
            }
            hash.update(signing_key);
        }
    }
    http_adapter::FingerprintKey(hash.finalize().into())
}
