use std::fmt;
use std::time::Duration;

use domain::Error;
use domain::auth::{AccessToken, AccessTokens, Principal, SessionId};
use domain::users::{Role, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The shortest secret we accept: HS256 is only as strong as its key.
pub const MIN_SECRET_BYTES: usize = 32;

/// How access tokens are signed and checked.
#[derive(Clone)]
pub struct JwtSettings {
    /// Signs new tokens (and verifies them).
    pub secret: Vec<u8>,
    /// Earlier signing keys, still accepted for verification during a rotation.
    pub previous_secrets: Vec<Vec<u8>>,
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &"<redacted>")
            .field("previous_secrets", &self.previous_secrets.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("leeway", &self.leeway)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a JWT secret must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
pub struct SecretError(pub usize);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    /// The session: ending it refuses this token.
    sid: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    iss: String,
    aud: String,
}

struct Key {
    kid: String,
    decoding: DecodingKey,
}

/// [`AccessTokens`] as HS256 JWTs. Each token names its key (`kid`), so verification
/// picks the right one of the current and previous secrets.
pub struct JwtTokens {
    kid: String,
    encoding: EncodingKey,
    keys: Vec<Key>,
    validation: Validation,
    settings: JwtSettings,
}

/// A key id that identifies a secret without revealing it.
fn key_id(secret: &[u8]) -> String {
    Sha256::digest(secret)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unauthorized() -> Error {
    Error::Unauthorized("invalid or expired token")
}

impl JwtTokens {
    pub fn new(settings: JwtSettings) -> Result<Self, SecretError> {
        for secret in std::iter::once(&settings.secret).chain(&settings.previous_secrets) {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(SecretError(secret.len()));
            }
        }
        let keys = std::iter::once(&settings.secret)
            .chain(&settings.previous_secrets)
            .map(|secret| Key {
                kid: key_id(secret),
                decoding: DecodingKey::from_secret(secret),
            })
            .collect();
        // Only HS256: `none` and every other algorithm are refused before any signature
        // check, which closes the algorithm-confusion family of attacks.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = settings.leeway.as_secs();
        Ok(Self {
            kid: key_id(&settings.secret),
            encoding: EncodingKey::from_secret(&settings.secret),
            keys,
            validation,
            settings,
        })
    }

    /// A random secret for a process that keeps nothing across restarts anyway.
    pub fn random_secret() -> Result<Vec<u8>, Error> {
        let mut secret = vec![0u8; 64];
        getrandom::fill(&mut secret).map_err(|e| Error::internal(e.to_string()))?;
        Ok(secret)
    }
}

impl AccessTokens for JwtTokens {
    fn issue(&self, principal: &Principal, session: SessionId) -> Result<AccessToken, Error> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
        let ttl = self.settings.ttl.as_secs();
        let claims = Claims {
            sub: principal.user_id.to_string(),
            role: principal.role.as_str().to_owned(),
            sid: session.to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl,
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| Error::internal(format!("signing a token failed: {e}")))?;
        Ok(AccessToken {
            token,
            expires_in: ttl,
        })
    }

    fn verify(&self, token: &str) -> Result<domain::auth::Claims, Error> {
        // A JWT is a few hundred bytes; refuse to parse anything huge.
        if token.len() > 4096 {
            return Err(unauthorized());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized())?;
        let kid = header.kid.ok_or_else(unauthorized)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(unauthorized)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map_err(|_| unauthorized())?;
        let user_id: UserId = data.claims.sub.parse().map_err(|_| unauthorized())?;
        let role = Role::parse(&data.claims.role).map_err(|_| unauthorized())?;
        let session: SessionId = data.claims.sid.parse().map_err(|_| unauthorized())?;
        let expires_at = i64::try_from(data.claims.exp)
            .ok()
            .and_then(|exp| time::OffsetDateTime::from_unix_timestamp(exp).ok())
            .ok_or_else(unauthorized)?;
        Ok(domain::auth::Claims {
            principal: Principal { user_id, role },
            session,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-current";
    const OLD_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-previous";

    fn settings() -> JwtSettings {
        JwtSettings {
            secret: SECRET.to_vec(),
            previous_secrets: vec![OLD_SECRET.to_vec()],
            issuer: "users-service".into(),
            audience: "users-service".into(),
            ttl: Duration::from_secs(900),
            leeway: Duration::from_secs(5),
        }
    }

    fn tokens() -> JwtTokens {
        JwtTokens::new(settings()).unwrap()
    }

    fn principal() -> Principal {
        Principal {
            user_id: UserId::generate(),
            role: Role::Admin,
        }
    }

    const SID: &str = "0190a0b0-0000-7000-8000-000000000001";

    fn sid() -> SessionId {
        SID.parse().unwrap()
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn claims(p: &Principal) -> serde_json::Value {
        json!({
            "sub": p.user_id.to_string(), "role": p.role.as_str(), "sid": SID,
            "iat": now(), "nbf": now(), "exp": now() + 900,
            "iss": "users-service", "aud": "users-service",
        })
    }

    /// Signs arbitrary claims the way an attacker with `secret` (or without) could.
    fn forge(
        alg: Algorithm,
        secret: &[u8],
        kid: Option<&str>,
        claims: &serde_json::Value,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn issued_tokens_verify_to_the_same_principal() {
        let tokens = tokens();
        let p = principal();
        let issued = tokens.issue(&p, sid()).unwrap();
        assert_eq!(issued.expires_in, 900);
        assert_eq!(tokens.verify(&issued.token).unwrap().principal, p);
        assert_eq!(tokens.verify(&issued.token).unwrap().session, sid());
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some(key_id(SECRET).as_str()));
    }

    #[test]
    fn tokens_signed_with_a_previous_secret_still_verify() {
        let p = principal();
        let old = forge(
            Algorithm::HS256,
            OLD_SECRET,
            Some(&key_id(OLD_SECRET)),
            &claims(&p),
        );
        assert_eq!(tokens().verify(&old).unwrap().principal, p);
    }

    #[test]
    fn every_kind_of_bad_token_is_unauthorized() {
        let tokens = tokens();
        let p = principal();
        let kid = key_id(SECRET);
        let good = claims(&p);
        let with = |patch: serde_json::Value| {
            let mut c = good.clone();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let valid = forge(Algorithm::HS256, SECRET, Some(&kid), &good);
        let (head, rest) = valid.split_once('.').unwrap();
        let signature = rest.split_once('.').unwrap().1;

        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("garbage", "not.a.jwt".into()),
            (
                "alg none, no signature",
                format!(
                    "{}.{}.",
                    b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
                    b64(&good)
                ),
            ),
            (
                "alg None, with the real signature",
                format!(
                    "{}.{}.{signature}",
                    b64(&json!({"alg": "None", "kid": kid})),
                    b64(&good)
                ),
            ),
            (
                "HS384 with the right key",
                forge(Algorithm::HS384, SECRET, Some(&kid), &good),
            ),
            (
                "HS512 with the right key",
                forge(Algorithm::HS512, SECRET, Some(&kid), &good),
            ),
            (
                "wrong key claiming the right kid",
                forge(
                    Algorithm::HS256,
                    b"another-secret-that-is-long-enough!!",
                    Some(&kid),
                    &good,
                ),
            ),
            (
                "unknown kid",
                forge(Algorithm::HS256, SECRET, Some("0000000000000000"), &good),
            ),
            ("no kid", forge(Algorithm::HS256, SECRET, None, &good)),
            (
                "wrong issuer",
                forge(
                    Algorithm::HS256,
                    SECRET,
                    Some(&kid),
                    &with(json!({"iss": "evil"})),
                ),
            ),
            (
                "wrong audience",
                forge(
                    Algorithm::HS256,
                    SECRET,
                    Some(&kid),
                    &with(json!({"aud": "other-api"})),
                ),
            ),
            (
                "expired beyond the leeway",
                forge(
                    Algorithm::HS256,
                    SECRET,
                    Some(&kid),
                    &with(json!({"exp": now() - 60})),
                ),
            ),
            (
                "not yet valid beyond the leeway",
                forge(
                    Algorithm::HS256,
                    SECRET,
                    Some(&kid),
                    &with(json!({"nbf": now() + 60})),
                ),
            ),
            (
                "missing exp",
                forge(Algorithm::HS256, SECRET, Some(&kid), &{
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("exp");
                    c
                }),
            ),
            (
                "no session id",
                forge(Algorithm::HS256, SECRET, Some(&kid), &{
                    let mut c = claims(&p);
                    c.as_object_mut().unwrap().remove("sid");
                    c
                }),
            ),
            (
                "sub not a user id",
                forge(
                    Algorithm::HS256,
                    SECRET,
                    Some(&kid),
                    &with(json!({"sub": "root"})),
                ),
            ),
            (
                "unknown role",
                forge(
                    Algorithm::HS256,
                    SECRET,
                    Some(&kid),
                    &with(json!({"role": "superuser"})),
                ),
            ),
            (
                "tampered payload (role raised), old signature",
                format!(
                    "{head}.{}.{signature}",
                    b64(&with(
                        json!({"role": "admin", "sub": UserId::generate().to_string()})
                    ))
                ),
            ),
            ("oversized", "a".repeat(10_000)),
        ];
        for (case, token) in cases {
            match tokens.verify(&token) {
                Err(Error::Unauthorized(_)) => {}
                other => panic!("{case}: expected Unauthorized, got {other:?}"),
            }
        }
    }

    #[test]
    fn leeway_tolerates_small_clock_skew() {
        let tokens = tokens();
        let p = principal();
        let mut c = claims(&p);
        c["exp"] = json!(now() - 2);
        c["nbf"] = json!(now() + 2);
        let skewed = forge(Algorithm::HS256, SECRET, Some(&key_id(SECRET)), &c);
        assert_eq!(tokens.verify(&skewed).unwrap().principal, p);
    }

    #[test]
    fn short_secrets_are_refused() {
        let short = JwtSettings {
            secret: b"too short".to_vec(),
            ..settings()
        };
        assert_eq!(JwtTokens::new(short).err(), Some(SecretError(9)));
        let short_previous = JwtSettings {
            previous_secrets: vec![b"x".to_vec()],
            ..settings()
        };
        assert!(JwtTokens::new(short_previous).is_err());
    }

    #[test]
    fn settings_debug_hides_secrets() {
        let shown = format!("{:?}", settings());
        assert!(!shown.contains("0123456789"), "{shown}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Arbitrary strings are refused, never a panic.
        #[test]
        fn garbage_never_verifies(raw in proptest::prelude::any::<String>()) {
            proptest::prop_assert!(tokens().verify(&raw).is_err());
        }

        /// Changing any one byte of a valid token (header, payload or signature) makes it
        /// invalid.
        #[test]
        fn a_token_with_any_byte_changed_is_refused(at in 0usize..1000, byte in 0x21u8..0x7f) {
            let tokens = tokens();
            let token = tokens.issue(&principal(), sid()).unwrap().token;
            let at = at % token.len();
            let mut tampered = token.clone().into_bytes();
            proptest::prop_assume!(tampered[at] != byte);
            tampered[at] = byte;
            let tampered = String::from_utf8(tampered).unwrap();
            // Base64url has a few encodings of the same final bits in its last
            // character; those decode to the same bytes and stay valid by design.
            let last_of_a_part = tampered
                .as_bytes()
                .get(at + 1)
                .is_none_or(|next| *next == b'.');
            if !last_of_a_part {
                proptest::prop_assert!(tokens.verify(&tampered).is_err(), "{tampered}");
            }
        }
    }
}
