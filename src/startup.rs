//! What the broker checks and says as it starts (docs/operating.md, "Start-up"): binding the listener
//! with an error that names the address, and the lines an operator reads first: where it
//! listens, where BIGO, clients and the demo page connect, which store it uses, and the
//! settings that deserve a warning.
//!
//! [`crate::start`] and [`crate::start_on`] call these. The lines are built by plain
//! functions, so that tests read them without a logger.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};

use crate::config::{Config, StoreKind};

use crate::http::public_url::{self, PublicUrl};

/// Binds `host:port` (`server.host`, `server.port`). Every failure says which address it was
/// and why in words: `cannot listen on 127.0.0.1:8080: address already in use`.
pub fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    bind_as("server", host, port)
}

/// Binds `host:port` as [`bind`] does, for the listener whose keys are `{section}.host` and
/// `{section}.port` (`server`, `server.internal`): failures name those keys.
pub fn bind_as(section: &str, host: &str, port: u16) -> io::Result<TcpListener> {
    let shown = |addr: SocketAddr| match host.parse::<IpAddr>() {
        Ok(_) => addr.to_string(),
        Err(_) => format!("{host}:{port} ({addr})"),
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {host}:{port}: cannot resolve {section}.host: {e}"))
        })?
        .collect();
    let mut failure = io::Error::new(io::ErrorKind::NotFound, format!("cannot listen on {host}:{port}: no address"));
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => {
                failure = io::Error::new(e.kind(), format!("cannot listen on {}: {}", shown(addr), reason(section, &e)))
            }
        }
    }
    Err(failure)
}

/// A bind error in words an operator acts on.
fn reason(section: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            format!("address already in use (another process listens there; see {section}.port)")
        }
        io::ErrorKind::AddrNotAvailable => {
            format!("address not available (not an address of this machine; see {section}.host)")
        }
        io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges)".into(),
        _ => e.to_string(),
    }
}

/// The start-up lines: the listener (and the internal one, `internal`, when
/// `server.internal` is set), every entry point as a URL, the store.
pub fn report(
    config: &Config,
    local_addr: SocketAddr,
    internal: Option<SocketAddr>,
    public_url: &PublicUrl,
) -> Vec<String> {
    let tls = config.server.tls.is_some();
    let (http, ws) = if tls { ("https", "wss") } else { ("http", "ws") };
    // URLs name an address one can dial: an all-interfaces bind shows loopback.
    let at = public_url::reachable(local_addr);
    let everywhere = if local_addr.ip().is_unspecified() { ", every interface" } else { "" };
    let mut lines = vec![
        format!("danmu-broker {} listening on {local_addr} ({http}/{ws}{everywhere})", env!("CARGO_PKG_VERSION")),
        format!("BIGO ingress: {ws}://{at}{}", config.bigo.path),
        format!("clients: {http}://{at}/iapi/websocket/end_point, WebSocket {ws}://{at}{}", config.client.path),
        format!("end_point: {}", public_url.describe(&config.client.path)),
    ];
    lines.push(match internal {
        None => format!(
            "live rooms: {http}://{at}/iapi/rooms; operations: {http}://{at}/healthz, {http}://{at}/metrics; \
             OpenAPI: {http}://{at}/iapi/openapi.json"
        ),
        Some(internal) => {
            // Plain HTTP: TLS (server.tls) ends at the public listener.
            let on = public_url::reachable(internal);
            format!(
                "live rooms: {http}://{at}/iapi/rooms; operator endpoints on the internal listener {internal} \
                 (server.internal, http; the public listener answers 404 for them): http://{on}/healthz, \
                 http://{on}/metrics, admin http://{on}/iapi/admin, OpenAPI http://{on}/iapi/openapi.json"
            )
        }
    });
    if config.demo.enabled {
        lines.push(format!("demo page: {http}://{at}/demo"));
    }
    lines.push(match config.store.kind {
        StoreKind::Memory => "store: memory (rooms and counters live in this process only)".to_string(),
        StoreKind::Redis => format!(
            "store: redis at {} (key prefix {:?})",
            redacted_url(&config.store.redis_url),
            config.store.key_prefix
        ),
        StoreKind::RedisCluster => format!(
            "store: redis-cluster seeded by {} (key prefix {:?})",
            config.store.cluster_nodes.iter().map(|u| redacted_url(u)).collect::<Vec<_>>().join(", "),
            config.store.key_prefix
        ),
    });
    lines
}

/// Settings that work but that an operator should know about (what the listeners' addresses
/// make dangerous is `crate::exposure`'s).
pub fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.bigo.pull.enabled && config.bigo.api_token.is_empty() {
        warnings.push("bigo.pull.enabled is on but bigo.api_token is empty: BIGO will refuse every pull".into());
    }
    warnings
}

/// `url` with its password replaced by `***`: the user-info password
/// (`redis://user:secret@host`) and a `pass=`/`password=` query parameter
/// (`redis+unix:///run/redis.sock?pass=secret`).
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("pass") || key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_password_is_masked_and_the_rest_kept() {
        assert_eq!(redacted_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redacted_url("redis://:s3cret@10.0.0.5:6379/0"), "redis://:***@10.0.0.5:6379/0");
        assert_eq!(redacted_url("rediss://app:p@ss@cache.example.com/"), "rediss://app:***@cache.example.com/");
        assert_eq!(redacted_url("redis://app@cache:6379"), "redis://app@cache:6379");
        assert_eq!(
            redacted_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(redacted_url("not a url"), "not a url");
    }

    #[test]
    fn a_port_in_use_is_named_with_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind("127.0.0.1", port).unwrap_err().to_string();
        assert!(err.starts_with(&format!("cannot listen on 127.0.0.1:{port}: address already in use")), "{err}");
    }

    #[test]
    fn the_report_names_every_entry_point_and_the_store() {
        let mut config = Config::default();
        config.demo.enabled = true;
        config.store.kind = StoreKind::Redis;
        config.store.redis_url = "redis://:hunter2@10.0.0.5:6379".into();
        let at: SocketAddr = "0.0.0.0:18510".parse().unwrap();
        let lines = report(&config, at, None, &PublicUrl::new("", at, false)).join("\n");
        for needle in [
            "listening on 0.0.0.0:18510 (http/ws, every interface)",
            "BIGO ingress: ws://127.0.0.1:18510/bigo/ws",
            "http://127.0.0.1:18510/iapi/websocket/end_point",
            "demo page: http://127.0.0.1:18510/demo",
            "store: redis at redis://:***@10.0.0.5:6379",
        ] {
            assert!(lines.contains(needle), "{needle:?} missing from\n{lines}");
        }
        assert!(!lines.contains("hunter2"), "{lines}");
        assert!(
            lines.contains("operations: http://127.0.0.1:18510/healthz, http://127.0.0.1:18510/metrics"),
            "{lines}"
        );
    }

    #[test]
    fn with_an_internal_listener_the_report_sends_operators_there() {
        let at: SocketAddr = "0.0.0.0:18510".parse().unwrap();
        let internal: SocketAddr = "127.0.0.1:19090".parse().unwrap();
        let lines = report(&Config::default(), at, Some(internal), &PublicUrl::new("", at, false)).join("\n");
        for needle in [
            "operator endpoints on the internal listener 127.0.0.1:19090",
            "http://127.0.0.1:19090/metrics",
            "admin http://127.0.0.1:19090/iapi/admin",
            "OpenAPI http://127.0.0.1:19090/iapi/openapi.json",
        ] {
            assert!(lines.contains(needle), "{needle:?} missing from\n{lines}");
        }
        assert!(!lines.contains("18510/metrics"), "{lines}");
    }

    #[test]
    fn a_port_in_use_on_the_internal_listener_names_its_key() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind_as("server.internal", "127.0.0.1", port).unwrap_err().to_string();
        assert!(err.contains("address already in use") && err.contains("see server.internal.port"), "{err}");
    }
}
