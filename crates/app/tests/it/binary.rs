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
