//! A private PostgreSQL server for one test, with TLS when asked: its own data
//! directory, port and certificates (a CA generated for the test, and a server
//! certificate it signed for `localhost`). Stopped and deleted when dropped.

use std::path::{Path, PathBuf};

use crate::local_server::{chown_to_postgres, find_binaries, is_root, run_as_postgres};

pub struct ThrowawayServer {
    bin: PathBuf,
    root: PathBuf,
    data: PathBuf,
    port: u16,
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// A CA that signed nothing this server shows.
    pub other_ca_file: PathBuf,
}

struct Certificates {
    ca: String,
    other_ca: String,
    server_cert: String,
    server_key: String,
}

fn certificates() -> Result<Certificates, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca = |name: &str| -> Result<(CertificateParams, KeyPair, String), rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate()?;
        let pem = params.self_signed(&key)?.pem();
        Ok((params, key, pem))
    };
    let (ca_params, ca_key, ca_pem) = ca("test CA")?;
    let (_, _, other_ca) = ca("another test CA")?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate()?;
    let issuer = Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Certificates {
        ca: ca_pem,
        other_ca,
        server_cert: cert.pem(),
        server_key: key.serialize_pem(),
    })
}

impl ThrowawayServer {
    /// Starts a server, with `ssl = on` when `tls` (plaintext-only otherwise). Panics
    /// with what is missing when it cannot: a test that needs it fails, never skips.
    pub async fn start(tls: bool) -> Self {
        tokio::task::spawn_blocking(move || Self::start_blocking(tls))
            .await
            .expect("starting a throwaway server")
            .unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL server: {e}"))
    }

    fn start_blocking(tls: bool) -> Result<Self, String> {
        let bin = find_binaries().ok_or(
            "initdb/pg_ctl not found on PATH or in /usr/lib/postgresql: install PostgreSQL's \
             server binaries (Debian: postgresql)",
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let root = std::env::temp_dir().join(format!("throwaway-pg-{}", uuid::Uuid::now_v7()));
        let data = root.join("data");
        let client = root.join("client");
        for dir in [&data, &client] {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let server = Self {
            bin,
            root: root.clone(),
            data: data.clone(),
            port,
            ca_file: client.join("ca.pem"),
            other_ca_file: client.join("other-ca.pem"),
        };
        if is_root() {
            chown_to_postgres(&root)?;
            chown_to_postgres(&data)?;
        }
        let out = server.run(
            "initdb",
            &["-D", &path(&data), "-U", "postgres", "--auth=trust"],
        )?;
        if !out.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let mut options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            path(&data)
        );
        // The CA files exist either way, so a client can ask a plaintext server for TLS.
        let certs = certificates().map_err(|e| e.to_string())?;
        std::fs::write(&server.ca_file, &certs.ca).map_err(|e| e.to_string())?;
        std::fs::write(&server.other_ca_file, &certs.other_ca).map_err(|e| e.to_string())?;
        if tls {
            let (cert, key) = (data.join("server.crt"), data.join("server.key"));
            std::fs::write(&cert, &certs.server_cert).map_err(|e| e.to_string())?;
            std::fs::write(&key, &certs.server_key).map_err(|e| e.to_string())?;
            // The server refuses a key that others can read.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            if is_root() {
                chown_to_postgres(&cert)?;
                chown_to_postgres(&key)?;
            }
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                path(&cert),
                path(&key)
            ));
        } else {
            options.push_str(" -c ssl=off");
        }
        let log = path(&data.join("server.log"));
        let out = server.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-D",
                &path(&data),
                "-l",
                &log,
                "-o",
                &options,
            ],
        )?;
        if !out.status.success() {
            let log = std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
            return Err(format!(
                "pg_ctl start: {}{log}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(server)
    }

    /// The URL of its `postgres` database at `host` (`localhost` matches the
    /// certificate, `127.0.0.1` does not), with `query` appended.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<std::process::Output, String> {
        run_as_postgres(&self.bin.join(program), args)
    }
}

impl Drop for ThrowawayServer {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["stop", "-m", "immediate", "-D", &path(&self.data)],
        );
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
