//! Header hygiene between client and upstream.
//!
//! An allowed request leaves with the client's credentials gone, hop-by-hop
//! headers (and every header `Connection` names) gone, `X-Forwarded-*` set by
//! us rather than trusted, and the upstream's configured headers added. A
//! response comes back with its own hop-by-hop headers removed.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use smallvec::SmallVec;

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Headers that may carry a client credential; none reaches an upstream.
pub const CREDENTIAL_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    HeaderName::from_static("private-token"),
    HeaderName::from_static("x-gitlab-token"),
    header::COOKIE,
];

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Whether `name` is a hop-by-hop header (`Transfer-Encoding` included,
/// which hyper manages itself).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(name)
}

/// Removes hop-by-hop headers and every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    remove_where(headers, is_hop_by_hop);
}

/// Removes every header `unwanted` picks and, when `Connection` is among
/// them, every header it names. One walk over the headers that are there,
/// then one removal per header found: asking for each unwanted name in turn
/// would hash a dozen names that a request almost never carries.
fn remove_where(headers: &mut HeaderMap, unwanted: impl Fn(&HeaderName) -> bool) {
    let mut doomed: SmallVec<[HeaderName; 8]> = headers
        .keys()
        .filter(|name| unwanted(name))
        .cloned()
        .collect();
    if doomed.contains(&header::CONNECTION) {
        let listed = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok());
        doomed.extend(listed);
    }
    for name in &doomed {
        headers.remove(name);
    }
}

/// Where a request came from, for the `X-Forwarded-*` headers.
#[derive(Clone, Copy, Debug)]
pub struct ClientInfo<'a> {
    /// The client's address as a header value ([`forwarded_for`]), made once
    /// per connection.
    pub forwarded_for: &'a HeaderValue,
    /// `https` when repogate terminated TLS, else `http`.
    pub proto: &'static str,
}

/// The `X-Forwarded-For` value for a client address.
pub fn forwarded_for(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).expect("an IP address is a valid header value")
}

/// Rewrites an allowed request's headers for its upstream. `authority` is
/// the request target's, which an HTTP/2 or absolute-form request carries
/// instead of a `Host` header.
pub fn prepare_request(
    headers: &mut HeaderMap,
    client: ClientInfo<'_>,
    authority: Option<&Authority>,
    inject: &[(HeaderName, HeaderValue)],
) {
    let host = headers
        .remove(header::HOST)
        .or_else(|| authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
    remove_where(headers, |name| {
        is_hop_by_hop(name)
            || CREDENTIAL_HEADERS.contains(name)
            || [&FORWARDED, &X_REAL_IP, &X_FORWARDED_HOST, &header::HOST].contains(&name)
    });

    // Replace, never append: what the client claims about itself is not trusted.
    headers.insert(X_FORWARDED_FOR.clone(), client.forwarded_for.clone());
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(client.proto),
    );
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }

    for (name, value) in inject {
        headers.insert(name.clone(), value.clone());
    }
}

/// Rewrites an upstream response's headers for the client.
pub fn prepare_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn connection_listed_and_hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic abc"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn request_loses_credentials_and_spoofed_forwarding_and_gains_injected_headers() {
        let mut h = map(&[
            ("authorization", "Bearer rgt_x"),
            ("private-token", "rgt_y"),
            ("x-gitlab-token", "rgt_z"),
            ("cookie", "_gitlab_session=abc"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("host", "gate.local"),
            ("accept", "application/json"),
        ]);
        let client = ClientInfo {
            forwarded_for: &forwarded_for("127.0.0.9".parse().unwrap()),
            proto: "https",
        };
        let inject = [(
            HeaderName::from_static("private-token"),
            HeaderValue::from_static("glpat-real"),
        )];
        prepare_request(&mut h, client, None, &inject);

        assert_eq!(h["x-forwarded-for"], "127.0.0.9");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "gate.local");
        assert_eq!(h["private-token"], "glpat-real");
        for gone in [
            "authorization",
            "x-gitlab-token",
            "cookie",
            "forwarded",
            "x-real-ip",
            "host",
        ] {
            assert!(!h.contains_key(gone), "{gone} survived");
        }
        assert_eq!(h["accept"], "application/json");
    }

    #[test]
    fn spoofed_forwarded_host_is_dropped_when_the_client_named_no_host() {
        let mut h = map(&[
            ("x-forwarded-host", "evil.example"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
        ]);
        let client = ClientInfo {
            forwarded_for: &forwarded_for("127.0.0.9".parse().unwrap()),
            proto: "http",
        };
        prepare_request(&mut h, client, None, &[]);

        assert!(!h.contains_key("x-forwarded-host"), "{h:?}");
        assert!(!h.contains_key("x-hop"), "{h:?}");
        assert_eq!(h.len(), 2, "only X-Forwarded-For and -Proto remain: {h:?}");
    }

    #[test]
    fn the_request_target_authority_stands_in_for_a_missing_host() {
        let mut h = map(&[("accept", "*/*")]);
        let client = ClientInfo {
            forwarded_for: &forwarded_for("::1".parse().unwrap()),
            proto: "https",
        };
        let authority = Authority::from_static("gate.local:8443");
        prepare_request(&mut h, client, Some(&authority), &[]);

        assert_eq!(h["x-forwarded-host"], "gate.local:8443");
        assert_eq!(h["x-forwarded-for"], "::1");
        assert!(!h.contains_key("host"));
    }

    #[test]
    fn hop_by_hop_names_are_recognised() {
        assert!(is_hop_by_hop(&header::TRANSFER_ENCODING));
        assert!(is_hop_by_hop(&header::CONNECTION));
        assert!(!is_hop_by_hop(&HeaderName::from_static("private-token")));
    }
}
