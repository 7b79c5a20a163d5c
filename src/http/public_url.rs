//! Where `end_point` sends clients (docs/protocol.md 2.1): the base URL in front of `client.path`.
//!
//! `server.public_url` set: that, as written. Empty (the default): derived from each request,
//! so that a broker on another port, behind a proxy or reached by another name answers a URL
//! that the asking client can reach: the `Host` header (or the HTTP/2 authority) names host
//! and port; `X-Forwarded-Proto` (a TLS terminator in front) or our own TLS picks `wss`.
//! Without a usable `Host` the listening address serves (loopback for an all-interfaces
//! bind, the one address that surely reaches it).
//!
//! The derivation is a plain function ([`derive`]) with unit tests; the handler in
//! `clients.rs` feeds it the request's headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use actix_web::HttpRequest;

/// The base of every `end_point` URL, fixed or derived per request.
#[derive(Debug, Clone)]
pub enum PublicUrl {
    /// `server.public_url` as configured, without a trailing `/`.
    Fixed(String),
    /// `server.public_url` empty: [`derive`] from each request.
    Derived { listen: SocketAddr, tls: bool },
}

impl PublicUrl {
    pub fn new(configured: &str, listen: SocketAddr, tls: bool) -> Self {
        let configured = configured.trim().trim_end_matches('/');
        if configured.is_empty() {
            Self::Derived { listen, tls }
        } else {
            Self::Fixed(configured.to_string())
        }
    }

    /// The base URL for a client that sent `req`.
    pub fn for_request(&self, req: &HttpRequest) -> String {
        match self {
            Self::Fixed(url) => url.clone(),
            Self::Derived { listen, tls } => {
                let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
                let authority = req.uri().authority().map(|a| a.as_str());
                derive(header("host").or(authority), header("x-forwarded-proto"), *tls, *listen)
            }
        }
    }

    /// The URL other nodes hand out for this node (several nodes share one Redis): the
    /// configured one, else the listening address (which only loopback clients can use: set
    /// `server.public_url` on every node of a real deployment).
    pub fn of_node(&self) -> String {
        match self {
            Self::Fixed(url) => url.clone(),
            Self::Derived { listen, tls } => derive(None, None, *tls, *listen),
        }
    }

    /// What the start-up log says about the `end_point` URLs (`path` = `client.path`).
    pub fn describe(&self, path: &str) -> String {
        match self {
            Self::Fixed(url) => format!("{url}{path} (server.public_url)"),
            Self::Derived { listen, tls } => format!(
                "ws(s)://<Host of each request>{path} (server.public_url is empty), without a Host {}{path}",
                derive(None, None, *tls, *listen)
            ),
        }
    }
}

/// `ws://` or `wss://` plus the authority a client used to reach us: `host` (the `Host`
/// header) when it is a plain `name[:port]`, else the listening address. The scheme is
/// `wss` when `forwarded_proto` (its first entry) says `https`/`wss`, `ws` when it says
/// `http`/`ws`, else by our own TLS.
pub fn derive(host: Option<&str>, forwarded_proto: Option<&str>, tls: bool, listen: SocketAddr) -> String {
    let proto = forwarded_proto.and_then(|p| p.split(',').next()).map(|p| p.trim().to_ascii_lowercase());
    let secure = match proto.as_deref() {
        Some("https" | "wss") => true,
        Some("http" | "ws") => false,
        _ => tls,
    };
    let scheme = if secure { "wss" } else { "ws" };
    match host.map(str::trim).filter(|h| is_authority(h)) {
        Some(host) => format!("{scheme}://{host}"),
        None => format!("{scheme}://{}", reachable(listen)),
    }
}

/// A `Host` value fit to put in a URL: a host name, IPv4 or `[IPv6]` literal, and an optional
/// port. Anything else (a path, user info, spaces) is not used.
fn is_authority(host: &str) -> bool {
    let is_port = |p: &str| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((v6, after)) => {
                v6.parse::<Ipv6Addr>().is_ok() && (after.is_empty() || after.strip_prefix(':').is_some_and(is_port))
            }
            None => false,
        };
    }
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    name_ok && port.is_none_or(is_port)
}

/// The listening address as a client can dial it: an all-interfaces bind answers loopback.
pub(crate) fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_host_header_names_host_and_port() {
        let at = listen("127.0.0.1:18510");
        assert_eq!(derive(Some("127.0.0.1:18510"), None, false, at), "ws://127.0.0.1:18510");
        assert_eq!(derive(Some("danmu.example.com"), None, false, at), "ws://danmu.example.com");
        assert_eq!(derive(Some("[::1]:9000"), None, false, at), "ws://[::1]:9000");
    }

    #[test]
    fn forwarded_proto_or_our_own_tls_picks_wss() {
        let at = listen("127.0.0.1:8080");
        assert_eq!(derive(Some("chat.example.com"), Some("https"), false, at), "wss://chat.example.com");
        assert_eq!(derive(Some("chat.example.com"), Some("HTTPS, http"), false, at), "wss://chat.example.com");
        assert_eq!(derive(Some("chat.example.com"), None, true, at), "wss://chat.example.com");
        assert_eq!(derive(Some("chat.example.com"), Some("http"), true, at), "ws://chat.example.com");
        assert_eq!(derive(Some("chat.example.com"), Some("gopher"), false, at), "ws://chat.example.com");
    }

    #[test]
    fn without_a_usable_host_the_listening_address_serves() {
        assert_eq!(derive(None, None, false, listen("127.0.0.1:18510")), "ws://127.0.0.1:18510");
        assert_eq!(derive(None, None, true, listen("0.0.0.0:8443")), "wss://127.0.0.1:8443");
        assert_eq!(derive(None, None, false, listen("[::]:8080")), "ws://[::1]:8080");
        for junk in ["", "evil.com/path", "user@host", "a b", "host:port", "host:", "[zz]:1", "::1"] {
            assert_eq!(derive(Some(junk), None, false, listen("10.1.2.3:80")), "ws://10.1.2.3:80", "{junk:?}");
        }
    }

    #[test]
    fn a_configured_url_wins_and_loses_its_trailing_slash() {
        let at = listen("127.0.0.1:8080");
        assert!(
            matches!(PublicUrl::new("wss://chat.example.com/", at, false), PublicUrl::Fixed(u) if u == "wss://chat.example.com")
        );
        assert!(matches!(PublicUrl::new("", at, true), PublicUrl::Derived { tls: true, .. }));
    }
}
