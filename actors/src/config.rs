//! The configuration sections the actors read (docs/protocol.md section 5): `bigo` (sessions and
//! pull compensation), `client` (client sessions) and `room`. One struct per section, its
//! defaults in its `Default` impl, `deny_unknown_fields` so that a misspelt key stops start-up
//! instead of being ignored.
//!
//! The whole `Config`, the sections only the server shell reads (server, store, auth, admin,
//! live, demo) and the loading (file, `DANMU__SECTION__KEY` overrides, checks) live in the
//! binary's `src/config.rs`, which embeds these sections.

use serde::{Deserialize, Serialize};

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
    /// A YAML list of `{account, password}`, or one text `account:password[,account:password]`
    /// ([`accounts_list_or_text`]), so that `DANMU__BIGO__ACCOUNTS` can carry the passwords
    /// from a secret store instead of the file.
    #[serde(deserialize_with = "accounts_list_or_text")]
    pub accounts: Vec<BigoAccount>,
    pub login_max_skew_ms: i64,
    pub max_login_failures: u32,
    pub idle_timeout_ms: u64,
    pub verify_message_sign: bool,
    pub max_frame_bytes: usize,
    /// Accept permessage-deflate from BIGO (docs/protocol.md 2.8): its frames may come compressed,
    /// each inflated under `max_frame_bytes`; the broker's answers go plain.
    pub compression: bool,
    pub api_base: String,
    pub api_token: String,
    pub pull: PullConfig,
}

/// `bigo.accounts` from a YAML list, or from one text `account:password[,account:password...]`
/// (an environment variable: a password may hold `:` but not `,`).
fn accounts_list_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<BigoAccount>, D::Error> {
    struct Accounts;
    impl<'de> serde::de::Visitor<'de> for Accounts {
        type Value = Vec<BigoAccount>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of {account, password}, or \"account:password[,account:password]\"")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut accounts = Vec::new();
            while let Some(account) = seq.next_element()? {
                accounts.push(account);
            }
            Ok(accounts)
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            text.split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(|entry| match entry.split_once(':') {
                    Some((account, password)) if !account.trim().is_empty() => {
                        Ok(BigoAccount { account: account.trim().to_string(), password: password.to_string() })
                    }
                    _ => Err(E::custom(format!(
                        "an entry without its account:password form ({} characters)",
                        entry.len()
                    ))),
                })
                .collect()
        }
    }
    d.deserialize_any(Accounts)
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
            compression: true,
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
pub struct ClientConfig {
    pub path: String,
    pub ping_interval_s: u64,
    pub idle_timeout_ms: u64,
    pub max_skew_ms: i64,
    pub max_content_chars: usize,
    pub max_frame_bytes: usize,
    pub rate_per_s: u32,
    pub send_queue_len: usize,
    /// A client whose socket takes no bytes for this long while frames wait for it (it
    /// stopped reading) is closed and counted as slow (`crate::clients::ws_conn`).
    pub write_timeout_ms: u64,
    /// Accept permessage-deflate (docs/protocol.md 2.8): each room frame compressed once for every
    /// member that offered it (`crate::protocol::deflate`).
    pub compression: bool,
    /// Server messages shorter than this go uncompressed.
    pub compression_min_bytes: usize,
    /// The largest window a client may compress with: 2^this bytes (9 to 15).
    pub inflate_window_bits: u8,
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
            write_timeout_ms: 10_000,
            compression: true,
            compression_min_bytes: 256,
            inflate_window_bits: 15,
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
