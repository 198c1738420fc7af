//! The client of an HTTP request: the TCP peer, or, behind a trusted proxy, whom the
//! proxy forwarded for (see `ports::client`).

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, web};

use crate::config::HttpConfig;

/// The client's address; `None` only for a request without a peer (a test request).
pub(crate) fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let Some(config) = req.app_data::<web::Data<HttpConfig>>() else {
        return Some(peer);
    };
    Some(
        config
            .trusted_proxies
            .client_of(peer, |name| joined(req.headers(), name)),
    )
}

/// Every field line of `name`, joined with commas (RFC 9110 §5.3); lines that are not
/// text are left out.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join(","))
}
