//! Secrets (README "Operating"): the real binary refuses a non-loopback `server.host` while a
//! secret is still `change-me`, unless `server.allow_default_secrets` says so; the admin key
//! opens `/iapi/admin` only when it is exactly right.

mod common;

use std::time::Duration;

use common::live::{As, LiveBroker, ADMIN_KEY};
use common::ops::{free_port, BrokerProcess, TempDir};
use danmu_broker::config::StoreKind;
use serde_json::json;

const EVERY_KEY: [&str; 5] = [
    "auth.jwt_secret",
    "admin.key",
    "bigo.accounts[0].password (account bigoUser1)",
    "live.push_key",
    "live.callback_key",
];

/// A scratch dir with a config that binds all interfaces with every secret at its default;
/// `server_extra` goes into the `server` section.
fn everywhere(port: u16, server_extra: &str) -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new("secrets");
    let config = dir.path("config.yaml");
    std::fs::write(&config, format!("server: {{ host: 0.0.0.0, port: {port}, workers: 1{server_extra} }}\n"))
        .expect("write config");
    (dir, config)
}

#[actix_rt::test]
async fn shipped_secrets_on_a_non_loopback_host_stop_start_up_naming_every_key() {
    let port = free_port();
    let (dir, config) = everywhere(port, "");
    let mut broker = BrokerProcess::spawn(dir, &config, &[], port);
    let status = broker.wait_exit(Duration::from_secs(10)).await;
    let log = broker.log_text();
    assert!(status.is_some_and(|s| !s.success()), "exit status {status:?}:\n{log}");
    assert!(log.contains("refusing to start: server.host 0.0.0.0 is not a loopback address"), "{log}");
    for key in EVERY_KEY.iter().chain(&["server.allow_default_secrets: true"]) {
        assert!(log.contains(key), "{key} not named:\n{log}");
    }
}

#[actix_rt::test]
async fn allow_default_secrets_starts_anyway_and_still_names_them() {
    let port = free_port();
    let (dir, config) = everywhere(port, ", allow_default_secrets: true");
    let mut broker = BrokerProcess::start_file(dir, &config, &[], port).await;
    broker.terminate();
    assert!(broker.wait_exit(Duration::from_secs(10)).await.is_some_and(|s| s.success()));
    let log = broker.log_text();
    assert!(log.contains("server.allow_default_secrets is on"), "{log}");
    assert!(EVERY_KEY.iter().all(|key| log.contains(key)), "{log}");
}

#[actix_rt::test]
async fn the_admin_key_opens_admin_calls_only_when_exactly_right() {
    let lb = LiveBroker::start(StoreKind::Memory).await;
    let room_id = lb.live_room("owner").await;
    let path = format!("/iapi/admin/rooms/{room_id}/notice");
    let notice = || Some(json!({"content": "maintenance at noon"}));
    let mut last_byte_wrong = ADMIN_KEY.to_string();
    last_byte_wrong.pop();
    last_byte_wrong.push('X');
    let longer = format!("{ADMIN_KEY}x");
    let upper = ADMIN_KEY.to_uppercase();
    for key in [&ADMIN_KEY[..ADMIN_KEY.len() - 1], last_byte_wrong.as_str(), longer.as_str(), upper.as_str(), ""] {
        let (status, answer) = lb.call("POST", &path, As::AdminKey(key), notice()).await;
        assert_eq!((status, answer["error_code"].clone()), (403, json!(2006)), "key {key:?}: {answer}");
    }
    let (status, answer) = lb.call("POST", &path, As::Nobody, notice()).await;
    assert_eq!((status, answer["error_code"].clone()), (403, json!(2006)), "{answer}");
    let (status, answer) = lb.call("POST", &path, As::Admin, notice()).await;
    assert_eq!((status, answer["error_code"].clone()), (200, json!(0)), "{answer}");
}
