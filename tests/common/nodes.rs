//! Broker processes as nodes of one deployment on Redis (docs/protocol.md 7), for the
//! several-nodes tests (`several_nodes.rs`: presence, `end_point`, sessions, failures of the
//! store; `shared_rooms.rs`: rooms shared through Redis; `room_ownership.rs`: who owns one).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::live::{unique_prefix, RedisCluster, RedisServer};
use crate::common::ops::{app_client_at, free_port, BrokerProcess};
use crate::common::SECRET;

/// Short, so that failures are seen quickly, yet long enough that a busy CI machine does not
/// make a live node miss its renewals (every 667 ms).
pub const TTL_MS: u64 = 2_000;

pub async fn node(id: &str, redis: &str, prefix: &str) -> BrokerProcess {
    node_with(id, redis, prefix, false).await
}

pub async fn node_with(id: &str, redis: &str, prefix: &str, shared_rooms: bool) -> BrokerProcess {
    node_on(id, &format!("kind: redis, redis_url: \"{redis}\", shared_rooms: {shared_rooms}"), prefix).await
}

/// A shared-room node on the Redis Cluster `cluster`.
pub async fn cluster_node(id: &str, cluster: &RedisCluster, prefix: &str) -> BrokerProcess {
    let seeds = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
    node_on(id, &format!("kind: redis-cluster, cluster_nodes: [{seeds}], shared_rooms: true"), prefix).await
}

/// A node whose `store` section holds `store` (its kind and where Redis is) and the rest.
pub async fn node_on(id: &str, store: &str, prefix: &str) -> BrokerProcess {
    node_with_window(id, store, prefix, 500).await
}

pub async fn node_with_window(id: &str, store: &str, prefix: &str, reorder_window_ms: u64) -> BrokerProcess {
    node_custom(id, store, prefix, TTL_MS, &format!("reorder_window_ms: {reorder_window_ms}"), "").await
}

/// A node with its own `store.node_ttl_ms`, `room` and `client` settings (`room` and `client`:
/// a YAML flow mapping's inside, "" for the defaults).
pub async fn node_custom(id: &str, store: &str, prefix: &str, ttl_ms: u64, room: &str, client: &str) -> BrokerProcess {
    let port = free_port();
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: {port}, public_url: \"ws://127.0.0.1:{port}\", workers: 1 }}\n\
         store: {{ {store}, key_prefix: \"{prefix}\", node_id: \"{id}\", node_ttl_ms: {ttl_ms} }}\n\
         auth: {{ jwt_secret: \"{SECRET}\" }}\n\
         bigo: {{ accounts: [ {{ account: \"{}\", password: \"{}\" }} ], platform_abbr: \"{}\" }}\n\
         room: {{ {room} }}\n\
         client: {{ {client} }}\n",
        crate::common::ACCOUNT,
        crate::common::PASSWORD,
        crate::common::ABBR,
    );
    BrokerProcess::start(&yaml, port).await
}

pub fn client_url(node: &BrokerProcess) -> String {
    format!("ws://{}/iapi/websocket", node.addr)
}

/// A logged-in BIGO connection to `node`.
pub async fn bigo_on(node: &BrokerProcess) -> crate::common::BigoClient {
    let mut bigo = crate::common::ops::bigo_at(&format!("ws://{}", node.addr), None).await;
    let resp = bigo.login(crate::common::ACCOUNT, crate::common::PASSWORD, crate::common::now_ms()).await;
    assert_eq!(resp["code"], 200, "login: {resp}");
    bigo
}

/// A push of one chat item stamped now, whose seqid and data_seq are both `id`.
pub fn chat_push(game_sess: &str, id: &str, content: &str) -> Value {
    crate::common::push_data(id, game_sess, 2, vec![crate::common::msg_item(id, crate::common::now_ms(), content)])
}

/// Two shared-room nodes on one fresh Redis.
pub async fn shared_pair() -> (RedisServer, BrokerProcess, BrokerProcess) {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let a = node_with("node-a", &redis.url(), &prefix, true).await;
    let b = node_with("node-b", &redis.url(), &prefix, true).await;
    (redis, a, b)
}

pub async fn client_on(node: &BrokerProcess, user: &str) -> crate::common::AppClient {
    app_client_at(&format!("ws://{}", node.addr), user, None).await
}

/// The next frame of `client` whose `action` is `action`, waiting up to `within` (for what
/// takes longer than one [`crate::common::WAIT`]: a node taken for dead after a freeze).
pub async fn recv_action_within(client: &mut crate::common::AppClient, action: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame =
            tokio::time::timeout(left, client.recv()).await.unwrap_or_else(|_| panic!("no {action} in {within:?}"));
        if frame["action"] == action {
            return frame;
        }
    }
}

/// Each event's `seq` and `content`.
pub fn seqs_and_contents(events: &[Value]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap_or(0), e["content"].as_str().unwrap_or_default().to_string()))
        .collect()
}
