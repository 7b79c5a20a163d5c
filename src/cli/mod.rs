//! The by-hand tools of the `danmu-broker` binary, as `nats sub` / `nats pub` are NATS's: a
//! person tries a broker with them instead of hand-writing the protocol.
//!
//! - [`listen`]: a real app client (docs/protocol.md 2): `end_point`, `connected`, signed frames,
//!   heartbeats, `enter_room_report`; prints each room event as one JSON line; reconnects and
//!   recovers with `last_seq` and `epoch`. [`inflating_io`] gives its WebSocket
//!   permessage-deflate (docs/protocol.md 2.8).
//! - [`push`]: one signed `dataReception` as BIGO sends it (docs/protocol.md 1), its answer printed.
//! - [`simulate`]: the BIGO stand-in (`danmu-simulator`), and with `--live-room` a live room
//!   (docs/protocol.md 3) that its danmu reach, for the demo page's list.
//! - [`check_config`]: loads and checks the configuration as serving does, prints it as YAML
//!   with the secrets masked.
//!
//! They are clients of the broker, not part of it: they live in the binary, beside `main.rs`,
//! and reach the server library only for its configuration, its JWTs and its start-up checks.
//! BIGO's frames and login come from `actors::protocol::bigo_client` and the simulator's
//! [`danmu_simulator::Target`]; the client frame sign from `actors::protocol::sign`.
//! Room events go to stdout, everything else (status, errors) to stderr, so that stdout can be
//! piped into `jq` or a file.

pub mod check_config;
pub mod inflating_io;
pub mod listen;
pub mod push;
pub mod simulate;

/// `url` as given, or with `default_path` when it names no path (`ws://host:port` or
/// `ws://host:port/`): `--url` takes a base or a full URL.
fn with_default_path(url: &str, default_path: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if after_scheme.contains('/') {
        url.to_string()
    } else {
        format!("{trimmed}{default_path}")
    }
}

/// An HTTP base URL for `url`: `ws://` and `wss://` are taken for `http://` and `https://`, a
/// trailing `/` is dropped.
fn http_base(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_default_path_and_a_full_one_is_kept() {
        assert_eq!(with_default_path("ws://127.0.0.1:8080", "/bigo/ws"), "ws://127.0.0.1:8080/bigo/ws");
        assert_eq!(with_default_path("ws://127.0.0.1:8080/", "/bigo/ws"), "ws://127.0.0.1:8080/bigo/ws");
        assert_eq!(with_default_path("wss://h/in", "/bigo/ws"), "wss://h/in");
        assert_eq!(with_default_path("127.0.0.1:1", "/p"), "127.0.0.1:1/p");
    }

    #[test]
    fn websocket_schemes_name_the_http_base() {
        assert_eq!(http_base("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(http_base("ws://h:1"), "http://h:1");
        assert_eq!(http_base("wss://h"), "https://h");
    }
}
