//! Who a request comes from when it passes through proxies: the TCP peer, unless the
//! peer is a proxy the operator trusts (`TRUSTED_PROXIES`); then the address that proxy
//! says it forwarded for. Every transport asks here, so rate limits, the per-address
//! live caps and the request log all count the same client.
//!
//! **A forwarding header is believed only from a trusted peer**, and only as far as the
//! chain of trusted proxies goes: each proxy appends the address it received from, so
//! the client is the rightmost address that is not itself a trusted proxy. Anything to
//! its left was written by the client and proves nothing.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// Forwarded addresses examined at most, from the right: a chain of proxies is short,
/// and a header of thousands of entries must not cost thousands of parses.
const MAX_HOPS: usize = 16;

/// The networks whose peers may say, in `Forwarded` or `X-Forwarded-For`, whom they
/// forward for. Empty (the default): nobody, and the TCP peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of CIDRs (`10.0.0.0/8`) or single addresses
    /// (`192.0.2.7`, `::1`); blanks are ignored.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                IpNet::from_str(item)
                    .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                    .map_err(|_| format!("`{item}` is not a CIDR (10.0.0.0/8) nor an address"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the trusted networks (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer`, reading its forwarding headers through
    /// `header` (every field line of that name joined with commas) only when the peer
    /// is trusted: from anyone else they are not even read.
    pub fn client_of(&self, peer: IpAddr, header: impl Fn(&str) -> Option<String>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        self.client(
            peer,
            header("forwarded").as_deref(),
            header("x-forwarded-for").as_deref(),
        )
    }

    /// The client of a request from `peer` whose forwarding headers are `forwarded`
    /// (RFC 7239 `Forwarded`) and `x_forwarded_for`, each every field line of that name
    /// joined with commas. `Forwarded` wins when both are present.
    pub fn client(
        &self,
        peer: IpAddr,
        forwarded: Option<&str>,
        x_forwarded_for: Option<&str>,
    ) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let chain: Vec<&str> = match (forwarded, x_forwarded_for) {
            (Some(forwarded), _) => forwarded
                .rsplit(',')
                .take(MAX_HOPS)
                .map(|element| forwarded_for(element).unwrap_or(""))
                .collect(),
            (None, Some(list)) => list.rsplit(',').take(MAX_HOPS).collect(),
            (None, None) => Vec::new(),
        };
        let mut client = peer;
        for hop in chain {
            match node(hop) {
                Some(ip) if self.contains(ip) => client = ip,
                Some(ip) => return canonical(ip),
                // `unknown`, an obfuscated name, garbage: the trusted proxy to its right
                // is as far as the chain can be believed.
                None => return client,
            }
        }
        client
    }
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.60;proto=http`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as forwarding headers write it: `192.0.2.60`, `192.0.2.60:4711`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn node(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    if let Some(rest) = raw.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return Ipv6Addr::from_str(v6).ok().map(IpAddr::V6);
    }
    if let Ok(ip) = IpAddr::from_str(raw) {
        return Some(ip);
    }
    // IPv4 with a port; an IPv6 address without brackets has more than one colon and
    // was parsed above.
    let (v4, port) = raw.split_once(':')?;
    port.parse::<u16>().ok()?;
    v4.parse().ok().map(IpAddr::V4)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::parse("10.0.0.0/8, 127.0.0.1, ::1").unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let peer = ip("203.0.113.9");
        assert_eq!(proxies().client(peer, None, Some("198.51.100.1")), peer);
        assert_eq!(proxies().client(peer, Some("for=198.51.100.1"), None), peer);
        assert_eq!(
            TrustedProxies::default().client(peer, None, Some("1.2.3.4")),
            peer
        );
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_rightmost_untrusted_address() {
        let lb = ip("10.0.0.2");
        // The client wrote the first entry itself: it proves nothing.
        let header = "6.6.6.6, 198.51.100.1, 10.0.0.7";
        assert_eq!(proxies().client(lb, None, Some(header)), ip("198.51.100.1"));
        let forwarded = r#"for=6.6.6.6, for="[2001:db8::1]:4711";proto=https, for=10.0.0.7"#;
        assert_eq!(
            proxies().client(lb, Some(forwarded), Some("9.9.9.9")),
            ip("2001:db8::1")
        );
        assert_eq!(
            proxies().client(lb, None, Some("198.51.100.1:5000")),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_chain_that_cannot_be_read_stops_at_the_last_trusted_hop() {
        let lb = ip("10.0.0.2");
        assert_eq!(proxies().client(lb, None, None), lb);
        assert_eq!(
            proxies().client(lb, None, Some("garbage, 10.0.0.7")),
            ip("10.0.0.7")
        );
        assert_eq!(proxies().client(lb, Some("for=unknown"), None), lb);
        assert_eq!(
            proxies().client(lb, None, Some("10.1.1.1, 10.0.0.7")),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn a_long_header_costs_at_most_a_few_hops() {
        let lb = ip("10.0.0.2");
        let header = vec!["10.9.9.9"; 10_000].join(",") + ",198.51.100.1";
        assert_eq!(
            proxies().client(lb, None, Some(&header)),
            ip("198.51.100.1")
        );
        let all_trusted = vec!["10.9.9.9"; 10_000].join(",");
        // Past MAX_HOPS trusted entries the chain is not followed further.
        assert_eq!(
            proxies().client(lb, None, Some(&all_trusted)),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn mapped_addresses_and_bad_lists() {
        assert!(proxies().contains(ip("::ffff:10.1.2.3")));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
    }
}
