//! `Idempotency-Key` on creating endpoints: a retried request replays the first response
//! instead of creating a second resource.
//!
//! The key is claimed atomically in the store before any work. A concurrent request with
//! the same key gets `409` (retry later) rather than waiting; a different request with
//! the same key gets `422`. Only successful responses are kept (24 h); a failed attempt
//! releases the key so a retry can do the work. A worker that dies holding a claim
//! leaves it to expire after a minute.

use std::future::Future;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use domain::idempotency::{Claim, IdempotencyKey, IdempotencyStore, StoredResponse};
use sha2::{Digest, Sha256};

use crate::extract::RawBody;
use crate::problem::{ApiError, FieldProblem, Problem};

pub(crate) const HEADER: &str = "Idempotency-Key";
const KEEP: Duration = Duration::from_secs(24 * 60 * 60);
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

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
    let store = req
        .app_data::<web::Data<dyn IdempotencyStore>>()
        .ok_or_else(|| ApiError::from(domain::Error::internal("no IdempotencyStore configured")))?
        .clone();
    let fingerprint: [u8; 32] = {
        let mut hash = Sha256::new();
        hash.update(req.method().as_str());
        hash.update(b" ");
        hash.update(req.path());
        hash.update(b"\n");
        if let Some(RawBody(body)) = req.extensions().get::<RawBody>() {
            hash.update(body);
        }
        hash.finalize().into()
    };
    let key = IdempotencyKey { scope, key };
    let now = domain::now();
    match store
        .claim(&key, &fingerprint, now - KEEP, now - ABANDONED_AFTER)
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
