//! TLS to Postgres: every `sslmode` against a throwaway server with `ssl = on` and a
//! certificate for `localhost` signed by a CA made for the test, and against one that
//! only speaks plaintext.

use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use postgres_adapter::{ConnectError, Database};
use test_support::ThrowawayServer;

use crate::contract::small_pool;

#[derive(diesel::QueryableByName)]
struct Ssl {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

/// Connects a pool at `url`: whether the session it got is encrypted, or why not.
async fn encrypted(url: &str) -> Result<bool, String> {
    let db = Database::connect(small_pool(url))
        .await
        .map_err(|e| e.to_string())?;
    let mut conn = db.get().await.map_err(|e| e.to_string())?;
    let row: Ssl = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.ssl)
}

fn root_cert(path: &std::path::Path) -> String {
    format!("sslrootcert={}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sslmode_against_a_tls_server() {
    let server = ThrowawayServer::start(true).await;
    let ca = root_cert(&server.ca_file);
    let full = server.url("localhost", &format!("sslmode=verify-full&{ca}"));
    assert_eq!(encrypted(&full).await, Ok(true));
    // verify-ca checks the chain, not the name: an address the certificate does not
    // name is fine.
    let ca_only = server.url("127.0.0.1", &format!("sslmode=verify-ca&{ca}"));
    assert_eq!(encrypted(&ca_only).await, Ok(true));
    for mode in ["require", "prefer"] {
        let url = server.url("127.0.0.1", &format!("sslmode={mode}"));
        assert_eq!(encrypted(&url).await, Ok(true), "{mode}");
    }
    for url in [
        server.url("127.0.0.1", "sslmode=disable"),
        server.url("127.0.0.1", ""),
    ] {
        assert_eq!(encrypted(&url).await, Ok(false), "{url}");
    }

    // The host name is checked by verify-full.
    let wrong_host = server.url("127.0.0.1", &format!("sslmode=verify-full&{ca}"));
    let error = encrypted(&wrong_host).await.unwrap_err();
    assert!(error.contains("not valid for the host name"), "{error}");
    // A CA that did not sign the server's certificate.
    let other = root_cert(&server.other_ca_file);
    for mode in ["verify-full", "verify-ca", "require"] {
        let wrong_ca = server.url("localhost", &format!("sslmode={mode}&{other}"));
        let error = encrypted(&wrong_ca).await.unwrap_err();
        assert!(
            error.contains("not signed by a trusted CA"),
            "{mode}: {error}"
        );
    }
    // Without sslrootcert verify-full trusts the public roots, which never signed it.
    let error = encrypted(&server.url("localhost", "sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(error.contains("not signed by a trusted CA"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_only_server_fails_the_modes_that_need_tls() {
    let server = ThrowawayServer::start(false).await;
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = server.url(
            "localhost",
            &format!("sslmode={mode}&{}", root_cert(&server.ca_file)),
        );
        let error = encrypted(&url).await.unwrap_err();
        assert!(error.contains("does not accept TLS"), "{mode}: {error}");
    }
    assert_eq!(
        encrypted(&server.url("localhost", "sslmode=prefer")).await,
        Ok(false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_and_listeners_use_tls_too() {
    let server = ThrowawayServer::start(true).await;
    let url = server.url(
        "localhost",
        &format!("sslmode=verify-full&{}", root_cert(&server.ca_file)),
    );
    // Over TLS, so a plaintext connection would fail it.
    postgres_adapter::run_migrations(&url)
        .await
        .expect("migrations over TLS");
    postgres_adapter::check_schema(&url)
        .await
        .expect("schema check over TLS");
    let db = Database::connect(small_pool(&url)).await.expect("pool");
    let _queue = postgres_adapter::PgJobQueue::new(db.clone());
    // The queue's LISTEN connection shows up as an encrypted session.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = db.get().await.expect("connection");
        let listening: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.query = 'LISTEN jobs' AND s.ssl",
        )
        .get_result(&mut conn)
        .await
        .expect("pg_stat_activity");
        if listening.n == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no encrypted LISTEN");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A bad sslmode is a settings error naming it, before any connection.
    match Database::connect(small_pool(&server.url("localhost", "sslmode=maybe"))).await {
        Err(ConnectError::Settings(reason)) => assert!(reason.contains("sslmode"), "{reason}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("connected with sslmode=maybe"),
    }
}
