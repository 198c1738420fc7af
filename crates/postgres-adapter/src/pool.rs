use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{Hook, HookError, Timeouts};
use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::FutureExt;

use crate::Target;
use futures_util::future::{BoxFuture, join_all};
use tokio::task::JoinHandle;

/// How the pool is sized and bounded, apart from where it connects: a service knows (and
/// checks) its sizing whether or not it has a database, so the sizing must be a value of
/// its own. The defaults are the service's documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections open at most.
    pub max_size: usize,
    /// Connections kept open while idle, so a burst does not pay for connecting.
    pub min_idle: usize,
    /// A connection older than this is closed and replaced, which spreads load after a
    /// failover and bounds server-side memory growth.
    pub max_lifetime: Duration,
    /// An idle connection beyond `min_idle` is closed after this long.
    pub idle_timeout: Duration,
    /// How long a request waits for a free connection before it gets `Unavailable`.
    pub acquire_timeout: Duration,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// Postgres cancels any statement running longer (the session's
    /// `statement_timeout`), so work abandoned by a timed-out request does not keep
    /// running on the server. `None` leaves the server's setting.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 25,
            min_idle: 10,
            max_lifetime: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
            acquire_timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: None,
        }
    }
}

/// Where the pool connects, and how it is sized.
#[derive(Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// May hold the password: `Debug` shows it redacted.
    pub url: String,
    pub pool: PoolConfig,
}

impl PoolSettings {
    /// The pool at `url` with the default sizing.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool: PoolConfig::default(),
        }
    }
}

// Hand-written so the database password never reaches a log through `{:?}`.
impl std::fmt::Debug for PoolSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSettings")
            .field("url", &redact_url(&self.url))
            .field("pool", &self.pool)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid database settings: {0}")]
    Settings(String),
    #[error("cannot connect to the database at {target} within {timeout:?}: {reason}")]
    Unreachable {
        target: String,
        timeout: Duration,
        reason: String,
    },
}

/// Connections open, idle and waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub max_size: usize,
    pub size: usize,
    pub idle: usize,
    /// Checkouts waiting for a connection.
    pub waiting: usize,
}

/// The connection pool, cheap to clone.
///
/// One shared pool whose connections are driven on the multi-thread runtime, and one
/// more per thread that asked for its own ([`Database::attach_current_thread`]): an HTTP
/// worker's connections are driven on that worker's own runtime, so a query never
/// hands off to another thread and back.
#[derive(Clone)]
pub struct Database {
    pool: Pool<AsyncPgConnection>,
    settings: Arc<PoolSettings>,
    /// Where every connection goes, with its TLS (the listeners' and cancel requests'
    /// too).
    target: Target,
    /// Every thread's own pool, for stats and close.
    attached: Arc<Mutex<Vec<Pool<AsyncPgConnection>>>>,
    _maintenance: Arc<AbortOnDrop>,
}

thread_local! {
    /// The pools this thread has of its own, by the `Database` they belong to.
    static THREAD_POOLS: RefCell<Vec<(usize, Pool<AsyncPgConnection>)>> =
        const { RefCell::new(Vec::new()) };
}

impl Database {
    /// Builds the pool and proves the database answers, within `connect_timeout`.
    ///
    /// Must be called inside a multi-thread tokio runtime: every connection's driver task
    /// is spawned there, so a connection never depends on the thread that checked it out.
    pub async fn connect(settings: PoolSettings) -> Result<Self, ConnectError> {
        let db = Self::connect_lazy(settings)?;
        let settings = db.settings.clone();
        let unreachable = |reason: String| ConnectError::Unreachable {
            target: redact_url(&settings.url),
            timeout: settings.pool.connect_timeout,
            reason,
        };
        let ping = async {
            let mut conn = db.pool.get().await.map_err(|e| e.to_string())?;
            diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(settings.pool.connect_timeout, ping)
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(unreachable)?;
        db.top_up_idle().await;
        Ok(db)
    }

    /// Builds the pool without touching the database; connections open on first use.
    pub fn connect_lazy(settings: PoolSettings) -> Result<Self, ConnectError> {
        if settings.pool.min_idle > settings.pool.max_size {
            return Err(ConnectError::Settings(format!(
                "min idle ({}) exceeds max connections ({})",
                settings.pool.min_idle, settings.pool.max_size
            )));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ConnectError::Settings("no tokio runtime".into()))?;
        let target = Target::parse(&settings.url).map_err(ConnectError::Settings)?;
        let pool = build_pool(&settings, &target, runtime)?;
        let settings = Arc::new(settings);
        let maintenance = tokio::spawn(maintain(pool.clone(), settings.clone()));
        Ok(Self {
            pool,
            settings,
            target,
            attached: Arc::new(Mutex::new(Vec::new())),
            _maintenance: Arc::new(AbortOnDrop(maintenance)),
        })
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.attached) as usize
    }

    /// Gives the calling thread a pool of its own, sized as this one, whose connections
    /// are established and driven on the thread's runtime: checkouts from this thread
    /// use it from now on. For threads that each run a single-thread runtime for their
    /// whole life (actix's HTTP workers). Call inside that runtime; a second call on the
    /// same thread does nothing.
    pub fn attach_current_thread(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id = self.id();
        if THREAD_POOLS.with(|pools| pools.borrow().iter().any(|(of, _)| *of == id)) {
            return;
        }
        let pool = match build_pool(&self.settings, &self.target, runtime) {
            Ok(pool) => pool,
            Err(error) => {
                tracing::warn!(%error, "no pool of its own for this thread");
                return;
            }
        };
        self.attached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(pool.clone());
        THREAD_POOLS.with(|pools| pools.borrow_mut().push((id, pool.clone())));
        // Its floor and its retirements, on the thread itself; they end with the pool.
        let settings = self.settings.clone();
        tokio::spawn(async move {
            top_up_idle(&pool, &settings).await;
            maintain(pool, settings).await;
        });
    }

    /// The pool for a checkout from this thread.
    fn pool(&self) -> Pool<AsyncPgConnection> {
        let id = self.id();
        THREAD_POOLS
            .with(|pools| {
                pools
                    .borrow()
                    .iter()
                    .find(|(of, _)| *of == id)
                    .map(|(_, pool)| pool.clone())
            })
            .unwrap_or_else(|| self.pool.clone())
    }

    /// Every pool: the shared one and the threads' own.
    fn pools(&self) -> Vec<Pool<AsyncPgConnection>> {
        let mut pools = vec![self.pool.clone()];
        pools.extend(
            self.attached
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        pools
    }

    /// A connection, waiting at most the acquire timeout.
    ///
    /// deadpool's own wait timeout covers only the wait for a free slot; verifying idle
    /// connections and opening a new one come on top. The outer bound makes
    /// `acquire_timeout` the caller's whole wait, so a partitioned network gives a quick
    /// `Unavailable` instead of a hung request.
    pub async fn get(&self) -> Result<Object<AsyncPgConnection>, domain::Error> {
        let started = std::time::Instant::now();
        let pool = self.pool();
        let acquired = tokio::time::timeout(self.settings.pool.acquire_timeout, pool.get()).await;
        metrics::histogram!("db_pool_acquire_seconds").record(started.elapsed().as_secs_f64());
        match acquired {
            Ok(result) => result.map_err(crate::error::pool),
            Err(_) => Err(domain::Error::unavailable(format!(
                "no database connection within {:?}",
                self.settings.pool.acquire_timeout
            ))),
        }
    }

    /// A connection whose statement is cancelled on the server if the caller's future
    /// is dropped before it finishes (see `cancel.rs`).
    pub(crate) async fn get_cancellable(
        &self,
    ) -> Result<crate::cancel::CancellableConn, domain::Error> {
        let tls = self.target.tls();
        self.get()
            .await
            .map(|conn| crate::cancel::CancellableConn::new(conn, tls))
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Where the pool connects, for connections of their own (listeners).
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The pools' sizes now, added up, for metrics.
    pub fn stats(&self) -> PoolStats {
        self.pools().iter().fold(
            PoolStats {
                max_size: 0,
                size: 0,
                idle: 0,
                waiting: 0,
            },
            |sum, pool| {
                let status = pool.status();
                PoolStats {
                    max_size: sum.max_size + status.max_size,
                    size: sum.size + status.size,
                    idle: sum.idle + status.available,
                    waiting: sum.waiting + status.waiting,
                }
            },
        )
    }

    /// Closes every idle connection and refuses new checkouts, in every pool.
    pub fn close(&self) {
        for pool in self.pools() {
            pool.close();
        }
    }

    /// Opens connections until `min_idle` are idle, without waiting for busy ones.
    async fn top_up_idle(&self) {
        top_up_idle(&self.pool, &self.settings).await;
    }
}

/// A deadpool over connections established (and so driven) on `runtime`.
fn build_pool(
    settings: &PoolSettings,
    target: &Target,
    runtime: tokio::runtime::Handle,
) -> Result<Pool<AsyncPgConnection>, ConnectError> {
    let (connect_timeout, statement_timeout) = (
        settings.pool.connect_timeout,
        settings.pool.statement_timeout,
    );
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    // A checkout only asks whether the connection is broken (its driver saw the
    // socket close, a transaction was left open, or a statement on it found it gone;
    // see `lost.rs`): no `SELECT 1` round trip per request. A connection that breaks
    // unnoticed fails its next statement once and is discarded at its next checkout.
    config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::CustomFunction(
        Box::new(crate::lost::recycle_check),
    );
    let target = target.clone();
    // The manager's URL is ignored: `target` is that URL with its TLS settings read.
    config.custom_setup =
        Box::new(move |_url| establish(&runtime, &target, connect_timeout, statement_timeout));
    let manager = AsyncDieselConnectionManager::new_with_config(settings.url.clone(), config);
    let max_lifetime = settings.pool.max_lifetime;
    Pool::builder(manager)
        .max_size(settings.pool.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.pool.acquire_timeout))
        .create_timeout(Some(settings.pool.connect_timeout))
        .recycle_timeout(Some(settings.pool.connect_timeout))
        // Connections past their lifetime are dropped at checkout instead of being
        // handed out. Idle ones are not: the `min_idle` floor exists to be used, and
        // `maintain` retires the surplus.
        .pre_recycle(Hook::sync_fn(move |_, metrics| {
            if metrics.age() > max_lifetime {
                Err(HookError::message("connection expired"))
            } else {
                Ok(())
            }
        }))
        .build()
        .map_err(|e| ConnectError::Settings(e.to_string()))
}

/// Establishes one connection on `runtime`, bounded by `timeout`, and applies the
/// session's `statement_timeout`.
fn establish(
    runtime: &tokio::runtime::Handle,
    target: &Target,
    timeout: Duration,
    statement_timeout: Option<Duration>,
) -> BoxFuture<'static, Result<AsyncPgConnection, ConnectionError>> {
    let target = target.clone();
    let task = runtime.spawn(async move {
        let connect = async {
            let mut conn = target.establish().await?;
            conn.set_instrumentation(crate::lost::LossWatch::default());
            if let Some(limit) = statement_timeout {
                conn.batch_execute(&format!("SET statement_timeout = {}", limit.as_millis()))
                    .await
                    .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
            }
            Ok(conn)
        };
        tokio::time::timeout(timeout, connect)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectionError::BadConnection(
                    "timed out connecting".into(),
                ))
            })
    });
    async move {
        task.await
            .unwrap_or_else(|e| Err(ConnectionError::BadConnection(e.to_string())))
    }
    .boxed()
}

/// Every few seconds: drop expired connections, close idle ones beyond `min_idle`, and
/// reopen up to `min_idle`. deadpool only creates on demand; this gives it a floor.
async fn maintain(pool: Pool<AsyncPgConnection>, settings: Arc<PoolSettings>) {
    let period =
        (settings.pool.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; start-up has just topped the pool up itself.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if pool.is_closed() {
            return;
        }
        let mut kept = 0;
        pool.retain(|_, metrics| {
            let expired = metrics.age() > settings.pool.max_lifetime;
            let surplus =
                metrics.last_used() > settings.pool.idle_timeout && kept >= settings.pool.min_idle;
            let keep = !expired && !surplus;
            kept += usize::from(keep);
            keep
        });
        top_up_idle(&pool, &settings).await;
    }
}

async fn top_up_idle(pool: &Pool<AsyncPgConnection>, settings: &PoolSettings) {
    let status = pool.status();
    let busy = status.size - status.available.min(status.size);
    let room = settings.pool.max_size.saturating_sub(busy);
    let wanted = settings.pool.min_idle.min(room);
    if status.available >= wanted {
        return;
    }
    // Check out `wanted` at once without waiting: idle ones are reused, the rest opened.
    // Dropping them returns every one to the pool as idle.
    let no_wait = Timeouts {
        wait: Some(Duration::ZERO),
        create: Some(settings.pool.connect_timeout),
        recycle: Some(settings.pool.connect_timeout),
    };
    let checkouts = join_all((0..wanted).map(|_| pool.timeout_get(&no_wait))).await;
    let failed = checkouts.iter().filter(|c| c.is_err()).count();
    if failed > 0 {
        tracing::debug!(failed, wanted, "could not open every idle connection");
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The database address without credentials, for messages and logs:
/// `postgres://user:secret@db:5432/app?sslmode=require` becomes `db:5432/app`.
pub fn redact_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    if !url.contains("://") {
        // A key=value DSN: keep host, port and dbname only.
        let kept: Vec<&str> = url
            .split_whitespace()
            .filter(|kv| {
                ["host=", "hostaddr=", "port=", "dbname="]
                    .iter()
                    .any(|k| kv.starts_with(k))
            })
            .collect();
        return if kept.is_empty() {
            "(unparsed database address)".into()
        } else {
            kept.join(" ")
        };
    }
    // Credentials end at the last `@` (a password may hold `/`, `?` or `#`); everything
    // before it goes, then the query string, which may hold a password too.
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = if host.is_empty() { "localhost" } else { host };
    if path.is_empty() {
        host.to_owned()
    } else {
        format!("{host}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_name_the_host_never_the_password() {
        let cases = [
            ("postgres://app:s3cret@db:5432/app", "db:5432/app"),
            (
                "postgresql://app:s3cret@10.0.0.1/app?sslmode=require",
                "10.0.0.1/app",
            ),
            ("postgres://127.0.0.1:5432", "127.0.0.1:5432"),
            ("postgres://u:p%40ss@h/d", "h/d"),
            ("postgres:///app", "localhost/app"),
            ("postgres://u:s3cret/x@h:5432/d", "h:5432/d"),
            ("postgres://u:s3cret?x#y@h/d", "h/d"),
            ("postgres://h/d?password=s3cret", "h/d"),
            (
                "host=db port=5432 user=app password=s3cret dbname=app",
                "host=db port=5432 dbname=app",
            ),
        ];
        for (url, want) in cases {
            let got = redact_url(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("s3cret"));
        }
    }
}
