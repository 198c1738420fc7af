//! Where and how to connect: `DATABASE_URL` with its `sslmode` and `sslrootcert`, as
//! libpq reads them, made into one [`Target`] that every connection uses (pool,
//! listeners, cancel requests, migrations). TLS is rustls; there is no OpenSSL.
//!
//! | `sslmode` | encrypted | certificate checked | host name checked |
//! |---|---|---|---|
//! | `disable` (no `sslmode`) | no | – | – |
//! | `prefer` | when the server offers it | no | no |
//! | `require` | yes, else the connection fails | only with `sslrootcert` (as libpq) | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! The trusted roots are the PEM file `sslrootcert` names, or the Mozilla roots
//! compiled into the binary (`webpki-roots`) when it is unset or `system`.

use std::sync::Arc;

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How much TLS a connection insists on (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "disable" => Ok(Self::Disable),
            // libpq's `allow` tries plaintext first; nothing here gains from that.
            "allow" | "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!(
                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            )),
        }
    }

    /// What tokio-postgres itself knows: whether to ask for TLS and whether to insist.
    fn wire(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require | Self::VerifyCa | Self::VerifyFull => "require",
        }
    }
}

/// A database to connect to, with the TLS it asks for. Cheap to clone.
#[derive(Clone)]
pub struct Target {
    /// The URL as tokio-postgres reads it: `sslmode` reduced to what it knows, the
    /// TLS parameters it does not know removed. May hold the password.
    url: String,
    mode: SslMode,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &crate::redact_url(&self.url))
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The connection tokio-postgres makes for a [`Target`].
pub(crate) type PgConnection =
    Connection<Socket, <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<Socket>>::Stream>;

impl Target {
    /// Reads `url` (a `postgres://` URL), loading `sslrootcert` if it names a file.
    /// The error says what is wrong, never the password.
    pub fn parse(url: &str) -> Result<Self, String> {
        // The query starts after the user info: a `?` in a password is not one.
        let authority = url.find("://").map_or(0, |i| i + 3);
        let after_credentials = url[authority..]
            .rfind('@')
            .map_or(authority, |at| authority + at + 1);
        let (base, query) = match url[after_credentials..].find('?') {
            Some(q) => (
                &url[..after_credentials + q],
                &url[after_credentials + q + 1..],
            ),
            None => (url, ""),
        };
        let mut mode = None;
        let mut root_cert = None;
        let mut kept: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let twice = |what: &str| format!("{what} is given twice in DATABASE_URL");
            match key {
                "sslmode" if mode.is_some() => return Err(twice("sslmode")),
                "sslmode" => mode = Some(SslMode::parse(&percent_decode(value))?),
                "sslrootcert" if root_cert.is_some() => return Err(twice("sslrootcert")),
                "sslrootcert" => root_cert = Some(percent_decode(value)),
                _ => kept.push(pair.to_owned()),
            }
        }
        // Unlike libpq (whose default is `prefer`), no `sslmode` means plaintext: a
        // deployment that wants TLS says so, and gets exactly what it said.
        let mode = match (mode, root_cert.as_deref()) {
            // The public roots vouch for every host they ever certified: only with the
            // host name checked do they prove anything (libpq refuses the same).
            (Some(SslMode::Require | SslMode::VerifyCa), Some("system"))
            | (Some(SslMode::VerifyCa), None) => {
                return Err(
                    "sslmode=verify-ca needs sslrootcert=<file> (the CA that signed \
                     the server's certificate); with the public roots use sslmode=verify-full"
                        .into(),
                );
            }
            // As libpq: `require` with a root certificate verifies the chain.
            (Some(SslMode::Require), Some(_)) => SslMode::VerifyCa,
            (Some(mode), _) => mode,
            (None, _) => SslMode::Disable,
        };
        kept.push(format!("sslmode={}", mode.wire()));
        let tls = MakeRustlsConnect::new(client_config(mode, root_cert.as_deref())?);
        Ok(Self {
            url: format!("{base}?{}", kept.join("&")),
            mode,
            tls,
        })
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The connector, for cancel requests (they open a connection of their own).
    pub(crate) fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// A tokio-postgres client and the connection to drive.
    pub(crate) async fn connect(&self) -> Result<(Client, PgConnection), String> {
        tokio_postgres::connect(&self.url, self.tls.clone())
            .await
            .map_err(|e| explain(&e))
    }

    /// A diesel connection, its driver spawned on the current runtime.
    pub(crate) async fn establish(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let (client, connection) = self
            .connect()
            .await
            .map_err(ConnectionError::BadConnection)?;
        AsyncPgConnection::try_from_client_and_connection(client, connection).await
    }
}

/// The error with its causes, and in words what a TLS failure means.
fn explain(error: &tokio_postgres::Error) -> String {
    let mut all = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !all.contains(&text) {
            all = format!("{all}: {text}");
        }
        source = cause.source();
    }
    let has = |needles: &[&str]| needles.iter().any(|n| all.contains(n));
    let hint = if has(&[
        "UnknownIssuer",
        "unknown issuer",
        "BadSignature",
        "bad signature",
    ]) {
        Some("the server's certificate is not signed by a trusted CA (see sslrootcert)")
    } else if has(&["NotValidForName", "not valid for name"]) {
        Some(
            "the server's certificate is not valid for the host name in DATABASE_URL \
             (sslmode=verify-full checks it)",
        )
    } else if all.contains("does not support TLS") {
        Some("the server does not accept TLS (sslmode=require or stronger needs it)")
    } else if has(&["Expired", "expired"]) {
        Some("the server's certificate has expired")
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{hint}: {all}"),
        None => all,
    }
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    match root_cert {
        None | Some("system") => Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("sslrootcert {path} holds no usable certificate"));
            }
            Ok(store)
        }
    }
}

fn client_config(mode: SslMode, root_cert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            Arc::new(AnyCertificate(provider()))
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(root_cert)?),
                provider(),
            )
            .build()
            .map_err(|e| format!("TLS set-up: {e}"))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `prefer` and `require`: encrypted, but any certificate will do (libpq's meaning).
/// The handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name on it is not checked.
/// webpki checks the chain before the name, so a name error means the chain is good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_read_and_reduced_to_what_tokio_postgres_knows() {
        let t = Target::parse("postgres://u:p@db:5432/app?sslmode=verify-full&application_name=x")
            .unwrap();
        assert_eq!(t.mode(), SslMode::VerifyFull);
        assert_eq!(
            t.url,
            "postgres://u:p@db:5432/app?application_name=x&sslmode=require"
        );
        let t = Target::parse("postgres://db/app").unwrap();
        assert_eq!(
            (t.mode(), t.url.as_str()),
            (SslMode::Disable, "postgres://db/app?sslmode=disable")
        );
        assert_eq!(
            Target::parse("postgres://db/app?sslmode=prefer")
                .unwrap()
                .mode(),
            SslMode::Prefer
        );
        // A `?` in the password is not the start of the query.
        let t = Target::parse("postgres://u:pa?ss@db/app?sslmode=require").unwrap();
        assert_eq!(t.mode(), SslMode::Require);
        assert_eq!(t.url, "postgres://u:pa?ss@db/app?sslmode=require");
    }

    #[test]
    fn bad_tls_parameters_are_named_without_the_password() {
        let error = Target::parse("postgres://u:hunter22@db/app?sslmode=sometimes").unwrap_err();
        assert!(error.contains("sslmode `sometimes`"), "{error}");
        assert!(!error.contains("hunter22"), "{error}");
        let error =
            Target::parse("postgres://u:hunter22@db/app?sslmode=verify-ca&sslrootcert=%2Fnope.pem")
                .unwrap_err();
        assert!(error.contains("/nope.pem"), "{error}");
        assert!(!error.contains("hunter22"), "{error}");
        // Public roots without a host-name check, and a mode given twice, are refused.
        for url in [
            "postgres://db/app?sslmode=verify-ca",
            "postgres://db/app?sslmode=verify-ca&sslrootcert=system",
            "postgres://db/app?sslmode=require&sslrootcert=system",
            "postgres://db/app?sslmode=require&sslmode=disable",
        ] {
            assert!(Target::parse(url).is_err(), "{url}");
        }
    }
}
