//! The typed configuration (PROTOCOL.md section 5): one struct per section, every default in
//! one place (the `Default` impls below), `deny_unknown_fields` so that a misspelt key stops
//! start-up instead of being ignored.
//!
//! The types live in the `actors` crate because the actors consume them; reading the file and
//! the `DANMU__SECTION__KEY` environment overrides is the binary's job (`src/config.rs`).

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
    /// derived from each request (the shell's `http::public_url`).
    pub public_url: String,
    pub tls: Option<TlsConfig>,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Start on a non-loopback `host` even with secrets left at their shipped value.
    pub allow_default_secrets: bool,
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
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    pub redis_url: String,
    pub key_prefix: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { kind: StoreKind::Memory, redis_url: "redis://127.0.0.1:6379".into(), key_prefix: "danmu:".into() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BigoAccount {
    pub account: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BigoConfig {
    pub path: String,
    pub platform_abbr: String,
    pub accounts: Vec<BigoAccount>,
    pub login_max_skew_ms: i64,
    pub max_login_failures: u32,
    pub idle_timeout_ms: u64,
    pub verify_message_sign: bool,
    pub max_frame_bytes: usize,
    pub api_base: String,
    pub api_token: String,
    pub pull: PullConfig,
}

impl Default for BigoConfig {
    fn default() -> Self {
        Self {
            path: "/bigo/ws".into(),
            platform_abbr: "inke".into(),
            accounts: vec![BigoAccount { account: "bigoUser1".into(), password: "change-me".into() }],
            login_max_skew_ms: 300_000,
            max_login_failures: 3,
            idle_timeout_ms: 30_000,
            verify_message_sign: true,
            max_frame_bytes: 1 << 20,
            api_base: "https://oauth.bigolive.tv".into(),
            api_token: String::new(),
            pull: PullConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullConfig {
    pub enabled: bool,
    pub interval_ms: u64,
    pub batch: u32,
    /// Longest one pull call may take (connect, answer and body) before it counts as failed.
    pub timeout_ms: u64,
}

impl Default for PullConfig {
    fn default() -> Self {
        Self { enabled: false, interval_ms: 10_000, batch: 100, timeout_ms: 5_000 }
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
pub struct ClientConfig {
    pub path: String,
    pub ping_interval_s: u64,
    pub idle_timeout_ms: u64,
    pub max_skew_ms: i64,
    pub max_content_chars: usize,
    pub max_frame_bytes: usize,
    pub rate_per_s: u32,
    pub send_queue_len: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            path: "/iapi/websocket".into(),
            ping_interval_s: 15,
            idle_timeout_ms: 20_000,
            max_skew_ms: 120_000,
            max_content_chars: 500,
            max_frame_bytes: 65_536,
            rate_per_s: 20,
            send_queue_len: 4096,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomConfig {
    pub reorder_window_ms: u64,
    /// Longest release tick: due items leave in bundles up to one tick early (never late),
    /// the tick growing with the room (25 us per member, at most this), so that a member of a
    /// big room gets one bundle per tick instead of one wake-up and one write per item.
    /// 0 = item by item.
    pub release_tick_ms: u64,
    pub history_len: usize,
    /// Danmu items a room holds in its reorder buffer before pushes get rescode 503.
    pub queue_len: usize,
    pub seats: u32,
    /// How many seqids and data_seqs each room remembers for dedup (each, FIFO-evicted).
    pub dedup_len: usize,
    /// A room with no members and no traffic for this long stops and frees its memory.
    pub idle_stop_ms: u64,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            reorder_window_ms: 300,
            release_tick_ms: 50,
            history_len: 1000,
            queue_len: 10_000,
            seats: 8,
            dedup_len: 100_000,
            idle_stop_ms: 600_000,
        }
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

/// How log lines are written to stderr (the shell's `logging` module).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// env_logger's human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
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
}
