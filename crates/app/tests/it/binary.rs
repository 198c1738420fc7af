//! The `app` binary itself: configuration errors, start-up failures and signals.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::ApiClient;

pub(crate) fn app() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_app"));
    // Away from any developer `.env`, with a clean slate of settings.
    cmd.current_dir(std::env::temp_dir())
        .env("DATABASE_URL", "")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("GRPC_PORT", "0")
        .env("LOG_FORMAT", "json")
        // Tests sign up many users from one address; the limit has its own test.
        .env("REGISTRATION_RATE_LIMIT_PER_MINUTE", "100000")
        // A small pool, as `spawn_app`'s: every test running at once shares the local
        // server's 100 connections, and the default pool (25, 10 idle) of a few
        // processes on one database would take most of them.
        .env("DB_MAX_CONNECTIONS", "8")
        .env("DB_MIN_IDLE", "2")
        .env_remove("RUST_LOG")
        .env_remove("JWT_SECRET")
        .env_remove("ADMIN_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn bad_configuration_is_one_readable_line_and_a_non_zero_exit() {
    let output = app().env("PORT", "eighty").output().await.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PORT"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_database_fails_start_up_naming_the_host_not_the_password() {
    let run = app()
        .env("DATABASE_URL", "postgres://app:s3cretpw@127.0.0.1:1/appdb")
        .env("JWT_SECRET", crate::support::JWT_SECRET)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("start-up gives up within the connect timeout")
        .unwrap();
    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("127.0.0.1:1/appdb"), "{all}");
    assert!(!all.contains("s3cretpw"), "{all}");
}

/// Sends SIGTERM, as an orchestrator stopping the container would.
pub(crate) fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("still running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// SIGTERM, then the exit status within 15 s (the grace period and then some).
async fn terminate(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    sigterm(child);
    tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap()
}

pub(crate) type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Reads the JSON log until the server says where it listens.
pub(crate) async fn listening(child: &mut tokio::process::Child) -> (String, Lines) {
    let (log, lines) = listening_line(child).await;
    (log["address"].as_str().unwrap().to_owned(), lines)
}

/// The server's `listening` log line (with `address` and `grpc_address`).
pub(crate) async fn listening_line(
    child: &mut tokio::process::Child,
) -> (serde_json::Value, Lines) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let log = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let log: serde_json::Value = serde_json::from_str(&line).expect("JSON logs");
            if log["message"] == "listening" {
                return log;
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server starts");
    (log, lines)
}

/// Reads the rest of the log as it comes (a full pipe would block the server at its
/// next log line) and hands it over when the process has exited.
pub(crate) fn read_log(mut lines: Lines) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    })
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully_with_exit_code_0() {
    let mut child = app().spawn().unwrap();
    let (address, mut lines) = listening(&mut child).await;

    let health = reqwest::get(format!("http://{address}/api/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // The container health check: ready here, and a failure where nothing listens.
    let port = address.rsplit_once(':').unwrap().1;
    let check = app()
        .args(["healthcheck"])
        .env("PORT", port)
        .output()
        .await
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let check = app()
        .args(["healthcheck"])
        .env("PORT", unused.to_string())
        .output()
        .await
        .unwrap();
    assert!(!check.status.success(), "{check:?}");

    let status = terminate(&mut child).await;
    assert!(status.success(), "{status:?}");
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}

#[tokio::test]
async fn create_admin_reads_the_password_from_stdin_or_the_environment() {
    use tokio::io::AsyncWriteExt;

    let db = test_support::TestDb::new().await;
    let secret = crate::support::JWT_SECRET;

    // From stdin.
    let mut child = app()
        .env("DATABASE_URL", db.url())
        .env("JWT_SECRET", secret)
        .args([
            "create-admin",
            "--email",
            "root@example.com",
            "--name",
            "Root",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"correct horse battery staple\n")
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // From the environment: promotes and re-keys the same account.
    let output = app()
        .env("DATABASE_URL", db.url())
        .env("JWT_SECRET", secret)
        .env("ADMIN_PASSWORD", "another passphrase entirely")
        .args([
            "create-admin",
            "--email",
            "ROOT@example.com",
            "--name",
            "Root",
        ])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(!logs.contains("another passphrase"), "{logs}");

    let server = crate::support::spawn_with(crate::support::settings(Some(db.url()), &[])).await;
    let (status, _) = server
        .post(
            "/api/auth/login",
            serde_json::json!({"email": "root@example.com", "password": "correct horse battery staple"}),
        )
        .await;
    assert_eq!(status, 401, "the first password was replaced");
    let tokens = server
        .login("root@example.com", "another passphrase entirely")
        .await;
    let (status, me) = server
        .get_as(tokens["access_token"].as_str().unwrap(), "/api/users/me")
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["role"], "admin");
}

#[tokio::test]
async fn a_database_without_a_jwt_secret_refuses_to_start() {
    let output = app()
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )
        .env_remove("JWT_SECRET")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_in_flight_when_the_process_is_killed_complete_after_a_restart() {
    use crate::support::{JWT_SECRET, PASSWORD, settings};

    let db = test_support::TestDb::new().await;
    // Each delivery takes a while, so deliveries are in flight when the process dies.
    let sink = test_support::SmtpSink::start_on(0, Duration::from_millis(1500)).await;
    app::create_admin(
        &settings(Some(db.url()), &[]),
        "Root",
        "root@example.com",
        PASSWORD,
    )
    .await
    .unwrap();
    let start = || {
        app()
            .env("DATABASE_URL", db.url())
            .env("JWT_SECRET", JWT_SECRET)
            .env("SMTP_URL", sink.url())
            .env("WORKERS", "2")
            .env("JOB_LEASE_SECS", "3")
            .env("JOB_TIMEOUT_SECS", "2")
            .env("JOB_POLL_INTERVAL_MS", "200")
            .spawn()
            .unwrap()
    };
    let mut first = start();
    let (address, _lines) = listening(&mut first).await;
    let api = ApiClient::new(format!("http://{address}"));
    let emails: Vec<String> = (0..4).map(|n| format!("user{n}@example.com")).collect();
    for email in &emails {
        api.create_user("User", email).await;
    }
    let token = api.login("root@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Kill it the moment jobs are running.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, page) = api.get_as(&token, "/api/admin/jobs?state=running").await;
        if !page["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no job ever ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let delivered_before_the_crash = sink.received().len();
    assert!(
        delivered_before_the_crash < emails.len(),
        "some jobs were still in flight"
    );

    let mut second = start();
    let (second_address, _second_lines) = listening(&mut second).await;
    let api = ApiClient::new(format!("http://{second_address}"));
    let mails = sink
        .wait_until(Duration::from_secs(30), |mails| {
            emails
                .iter()
                .all(|e| mails.iter().any(|m| m.to == [format!("<{e}>")]))
        })
        .await;
    // At least once: a delivery cut off by the kill may arrive twice, but then under
    // one Message-ID, recognisably the same message.
    for email in &emails {
        let ids: std::collections::HashSet<_> = mails
            .iter()
            .filter(|m| m.to == [format!("<{email}>")])
            .map(|m| m.header("Message-ID"))
            .collect();
        assert_eq!(ids.len(), 1, "{email}: {ids:?}");
    }
    // And the queue agrees: every welcome job ended completed, none lost or dead.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, page) = api.get_as(&token, "/api/admin/jobs?state=completed").await;
        if page["items"].as_array().unwrap().len() == emails.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs not all completed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.start_kill().unwrap();
    second.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    use serde_json::json;

    let db = test_support::TestDb::new().await;
    // Trust authentication ignores the password, so one can ride along in the DSN.
    let dsn_password = "dsn-pw-5f0c2e9a";
    let (scheme, rest) = db.url().split_once("://").unwrap();
    let url = match rest.split_once('@') {
        Some((user, host)) => format!("{scheme}://{user}:{dsn_password}@{host}"),
        None => format!("{scheme}://postgres:{dsn_password}@{rest}"),
    };
    let mut child = app()
        .env("DATABASE_URL", &url)
        .env("JWT_SECRET", crate::support::JWT_SECRET)
        .env("RUST_LOG", "debug")
        .spawn()
        .unwrap();
    let (address, lines) = listening(&mut child).await;
    // Debug logging is chatty.
    let stdout = read_log(lines);
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text).await;
        text
    });
    let api = ApiClient::new(format!("http://{address}"));
    let password = "pw-never-logged-7d31a";
    let wrong_password = "wrong-pw-never-logged-0b9e";
    let (created, _) = api
        .post(
            "/api/users",
            json!({"name": "Ada", "email": "ada@example.com", "password": password}),
        )
        .await;
    assert_eq!(created, 201);
    let (refused, _) = api
        .post(
            "/api/auth/login",
            json!({"email": "ada@example.com", "password": wrong_password}),
        )
        .await;
    assert_eq!(refused, 401);
    let tokens = api.login("ada@example.com", password).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (me, _) = api.get_as(&access, "/api/users/me").await;
    assert_eq!(me, 200);
    let (refreshed, _) = api
        .post("/api/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(refreshed, 200);
    // A garbage token in a header and a token in a query string are not logged either.
    let (garbage, _) = api
        .get_as("garbage-token-never-logged", "/api/users/me")
        .await;
    assert_eq!(garbage, 401);

    sigterm(&child);
    let output = tokio::time::timeout(Duration::from_secs(15), async {
        format!(
            "{}\n{}",
            stdout.await.unwrap().join("\n"),
            stderr.await.unwrap()
        )
    })
    .await
    .expect("the server stops");
    assert!(
        output.contains("request completed"),
        "the logs were captured"
    );
    for secret in [
        password,
        wrong_password,
        &access,
        &refresh,
        "garbage-token-never-logged",
        crate::support::JWT_SECRET,
        dsn_password,
    ] {
        assert!(!output.contains(secret), "{secret} appears in the logs");
    }
}

#[tokio::test]
async fn app_config_prints_the_layers_with_secrets_redacted() {
    let dir = std::env::temp_dir().join(format!("app-config-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("settings.toml");
    std::fs::write(&file, "db_max_connections = 17\nport = 7000\n").unwrap();
    let output = app()
        .arg("config")
        .env("APP_CONFIG", &file)
        // The file's pool size is what this test reads back.
        .env_remove("DB_MAX_CONNECTIONS")
        .env_remove("DB_MIN_IDLE")
        .env("PORT", "7100")
        .env("JWT_SECRET", crate::support::JWT_SECRET)
        .env("DATABASE_URL", "postgres://app:hunter2-db@db:5432/app")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://tenant:otlp-token-42@collector.example:4318",
        )
        .env("SMTP_URL", "smtps://mailer:smtp-pass-77@smtp.example:465")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    // Every URL-valued setting is redacted, in both halves of the output.
    for secret in ["otlp-token-42", "smtp-pass-77", "tenant:", "mailer:"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    assert!(text.contains("collector.example:4318"), "{text}");
    assert!(text.contains("DB_MAX_CONNECTIONS = 17"), "{text}");
    assert!(text.contains("PORT = 7100    # environment"), "{text}");
    assert!(text.contains("port: 7100"), "{text}");
    assert!(!text.contains(crate::support::JWT_SECRET), "{text}");
    assert!(!text.contains("hunter2-db"), "{text}");

    // A missing file, or an unknown key, stops start-up naming the file.
    let missing = app()
        .arg("config")
        .env("APP_CONFIG", dir.join("nope.toml"))
        .output()
        .await
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.toml"));
    std::fs::write(&file, "prot = 7000\n").unwrap();
    let typo = app()
        .arg("config")
        .env("APP_CONFIG", &file)
        .output()
        .await
        .unwrap();
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("unknown setting `prot`"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A stand-in OTLP/HTTP collector: answers 200 to every request and hands over each
/// request's path and body.
async fn fake_collector() -> (String, tokio::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 8192];
                    // Headers, then as many body bytes as Content-Length says.
                    let (head_end, length) = loop {
                        let n = match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buffer.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buffer.len() < head_end + length {
                        let n = match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let body = buffer[head_end..head_end + length].to_vec();
                    let _ = tx.send((path, body)).await;
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_configured() {
    let (collector, mut exports) = fake_collector().await;
    let mut child = app()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)
        .env("OTEL_SERVICE_NAME", "users-service-under-test")
        .spawn()
        .unwrap();
    let (address, _lines) = listening(&mut child).await;
    let health = reqwest::get(format!("http://{address}/api/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let request_id = health.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    // Stopping flushes the batch.
    let status = terminate(&mut child).await;
    assert!(status.success(), "{status:?}");

    let (path, body) = tokio::time::timeout(Duration::from_secs(5), exports.recv())
        .await
        .expect("spans were exported")
        .unwrap();
    assert_eq!(path, "/v1/traces");
    let contains = |needle: &str| body.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains("users-service-under-test"), "the service name");
    assert!(contains("request"), "the request span");
    assert!(contains(&request_id), "the request id");
}
