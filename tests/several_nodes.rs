//! Several broker processes on one Redis (PROTOCOL.md 7): every node publishes its presence
//! and client count, and `end_point` on any node names the live node with the fewest
//! clients; a node that dies drops out within `store.node_ttl_ms`.

mod common;

use std::time::{Duration, Instant};

use common::live::{unique_prefix, RedisServer};
use common::ops::{app_client_at, client_query, free_port, BrokerProcess};
use common::SECRET;
use serde_json::Value;

/// The shortest TTL the config accepts: records are renewed every 333 ms.
const TTL_MS: u64 = 1_000;

async fn node(id: &str, redis: &str, prefix: &str) -> BrokerProcess {
    let port = free_port();
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: {port}, public_url: \"ws://127.0.0.1:{port}\", workers: 1 }}\n\
         store: {{ kind: redis, redis_url: \"{redis}\", key_prefix: \"{prefix}\", node_id: \"{id}\", node_ttl_ms: {TTL_MS} }}\n\
         auth: {{ jwt_secret: \"{SECRET}\" }}\n"
    );
    BrokerProcess::start(&yaml, port).await
}

/// The URL `end_point` on `at` names.
async fn end_point(at: &BrokerProcess) -> String {
    let url = format!("http://{}/iapi/websocket/end_point?{}", at.addr, client_query("asker", "sid-x"));
    let mut resp = awc::Client::new().get(url).send().await.expect("end_point");
    let body: Value = resp.json().await.expect("JSON answer");
    assert_eq!(body["error_code"], 0, "{body}");
    body["end_point"].as_str().expect("end_point").to_string()
}

fn client_url(node: &BrokerProcess) -> String {
    format!("ws://{}/iapi/websocket", node.addr)
}

/// Asks `at` until `end_point` names `expected` (presence records travel through Redis).
async fn until_end_point(at: &BrokerProcess, expected: &BrokerProcess, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = end_point(at).await;
        if got == client_url(expected) {
            return;
        }
        assert!(Instant::now() < deadline, "end_point on {} still names {got}, not {}", at.addr, client_url(expected));
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn end_point_names_the_live_node_with_the_fewest_clients() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let a = node("node-a", &redis.url(), &prefix).await;
    let mut b = node("node-b", &redis.url(), &prefix).await;

    // No clients anywhere: a tie, which every node breaks alike (the lower id).
    until_end_point(&b, &a, Duration::from_secs(5)).await;
    until_end_point(&a, &a, Duration::from_secs(5)).await;

    // Two clients on a: both nodes now send newcomers to b.
    let _ann = app_client_at(&format!("ws://{}", a.addr), "ann", None).await;
    let _bob = app_client_at(&format!("ws://{}", a.addr), "bob", None).await;
    until_end_point(&a, &b, Duration::from_secs(5)).await;
    until_end_point(&b, &b, Duration::from_secs(5)).await;

    // b dies without a word: once its record expires, a names itself again.
    b.child.kill().expect("kill -9 node b");
    let _ = b.child.wait();
    let died = Instant::now();
    until_end_point(&a, &a, Duration::from_millis(TTL_MS) * 3).await;
    assert!(died.elapsed() < Duration::from_millis(TTL_MS * 3), "took {:?}", died.elapsed());
}

/// `/healthz`'s store line and `danmu_store_up` of `at`.
async fn store_state(at: &BrokerProcess) -> (String, Option<f64>) {
    let get = |path: &str| format!("http://{}{path}", at.addr);
    let mut health = awc::Client::new().get(get("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200, "a node serves on while Redis is away");
    let body = String::from_utf8_lossy(&health.body().await.expect("body")).into_owned();
    let mut metrics = awc::Client::new().get(get("/metrics")).send().await.expect("metrics");
    let text = String::from_utf8_lossy(&metrics.body().limit(1 << 20).await.expect("body")).into_owned();
    let line = body.lines().find(|l| l.starts_with("store:")).unwrap_or_default().to_string();
    (line, common::ops::sample(&text, "danmu_store_up", ""))
}

async fn until_store(at: &BrokerProcess, line: &str, up: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = store_state(at).await;
        if state == (line.to_string(), Some(up)) {
            return;
        }
        assert!(Instant::now() < deadline, "store state still {state:?}, not {line:?} / {up}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn healthz_and_metrics_show_a_redis_outage_and_the_recovery_without_a_restart() {
    let mut redis = RedisServer::start();
    let a = node("node-a", &redis.url(), &unique_prefix()).await;
    until_store(&a, "store: redis reachable", 1.0).await;
    redis.stop();
    until_store(&a, "store: redis unreachable", 0.0).await;
    redis.restart();
    until_store(&a, "store: redis reachable", 1.0).await;
}
