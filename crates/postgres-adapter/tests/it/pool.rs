use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::Error;
use domain::health::HealthProbe;
use domain::users::{Email, User, UserId, UserName, UserRepository};
use postgres_adapter::{
    ConnectError, Database, PgProbe, PgUserRepository, PoolConfig, PoolSettings,
};
use test_support::TestDb;

use crate::contract::small_pool;

#[tokio::test]
async fn an_unreachable_server_fails_fast_naming_the_host_but_not_the_password() {
    let settings = PoolSettings {
        pool: PoolConfig {
            connect_timeout: Duration::from_secs(5),
            ..PoolConfig::default()
        },
        ..PoolSettings::new("postgres://app:s3cretpw@127.0.0.1:1/appdb")
    };
    let started = Instant::now();
    let err = match Database::connect(settings).await {
        Err(e) => e,
        Ok(_) => panic!("connected to a closed port"),
    };
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(matches!(err, ConnectError::Unreachable { .. }));
    let message = err.to_string();
    assert!(message.contains("127.0.0.1:1/appdb"), "{message}");
    assert!(!message.contains("s3cretpw"), "{message}");
}

#[tokio::test]
async fn an_exhausted_pool_answers_unavailable_after_the_acquire_timeout() {
    let db = TestDb::new().await;
    let pool = Database::connect(PoolSettings {
        pool: PoolConfig {
            max_size: 1,
            min_idle: 0,
            acquire_timeout: Duration::from_millis(200),
            ..PoolConfig::default()
        },
        ..PoolSettings::new(db.url())
    })
    .await
    .expect("pool");
    let repo = PgUserRepository::new(pool.clone());

    let held = pool.get().await.expect("the only connection");
    let started = Instant::now();
    let err = repo.get(&UserId::generate()).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    drop(held);
    let err = repo.get(&UserId::generate()).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn the_pool_keeps_min_idle_connections_open() {
    let db = TestDb::new().await;
    let pool = Database::connect(PoolSettings {
        pool: PoolConfig {
            max_size: 5,
            min_idle: 3,
            ..PoolConfig::default()
        },
        ..PoolSettings::new(db.url())
    })
    .await
    .expect("pool");
    let stats = pool.stats();
    assert!(
        stats.size >= 3 && stats.idle >= 3,
        "size {}, idle {}",
        stats.size,
        stats.idle
    );
}

#[tokio::test]
async fn min_idle_above_max_connections_is_refused() {
    let settings = PoolSettings {
        pool: PoolConfig {
            max_size: 2,
            min_idle: 3,
            ..PoolConfig::default()
        },
        ..PoolSettings::new("postgres://127.0.0.1/x")
    };
    assert!(matches!(
        Database::connect_lazy(settings),
        Err(ConnectError::Settings(_))
    ));
}

/// Checkouts do not test connections (no `SELECT 1` each): a connection killed before
/// its driver noticed fails its next statement once, `Unavailable`, and is discarded at
/// its next checkout even if the driver has not yet read the socket's end (`lost.rs`);
/// every caller after that gets a live one.
#[tokio::test]
async fn killed_connections_fail_at_most_once_each_then_are_replaced() {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    let repo = PgUserRepository::new(pool);
    let user = User::new(
        UserName::parse("Ada").unwrap(),
        Email::parse("ada@example.com").unwrap(),
    );
    repo.create(&user, &domain::auth::PasswordHash::new("$argon2id$x"), &[])
        .await
        .unwrap();

    // The bound is what was really killed, counted by the same statement that kills:
    // counting sessions beforehand races with the pool opening its min-idle connection.
    let killed = terminate_sessions(&db).await;
    let mut failures = 0;
    let mut answers = Vec::new();
    for _ in 0..killed + 5 {
        match repo.get(&user.id).await {
            Ok(found) => answers.push(found),
            Err(domain::Error::Unavailable(_)) if answers.is_empty() => failures += 1,
            Err(other) => panic!("after {} answers: {other:?}", answers.len()),
        }
    }
    assert!(
        failures <= killed,
        "{failures} failures for {killed} killed connections"
    );
    assert!(answers.len() >= 5 && answers.iter().all(|u| *u == user));
}

/// Terminates every session on the test database; answers how many there were.
async fn terminate_sessions(db: &TestDb) -> usize {
    #[derive(diesel::QueryableByName)]
    struct Killed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    let killed: Killed = diesel::sql_query(
        "SELECT count(*) AS n FROM ( \
           SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
           WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
    )
    .bind::<diesel::sql_types::Text, _>(db.name())
    .get_result(&mut admin)
    .await
    .unwrap();
    usize::try_from(killed.n).unwrap_or(0)
}

#[tokio::test]
async fn readiness_probe_reports_reachability() {
    let db = TestDb::new().await;
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    PgProbe::new(pool).check().await.expect("reachable");

    let gone = Database::connect_lazy(PoolSettings {
        pool: PoolConfig {
            min_idle: 0,
            acquire_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(500),
            ..PoolConfig::default()
        },
        ..PoolSettings::new("postgres://postgres@127.0.0.1:1/none")
    })
    .expect("lazy pool");
    let started = Instant::now();
    let err = PgProbe::new(gone).check().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn instances_migrating_at_once_do_not_race() {
    let db = TestDb::empty().await;
    let runs =
        futures_util::future::join_all((0..4).map(|_| postgres_adapter::run_migrations(db.url())))
            .await;
    let applied: Vec<Vec<String>> = runs.into_iter().map(|r| r.expect("migrate")).collect();
    let non_empty = applied.iter().filter(|v| !v.is_empty()).count();
    assert_eq!(
        non_empty, 1,
        "exactly one instance applies the migrations: {applied:?}"
    );

    // And the schema is usable afterwards.
    let pool = Database::connect(small_pool(db.url())).await.expect("pool");
    let repo = PgUserRepository::new(pool);
    assert!(matches!(
        repo.get(&UserId::generate()).await,
        Err(Error::NotFound { .. })
    ));
}

/// A TCP server that accepts connections and never says a word, like a database behind
/// a network partition.
fn silent_server() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/silent",
        listener.local_addr().unwrap().port()
    );
    (listener, url)
}

#[tokio::test]
async fn a_silent_server_fails_start_up_within_the_connect_timeout() {
    let (_listener, url) = silent_server();
    let started = Instant::now();
    let result = Database::connect(PoolSettings {
        pool: PoolConfig {
            connect_timeout: Duration::from_millis(500),
            ..PoolConfig::default()
        },
        ..PoolSettings::new(url)
    })
    .await;
    assert!(matches!(result, Err(ConnectError::Unreachable { .. })));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_checkout_never_waits_past_the_acquire_timeout() {
    let (_listener, url) = silent_server();
    let pool = Database::connect_lazy(PoolSettings {
        pool: PoolConfig {
            min_idle: 0,
            acquire_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_secs(30),
            ..PoolConfig::default()
        },
        ..PoolSettings::new(url)
    })
    .unwrap();
    let started = Instant::now();
    let err = pool.get().await.map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

async fn backend_pids(pool: &Database, n: usize) -> std::collections::BTreeSet<i32> {
    use diesel_async::RunQueryDsl;
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(pool.get().await.unwrap());
    }
    let mut pids = std::collections::BTreeSet::new();
    for conn in &mut conns {
        let row: Pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result(conn)
            .await
            .unwrap();
        pids.insert(row.pid);
    }
    pids
}

#[tokio::test]
async fn idle_connections_within_min_idle_are_reused_after_the_idle_timeout() {
    let db = TestDb::new().await;
    let pool = Database::connect(PoolSettings {
        pool: PoolConfig {
            max_size: 4,
            min_idle: 2,
            idle_timeout: Duration::from_millis(100),
            ..PoolConfig::default()
        },
        ..PoolSettings::new(db.url())
    })
    .await
    .unwrap();
    let before = backend_pids(&pool, 2).await;
    // Let the connections sit idle past the idle timeout: the floor of two stays usable.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = backend_pids(&pool, 2).await;
    assert_eq!(before, after, "min-idle connections were thrown away");
}

#[tokio::test]
async fn statements_past_the_statement_timeout_are_cancelled_by_postgres() {
    use diesel_async::RunQueryDsl;
    let db = TestDb::new().await;
    let mut settings = small_pool(db.url());
    settings.pool.statement_timeout = Some(Duration::from_millis(100));
    let pool = Database::connect(settings).await.unwrap();
    let mut conn = pool.get().await.unwrap();
    let started = Instant::now();
    let result = diesel::sql_query("SELECT pg_sleep(10)")
        .execute(&mut conn)
        .await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}
