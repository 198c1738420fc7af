//! The `app` binary itself: configuration errors, start-up failures and signals.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn app() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_app"));
    // Away from any developer `.env`, with a clean slate of settings.
    cmd.current_dir(std::env::temp_dir())
        .env("DATABASE_URL", "")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
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

#[tokio::test]
async fn sigterm_stops_the_server_gracefully_with_exit_code_0() {
    let mut child = app().spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let log: serde_json::Value = serde_json::from_str(&line).expect("JSON logs");
            if log["message"] == "listening" {
                return log["address"].as_str().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server starts");

    let health = reqwest::get(format!("http://{address}/api/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
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
