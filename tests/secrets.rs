//! Secrets and exposure (docs/security.md): the real binary refuses a
//! non-loopback `server.host` while a secret is still `change-me` (unless
//! `server.allow_default_secrets` says so), while `auth.jwt_secret` or `admin.key` is shorter
//! than 32 bytes, and while the demo mints tokens (unless `demo.public` says so), each refusal
//! naming its key; `check-config` refuses alike. On loopback these are warnings. The admin key
//! opens `/iapi/admin` only when it is exactly right; forged, expired and foreign tokens are
//! refused; tokens and secrets never reach the log.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::live::{As, LiveBroker, ADMIN_KEY};
use common::ops::{free_port, BrokerProcess, TempDir};
use common::{now_ms, TestBroker, ABBR, ACCOUNT, PASSWORD, SECRET};
use danmu_broker::config::StoreKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// 32 bytes each: long enough anywhere.
const STRONG_JWT_SECRET: &str = "0123456789abcdef0123456789abcdef";
const STRONG_ADMIN_KEY: &str = "fedcba9876543210fedcba9876543210";

/// Every secret set: `auth.jwt_secret` and `admin.key` as given, the others changed from
/// `change-me`; then `extra` YAML.
fn secrets_yaml(host: &str, port: u16, jwt_secret: &str, admin_key: &str, extra: &str) -> String {
    format!(
        "server: {{ host: \"{host}\", port: {port}, workers: 1 }}\n\
         bigo: {{ platform_abbr: {ABBR}, accounts: [ {{ account: {ACCOUNT}, password: {PASSWORD} }} ] }}\n\
         auth: {{ jwt_secret: \"{jwt_secret}\" }}\n\
         admin: {{ key: \"{admin_key}\" }}\n\
         live: {{ push_key: test-push-key, callback_key: test-callback-key }}\n{extra}"
    )
}

/// Runs the binary on `yaml`, expecting it to stop by itself; answers (exit status, stderr),
/// and check-config's (exit code, stderr) on the same file.
async fn serve_and_check(yaml: &str, port: u16) -> (Option<std::process::ExitStatus>, String, Option<i32>, String) {
    let dir = TempDir::new("exposure");
    let config = dir.path("config.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let (code, check_stderr) = check_config(&config);
    let mut broker = BrokerProcess::spawn(dir, &config, &[], port);
    let status = broker.wait_exit(Duration::from_secs(10)).await;
    (status, broker.log_text(), code, check_stderr)
}

/// `danmu-broker --config config check-config`: (exit code, stderr).
fn check_config(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_danmu-broker"))
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .output()
        .expect("run check-config");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The refusals in a log, each from "refusing to start:" on, whoever printed them.
fn refusals(log: &str) -> Vec<&str> {
    log.lines().filter_map(|line| line.find("refusing to start:").map(|at| &line[at..])).collect()
}

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

#[actix_rt::test]
async fn short_secrets_on_a_non_loopback_host_stop_start_up_and_check_config_naming_each_with_its_length() {
    let port = free_port();
    let yaml = secrets_yaml("0.0.0.0", port, "seventeen-bytes!!", "twelve-bytes", "");
    let (status, log, code, check) = serve_and_check(&yaml, port).await;
    assert!(status.is_some_and(|s| !s.success()), "exit status {status:?}:\n{log}");
    let refused = refusals(&log);
    assert_eq!(refused.len(), 1, "{log}");
    for needle in [
        "server.host 0.0.0.0 is not a loopback address",
        "shorter than 32 bytes",
        "auth.jwt_secret (17 bytes)",
        "admin.key (12 bytes)",
    ] {
        assert!(refused[0].contains(needle), "{needle:?} missing:\n{log}");
    }
    assert_eq!((code, refusals(&check)), (Some(2), refused), "check-config refuses alike:\n{check}");
}

#[actix_rt::test]
async fn short_secrets_on_loopback_start_with_a_warning_naming_them() {
    let port = free_port();
    let dir = TempDir::new("short-loopback");
    let config = dir.path("config.yaml");
    std::fs::write(&config, secrets_yaml("127.0.0.1", port, "seventeen-bytes!!", STRONG_ADMIN_KEY, ""))
        .expect("write config");
    let (code, check) = check_config(&config);
    assert_eq!(code, Some(0), "{check}");
    assert!(check.contains("warning: secrets shorter than 32 bytes: auth.jwt_secret (17 bytes)"), "{check}");
    let broker = BrokerProcess::start_file(dir, &config, &[], port).await;
    let log = broker.log_text();
    assert!(log.contains("secrets shorter than 32 bytes: auth.jwt_secret (17 bytes); fine on loopback"), "{log}");
    assert!(!log.contains("admin.key ("), "a 32-byte admin key is not short:\n{log}");
}

#[actix_rt::test]
async fn the_demo_on_a_non_loopback_host_stops_start_up_naming_the_key_and_what_it_exposes() {
    let port = free_port();
    let yaml = secrets_yaml("0.0.0.0", port, STRONG_JWT_SECRET, STRONG_ADMIN_KEY, "demo: { enabled: true }\n");
    let (status, log, code, check) = serve_and_check(&yaml, port).await;
    assert!(status.is_some_and(|s| !s.success()), "exit status {status:?}:\n{log}");
    let refused = refusals(&log);
    assert_eq!(refused.len(), 1, "{log}");
    for needle in [
        "server.host 0.0.0.0 is not a loopback address and demo.enabled is on",
        "POST /demo/token mints a client token for any user_id",
        "send messages as any viewer, take their seat and replace their connection",
        "demo.public: true",
    ] {
        assert!(refused[0].contains(needle), "{needle:?} missing:\n{log}");
    }
    assert_eq!((code, refusals(&check)), (Some(2), refused), "check-config refuses alike:\n{check}");
}

#[actix_rt::test]
async fn demo_public_serves_the_demo_on_a_non_loopback_host_with_a_warning() {
    let port = free_port();
    let dir = TempDir::new("demo-public");
    let config = dir.path("config.yaml");
    let extra = "demo: { enabled: true, public: true }\n";
    std::fs::write(&config, secrets_yaml("0.0.0.0", port, STRONG_JWT_SECRET, STRONG_ADMIN_KEY, extra))
        .expect("write config");
    assert_eq!(check_config(&config).0, Some(0));
    let broker = BrokerProcess::start_file(dir, &config, &[], port).await;
    let mut answer = awc::Client::new()
        .post(format!("http://{}/demo/token", broker.addr))
        .send_json(&json!({"user_id": "u1"}))
        .await
        .expect("POST /demo/token");
    assert_eq!(answer.status().as_u16(), 200);
    let token: Value = answer.json().await.expect("the token");
    assert!(token["token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{token}");
    let log = broker.log_text();
    assert!(log.contains("demo.enabled and demo.public are on, on 0.0.0.0"), "{log}");
}

#[actix_rt::test]
async fn the_shipped_config_yaml_on_a_public_host_is_refused_for_its_secrets_and_its_demo_at_once() {
    let port = free_port();
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml")).expect("config.yaml");
    let dir = TempDir::new("shipped-public");
    let config = dir.path("config.yaml");
    std::fs::write(&config, shipped).expect("write config");
    let env = [("DANMU__SERVER__HOST", "0.0.0.0"), ("DANMU__SERVER__PORT", &*port.to_string())];
    let mut broker = BrokerProcess::spawn(dir, &config, &env, port);
    let status = broker.wait_exit(Duration::from_secs(10)).await;
    let log = broker.log_text();
    assert!(status.is_some_and(|s| !s.success()), "exit status {status:?}:\n{log}");
    let refused = refusals(&log);
    assert_eq!(refused.len(), 2, "{log}");
    assert!(refused[0].contains("change-me") && refused[0].contains("auth.jwt_secret"), "{log}");
    assert!(refused[1].contains("demo.enabled"), "{log}");
}

/// A token for `claims` signed with `alg` and `secret`.
fn signed(alg: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).expect("encode")
}

#[actix_rt::test]
async fn tokens_with_alg_none_another_hmac_no_exp_an_old_exp_another_sub_or_another_secret_are_refused() {
    let broker = TestBroker::start().await;
    let now = now_ms() / 1000;
    let good = json!({"sub": "u1", "exp": now + 3600});
    let payload = signed(Algorithm::HS256, SECRET, &good).split('.').nth(1).expect("payload").to_string();
    let cases = [
        // base64url of {"alg":"none","typ":"JWT"}, the good payload, no signature.
        ("alg none", format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")),
        ("HS384", signed(Algorithm::HS384, SECRET, &good)),
        ("HS512", signed(Algorithm::HS512, SECRET, &good)),
        ("no exp", signed(Algorithm::HS256, SECRET, &json!({"sub": "u1"}))),
        ("an old exp", signed(Algorithm::HS256, SECRET, &json!({"sub": "u1", "exp": now - 3600}))),
        ("another sub", signed(Algorithm::HS256, SECRET, &json!({"sub": "u2", "exp": now + 3600}))),
        ("another secret", signed(Algorithm::HS256, "another-secret", &good)),
    ];
    let query = |token: &str| format!("user_id=u1&sid=s1&timestamp={}&token={token}", now_ms());
    for (case, token) in &cases {
        let (status, body) = broker.get_json(&format!("/iapi/websocket/end_point?{}", query(token))).await;
        assert_eq!((status, body["error_code"].clone()), (401, json!(1003)), "{case}: end_point {body}");
        let (status, body) = broker.get_json(&format!("/iapi/user/info?user_id=u1&token={token}")).await;
        assert_eq!((status, body["error_code"].clone()), (401, json!(1003)), "{case}: user/info {body}");
        let upgrade = tokio_tungstenite::connect_async(broker.ws_url(&format!("/iapi/websocket?{}", query(token))));
        match upgrade.await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401, "{case}"),
            other => panic!("{case}: the upgrade was not refused with 401: {:?}", other.map(|_| ())),
        }
    }
    let good = signed(Algorithm::HS256, SECRET, &good);
    let (status, body) = broker.get_json(&format!("/iapi/websocket/end_point?{}", query(&good))).await;
    assert_eq!((status, body["error_code"].clone()), (200, json!(0)), "the good token: {body}");
}

#[actix_rt::test]
async fn tokens_and_secrets_never_reach_the_log_even_at_trace() {
    let port = free_port();
    let dir = TempDir::new("no-tokens-in-log");
    let config = dir.path("config.yaml");
    std::fs::write(&config, secrets_yaml("127.0.0.1", port, STRONG_JWT_SECRET, STRONG_ADMIN_KEY, "")).expect("config");
    let broker = BrokerProcess::start_file(dir, &config, &[("RUST_LOG", "trace")], port).await;
    let base = format!("http://{}", broker.addr);
    let now = now_ms() / 1000;
    let good = signed(Algorithm::HS256, STRONG_JWT_SECRET, &json!({"sub": "u1", "exp": now + 3600}));
    let forged = signed(Algorithm::HS256, "another-secret", &json!({"sub": "u1", "exp": now + 3600}));
    let http = awc::Client::new();
    for token in [&good, &forged] {
        let query = format!("user_id=u1&sid=s1&timestamp={}&token={token}", now_ms());
        let _ = http.get(format!("{base}/iapi/websocket/end_point?{query}")).send().await.expect("end_point");
        let _ = http.get(format!("{base}/iapi/user/info?user_id=u1&token={token}")).send().await.expect("user/info");
        let ws = tokio_tungstenite::connect_async(format!("ws://{}/iapi/websocket?{query}", broker.addr)).await;
        drop(ws);
        let bearer = http.get(format!("{base}/iapi/rooms")).insert_header(("Authorization", format!("Bearer {token}")));
        let _ = bearer.send().await.expect("rooms");
    }
    let wrong_key = "a-wrong-admin-key-guessed-by-someone";
    for key in [STRONG_ADMIN_KEY, wrong_key] {
        let notice = http.post(format!("{base}/iapi/admin/rooms/1/notice")).insert_header(("X-Admin-Key", key));
        let _ = notice.send_json(&json!({"content": "hi"})).await.expect("notice");
    }
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let log = broker.log_text();
    assert!(log.contains("TRACE"), "not a trace log:\n{log}");
    assert!(log.contains("upgrade refused"), "the refused upgrade is logged:\n{log}");
    for secret in [good.as_str(), forged.as_str(), STRONG_JWT_SECRET, STRONG_ADMIN_KEY, wrong_key] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    // Nor their signature parts alone.
    for token in [&good, &forged] {
        let signature = token.rsplit('.').next().expect("signature");
        assert!(!log.contains(signature), "a token signature in the log:\n{log}");
    }
}
