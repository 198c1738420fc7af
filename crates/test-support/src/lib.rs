//! A fresh, migrated Postgres database for each test.
//!
//! Which server: `DATABASE_URL` when set (in the environment or a local `.env`), otherwise the usual local server at
//! `postgres://postgres@127.0.0.1:5432`. When neither answers, a throwaway server is
//! started from the local PostgreSQL binaries (`initdb`, `pg_ctl`) under `target/`; when
//! there are none, the test fails with instructions. A test never skips silently.
//!
//! Each [`TestDb`] is a copy of a template database migrated once per migration set, so
//! tests run in parallel, never see each other's rows, and pay for `CREATE DATABASE …
//! TEMPLATE` (milliseconds) instead of running the migrations every time.

mod local_server;
mod nats;
mod smtp;
mod throwaway;

pub use nats::NatsServer;
pub use smtp::{ReceivedMail, SmtpSink};
pub use throwaway::ThrowawayServer;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tokio::sync::OnceCell;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test and is dropped with it.
pub struct TestDb {
    url: String,
    admin_url: String,
    name: String,
}

struct Server {
    admin_url: String,
    template: String,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

impl TestDb {
    /// Creates a new database from the migrated template.
    pub async fn new() -> Self {
        let server = SERVER.get_or_init(prepare_server).await;
        Self::create(server, &server.template).await
    }

    /// Creates a new database with no tables at all, e.g. to test migrations.
    pub async fn empty() -> Self {
        let server = SERVER.get_or_init(prepare_server).await;
        Self::create(server, "template0").await
    }

    async fn create(server: &Server, template: &str) -> Self {
        let name = format!("test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = admin_connection(&server.admin_url).await;
        let create = format!("CREATE DATABASE {name} TEMPLATE {template}");
        // Postgres refuses to copy a template while a session is still leaving it (the
        // migration connection closes asynchronously); that state is brief, so retry.
        let mut attempt = 0;
        loop {
            match conn.batch_execute(&create).await {
                Ok(()) => break,
                Err(e) if attempt < 50 && e.to_string().contains("being accessed") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("creating test database {name}: {e}"),
            }
        }
        Self {
            url: with_database(&server.admin_url, &name),
            admin_url: server.admin_url.clone(),
            name,
        }
    }

    /// A URL for this database, with the server's credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for the server's maintenance database, e.g. to terminate sessions.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// A new connection to this database, e.g. to hold a lock while a test runs.
    pub async fn connect(&self) -> AsyncPgConnection {
        admin_connection(&self.url).await
    }

    /// Simulates an outage: refuses new connections to this database and terminates
    /// every open one. [`TestDb::restore`] ends it.
    pub async fn cut_off(&self) {
        let mut conn = admin_connection(&self.admin_url).await;
        conn.batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            self.name
        ))
        .await
        .expect("cutting the database off");
        // A connection already past its start-up check when the ALTER committed can
        // still appear after the first sweep: sweep until none is left.
        for _ in 0..100 {
            self.terminate_sessions().await;
            let left = count(
                &mut conn,
                &format!(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{}'",
                    self.name
                ),
            )
            .await;
            if left == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("sessions on {} survive termination", self.name);
    }

    /// Accepts connections again after [`TestDb::cut_off`].
    pub async fn restore(&self) {
        let mut conn = admin_connection(&self.admin_url).await;
        conn.batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            self.name
        ))
        .await
        .expect("restoring the database");
    }

    /// Terminates every session on this database (as an operator's `pg_terminate_backend`
    /// or a failover would) without refusing new ones; returns how many were ended.
    pub async fn terminate_sessions(&self) -> i64 {
        let mut conn = admin_connection(&self.admin_url).await;
        count(
            &mut conn,
            &format!(
                // In the select list, not the WHERE clause: Postgres may evaluate a
                // qualifier before the `datname` filter and terminate everyone.
                "SELECT count(*) FILTER (WHERE ended) AS n FROM \
                 (SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity \
                  WHERE datname = '{}' AND pid <> pg_backend_pid()) AS terminated",
                self.name
            ),
        )
        .await
    }

    /// Every row of a one-column query on this database, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        use diesel::sql_types::Text;
        use diesel_async::RunQueryDsl;

        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            value: String,
        }
        let mut conn = self.connect().await;
        diesel::sql_query(format!(
            "SELECT q.value::text AS value FROM ({sql}) AS q(value)"
        ))
        .load::<Row>(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.value)
        .collect()
    }

    /// Runs one statement on this database; the rows it changed.
    pub async fn execute(&self, sql: &str) -> usize {
        use diesel_async::RunQueryDsl;
        diesel::sql_query(sql)
            .execute(&mut self.connect().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `SELECT count(*) AS n …` on this database.
    pub async fn count(&self, sql: &str) -> i64 {
        count(&mut self.connect().await, sql).await
    }

    /// How many sessions on this database are blocked waiting for a lock.
    pub async fn sessions_waiting_for_locks(&self) -> i64 {
        use diesel::sql_types::{BigInt, Text};
        use diesel_async::RunQueryDsl;

        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = admin_connection(&self.admin_url).await;
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = $1 AND wait_event_type = 'Lock' AND wait_event = 'relation'",
        )
        .bind::<Text, _>(&self.name)
        .get_result::<Count>(&mut conn)
        .await
        .expect("querying pg_stat_activity")
        .n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, where we cannot block; a short-lived
        // thread with its own runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin_url).await {
                    let _ = conn
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn admin_connection(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test Postgres server: {e}"))
}

async fn reachable(url: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), AsyncPgConnection::establish(url)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

async fn prepare_server() -> Server {
    let admin_url = find_server().await;
    let template = format!("test_template_{:016x}", migrations_hash());
    let mut conn = admin_connection(&admin_url).await;
    // Test binaries run in parallel processes; one of them builds the template while the
    // others wait on this lock.
    conn.batch_execute("SELECT pg_advisory_lock(7415)")
        .await
        .expect("template lock");
    let exists = database_exists(&mut conn, &template).await;
    if !exists {
        let wip = format!("{template}_wip");
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {wip} WITH (FORCE)"))
            .await
            .expect("dropping a half-built template");
        conn.batch_execute(&format!("CREATE DATABASE {wip}"))
            .await
            .expect("creating the template database");
        postgres_adapter::run_migrations(&with_database(&admin_url, &wip))
            .await
            .expect("migrating the template database");
        conn.batch_execute(&format!("ALTER DATABASE {wip} RENAME TO {template}"))
            .await
            .expect("publishing the template database");
    }
    conn.batch_execute("SELECT pg_advisory_unlock(7415)")
        .await
        .expect("template unlock");
    Server {
        admin_url,
        template,
    }
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    use diesel::sql_types::{Bool, Text};
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        exists: bool,
    }
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(name)
        .get_result::<Exists>(conn)
        .await
        .expect("querying pg_database")
        .exists
}

/// `DATABASE_URL` from the environment, else from a local `.env` (read, not loaded:
/// tests must not change the process environment under each other).
fn configured_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .or_else(|| {
            dotenvy::dotenv_iter()
                .ok()?
                .flatten()
                .find_map(|(k, v)| (k == "DATABASE_URL").then_some(v))
        })
        .filter(|url| !url.trim().is_empty())
}

async fn find_server() -> String {
    if let Some(url) = configured_url() {
        if let Err(e) = reachable(&url).await {
            panic!(
                "DATABASE_URL is set but its server does not answer ({e}). Start it \
                 (`docker compose up -d db`) or unset DATABASE_URL to use a local server."
            );
        }
        return url;
    }
    let default_error = match reachable(DEFAULT_URL).await {
        Ok(()) => return DEFAULT_URL.to_owned(),
        Err(e) => e,
    };
    match local_server::start().await {
        Ok(url) => url,
        Err(e) => panic!(
            "No Postgres for the tests: {DEFAULT_URL} does not answer ({default_error}), \
             DATABASE_URL is not set, and no throwaway server could be started from local \
             PostgreSQL binaries ({e}). Start one with `docker compose up -d db` and set \
             DATABASE_URL from .env.example, or install PostgreSQL."
        ),
    }
}

/// A cache key for the template: changes whenever a migration file changes.
fn migrations_hash() -> u64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading migrations/") {
            let path = entry.expect("migration entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(&file)
            .expect("reading a migration")
            .hash(&mut hasher);
    }
    hasher.finish()
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
