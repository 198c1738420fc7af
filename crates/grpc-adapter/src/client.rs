//! The client of a call: the TCP peer, or, behind a trusted L7 proxy, whom the proxy
//! forwarded for (see `ports::client`), as HTTP counts it.

use ports::client::TrustedProxies;
use ports::rate_limit::ClientKey;
use tonic::Request;

pub(crate) fn client_key<T>(request: &Request<T>, trusted: &TrustedProxies) -> ClientKey {
    let Some(peer) = request.remote_addr().map(|a| a.ip()) else {
        return ClientKey::of(None);
    };
    let joined = |name: &str| {
        let lines: Vec<&str> = request
            .metadata()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!lines.is_empty()).then(|| lines.join(","))
    };
    ClientKey::of(Some(trusted.client_of(peer, joined)))
}
