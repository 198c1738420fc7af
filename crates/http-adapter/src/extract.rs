//! Reading a request: the strict JSON body extractor (every way a body can be wrong
//! gets its own status and a problem naming the field, instead of the framework's
//! plain-text errors), optional-but-not-null fields, and ids from the path.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::config::{DEFAULT_BODY_LIMIT, HttpConfig};
use crate::problem::{ApiError, FieldProblem, Problem};

/// An id from the path (`UserId`, `PostId`, `JobId`): `400` naming it when it is not one.
pub(crate) fn path_id<T>(raw: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = domain::FieldError>,
{
    raw.parse().map_err(|e| ApiError::bad_request(&e))
}

/// A field that may be absent but, when present, must be a string: `null` is a type
/// error naming the field, not a silent "keep the old value".
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::Deserialize;
    String::deserialize(d).map(Some)
}

/// A body limit for one resource, overriding `HttpConfig::body_limit` (posts may be
/// longer than anything else).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonLimit(pub(crate) usize);

/// The raw bytes of a JSON body, kept in the request's extensions by [`Json`] (the
/// idempotency fingerprint hashes them).
#[derive(Debug, Clone)]
pub(crate) struct RawBody(pub(crate) web::Bytes);

/// A JSON body deserialized into `T`.
///
/// `415` unless the content type is JSON, `413` past the body limit, `400` for bytes that
/// are not JSON, `422` naming the field for JSON of the wrong shape (missing, unknown or
/// mistyped fields).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<JsonLimit>().map(|l| l.0).unwrap_or_else(|| {
            req.app_data::<web::Data<HttpConfig>>()
                .map_or(DEFAULT_BODY_LIMIT, |c| c.body_limit)
        });
        let checked = check_headers(req, limit);
        let mut payload = payload.take();
        let req = req.clone();
        Box::pin(async move {
            checked?;
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| malformed("the request body could not be read"))?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            let body = body.freeze();
            let parsed = parse(&body).map(Json);
            req.extensions_mut().insert(RawBody(body));
            parsed
        })
    }
}

fn check_headers(req: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json"
        && !(essence.starts_with("application/") && essence.ends_with("+json"))
    {
        return Err(ApiError::problem(Problem::for_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    Ok(())
}

fn too_large(limit: usize) -> ApiError {
    let mut problem = Problem::for_status(StatusCode::PAYLOAD_TOO_LARGE);
    problem.detail = format!("the request body exceeds {limit} bytes");
    ApiError::problem(problem)
}

fn malformed(detail: impl Into<String>) -> ApiError {
    ApiError::problem(Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "Bad Request",
        detail,
    ))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed("the request body is empty"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => invalid_field(&path, &inner),
            _ => malformed(format!("the request body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| malformed(format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A `422` for JSON of the wrong shape, naming the field.
fn invalid_field(path: &str, error: &serde_json::Error) -> ApiError {
    let full = error.to_string();
    // serde_json appends " at line L column C"; the field name says where.
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m)
        .to_owned();
    let quoted = || message.split('`').nth(1).map(str::to_owned);
    let (field, message) = if message.starts_with("missing field") {
        let name = quoted().unwrap_or_default();
        (join(path, &name), "is required".to_owned())
    } else if message.starts_with("unknown field") {
        // Here the path already ends with the unknown key.
        let name = quoted().unwrap_or_default();
        let field = if path.ends_with(name.as_str()) {
            path.to_owned()
        } else {
            join(path, &name)
        };
        (field, "is not a known field".to_owned())
    } else if path == "." || path.is_empty() || path.starts_with('[') {
        // The body itself has the wrong shape (serde would read an array as a struct's
        // fields in order, so a top-level array fails at `[0]`).
        ("body".to_owned(), "must be a JSON object".to_owned())
    } else {
        // Never leak Rust type names ("expected struct Foo") to clients.
        let message = match message.split_once("expected struct") {
            Some((head, _)) => format!("{head}expected an object"),
            None => message,
        };
        (path.to_owned(), message)
    };
    ApiError::problem(
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Unprocessable Entity",
            "the request has invalid fields",
        )
        .with_errors([FieldProblem { field, message }]),
    )
}

fn join(path: &str, name: &str) -> String {
    if path == "." || path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}
