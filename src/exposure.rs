//! What a broker may not start with once it faces a network (issue 23; the security model is
//! `docs/security.md`). A broker whose listeners are all on loopback (a developer's machine)
//! names its weak spots in warnings; one that listens on any other address refuses to start
//! with them, each refusal naming the key and what it would expose:
//!
//! - secrets left at their shipped value, and `auth.jwt_secret` or `admin.key` shorter than
//!   32 bytes ([`crate::secrets`]);
//! - the demo's token minting: `demo.enabled` on a non-loopback `server.host` lets anyone who
//!   reaches the port act as any viewer, unless `demo.public: true` says the operator means it.
//!
//! [`check`] runs in [`crate::start_on`] before anything is started, and in
//! `danmu-broker check-config`, so that the two refuse alike.

use std::net::IpAddr;

use crate::config::Config;
use crate::secrets;

pub use crate::secrets::Facing;

/// Start-up's verdict for `config` on the public listener's address `public` and the internal
/// one's `internal`: the warnings to log, or every refusal (one a line).
pub fn check(config: &Config, public: IpAddr, internal: Option<IpAddr>) -> Result<Vec<String>, String> {
    let facing = Facing::of(public, internal);
    let mut warnings = Vec::new();
    let mut refusals = Vec::new();
    for outcome in [secrets::shipped(config, facing), secrets::short(config, facing), demo(config, public)] {
        match outcome {
            Ok(warning) => warnings.extend(warning),
            Err(refusal) => refusals.push(refusal),
        }
    }
    if refusals.is_empty() {
        Ok(warnings)
    } else {
        Err(refusals.join("\n"))
    }
}

/// The demo on the public listener's address `public`: `POST /demo/token` mints a client
/// token for any `user_id` it is asked for.
fn demo(config: &Config, public: IpAddr) -> Result<Option<String>, String> {
    if !config.demo.enabled {
        return Ok(None);
    }
    const EXPOSES: &str = "POST /demo/token mints a client token for any user_id, so anyone who reaches the port \
                           can send messages as any viewer, take their seat and replace their connection";
    if public.is_loopback() {
        return Ok(Some(format!(
            "demo.enabled is on: {EXPOSES}; fine on loopback, refused on any other address unless demo.public: true"
        )));
    }
    if config.demo.public {
        return Ok(Some(format!("demo.enabled and demo.public are on, on {public}: {EXPOSES}")));
    }
    Err(format!(
        "refusing to start: server.host {public} is not a loopback address and demo.enabled is on: {EXPOSES}. \
         Set demo.enabled: false (DANMU__DEMO__ENABLED=false), or demo.public: true (DANMU__DEMO__PUBLIC=true) to \
         serve it to everyone anyway"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Every secret set, long enough.
    fn strong() -> Config {
        let mut c = Config::default();
        c.auth.jwt_secret = "j".repeat(32);
        c.admin.key = "a".repeat(32);
        c.bigo.accounts[0].password = "bigo".into();
        c.live.push_key = "push".into();
        c.live.callback_key = "callback".into();
        c
    }

    #[test]
    fn a_listener_off_loopback_is_named_the_public_one_first() {
        assert_eq!(Facing::of(ip("127.0.0.1"), None), Facing::Loopback);
        assert_eq!(Facing::of(ip("::1"), Some(ip("127.0.0.1"))), Facing::Loopback);
        assert_eq!(
            Facing::of(ip("0.0.0.0"), Some(ip("10.0.0.2"))),
            Facing::Network { key: "server.host", ip: ip("0.0.0.0") }
        );
        assert_eq!(
            Facing::of(ip("127.0.0.1"), Some(ip("10.0.0.2"))),
            Facing::Network { key: "server.internal.host", ip: ip("10.0.0.2") }
        );
    }

    #[test]
    fn strong_secrets_without_the_demo_start_anywhere_in_silence() {
        assert_eq!(check(&strong(), ip("0.0.0.0"), Some(ip("10.0.0.2"))), Ok(vec![]));
    }

    #[test]
    fn the_demo_off_loopback_is_refused_naming_both_keys_and_what_it_exposes() {
        let mut c = strong();
        c.demo.enabled = true;
        let warning = check(&c, ip("127.0.0.1"), None).unwrap().join("\n");
        assert!(warning.contains("demo.enabled is on"), "{warning}");
        // The internal listener does not serve the demo: only server.host counts.
        assert!(check(&c, ip("127.0.0.1"), Some(ip("10.0.0.2"))).is_ok());
        let refusal = check(&c, ip("0.0.0.0"), None).unwrap_err();
        for needle in ["server.host 0.0.0.0", "demo.enabled", "demo.public: true", "/demo/token", "any user_id"] {
            assert!(refusal.contains(needle), "{needle:?} missing: {refusal}");
        }
        c.demo.public = true;
        let warning = check(&c, ip("0.0.0.0"), None).unwrap().join("\n");
        assert!(warning.contains("demo.public are on, on 0.0.0.0"), "{warning}");
    }

    #[test]
    fn every_refusal_is_given_at_once() {
        let mut c = Config::default();
        c.demo.enabled = true;
        c.admin.key = "short".into();
        let refusal = check(&c, ip("0.0.0.0"), None).unwrap_err();
        let lines: Vec<&str> = refusal.lines().collect();
        assert_eq!(lines.len(), 3, "{refusal}");
        assert!(lines.iter().all(|l| l.starts_with("refusing to start: server.host 0.0.0.0")), "{refusal}");
        assert!(lines[0].contains("auth.jwt_secret") && lines[0].contains("change-me"), "{refusal}");
        assert!(lines[1].contains("admin.key (5 bytes)"), "{refusal}");
        assert!(lines[2].contains("demo.enabled"), "{refusal}");
    }

    #[test]
    fn an_internal_listener_off_loopback_is_named_in_a_secret_refusal() {
        let mut c = strong();
        c.admin.key = "short".into();
        let refusal = check(&c, ip("127.0.0.1"), Some(ip("10.0.0.2"))).unwrap_err();
        assert!(refusal.contains("server.internal.host 10.0.0.2 is not a loopback address"), "{refusal}");
        assert!(refusal.contains("admin.key (5 bytes)"), "{refusal}");
    }
}
