//! A throwaway PostgreSQL server under `target/`, for machines with PostgreSQL binaries
//! installed but no server running. It is started once and reused by later test runs;
//! stop it with `pg_ctl -D target/test-postgres stop`.

use std::path::{Path, PathBuf};
use std::process::Command;

const PORT: u16 = 55432;

pub(crate) async fn start() -> Result<String, String> {
    tokio::task::spawn_blocking(start_blocking)
        .await
        .map_err(|e| e.to_string())?
}

fn start_blocking() -> Result<String, String> {
    let bin = find_binaries().ok_or("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let data = target.join("test-postgres");
    let socket_dir = target.join("test-postgres-socket");

    // Several test binaries may get here at once; one starts the server.
    let lock =
        std::fs::File::create(target.join("test-postgres.lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;

    let as_root = is_root();
    let run = run_as_postgres;
    let data_s = data.to_string_lossy().into_owned();

    let running = run(&bin.join("pg_ctl"), &["status", "-D", &data_s])
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !running {
        if !data.join("PG_VERSION").exists() {
            std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&socket_dir).map_err(|e| e.to_string())?;
            if as_root {
                for dir in [&data, &socket_dir] {
                    chown_to_postgres(dir)?;
                }
            }
            let out = run(
                &bin.join("initdb"),
                &[
                    "-D",
                    &data_s,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ],
            )?;
            if !out.status.success() {
                return Err(format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let options = format!(
            "-p {PORT} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            socket_dir.display()
        );
        let log = data.join("server.log");
        let out = run(
            &bin.join("pg_ctl"),
            &[
                "start",
                "-w",
                "-D",
                &data_s,
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
            ],
        )?;
        if !out.status.success() {
            return Err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(format!("postgres://postgres@127.0.0.1:{PORT}/postgres"))
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (initdb and
/// postgres refuse to run as root).
pub(crate) fn run_as_postgres(
    program: &Path,
    args: &[&str],
) -> Result<std::process::Output, String> {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))
}

/// Hands `path` to the `postgres` user (for a server started as root).
pub(crate) fn chown_to_postgres(path: &Path) -> Result<(), String> {
    let ok = Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!("cannot chown {} to postgres", path.display()))
    }
}

pub(crate) fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("pg_ctl").is_file() && p.join("initdb").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
