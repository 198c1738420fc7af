//! `Idempotency-Key` on creating endpoints: a retried request replays the first response
//! instead of creating a second resource.
//!
//! The key is claimed atomically in the store before any work. A concurrent request with
//! the same key gets `409` (retry later) rather than waiting; a different request with
//! the same key gets `422`. Only successful responses are kept (24 h); a failed attempt
//! releases the key so a retry can do the work. A claim left behind (the process died,
//! the request timed out) is taken over once the request deadline has surely passed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use domain::idempotency::{Claim, IdempotencyKey, IdempotencyStore, StoredResponse};
use hmac::{KeyInit, Mac};

use crate::config::{DEFAULT_REQUEST_TIMEOUT, HttpConfig};
use crate::extract::RawBody;
use crate::problem::{ApiError, FieldProblem, Problem};

pub(crate) const HEADER: &str = "Idempotency-Key";
/// How long a key is remembered: a retry within it replays, one after it is new.
pub const IDEMPOTENCY_KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
const KEEP: Duration = IDEMPOTENCY_KEY_LIFETIME;

/// What the creating endpoints need to replay a retry: the store of claimed keys, and
/// the key their request fingerprints are made with.
#[derive(Clone)]
pub struct Idempotency {
    pub store: Arc<dyn IdempotencyStore>,
    pub fingerprint_key: FingerprintKey,
}

/// A secret for request fingerprints. Bodies hold passwords (registration), so a
/// fingerprint must not be a plain hash anyone with the database could brute-force:
/// it is an HMAC under this key. Every instance must share it (the app derives it from
/// `JWT_SECRET`).
#[derive(Clone, PartialEq, Eq)]
pub struct FingerprintKey(pub [u8; 32]);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(<redacted>)")
    }
}

impl FingerprintKey {
    /// HMAC-SHA256 (RFC 2104) of `parts`, concatenated.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

fn bad_key(message: &str) -> ApiError {
    ApiError::problem(
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            format!("{HEADER} {message}"),
        )
        .with_errors([FieldProblem {
            field: HEADER.into(),
            message: message.into(),
        }]),
    )
}

/// Runs `create` at most once per `Idempotency-Key` of `scope`; without the header it
/// simply runs.
pub(crate) async fn idempotent<F, Fut>(
    req: &HttpRequest,
    scope: String,
    create: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<HttpResponse, ApiError>>,
{
    let Some(header) = req.headers().get(HEADER) else {
        return create().await;
    };
    let key = header
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| bad_key("must be 1 to 255 visible ASCII characters"))?
        .to_owned();
    let idempotency = req
        .app_data::<web::Data<Idempotency>>()
        .ok_or_else(|| ApiError::from(domain::Error::internal("no idempotency store configured")))?
        .clone();
    let store = &idempotency.store;
    let request_timeout = req
        .app_data::<web::Data<HttpConfig>>()
        .map_or(DEFAULT_REQUEST_TIMEOUT, |c| c.request_timeout);
    let fingerprint = {
        let extensions = req.extensions();
        let body = extensions
            .get::<RawBody>()
            .map_or(&[][..], |RawBody(b)| &b[..]);
        idempotency.fingerprint_key.mac(&[
            req.method().as_str().as_bytes(),
            b" ",
            req.path().as_bytes(),
            b"\n",
            body,
        ])
    };
    // A claim is abandoned only once the request holding it must have ended: after
    // the request deadline, a claim never completed nor released was left by a worker
    // that died or a request that timed out.
    let abandoned_after = request_timeout + Duration::from_secs(5);
    let key = IdempotencyKey { scope, key };
    let now = domain::now();
    match store
        .claim(&key, &fingerprint, now - KEEP, now - abandoned_after)
        .await?
    {
        Claim::New => {}
        Claim::Replay(stored) => return Ok(replay(stored)),
        Claim::Mismatch => {
            return Err(ApiError::problem(
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    "Unprocessable Entity",
                    format!("this {HEADER} was already used with a different request"),
                )
                .with_errors([FieldProblem {
                    field: HEADER.into(),
                    message: "was already used with a different request".into(),
                }]),
            ));
        }
        Claim::InProgress => {
            let mut problem = Problem::new(
                StatusCode::CONFLICT,
                "idempotency-in-progress",
                "Conflict",
                format!("a request with this {HEADER} is still being handled; retry later"),
            );
            problem.retry_after = Some(1);
            return Err(ApiError::problem(problem));
        }
    }

    let outcome = create().await;
    match outcome {
        Ok(response) if response.status().is_success() => {
            let status = response.status();
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let (head, body) = response.into_parts();
            let bytes = actix_web::body::to_bytes(body)
                .await
                .map_err(|_| domain::Error::internal("reading a response body failed"))?;
            let stored = StoredResponse {
                status: status.as_u16(),
                location,
                body: bytes.to_vec(),
            };
            if let Err(error) = store.complete(&key, &stored).await {
                // The resource exists; only the replay record is missing. A retry will
                // be refused as in progress until the claim goes stale.
                tracing::warn!(%error, "storing an idempotent response failed");
            }
            Ok(head.set_body(actix_web::body::BoxBody::new(bytes)))
        }
        other => {
            if let Err(error) = store.release(&key).await {
                tracing::warn!(%error, "releasing an idempotency key failed");
            }
            other
        }
    }
}

fn replay(stored: StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.insert_header((CONTENT_TYPE, "application/json"));
    response.insert_header(("Idempotent-Replayed", "true"));
    if let Some(location) = stored.location {
        response.insert_header((LOCATION, location));
    }
    response.body(stored.body)
}

#[cfg(test)]
mod tests {
    use super::FingerprintKey;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2_shape() {
        // Same key and message: same MAC; any change: a different one.
        let key = FingerprintKey([7; 32]);
        let a = key.mac(&[b"POST /api/users\n", b"{}"]);
        assert_eq!(a, key.mac(&[b"POST /api/users\n{}"]));
        assert_ne!(a, key.mac(&[b"POST /api/users\n", b"{ }"]));
        assert_ne!(
            a,
            FingerprintKey([8; 32]).mac(&[b"POST /api/users\n", b"{}"])
        );
    }
}
