//! The typed configuration (docs/protocol.md section 5) and its loading: `config.yaml` (or
//! `--config PATH`), then `DANMU__SECTION__KEY` environment overrides, then checks of values
//! serde cannot express. Every error names the key.
//!
//! [`Config`] is the one type the file loads into. The sections the actors read (`bigo`,
//! `client`, `room`) are defined in `actors::config` and re-exported here; the sections only
//! the shell reads are defined below. Each section's defaults are its `Default` impl, and
//! `deny_unknown_fields` on every section makes a misspelt key stop start-up.

use std::path::Path;

pub use actors::config::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub bigo: BigoConfig,
    pub auth: AuthConfig,
    pub client: ClientConfig,
    pub room: RoomConfig,
    pub admin: AdminConfig,
    pub live: LiveConfig,
    pub log: LogConfig,
    pub demo: DemoConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Base of the `end_point` URL handed to clients (`{public_url}{client.path}`); empty =
    /// derived from each request (`http::public_url`).
    pub public_url: String,
    pub tls: Option<TlsConfig>,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Start on a non-loopback `host` even with secrets left at their shipped value.
    pub allow_default_secrets: bool,
    /// The operator listener (`/healthz`, `/metrics`, the OpenAPI document, `/iapi/admin`):
    /// when set, those are served there only and the public listener answers 404 for them;
    /// `None` (the default) serves them beside the rest, on one port (`http::operator_routes`).
    pub internal: Option<InternalConfig>,
    /// On SIGTERM, how long the node goes on serving after `/readyz` turned 503 before it
    /// kicks its clients: the time a load balancer takes to see the readiness change
    /// (docs/protocol.md 4).
    pub drain_delay_ms: u64,
    /// A node that stops tells each client to come back after `retry_after_ms`, drawn
    /// uniformly from 0 to this (docs/protocol.md 4).
    pub reconnect_spread_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            public_url: String::new(),
            tls: None,
            workers: 0,
            allow_default_secrets: false,
            internal: None,
            drain_delay_ms: 0,
            reconnect_spread_ms: 5_000,
        }
    }
}

/// `server.internal`: where the operator endpoints listen, apart from the public listener;
/// plain HTTP (TLS ends at the public listener), meant for a private network.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InternalConfig {
    pub host: String,
    pub port: u16,
}

impl Default for InternalConfig {
    fn default() -> Self {
        Self { host: "127.0.0.1".into(), port: 9090 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum StoreKind {
    Memory,
    Redis,
    /// A Redis Cluster, seeded by `store.cluster_nodes`.
    #[serde(rename = "redis-cluster")]
    RedisCluster,
}

impl TryFrom<String> for StoreKind {
    type Error = String;

    /// Read through text so that a wrong value lists the valid ones ([`one_of`]).
    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "memory" => Ok(Self::Memory),
            "redis" => Ok(Self::Redis),
            "redis-cluster" => Ok(Self::RedisCluster),
            _ => Err(one_of(&value, &["memory", "redis", "redis-cluster"])),
        }
    }
}

/// The refusal of an enum value: what was given and every valid choice.
fn one_of(given: &str, choices: &[&str]) -> String {
    format!("{given:?} is not one of the valid values: {}", choices.join(", "))
}

impl StoreKind {
    /// Redis of either kind: the store several nodes share (docs/protocol.md 7).
    pub fn is_redis(self) -> bool {
        self != Self::Memory
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    pub redis_url: String,
    /// With `kind: redis-cluster`: seed URLs of the cluster's nodes (any reachable one is
    /// enough; the rest of the cluster is found from it). A YAML list, or one comma-separated
    /// string (as `DANMU__STORE__CLUSTER_NODES` gives it).
    #[serde(deserialize_with = "list_or_commas")]
    pub cluster_nodes: Vec<String>,
    pub key_prefix: String,
    /// This node's name among several (docs/protocol.md 7); empty = generated at start.
    pub node_id: String,
    /// A node whose presence record is this old is dead to the others; also the lease time
    /// of a shared room's owner.
    pub node_ttl_ms: u64,
    /// With a Redis store: rooms whose inputs, state and history live in Redis, served in one
    /// order by every node (docs/protocol.md 7). `false`: each node serves its own rooms, and the
    /// nodes share only the live-room list, its counters and `end_point`.
    pub shared_rooms: bool,
}

/// A list of strings, or one string of comma-separated items (an environment variable).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(items) => items,
        Either::Text(text) => text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
    })
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Memory,
            redis_url: "redis://127.0.0.1:6379".into(),
            cluster_nodes: Vec::new(),
            key_prefix: "danmu:".into(),
            node_id: String::new(),
            node_ttl_ms: 15_000,
            shared_rooms: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub jwt_secret: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { jwt_secret: "change-me".into() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub key: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { key: "change-me".into() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    pub bizid: String,
    pub push_domain: String,
    pub play_domain: String,
    pub push_key: String,
    pub play_key: String,
    pub push_url_ttl_s: u64,
    pub callback_key: String,
    pub status_api: String,
    /// Zombie-poll interval in seconds; fractional values are allowed (tests poll every 0.05 s).
    pub status_poll_s: f64,
    pub forbid_api: String,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            bizid: "8888".into(),
            push_domain: "8888.livepush.myqcloud.com".into(),
            play_domain: "8888.liveplay.myqcloud.com".into(),
            push_key: "change-me".into(),
            play_key: String::new(),
            push_url_ttl_s: 86_400,
            callback_key: "change-me".into(),
            status_api: String::new(),
            status_poll_s: 60.0,
            forbid_api: String::new(),
        }
    }
}

/// How log lines are written to stderr (the `logging` module).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    /// env_logger's human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(one_of(&value, &["text", "json"])),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    pub enabled: bool,
    /// Serve the demo on a non-loopback `server.host` anyway: `/demo/token` then mints client
    /// tokens for anyone who reaches the port (`exposure`). Off, such a start is refused.
    pub public: bool,
}

impl Config {
    /// The BIGO ingress this configuration serves, as a URL to connect to (the default of
    /// `simulate` and `push`): `ws://{server.host}:{server.port}{bigo.path}`, `wss://` when the
    /// broker terminates TLS itself; a wildcard bind address means this host.
    pub fn bigo_ingress_url(&self) -> String {
        let scheme = if self.server.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.dialable_host_port(), self.bigo.path)
    }

    /// The HTTP base this configuration serves (the default of `listen`):
    /// `http://{server.host}:{server.port}`, `https://` under TLS.
    pub fn http_base_url(&self) -> String {
        let scheme = if self.server.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.dialable_host_port())
    }

    /// `server.host:server.port` as an address to dial: a wildcard bind address means this
    /// host, an IPv6 address gets its brackets.
    fn dialable_host_port(&self) -> String {
        let host = match self.server.host.as_str() {
            "0.0.0.0" | "" => "127.0.0.1".to_string(),
            "::" | "[::]" => "[::1]".to_string(),
            h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
            h => h.to_string(),
        };
        format!("{host}:{}", self.server.port)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0}: not found")]
    Missing(String),
    #[error("config: {0}")]
    Invalid(String),
    /// A value that loads but is out of its range; `origin` says where it came from
    /// ([`Origin`]), as ` (in FILE)` or ` (from DANMU__...)`, or is empty.
    #[error("config key {key}{origin}: {problem}")]
    BadValue { key: &'static str, problem: String, origin: String },
}

/// Where a configuration was read from, so that an error names the file or the environment
/// variable that holds the bad value.
#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    /// `config.yaml` (or `--config`), then `DANMU__` variables.
    File(&'a Path),
    /// A YAML text (tests).
    Text,
}

impl Origin<'_> {
    /// ` (from DANMU__SERVER__PORT)` when that variable is set, else ` (in ./config.yaml)`
    /// when the file exists, else "".
    fn of_key(self, key: &str) -> String {
        let Origin::File(path) = self else {
            return String::new();
        };
        let var = format!("DANMU__{}", key.replace('.', "__").to_uppercase());
        if std::env::var_os(&var).is_some() {
            format!(" (from {var})")
        } else if path.is_file() {
            format!(" (in {})", path.display())
        } else {
            String::new()
        }
    }

    /// A loading error of the `config` crate in words: the key, where its value came from, and
    /// what is wrong with it (a number out of its type's range says the range).
    fn explain(self, e: config::ConfigError) -> ConfigError {
        let file = match self {
            Origin::File(path) if path.is_file() => format!(" (in {})", path.display()),
            _ => String::new(),
        };
        let (key, inner) = match e {
            config::ConfigError::At { error, key: Some(key), .. } => (key, *error),
            config::ConfigError::Type { ref key, .. } if key.is_some() => (key.clone().unwrap_or_default(), e),
            config::ConfigError::FileParse { cause, .. } => return ConfigError::Invalid(format!("{cause}{file}")),
            other => return ConfigError::Invalid(format!("{}{file}", strip_key(&other.to_string()))),
        };
        let problem = match inner {
            config::ConfigError::Type { unexpected, expected, .. } => type_problem(&unexpected.to_string(), expected),
            other => strip_key(&other.to_string()),
        };
        // An unknown field is named by the message: the key is the section's, plus that field.
        let key = match problem.strip_prefix("unknown field `").and_then(|rest| rest.split_once('`')) {
            Some((field, _)) => format!("{key}.{field}"),
            None => key,
        };
        ConfigError::Invalid(format!("key {key}{}: {problem}", self.of_key(&key)))
    }
}

/// `unexpected` (e.g. "64-bit unsigned integer `70000`") given where `expected` (e.g. "an
/// unsigned 16 bit integer") was wanted: a number out of range says the range.
fn type_problem(unexpected: &str, expected: &str) -> String {
    let number = unexpected.split('`').nth(1).filter(|_| unexpected.contains("integer"));
    let range = match expected {
        e if e.contains("unsigned 8 bit") => Some("0 to 255"),
        e if e.contains("unsigned 16 bit") => Some("0 to 65535"),
        e if e.contains("unsigned 32 bit") => Some("0 to 4294967295"),
        e if e.contains("unsigned 64 bit") => Some("0 to 18446744073709551615"),
        e if e.contains("32 bit integer") => Some("-2147483648 to 2147483647"),
        _ => None,
    };
    match (number, range) {
        (Some(n), Some(range)) => format!("{n} is out of range: a whole number from {range}"),
        _ => format!("{unexpected} is not {expected}"),
    }
}

/// The crate's own " for key `x`" tail, which the message already leads with.
fn strip_key(message: &str) -> String {
    match message.find(" for key `") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// Reads `path` (YAML) and the environment. A missing file is an error only when `required`
/// (an explicit `--config`); otherwise the defaults serve.
pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
    if required && !path.exists() {
        return Err(ConfigError::Missing(path.display().to_string()));
    }
    let origin = Origin::File(path);
    let raw = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Yaml).required(false))
        .add_source(config::Environment::with_prefix("DANMU").prefix_separator("__").separator("__"))
        .build()
        .map_err(|e| origin.explain(e))?;
    let config: Config = raw.try_deserialize().map_err(|e| origin.explain(e))?;
    validate(&config, origin)?;
    Ok(config)
}

/// Where the configuration came from, for the start-up log: the file, or that there was none
/// and the defaults apply, and the names (not the values: secrets) of the `DANMU__`
/// variables that override it.
pub fn describe_source(path: &Path) -> String {
    let file = if path.is_file() {
        let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        format!("config file {}", shown.display())
    } else {
        format!("no config file ({} not found): built-in defaults", path.display())
    };
    let mut overrides: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("DANMU__"))
        .collect();
    overrides.sort();
    if overrides.is_empty() {
        file
    } else {
        format!("{file}, overridden by {}", overrides.join(", "))
    }
}

/// Parses a YAML text the same way (used by tests and `--check`).
pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
    let raw = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Yaml))
        .build()
        .map_err(|e| Origin::Text.explain(e))?;
    let config: Config = raw.try_deserialize().map_err(|e| Origin::Text.explain(e))?;
    validate(&config, Origin::Text)?;
    Ok(config)
}

fn validate(c: &Config, origin: Origin) -> Result<(), ConfigError> {
    let bad = |key: &'static str, problem: &str| {
        Err(ConfigError::BadValue { key, problem: problem.to_string(), origin: origin.of_key(key) })
    };
    if !is_host(&c.server.host) {
        return bad("server.host", "must be an IP address or a host name, without scheme or port");
    }
    if let Some(internal) = &c.server.internal {
        if !is_host(&internal.host) {
            return bad("server.internal.host", "must be an IP address or a host name, without scheme or port");
        }
        if internal.port != 0 && internal.port == c.server.port {
            return bad("server.internal.port", "must differ from server.port (the operator endpoints listen apart)");
        }
    }
    if !c.bigo.path.starts_with('/') {
        return bad("bigo.path", "must start with /");
    }
    if !c.client.path.starts_with('/') {
        return bad("client.path", "must start with /");
    }
    if c.bigo.accounts.is_empty() {
        return bad("bigo.accounts", "needs at least one account");
    }
    if c.bigo.max_login_failures == 0 {
        return bad("bigo.max_login_failures", "must be at least 1");
    }
    if c.bigo.idle_timeout_ms == 0 {
        return bad("bigo.idle_timeout_ms", "must be above 0");
    }
    if c.client.idle_timeout_ms == 0 {
        return bad("client.idle_timeout_ms", "must be above 0");
    }
    if c.client.write_timeout_ms == 0 {
        return bad("client.write_timeout_ms", "must be above 0");
    }
    if !(9..=15).contains(&c.client.inflate_window_bits) {
        return bad("client.inflate_window_bits", "must be 9 to 15 (RFC 7692 windows of 512 B to 32 KiB)");
    }
    if c.client.rate_per_s == 0 {
        return bad("client.rate_per_s", "must be at least 1");
    }
    if c.client.send_queue_len == 0 {
        return bad("client.send_queue_len", "must be at least 1");
    }
    if c.room.queue_len == 0 {
        return bad("room.queue_len", "must be at least 1");
    }
    if c.room.dedup_len == 0 {
        return bad("room.dedup_len", "must be at least 1");
    }
    if c.auth.jwt_secret.is_empty() {
        return bad("auth.jwt_secret", "must not be empty");
    }
    if !(c.live.status_poll_s.is_finite() && c.live.status_poll_s >= 0.01) {
        return bad("live.status_poll_s", "must be at least 0.01 (seconds)");
    }
    if c.live.push_url_ttl_s == 0 {
        return bad("live.push_url_ttl_s", "must be above 0");
    }
    if c.admin.key.is_empty() {
        return bad("admin.key", "must not be empty");
    }
    if c.store.kind == StoreKind::Redis && redis::Client::open(c.store.redis_url.as_str()).is_err() {
        return bad("store.redis_url", "is not a redis:// URL");
    }
    if c.store.kind == StoreKind::RedisCluster {
        if c.store.cluster_nodes.is_empty() {
            return bad("store.cluster_nodes", "must name at least one node with kind: redis-cluster");
        }
        if let Some(url) = c.store.cluster_nodes.iter().find(|u| redis::Client::open(u.as_str()).is_err()) {
            return bad("store.cluster_nodes", &format!("{url:?} is not a redis:// URL"));
        }
    }
    if c.store.kind.is_redis() && c.store.key_prefix.contains(['{', '}']) {
        // The keys carry hash tags of their own (one slot per room, one for the live list).
        return bad("store.key_prefix", "must not contain { or }");
    }
    if c.store.node_ttl_ms < 1_000 {
        return bad("store.node_ttl_ms", "must be at least 1000");
    }
    if c.server.drain_delay_ms > MAX_DRAIN_MS {
        return bad("server.drain_delay_ms", "must be at most 600000 (10 minutes)");
    }
    if c.server.reconnect_spread_ms > MAX_DRAIN_MS {
        return bad("server.reconnect_spread_ms", "must be at most 600000 (10 minutes)");
    }
    if c.bigo.pull.enabled && c.bigo.pull.interval_ms == 0 {
        return bad("bigo.pull.interval_ms", "must be above 0 when pull is enabled");
    }
    if c.bigo.pull.enabled && !(1..=1000).contains(&c.bigo.pull.batch) {
        return bad("bigo.pull.batch", "must be 1 to 1000 (BIGO's limit)");
    }
    if c.bigo.pull.enabled && c.bigo.pull.timeout_ms == 0 {
        return bad("bigo.pull.timeout_ms", "must be above 0 when pull is enabled");
    }
    if c.bigo.pull.enabled && !c.bigo.api_base.starts_with("http://") && !c.bigo.api_base.starts_with("https://") {
        return bad("bigo.api_base", "must be an http:// or https:// URL when pull is enabled");
    }
    Ok(())
}

/// The longest `server.drain_delay_ms` and `server.reconnect_spread_ms`: past this a shutdown
/// would outlast any orchestrator's grace period.
const MAX_DRAIN_MS: u64 = 600_000;

/// An IP address (IPv6 without brackets) or a host name: what `server.host` may be.
fn is_host(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (!host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = from_yaml("{}").unwrap();
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.room.reorder_window_ms, 300);
        assert_eq!(c.bigo.platform_abbr, "inke");
    }

    #[test]
    fn a_redis_cluster_takes_a_list_or_commas_and_names_a_missing_or_bad_seed() {
        let list =
            from_yaml("store:\n  kind: redis-cluster\n  cluster_nodes: [\"redis://a:7000\", \"redis://b:7001\"]\n");
        let commas = from_yaml("store:\n  kind: redis-cluster\n  cluster_nodes: \"redis://a:7000, redis://b:7001\"\n");
        for c in [list.unwrap(), commas.unwrap()] {
            assert_eq!(c.store.kind, StoreKind::RedisCluster);
            assert_eq!(c.store.cluster_nodes, ["redis://a:7000", "redis://b:7001"]);
        }
        for (yaml, key) in [
            ("store:\n  kind: redis-cluster\n", "store.cluster_nodes"),
            ("store:\n  kind: redis-cluster\n  cluster_nodes: [\"http://a\"]\n", "store.cluster_nodes"),
            ("store:\n  kind: redis\n  key_prefix: \"a{b}:\"\n", "store.key_prefix"),
        ] {
            let err = from_yaml(yaml).unwrap_err().to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = from_yaml("room:\n  reorder_windw_ms: 5\n").unwrap_err().to_string();
        assert!(err.contains("reorder_windw_ms"), "{err}");
    }

    #[test]
    fn status_poll_s_takes_fractional_seconds_and_refuses_zero() {
        assert_eq!(from_yaml("live:\n  status_poll_s: 0.05\n").unwrap().live.status_poll_s, 0.05);
        assert_eq!(from_yaml("live:\n  status_poll_s: 60\n").unwrap().live.status_poll_s, 60.0);
        let err = from_yaml("live:\n  status_poll_s: 0\n").unwrap_err().to_string();
        assert!(err.contains("live.status_poll_s"), "{err}");
    }

    #[test]
    fn server_host_takes_addresses_and_names_but_not_urls_or_ports() {
        for good in ["127.0.0.1", "0.0.0.0", "::1", "::", "localhost", "danmu-1.internal"] {
            assert!(from_yaml(&format!("server:\n  host: \"{good}\"\n")).is_ok(), "{good}");
        }
        for bad in ["127.0.0.1:8080", "http://0.0.0.0", "", "my host", "[::1]"] {
            let err = from_yaml(&format!("server:\n  host: \"{bad}\"\n")).unwrap_err().to_string();
            assert!(err.contains("server.host"), "{bad}: {err}");
        }
    }

    #[test]
    fn server_internal_is_off_by_default_and_takes_a_host_and_a_port_of_its_own() {
        assert!(from_yaml("{}").unwrap().server.internal.is_none());
        let c = from_yaml("server:\n  internal: { port: 9191 }\n").unwrap();
        let internal = c.server.internal.unwrap();
        assert_eq!((internal.host.as_str(), internal.port), ("127.0.0.1", 9191));
        for (yaml, key) in [
            ("server:\n  internal: { host: \"http://10.0.0.1\" }\n", "server.internal.host"),
            ("server:\n  port: 9000\n  internal: { port: 9000 }\n", "server.internal.port"),
        ] {
            let err = from_yaml(yaml).unwrap_err().to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }

    #[test]
    fn a_bad_value_is_named() {
        let err = from_yaml("client:\n  rate_per_s: 0\n").unwrap_err().to_string();
        assert!(err.contains("client.rate_per_s"), "{err}");
        let err = from_yaml("server:\n  port: lots\n").unwrap_err().to_string();
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn an_enum_value_lists_the_valid_choices() {
        let err = from_yaml("log:\n  format: jsn\n").unwrap_err().to_string();
        assert!(
            err.contains("log.format") && err.contains("\"jsn\" is not one of the valid values: text, json"),
            "{err}"
        );
        let err = from_yaml("store:\n  kind: redis2\n").unwrap_err().to_string();
        assert!(err.contains("store.kind") && err.contains("memory, redis, redis-cluster"), "{err}");
        assert_eq!(
            from_yaml("store:\n  kind: redis-cluster\n  cluster_nodes: [\"redis://a:1\"]\n").unwrap().store.kind,
            StoreKind::RedisCluster
        );
        assert_eq!(from_yaml("log:\n  format: json\n").unwrap().log.format, LogFormat::Json);
    }

    #[test]
    fn a_number_out_of_range_names_the_key_the_range_and_the_file() {
        let dir = std::env::temp_dir().join(format!("danmu-config-range-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("range.yaml");
        for (yaml, needles) in [
            ("server:\n  port: 70000\n", vec!["key server.port", "70000 is out of range", "0 to 65535"]),
            ("room:\n  history_len: -1\n", vec!["key room.history_len", "-1 is out of range"]),
            ("client:\n  rate_per_s: 0\n", vec!["client.rate_per_s", "must be at least 1"]),
            ("server:\n  drain_delay_ms: 700000\n", vec!["server.drain_delay_ms", "at most 600000"]),
        ] {
            std::fs::write(&path, yaml).unwrap();
            let err = load(&path, true).unwrap_err().to_string();
            for needle in needles.iter().copied().chain([format!("(in {})", path.display()).as_str()]) {
                assert!(err.contains(needle), "{yaml}: {needle:?} missing from {err}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bigo_accounts_come_from_a_list_or_from_one_text_of_account_password_pairs() {
        let c = from_yaml("bigo:\n  accounts: [ { account: a, password: \"p:1\" } ]\n").unwrap();
        assert_eq!((c.bigo.accounts[0].account.as_str(), c.bigo.accounts[0].password.as_str()), ("a", "p:1"));
        let c = from_yaml("bigo:\n  accounts: \"a:p:1, b:q\"\n").unwrap();
        let pairs: Vec<(&str, &str)> =
            c.bigo.accounts.iter().map(|a| (a.account.as_str(), a.password.as_str())).collect();
        assert_eq!(pairs, [("a", "p:1"), ("b", "q")]);
        let err = from_yaml("bigo:\n  accounts: \"no-password\"\n").unwrap_err().to_string();
        assert!(err.contains("bigo.accounts") && !err.contains("no-password"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named_whole_with_where_it_came_from() {
        let err = from_yaml("room:\n  reorder_windw_ms: 5\n").unwrap_err().to_string();
        assert!(err.contains("key room.reorder_windw_ms: unknown field `reorder_windw_ms`"), "{err}");
    }

    #[test]
    fn drain_and_reconnect_spread_default_to_zero_and_five_seconds() {
        let c = from_yaml("{}").unwrap();
        assert_eq!((c.server.drain_delay_ms, c.server.reconnect_spread_ms), (0, 5_000));
    }

    #[test]
    fn bigo_ingress_url_is_built_from_server_and_bigo_path() {
        let mut c = Config::default();
        assert_eq!(c.bigo_ingress_url(), "ws://127.0.0.1:8080/bigo/ws");
        c.server.host = "0.0.0.0".into();
        c.server.port = 9000;
        c.bigo.path = "/in".into();
        assert_eq!(c.bigo_ingress_url(), "ws://127.0.0.1:9000/in");
        assert_eq!(c.http_base_url(), "http://127.0.0.1:9000");
        c.server.host = "::1".into();
        assert_eq!(c.http_base_url(), "http://[::1]:9000");
    }
}
