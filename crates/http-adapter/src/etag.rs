//! Entity tags from versions: `ETag: "7"` for version 7, checked by `If-Match` on writes
//! and `If-None-Match` on reads.

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::ETAG;
use actix_web::http::header::{IF_MATCH, IF_NONE_MATCH};
use domain::Version;

use crate::problem::{ApiError, Problem};

/// The strong entity tag of a version.
pub(crate) fn etag(version: Version) -> String {
    format!("\"{version}\"")
}

fn precondition_failed(detail: &str) -> ApiError {
    let mut problem = Problem::for_status(StatusCode::PRECONDITION_FAILED);
    problem.detail = detail.to_owned();
    ApiError::problem(problem)
}

/// The version a write must still find, from `If-Match`.
///
/// No header or `*`: no condition (last write wins). One strong tag made by [`etag`]:
/// that version. Anything else — a weak tag (never equal under the strong comparison
/// `If-Match` uses), several tags, garbage — cannot match, so it is `412` at once.
pub(crate) fn if_match(req: &HttpRequest) -> Result<Option<Version>, ApiError> {
    let Some(header) = req.headers().get(IF_MATCH) else {
        return Ok(None);
    };
    let value = header
        .to_str()
        .map_err(|_| precondition_failed("If-Match is not a valid entity tag"))?
        .trim();
    if value == "*" {
        return Ok(None);
    }
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(Version::new)
        .map(Some)
        .ok_or_else(|| {
            precondition_failed("If-Match must be one strong entity tag from an ETag header")
        })
}

/// Whether `If-None-Match` already names this version (weak comparison, as RFC 9110
/// asks for `If-None-Match`), so a `304 Not Modified` will do.
pub(crate) fn not_modified(req: &HttpRequest, version: Version) -> bool {
    let Some(value) = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let current = etag(version);
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current)
}

/// `200` with `body` and the version's `ETag`.
pub(crate) fn ok(version: Version, body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((ETAG, etag(version)))
        .json(body)
}

/// A read honouring `If-None-Match`: `304 Not Modified` (with the `ETag`) when the
/// client already has this version, else [`ok`].
pub(crate) fn conditional(
    req: &HttpRequest,
    version: Version,
    body: impl serde::Serialize,
) -> HttpResponse {
    if not_modified(req, version) {
        return HttpResponse::NotModified()
            .insert_header((ETAG, etag(version)))
            .finish();
    }
    ok(version, body)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn v(n: i64) -> Version {
        Version::new(n).unwrap()
    }

    #[test]
    fn if_match_accepts_one_strong_tag_or_star() {
        let req = |h: &str| {
            TestRequest::default()
                .insert_header((IF_MATCH, h))
                .to_http_request()
        };
        assert_eq!(
            if_match(&TestRequest::default().to_http_request()).unwrap(),
            None
        );
        assert_eq!(if_match(&req("*")).unwrap(), None);
        assert_eq!(if_match(&req("\"3\"")).unwrap(), Some(v(3)));
        for bad in ["W/\"3\"", "3", "\"3\", \"4\"", "\"x\"", "\"0\"", ""] {
            assert!(if_match(&req(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let req = |h: &str| {
            TestRequest::default()
                .insert_header((IF_NONE_MATCH, h))
                .to_http_request()
        };
        assert!(not_modified(&req("\"3\""), v(3)));
        assert!(not_modified(&req("W/\"3\""), v(3)));
        assert!(not_modified(&req("\"1\", \"3\""), v(3)));
        assert!(not_modified(&req("*"), v(3)));
        assert!(!not_modified(&req("\"2\""), v(3)));
        assert!(!not_modified(
            &TestRequest::default().to_http_request(),
            v(3)
        ));
    }
}
