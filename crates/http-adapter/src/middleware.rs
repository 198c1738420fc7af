//! Request-scoped behaviour every route gets: a request id and one log line per request,
//! panic recovery, a deadline, and problem+json for errors the framework answers itself.
//!
//! Responses for a panic or a timeout are returned as errors, which the server renders;
//! a middleware cannot keep a copy of the request while routing runs.
//!
//! Order, outermost first (see `server::app`): `request_context` → `catch_panic` →
//! `deadline` → `problem_fallback` → route. The outer layers therefore see, log and tag
//! the responses the inner ones make.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::config::{DEFAULT_REQUEST_TIMEOUT, HttpConfig};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Header fields beyond this many bytes (names and values) get a 431 problem. The HTTP
/// parser's own limit is 128 KiB for the whole head, answered without a body; a bearer
/// token and the usual proxy headers need well under 8 KiB.
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Accepts a caller's id only if it is short, visible ASCII, so it is safe in logs and
/// headers; otherwise a new one is made.
fn request_id_from(req: &ServiceRequest) -> String {
    req.headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// Everything a request gets on its way in and out, in order: an id, a slot for its
/// route, a span, the header-size check, the call, the response headers, a metric and
/// one log line.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request_id_from(&req);
    let route_slot = give_route_slot(&req);
    let facts = ResponseFacts::of(&req, &request_id);
    let client = crate::client::client_ip(req.request());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
        client = client.map(tracing::field::display),
    );
    let result = match oversized_headers(&req) {
        None => next
            .call(req)
            .instrument(span.clone())
            .await
            .map(ServiceResponse::map_into_boxed_body),
        Some(refusal) => Ok(req.into_response(refusal.response())),
    };
    let (status, result) = facts.apply(result);
    let latency = started.elapsed();
    // The route pattern, never the raw path: ids in paths would explode label sets.
    let route = route_slot
        .pattern()
        .unwrap_or_else(|| unmatched_or_docs(facts.docs_page));
    crate::request_metrics::record(facts.method, route, status, latency.as_secs_f64());
    log_completion(&span, status, latency);
    result
}

/// The slot the resource that serves the request fills in (`routing.rs`).
fn give_route_slot(req: &ServiceRequest) -> crate::routing::RouteSlot {
    let slot = crate::routing::RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    slot
}

/// The 431 for header fields past [`MAX_HEADER_BYTES`], before anything reads them.
fn oversized_headers(req: &ServiceRequest) -> Option<Problem> {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes <= MAX_HEADER_BYTES {
        return None;
    }
    let mut problem = Problem::for_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    problem.detail = format!("the header fields exceed {} KiB", MAX_HEADER_BYTES / 1024);
    Some(problem)
}

/// What the response needs from the request, read before the request is handed on.
struct ResponseFacts {
    request_id: Option<HeaderValue>,
    hsts: bool,
    docs_page: bool,
    method: &'static str,
}

impl ResponseFacts {
    fn of(req: &ServiceRequest, request_id: &str) -> Self {
        Self {
            request_id: HeaderValue::from_str(request_id).ok(),
            hsts: req
                .app_data::<web::Data<HttpConfig>>()
                .is_some_and(|config| config.hsts),
            docs_page: req.path().starts_with("/api/docs"),
            method: method_label(req.method()),
        }
    }

    /// The request id and security headers on the response, whatever produced it, and
    /// its status.
    fn apply(
        &self,
        result: Result<ServiceResponse<BoxBody>, actix_web::Error>,
    ) -> (u16, Result<ServiceResponse<BoxBody>, actix_web::Error>) {
        match result {
            Ok(mut res) => {
                // The layers outside `problem_fallback` answer some refusals themselves
                // (CORS: an origin not allowed); those get the problem shape here.
                if needs_problem(res.response()) {
                    let (http_req, old) = res.into_parts();
                    res = ServiceResponse::new(http_req, as_problem(&old, None));
                }
                if let Some(value) = &self.request_id {
                    res.headers_mut().insert(X_REQUEST_ID, value.clone());
                }
                secure(res.headers_mut(), self.hsts);
                if self.docs_page {
                    // The reference page runs its own scripts and styles, from here only.
                    res.headers_mut().insert(
                        header::CONTENT_SECURITY_POLICY,
                        HeaderValue::from_static(DOCS_CSP),
                    );
                }
                (res.status().as_u16(), Ok(res))
            }
            // Errors from inner layers (timeout, panic) are turned into responses by the
            // server after we return; wrap them so that response carries the id too.
            Err(error) => {
                let status = error.as_response_error().status_code().as_u16();
                let wrapped = WithRequestId {
                    error,
                    header: self.request_id.clone(),
                    hsts: self.hsts,
                };
                (status, Err(wrapped.into()))
            }
        }
    }
}

/// One line per request, inside its span, so with its id.
fn log_completion(span: &tracing::Span, status: u16, latency: std::time::Duration) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request completed");
        } else {
            tracing::info!(status, latency_ms, "request completed");
        }
    });
}

/// The route label of a request no registered resource served.
fn unmatched_or_docs(docs_page: bool) -> &'static str {
    if docs_page {
        "/api/docs/{_:.*}"
    } else {
        "unmatched"
    }
}

/// An error whose response gets the `X-Request-Id` header.
#[derive(Debug)]
struct WithRequestId {
    error: actix_web::Error,
    header: Option<HeaderValue>,
    hsts: bool,
}

/// Headers every response carries: no MIME sniffing, no framing, no referrer leaks,
/// and HSTS when the service is reached over TLS (`HSTS=true`).
/// What an API response may make a browser do: nothing (it is data, never a page).
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The reference page (`/api/docs`): its own scripts, styles and the API, nothing from
/// elsewhere, no inline script; Swagger UI sets inline styles and uses `data:` icons.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

fn secure(headers: &mut actix_web::http::header::HeaderMap, hsts: bool) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(API_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

impl std::fmt::Display for WithRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for WithRequestId {
    fn status_code(&self) -> StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.error.error_response();
        // Errors of the layers outside `problem_fallback` (a CORS refusal) get the
        // problem shape here; a client error's message is meant for the client.
        if needs_problem(&response) {
            let detail = response
                .status()
                .is_client_error()
                .then(|| self.error.to_string());
            response = as_problem(&response, detail);
        }
        if let Some(value) = &self.header {
            response.headers_mut().insert(X_REQUEST_ID, value.clone());
        }
        secure(response.headers_mut(), self.hsts);
        response
    }
}

/// Turns a panicking handler into a `500` problem; the worker keeps serving.
pub async fn catch_panic(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(panic = %message, "handler panicked");
            Err(problem_error(StatusCode::INTERNAL_SERVER_ERROR))
        }
    }
}

/// Cancels a request that runs past `request_timeout` and answers `504`. Dropping the
/// handler's future drops its in-flight work (database calls included).
pub async fn deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let timeout = req
        .app_data::<web::Data<HttpConfig>>()
        .map_or(DEFAULT_REQUEST_TIMEOUT, |c| c.request_timeout);
    match tokio::time::timeout(timeout, next.call(req)).await {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
            Err(problem_error(StatusCode::GATEWAY_TIMEOUT))
        }
    }
}

fn problem_error(status: StatusCode) -> actix_web::Error {
    ApiError::problem(Problem::for_status(status)).into()
}

/// Gives every error response the problem+json shape, including those the framework
/// makes itself (unknown route, wrong method, unparsable query string).
pub async fn problem_fallback(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let upgrade = asks_for_upgrade(req.headers());
    let response = next.call(req).await?.map_into_boxed_body();
    let mut response = if needs_problem(response.response()) {
        let (http_req, old) = response.into_parts();
        ServiceResponse::new(http_req, as_problem(&old, None))
    } else {
        response
    };
    if upgrade && response.status() != actix_web::http::StatusCode::SWITCHING_PROTOCOLS {
        // A refused upgrade is written as if the connection had switched protocols:
        // actix's encoder then sends the body without chunk framing, so a compressed
        // (streamed, `Transfer-Encoding: chunked`) body reaches the client malformed.
        // Kept uncompressed, the body has a length and is framed by it.
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("identity"),
        );
    }
    Ok(response)
}

/// The method as a metrics label: the methods the API serves, and `other` for any
/// other token a client sends, so label sets stay bounded whatever arrives.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        _ => "other",
    }
}

/// Whether the request asks to switch protocols (`Connection: upgrade`).
fn asks_for_upgrade(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
        })
    })
}

/// An error response that is not problem+json yet.
fn needs_problem<B>(response: &HttpResponse<B>) -> bool {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    (status.is_client_error() || status.is_server_error()) && !is_problem
}

/// The problem+json version of an error response: same status, same headers (the
/// framework sets some for a reason, e.g. `Allow` on 405).
fn as_problem<B>(old: &HttpResponse<B>, detail: Option<String>) -> HttpResponse {
    let mut problem = Problem::for_status(old.status());
    if let Some(detail) = detail {
        problem.detail = detail;
    }
    let mut new = problem.response();
    for (name, value) in old.headers() {
        // The new body is plain JSON: none of the old body's framing applies (a
        // compressed refusal would otherwise claim `Content-Encoding: gzip`).
        if name != header::CONTENT_TYPE
            && name != header::CONTENT_LENGTH
            && name != header::CONTENT_ENCODING
            && name != header::TRANSFER_ENCODING
        {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    new
}
