//! `danmu-broker check-config`: the configuration loaded exactly as serving loads it (the
//! file, or the defaults without one, then the `DANMU__*` environment: `config::load`, called
//! by `main`, which reports its errors with exit status 2), then the checks start-up makes
//! before it binds (the TLS files readable and matching, and what `danmu_broker::exposure`
//! refuses on a non-loopback `server.host` or `server.internal.host`: shipped or short secrets,
//! the demo), then the effective configuration printed as YAML with every secret masked.
//! Exit status 0 when serving would start, 2 with a message naming the key when it would not.
//! Start-up's warnings go to stderr.
//!
//! Masked are `auth.jwt_secret`, `admin.key`, the `bigo.accounts` passwords,
//! `bigo.api_token`, `live.push_key`, `live.play_key`, `live.callback_key` (each `***`, or `""`
//! when empty, since an empty key means "off") and the password in `store.redis_url`.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;

use danmu_broker::config::{self, Config};
use danmu_broker::{exposure, startup, tls};
use yaml_rust2::{YamlEmitter, YamlLoader};

/// What a masked secret shows.
const MASK: &str = "***";

/// Checks `config`, loaded from `path` (`main` reports a load error, with exit status 2), and
/// prints it.
pub fn run(config: &Config, path: &Path) -> ExitCode {
    let exposure_warnings = match start_up_checks(config) {
        Ok(warning) => warning,
        Err(e) => {
            // One line per refusal (`exposure::check` gives them all at once).
            for line in e.lines() {
                eprintln!("danmu-broker check-config: {line}");
            }
            return ExitCode::from(2);
        }
    };
    let yaml = match to_yaml(&masked(config)) {
        Ok(yaml) => yaml,
        Err(e) => {
            eprintln!("danmu-broker check-config: cannot print the configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    for warning in startup::warnings(config).into_iter().chain(exposure_warnings) {
        eprintln!("danmu-broker check-config: warning: {warning}");
    }
    println!("# danmu-broker check-config: valid; {}; secrets masked", config::describe_source(path));
    print!("{yaml}");
    ExitCode::SUCCESS
}

/// The checks of `danmu_broker::start_on` that need no listener: the TLS files, and
/// `exposure::check` against the addresses `server.host` and `server.internal.host` name
/// (warnings on loopback).
fn start_up_checks(config: &Config) -> Result<Vec<String>, String> {
    if let Some(tls) = &config.server.tls {
        tls::server_config(tls).map_err(|e| e.to_string())?;
    }
    let public = address_of("server.host", &config.server.host)?;
    let internal = config.server.internal.as_ref().map(|i| address_of("server.internal.host", &i.host)).transpose()?;
    exposure::check(config, public, internal)
}

/// The address `host` (the value of `key`) names, as binding would resolve it.
fn address_of(key: &str, host: &str) -> Result<IpAddr, String> {
    let addr = (host, 0)
        .to_socket_addrs()
        .map_err(|e| format!("config key {key}: cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("config key {key}: {host} has no address"))?;
    Ok(addr.ip())
}

/// `config` with every secret masked.
fn masked(config: &Config) -> Config {
    let mask = |secret: &mut String| {
        if !secret.is_empty() {
            *secret = MASK.to_string();
        }
    };
    let mut c = config.clone();
    mask(&mut c.auth.jwt_secret);
    mask(&mut c.admin.key);
    for account in &mut c.bigo.accounts {
        mask(&mut account.password);
    }
    mask(&mut c.bigo.api_token);
    mask(&mut c.live.push_key);
    mask(&mut c.live.play_key);
    mask(&mut c.live.callback_key);
    c.store.redis_url = startup::redacted_url(&c.store.redis_url);
    c.store.cluster_nodes = c.store.cluster_nodes.iter().map(|u| startup::redacted_url(u)).collect();
    c
}

/// `config` as a YAML document, sections and keys in the order of the types (that of
/// `config.yaml`). serde_json's text keeps that order (its `Value` would sort the keys), and
/// YAML reads JSON: the text goes through yaml-rust2 (the YAML library the `config` crate
/// already builds) from its loader to its emitter.
fn to_yaml(config: &Config) -> Result<String, String> {
    let json = serde_json::to_string_pretty(config).map_err(|e| e.to_string())?;
    let docs = YamlLoader::load_from_str(&json).map_err(|e| e.to_string())?;
    let doc = docs.first().ok_or("no document")?;
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(doc).map_err(|e| e.to_string())?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secrets() -> Config {
        let mut c = Config::default();
        c.auth.jwt_secret = "jwt-s3cret".into();
        c.admin.key = "admin-s3cret".into();
        c.bigo.accounts[0].password = "bigo-s3cret".into();
        c.bigo.api_token = "api-s3cret".into();
        c.live.push_key = "push-s3cret".into();
        c.live.play_key = "play-s3cret".into();
        c.live.callback_key = "callback-s3cret".into();
        c.store.redis_url = "redis://app:redis-s3cret@cache:6379/0".into();
        c
    }

    #[test]
    fn every_secret_is_masked_and_the_rest_kept() {
        let yaml = to_yaml(&masked(&with_secrets())).unwrap();
        assert!(!yaml.contains("s3cret"), "{yaml}");
        assert!(yaml.contains("redis://app:***@cache:6379/0"), "{yaml}");
        assert!(yaml.contains("account: bigoUser1"), "{yaml}");
        let mut empty = Config::default();
        empty.live.push_key = String::new();
        assert!(to_yaml(&masked(&empty)).unwrap().contains("push_key: \"\""));
    }

    #[test]
    fn the_yaml_reads_back_as_the_same_configuration_in_the_order_of_config_yaml() {
        let mut c = Config::default();
        c.server.port = 9123;
        c.live.status_poll_s = 0.5;
        c.live.bizid = "0123".into();
        c.demo.enabled = true;
        let yaml = to_yaml(&c).unwrap();
        let back = config::from_yaml(&yaml).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&c).unwrap(), "{yaml}");
        let sections: Vec<&str> = yaml.lines().filter(|l| !l.starts_with(' ')).collect();
        assert_eq!(
            sections,
            ["---", "server:", "store:", "bigo:", "auth:", "client:", "room:", "admin:", "live:", "log:", "demo:"]
        );
    }
}
