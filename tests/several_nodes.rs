//! Several broker processes on one Redis (docs/protocol.md 7): every node publishes its presence
//! and client count, and `end_point` on any node names the live node with the fewest
//! clients; a node that dies drops out within `store.node_ttl_ms`. With
//! `store.shared_rooms`, a room's pushes may arrive on any node and its members sit on any
//! node: every member gets every item once, in one `seq` order, in `ts` order.

mod common;

use std::time::{Duration, Instant};

use common::live::{unique_prefix, RedisCluster, RedisServer};
use common::ops::{app_client_at, client_query, free_port, BrokerProcess};
use common::SECRET;
use serde_json::Value;

/// Short, so that failures are seen quickly, yet long enough that a busy CI machine does not
/// make a live node miss its renewals (every 667 ms).
const TTL_MS: u64 = 2_000;

async fn node(id: &str, redis: &str, prefix: &str) -> BrokerProcess {
    node_with(id, redis, prefix, false).await
}

async fn node_with(id: &str, redis: &str, prefix: &str, shared_rooms: bool) -> BrokerProcess {
    node_on(id, &format!("kind: redis, redis_url: \"{redis}\", shared_rooms: {shared_rooms}"), prefix).await
}

/// A shared-room node on the Redis Cluster `cluster`.
async fn cluster_node(id: &str, cluster: &RedisCluster, prefix: &str) -> BrokerProcess {
    let seeds = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
    node_on(id, &format!("kind: redis-cluster, cluster_nodes: [{seeds}], shared_rooms: true"), prefix).await
}

/// A node whose `store` section holds `store` (its kind and where Redis is) and the rest.
async fn node_on(id: &str, store: &str, prefix: &str) -> BrokerProcess {
    node_with_window(id, store, prefix, 500).await
}

async fn node_with_window(id: &str, store: &str, prefix: &str, reorder_window_ms: u64) -> BrokerProcess {
    node_custom(id, store, prefix, TTL_MS, &format!("reorder_window_ms: {reorder_window_ms}"), "").await
}

/// A node with its own `store.node_ttl_ms`, `room` and `client` settings (`room` and `client`:
/// a YAML flow mapping's inside, "" for the defaults).
async fn node_custom(id: &str, store: &str, prefix: &str, ttl_ms: u64, room: &str, client: &str) -> BrokerProcess {
    let port = free_port();
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: {port}, public_url: \"ws://127.0.0.1:{port}\", workers: 1 }}\n\
         store: {{ {store}, key_prefix: \"{prefix}\", node_id: \"{id}\", node_ttl_ms: {ttl_ms} }}\n\
         auth: {{ jwt_secret: \"{SECRET}\" }}\n\
         bigo: {{ accounts: [ {{ account: \"{}\", password: \"{}\" }} ], platform_abbr: \"{}\" }}\n\
         room: {{ {room} }}\n\
         client: {{ {client} }}\n",
        common::ACCOUNT,
        common::PASSWORD,
        common::ABBR,
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

/// Waits until `at` sees `n` live nodes (`danmu_nodes`).
async fn until_nodes(at: &BrokerProcess, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let url = format!("http://{}/metrics", at.addr);
        let mut resp = awc::Client::new().get(url).send().await.expect("metrics");
        let text = String::from_utf8_lossy(&resp.body().limit(1 << 20).await.expect("body")).into_owned();
        if common::ops::sample(&text, "danmu_nodes", "") == Some(n as f64) {
            return;
        }
        assert!(Instant::now() < deadline, "{} does not see {n} nodes", at.addr);
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
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

    // A burst of newcomers asking one node is spread at once: each answer counts its client
    // until the next renewal brings fresh counts (so three answers name both nodes even if a
    // renewal falls between two of them).
    until_nodes(&a, 2).await;
    let burst = [end_point(&a).await, end_point(&a).await, end_point(&a).await];
    assert!(burst.contains(&client_url(&a)) && burst.contains(&client_url(&b)), "spread: {burst:?}");

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

/// `GET {path}` on `at`: (status, body).
async fn probe(at: &BrokerProcess, path: &str) -> (u16, String) {
    let mut resp = awc::Client::new().get(format!("http://{}{path}", at.addr)).send().await.expect("probe");
    let body = String::from_utf8_lossy(&resp.body().await.expect("body")).into_owned();
    (resp.status().as_u16(), body)
}

#[actix_rt::test]
async fn healthz_and_metrics_show_a_redis_outage_and_the_recovery_without_a_restart() {
    let mut redis = RedisServer::start();
    let a = node("node-a", &redis.url(), &unique_prefix()).await;
    until_store(&a, "store: redis reachable", 1.0).await;
    assert_eq!(probe(&a, "/readyz").await, (200, "ready\n".into()));
    redis.stop();
    until_store(&a, "store: redis unreachable", 0.0).await;
    // Not ready for new clients while Redis is away; alive all the same (a restart would not
    // bring Redis back).
    assert_eq!(probe(&a, "/readyz").await, (503, "not ready: store unreachable\n".into()));
    assert_eq!(probe(&a, "/livez").await, (200, "ok\n".into()));
    redis.restart();
    until_store(&a, "store: redis reachable", 1.0).await;
    assert_eq!(probe(&a, "/readyz").await, (200, "ready\n".into()));
}

#[actix_rt::test]
async fn a_node_started_while_redis_is_down_is_alive_but_not_ready_until_its_presence_is_written() {
    let mut redis = RedisServer::start();
    redis.stop();
    // Started without waiting for /healthz: the harness's wait is for 200, which it answers anyway.
    let port = common::ops::free_port();
    let dir = common::ops::TempDir::new("not-ready");
    let config = dir.path("config.yaml");
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: {port}, workers: 1 }}\n\
         store: {{ kind: redis, redis_url: \"{}\", key_prefix: \"{}\", node_id: \"lonely\", node_ttl_ms: {TTL_MS} }}\n\
         auth: {{ jwt_secret: \"{SECRET}\" }}\n",
        redis.url(),
        unique_prefix()
    );
    std::fs::write(&config, yaml).expect("config");
    let a = BrokerProcess::start_file(dir, &config, &[], port).await;
    assert_eq!(probe(&a, "/livez").await, (200, "ok\n".into()));
    let (status, body) = probe(&a, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(["not ready: presence not written\n", "not ready: store unreachable\n"].contains(&body.as_str()), "{body}");
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe(&a, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "not ready once Redis is up:\n{}", a.log_text());
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A logged-in BIGO connection to `node`.
async fn bigo_on(node: &BrokerProcess) -> common::BigoClient {
    let mut bigo = common::ops::bigo_at(&format!("ws://{}", node.addr), None).await;
    let resp = bigo.login(common::ACCOUNT, common::PASSWORD, common::now_ms()).await;
    assert_eq!(resp["code"], 200, "login: {resp}");
    bigo
}

/// A push of one chat item stamped now, whose seqid and data_seq are both `id`.
fn chat_push(game_sess: &str, id: &str, content: &str) -> Value {
    common::push_data(id, game_sess, 2, vec![common::msg_item(id, common::now_ms(), content)])
}

fn seqs_and_contents(events: &[Value]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap_or(0), e["content"].as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Pushes for `game_sess`, one item each, spread round-robin over `nodes` with `ts` shuffled
/// within the window, and a retry of the first on another node; a member on every node.
/// Every member gets every item once, in one `seq` order, in `ts` order; members on
/// different nodes chat; one node owns the room.
async fn pushes_spread_over_nodes_reach_every_member_once_in_one_order(nodes: &[&BrokerProcess], game_sess: &str) {
    let mut members = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut member = app_client_at(&format!("ws://{}", node.addr), &format!("{game_sess}-member-{i}"), None).await;
        member.enter(game_sess).await;
        members.push(member);
    }
    let mut pushers = Vec::new();
    for node in nodes {
        pushers.push(bigo_on(node).await);
    }
    let base = common::now_ms();
    // 40 items, one per push, round-robin over the nodes, ts shuffled within the window (a
    // fixed LCG).
    let mut state: u64 = 7;
    let mut sent = Vec::new();
    for i in 0..40 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let ts = base + ((state >> 33) % 200) as i64;
        let item = common::msg_item(&format!("d{i}"), ts, &format!("{i:02}"));
        let push = common::push_data(&format!("s{i}"), game_sess, 2, vec![item]);
        let answer = pushers[i % nodes.len()].push(&push).await;
        assert_eq!(answer["rescode"], 200, "{answer}");
        sent.push((ts, format!("{i:02}")));
    }
    // A retry of the first push, sent to another node: taken (200), delivered once.
    let retry = common::push_data("s0", game_sess, 2, vec![common::msg_item("d0", base, "00")]);
    assert_eq!(pushers[1].push(&retry).await["rescode"], 200);

    let mut got = Vec::new();
    for member in &mut members {
        got.push(seqs_and_contents(&member.events("send_topic_msg", 40).await));
    }
    assert!(got.windows(2).all(|w| w[0] == w[1]), "one order on every node: {got:?}");
    let mut expected = sent.clone();
    expected.sort_by_key(|(ts, _)| *ts);
    let contents: Vec<String> = got[0].iter().map(|(_, c)| c.clone()).collect();
    let expected: Vec<String> = expected.into_iter().map(|(_, c)| c).collect();
    assert_eq!(contents, expected, "ts order within the window");
    let seqs: Vec<u64> = got[0].iter().map(|(seq, _)| *seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "seq without gaps: {seqs:?}");

    // A member on one node talks to the members on the others.
    let (first, rest) = members.split_first_mut().expect("members");
    rest[0].send("send_topic_msg_report", serde_json::json!({"channel_name": game_sess, "content": "hello"})).await;
    let heard = first.recv_action("send_topic_msg").await;
    assert_eq!(
        (heard["content"].as_str(), heard["user_id"].as_str()),
        (Some("hello"), Some(&*format!("{game_sess}-member-1")))
    );

    let owners = nodes.iter().filter(|n| n.log_text().contains(&format!("room {game_sess}: node"))).count();
    assert_eq!(owners, 1, "one node owns the room");
}

#[actix_rt::test]
async fn pushes_spread_over_three_nodes_reach_members_on_all_once_in_one_order() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let a = node_with("node-a", &redis.url(), &prefix, true).await;
    let b = node_with("node-b", &redis.url(), &prefix, true).await;
    let c = node_with("node-c", &redis.url(), &prefix, true).await;
    pushes_spread_over_nodes_reach_every_member_once_in_one_order(&[&a, &b, &c], "g-shared").await;
}

#[actix_rt::test]
async fn on_a_redis_cluster_pushes_spread_over_three_nodes_reach_every_member_once_in_one_order() {
    let cluster = RedisCluster::start();
    let prefix = unique_prefix();
    let (a, b, c) = (
        cluster_node("node-a", &cluster, &prefix).await,
        cluster_node("node-b", &cluster, &prefix).await,
        cluster_node("node-c", &cluster, &prefix).await,
    );
    // Two rooms whose keys sit on different masters, served side by side.
    let keys = danmu_broker::cluster::keys::Keys::new(&prefix);
    let master = |channel: &str| cluster.port_of(&keys.room(channel, "events"));
    let first = "g-c0".to_string();
    let second = (1..).map(|i| format!("g-c{i}")).find(|c| master(c) != master(&first)).expect("another master");
    let nodes = [&a, &b, &c];
    futures_util::join!(
        pushes_spread_over_nodes_reach_every_member_once_in_one_order(&nodes, &first),
        pushes_spread_over_nodes_reach_every_member_once_in_one_order(&nodes, &second),
    );
}

/// Two shared-room nodes on one fresh Redis.
async fn shared_pair() -> (RedisServer, BrokerProcess, BrokerProcess) {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let a = node_with("node-a", &redis.url(), &prefix, true).await;
    let b = node_with("node-b", &redis.url(), &prefix, true).await;
    (redis, a, b)
}

async fn client_on(node: &BrokerProcess, user: &str) -> common::AppClient {
    app_client_at(&format!("ws://{}", node.addr), user, None).await
}

#[actix_rt::test]
async fn a_member_recovers_on_another_node_with_last_seq_and_epoch() {
    let (_redis, a, b) = shared_pair().await;
    let mut ann = client_on(&a, "ann").await;
    let mut watcher = client_on(&b, "wat").await;
    let ack = ann.enter("g-recover").await;
    let epoch = ack["epoch"].as_str().expect("epoch").to_string();
    watcher.enter("g-recover").await;
    let mut bigo = bigo_on(&b).await;
    let t = common::now_ms();
    let items = (0..3).map(|i| common::msg_item(&format!("seen{i}"), t + i, &format!("seen-{i}"))).collect();
    assert_eq!(bigo.push(&common::push_data("p1", "g-recover", 2, items)).await["rescode"], 200);
    let seen = ann.events("send_topic_msg", 3).await;
    let last_seen = seen.last().and_then(|e| e["seq"].as_u64()).expect("seq");
    ann.drop_without_close();
    watcher.recv_action("exit_room").await;
    let t = common::now_ms();
    let items = (0..2).map(|i| common::msg_item(&format!("missed{i}"), t + i, &format!("missed-{i}"))).collect();
    assert_eq!(bigo.push(&common::push_data("p2", "g-recover", 2, items)).await["rescode"], 200);
    watcher.events("send_topic_msg", 2).await;

    // Back on the other node: everything after last_seen, in order, before anything live.
    let mut ann = client_on(&b, "ann").await;
    ann.send(
        "enter_room_report",
        serde_json::json!({"channel_name": "g-recover", "last_seq": last_seen, "epoch": epoch}),
    )
    .await;
    let ack = ann.recv_action("ack").await;
    assert_eq!((ack["recovered"].as_bool(), ack["epoch"].as_str()), (Some(true), Some(epoch.as_str())), "{ack}");
    let own = ack["last_seq"].as_u64().expect("last_seq");
    let mut replay = Vec::new();
    for _ in last_seen + 1..own {
        replay.push(ann.recv().await);
    }
    let actions: Vec<&str> = replay.iter().map(|e| e["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(actions, ["exit_room", "send_topic_msg", "send_topic_msg"], "{replay:?}");
    let seqs: Vec<u64> = replay.iter().map(|e| e["seq"].as_u64().unwrap_or(0)).collect();
    assert_eq!(seqs, (last_seen + 1..own).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn seats_gifts_and_leaving_work_across_nodes() {
    let (_redis, a, b) = shared_pair().await;
    let mut ann = client_on(&a, "ann").await;
    let mut bob = client_on(&b, "bob").await;
    ann.enter("g-seats").await;
    bob.enter("g-seats").await;
    ann.recv_action("enter_room").await;

    // Both want seat 1 at once: one wins, the other gets 1005.
    ann.send("up_report", serde_json::json!({"channel_name": "g-seats", "seat_id": 1})).await;
    bob.send("up_report", serde_json::json!({"channel_name": "g-seats", "seat_id": 1})).await;
    let answers = [ann.answer("up_report").await, bob.answer("up_report").await];
    let codes: Vec<u64> = answers.iter().map(|a| a["error_code"].as_u64().unwrap_or(99)).collect();
    assert!(codes.contains(&0) && codes.contains(&1005), "one winner: {answers:?}");

    // A ptp gift reaches the receiver on the other node only.
    let gift = serde_json::json!({"channel_name": "g-seats", "notify_type": "ptp",
                                  "gift": {"id": "g1", "name": "Rose", "num": 1, "receiver_id": "bob"}});
    let ack = ann.request("send_gift_report", gift).await;
    assert_eq!(ack["error_code"], 0, "{ack}");
    let got = bob.recv_action("send_gift").await;
    assert_eq!((got["notify_type"].as_str(), got["gift"]["sender_id"].as_str()), (Some("ptp"), Some("ann")));

    // So does a hang_up, both ways.
    let ack = ann.request("hang_up_report", serde_json::json!({"receiver_id": "bob"})).await;
    assert_eq!(ack["error_code"], 0, "{ack}");
    let hang_up = bob.recv_action("hang_up").await;
    assert_eq!((hang_up["user_id"].as_str(), hang_up["receiver_id"].as_str()), (Some("ann"), Some("bob")));
    let ack = bob.request("hang_up_report", serde_json::json!({"receiver_id": "ann"})).await;
    assert_eq!(ack["error_code"], 0, "{ack}");
    let hang_up = ann.recv_action("hang_up").await;
    assert_eq!((hang_up["user_id"].as_str(), hang_up["receiver_id"].as_str()), (Some("bob"), Some("ann")));

    // Leaving on one node frees the seat for everybody.
    let seat_holder = if codes[0] == 0 { "ann" } else { "bob" };
    let (mut leaver, mut stayer) = if seat_holder == "ann" { (ann, bob) } else { (bob, ann) };
    let ack = leaver
        .request("exit_room_report", serde_json::json!({"user_id": seat_holder, "channel_name": "g-seats"}))
        .await;
    assert_eq!(ack["error_code"], 0, "{ack}");
    let exit = stayer.recv_action("exit_room").await;
    assert_eq!((exit["user_id"].as_str(), exit["room_seat"]["id"].as_u64()), (Some(seat_holder), Some(1)));
    let up = stayer.request("up_report", serde_json::json!({"channel_name": "g-seats", "seat_id": 1})).await;
    assert_eq!(up["error_code"], 0, "the seat is free again: {up}");
}

#[actix_rt::test]
async fn when_the_owner_is_killed_another_node_takes_the_room_over_and_loses_nothing_acknowledged() {
    let (_redis, mut a, b) = shared_pair().await;
    // The first input comes through a: a owns the room.
    let mut via_a = bigo_on(&a).await;
    let t = common::now_ms();
    let first = common::push_data("k0", "g-kill", 2, vec![common::msg_item("k0", t, "before-0")]);
    assert_eq!(via_a.push(&first).await["rescode"], 200);
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-kill").await;
    let mut via_b = bigo_on(&b).await;
    let mut acknowledged = vec!["before-0".to_string()];
    for i in 1..10 {
        let push = common::push_data(
            &format!("k{i}"),
            "g-kill",
            2,
            vec![common::msg_item(&format!("k{i}"), t + i, &format!("before-{i}"))],
        );
        assert_eq!(via_b.push(&push).await["rescode"], 200);
        acknowledged.push(format!("before-{i}"));
    }
    // The owner dies with items in its reorder window; pushes go on through b.
    a.child.kill().expect("kill -9 the owner");
    let _ = a.child.wait();
    let died = Instant::now();
    for i in 0..10 {
        let t = common::now_ms();
        let push = common::push_data(
            &format!("after{i}"),
            "g-kill",
            2,
            vec![common::msg_item(&format!("a{i}"), t, &format!("after-{i}"))],
        );
        assert_eq!(via_b.push(&push).await["rescode"], 200, "a push is stored whoever owns the room");
        acknowledged.push(format!("after-{i}"));
        actix_rt::time::sleep(Duration::from_millis(150)).await;
    }
    let got = bob.events("send_topic_msg", acknowledged.len()).await;
    let mut contents: Vec<String> = got.iter().map(|e| e["content"].as_str().unwrap_or_default().to_string()).collect();
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap_or(0)).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "seq rises: {seqs:?}");
    contents.sort();
    acknowledged.sort();
    assert_eq!(contents, acknowledged, "every acknowledged item, once");
    assert!(died.elapsed() < Duration::from_millis(TTL_MS) + Duration::from_secs(5), "took {:?}", died.elapsed());
    assert!(
        b.log_text().contains("room g-kill: node node-b owns it now (state restored"),
        "b took over: {}",
        b.log_text()
    );
}

/// More inputs wait in the stream than one read takes (500): the owner that takes the room
/// over reads them page by page, each page committed before the next is read, so nothing is
/// numbered twice or stored out of order. (No reorder window: every page numbers events.)
#[actix_rt::test]
async fn a_backlog_longer_than_one_read_is_committed_page_by_page() {
    const BACKLOG: usize = 1_200;
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let store = format!("kind: redis, redis_url: \"{}\", shared_rooms: true", redis.url());
    let mut a = node_with_window("node-a", &store, &prefix, 0).await;
    let b = node_with_window("node-b", &store, &prefix, 0).await;
    let mut via_a = bigo_on(&a).await;
    let t = common::now_ms();
    let first = common::push_data("p0", "g-pages", 2, vec![common::msg_item("p0", t, "first")]);
    assert_eq!(via_a.push(&first).await["rescode"], 200);
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-pages").await;
    // The owner dies, and its lease is made to outlast the pushes (as a slow death would):
    // they pile up in the room's input stream until b takes the room over.
    a.child.kill().expect("kill -9 the owner");
    let _ = a.child.wait();
    let mut conn = redis::Client::open(redis.url()).expect("redis url").get_connection().expect("redis");
    let lease = format!("{prefix}room:{{g-pages}}:lease");
    let _: () = redis::cmd("SET").arg(&lease).arg("node-a").arg("PX").arg(4_000).query(&mut conn).expect("SET");
    let mut via_b = bigo_on(&b).await;
    // ("first" went out before bob came in.)
    let mut acknowledged = Vec::new();
    for i in 1..=BACKLOG {
        let push = common::push_data(
            &format!("p{i}"),
            "g-pages",
            2,
            vec![common::msg_item(&format!("p{i}"), common::now_ms(), &format!("item-{i}"))],
        );
        via_b.send_push(&push).await;
        acknowledged.push(format!("item-{i}"));
    }
    for _ in 1..=BACKLOG {
        let resp = via_b.recv().await;
        assert_eq!(common::BigoClient::data_of(&resp)["rescode"], 200, "{resp}");
    }
    let waiting: usize = redis::cmd("XLEN").arg(format!("{prefix}room:{{g-pages}}:in")).query(&mut conn).expect("XLEN");
    assert!(waiting > BACKLOG / 2, "a backlog of more than one read: {waiting}");
    // The lease runs out; b, with a member there, takes the room over and reads the backlog.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.log_text().contains("room g-pages: node node-b owns it now") {
        assert!(Instant::now() < deadline, "b did not take the room over: {}", b.log_text());
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let got = bob.events("send_topic_msg", acknowledged.len()).await;
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap_or(0)).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "seq rises");
    let mut contents: Vec<String> = got.iter().map(|e| e["content"].as_str().unwrap_or_default().to_string()).collect();
    contents.sort();
    acknowledged.sort();
    assert_eq!(contents, acknowledged, "every acknowledged item, once");
    let log = b.log_text();
    assert!(!log.contains("giving it up"), "b kept the room: {log}");
}

/// A node is taken for dead once the others, connected to Redis all along, have seen its
/// presence missing for `store.node_ttl_ms`: its members leave their rooms at most two
/// `node_ttl_ms` and two renewals (a third of it each) after its last renewal.
#[actix_rt::test]
async fn a_killed_nodes_members_leave_their_rooms_once_its_presence_was_seen_missing_for_the_node_ttl() {
    let (_redis, a, mut b) = shared_pair().await;
    // a owns the room (its member joins first); bob sits on b, on seat 2.
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-expire").await;
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-expire").await;
    let up = bob.request("up_report", serde_json::json!({"channel_name": "g-expire", "seat_id": 2})).await;
    assert_eq!(up["error_code"], 0, "{up}");
    ann.recv_action("up").await;

    b.child.kill().expect("kill -9 node b");
    let _ = b.child.wait();
    let died = Instant::now();
    let within = Duration::from_millis(2 * TTL_MS + 2 * TTL_MS / 3) + Duration::from_secs(1);
    let exit = recv_action_within(&mut ann, "exit_room", within).await;
    assert_eq!((exit["user_id"].as_str(), exit["room_seat"]["id"].as_u64()), (Some("bob"), Some(2)), "{exit}");
    // Not before its record expired and was then seen missing for node_ttl_ms.
    assert!(died.elapsed() > Duration::from_millis(TTL_MS), "took {:?} only", died.elapsed());
    let seat = ann.request("up_report", serde_json::json!({"channel_name": "g-expire", "seat_id": 2})).await;
    assert_eq!(seat["error_code"], 0, "bob's seat is free: {seat}");
}

#[actix_rt::test]
async fn a_redis_restart_while_pushes_flow_answers_503_then_recovers_and_loses_nothing_acknowledged() {
    let mut redis = RedisServer::start_persistent();
    let prefix = unique_prefix();
    let a = node_with("node-a", &redis.url(), &prefix, true).await;
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-outage").await;
    let mut bigo = bigo_on(&a).await;
    let (mut acknowledged, mut refused) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..60 {
        if i == 15 {
            redis.stop();
        }
        if i == 30 {
            redis.restart();
        }
        let content = format!("m{i:02}");
        let push = common::push_data(
            &format!("o{i}"),
            "g-outage",
            2,
            vec![common::msg_item(&format!("o{i}"), common::now_ms(), &content)],
        );
        match bigo.push(&push).await["rescode"].as_u64() {
            Some(200) => acknowledged.push(content),
            Some(503) => refused += 1,
            other => panic!("a push answered {other:?}"),
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        assert!(Instant::now() < deadline, "pushes took too long");
    }
    assert!(refused > 0, "the outage answered 503");
    assert!(acknowledged.iter().any(|c| c.as_str() > "m30"), "service came back by itself: {acknowledged:?}");
    let mut got: Vec<String> = ann
        .events("send_topic_msg", acknowledged.len())
        .await
        .iter()
        .map(|e| e["content"].as_str().unwrap_or_default().to_string())
        .collect();
    got.sort();
    acknowledged.sort();
    assert_eq!(got, acknowledged, "every acknowledged push delivered once, none that was refused");
}

/// Bytes `node` has received from Redis so far, summed over its connections to `redis_port`
/// (the kernel's `bytes_received` of each socket, read with `ss -ti`).
fn bytes_from_redis(node: &BrokerProcess, redis_port: u16) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-tinpH", "state", "established", &format!("( dport = :{redis_port} )")])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = format!("pid={},", node.child.id());
    let mut total = 0;
    let mut ours = false;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            ours = line.contains(&pid);
        } else if ours {
            let received = line.split_whitespace().find_map(|f| f.strip_prefix("bytes_received:"));
            total += received.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

#[actix_rt::test]
async fn a_node_without_members_in_a_room_reads_none_of_its_traffic() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let a = node_with("node-a", &redis.url(), &prefix, true).await;
    let b = node_with("node-b", &redis.url(), &prefix, true).await;
    let c = node_with("node-c", &redis.url(), &prefix, true).await;
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-traffic").await;
    let mut bigo = bigo_on(&a).await;
    let read = |n: &BrokerProcess| bytes_from_redis(n, redis.port);
    let (b_before, c_before) = (read(&b), read(&c));
    let padding = "x".repeat(2_000);
    for i in 0..100 {
        let item = common::msg_item(&format!("t{i}"), common::now_ms(), &format!("{i:03}{padding}"));
        assert_eq!(bigo.push(&common::push_data(&format!("t{i}"), "g-traffic", 2, vec![item])).await["rescode"], 200);
    }
    bob.events("send_topic_msg", 100).await;
    let (b_read, c_read) = (read(&b) - b_before, read(&c) - c_before);
    // 100 events of 2 kB reached b (through Redis, then to bob); c only renewed its presence.
    assert!(b_read > 200_000, "b read {b_read} bytes");
    assert!(c_read < 20_000, "c read {c_read} bytes of a room it has no member in");
}

/// What Redis is asked about `channel`'s keys for `within`, watched with `MONITOR` on the test's
/// own redis-server: the lines that name the room's hash tag. (The nodes' presence renewals
/// are seen meanwhile: proof that the watch itself worked.)
fn commands_about(redis_port: u16, channel: &str, within: Duration) -> Vec<String> {
    let monitor = std::process::Command::new("timeout")
        .arg(format!("{:.1}", within.as_secs_f64()))
        .args(["redis-cli", "-p", &redis_port.to_string(), "monitor"])
        .output()
        .expect("timeout redis-cli monitor");
    let out = String::from_utf8_lossy(&monitor.stdout).into_owned();
    assert!(out.contains("EVALSHA") || out.contains("evalsha"), "MONITOR saw no presence renewal: {out:?}");
    let tag = format!("room:{{{channel}}}");
    out.lines().filter(|l| l.contains(&tag)).map(str::to_string).collect()
}

/// An owned room with nothing going on costs Redis nothing (its lease holds while its owner's
/// presence does, and its owner is woken by inputs instead of polling), and a room with no
/// members anywhere and no pushes stops and gives its lease up, after which nothing at all is
/// sent about it (issue 21).
#[actix_rt::test]
async fn an_idle_room_sends_no_commands_and_one_without_members_gives_its_lease_up() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let store = format!("kind: redis, redis_url: \"{}\", shared_rooms: true", redis.url());
    let room = "reorder_window_ms: 100, idle_stop_ms: 500";
    let a = node_custom("node-a", &store, &prefix, TTL_MS, room, "").await;
    let b = node_custom("node-b", &store, &prefix, TTL_MS, room, "").await;
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-quiet").await;
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-quiet").await;
    let mut bigo = bigo_on(&b).await;
    assert_eq!(bigo.push(&chat_push("g-quiet", "q0", "one")).await["rescode"], 200);
    assert_eq!(ann.events("send_topic_msg", 1).await[0]["content"], "one");
    bob.events("send_topic_msg", 1).await;
    // Past the presence renewals' own rounds (every 667 ms) and any commit still due.
    actix_rt::time::sleep(Duration::from_millis(1_500)).await;
    let seen = commands_about(redis.port, "g-quiet", Duration::from_secs(3));
    assert!(seen.is_empty(), "an owned room with members and no traffic: {seen:?}");

    // Everybody leaves, no pushes: the room stops on both nodes and its lease goes.
    let lease = "room:{g-quiet}:lease";
    assert!(common::live::redis_keys(&redis.url(), &prefix).contains_key(lease), "the room is owned");
    drop(bigo);
    for (member, user) in [(&mut ann, "ann"), (&mut bob, "bob")] {
        let ack =
            member.request("exit_room_report", serde_json::json!({"user_id": user, "channel_name": "g-quiet"})).await;
        assert_eq!(ack["error_code"], 0, "{ack}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::live::redis_keys(&redis.url(), &prefix).contains_key(lease) {
        assert!(Instant::now() < deadline, "the lease of a room nobody uses is still held");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = commands_about(redis.port, "g-quiet", Duration::from_secs(2));
    assert!(seen.is_empty(), "a room with no members and no pushes: {seen:?}");
}

#[actix_rt::test]
async fn the_session_rules_hold_across_nodes() {
    let (_redis, a, b) = shared_pair().await;
    // One user_id and sid on a, then on b: the one on a is replaced. The second comes once the
    // first is on record (user/info on b knows its room): two connections of one sid opened in
    // the same instant on two nodes are a race the directory does not settle yet (closing note).
    let mut first = client_on(&a, "ann").await;
    first.enter("g-first").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let url = format!("http://{}/iapi/user/info?{}", b.addr, client_query("ann", "sid-q"));
        let body: Value = awc::Client::new().get(url).send().await.expect("user/info").json().await.expect("JSON");
        if body["current_room_id"] == "g-first" {
            break;
        }
        assert!(Instant::now() < deadline, "user/info on b still says {body}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let _second = client_on(&b, "ann").await;
    let kicked = first.recv_action("kicked").await;
    assert_eq!(kicked["reason"], "replaced", "{kicked}");
    assert_eq!(common::closed_with(&mut first.ws).await, Some(1000));

    // user/info answers from a node the user is not on.
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-where").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let url = format!("http://{}/iapi/user/info?{}", a.addr, client_query("bob", "sid-q"));
        let mut resp = awc::Client::new().get(url).send().await.expect("user/info");
        let body: Value = resp.json().await.expect("JSON");
        if body["current_room_id"] == "g-where" {
            break;
        }
        assert!(Instant::now() < deadline, "user/info on a still says {body}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }

    // One room per user: bob enters another room on a with another device; b moves him out.
    let mut other_device = {
        let url = format!("ws://{}/iapi/websocket?{}", a.addr, client_query("bob", "sid-2"));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        common::AppClient::connected(ws, "bob", "sid-2").await
    };
    other_device.enter("g-elsewhere").await;
    let exit = bob.recv_action("exit_room").await;
    assert_eq!((exit["user_id"].as_str(), exit["channel_name"].as_str()), (Some("bob"), Some("g-where")), "{exit}");
}

fn signal(node: &BrokerProcess, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(node.child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill {sig}");
}

#[actix_rt::test]
async fn a_node_taken_for_dead_that_comes_back_closes_its_clients_with_1012() {
    let (_redis, a, b) = shared_pair().await;
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-stopped").await;
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-stopped").await;
    ann.recv_action("enter_room").await;

    // b stops (as if cut off): its presence expires, a sees it missing for node_ttl_ms more
    // and removes bob.
    signal(&b, libc::SIGSTOP);
    let exit = recv_action_within(&mut ann, "exit_room", Duration::from_millis(TTL_MS * 4)).await;
    assert_eq!(exit["user_id"], "bob", "{exit}");
    // b comes back: it may not serve bob as a member any more, so it sends him away.
    signal(&b, libc::SIGCONT);
    let kicked = bob.recv_action("kicked").await;
    assert_eq!(kicked["reason"], "reconnect", "{kicked}");
    assert_eq!(common::closed_with(&mut bob.ws).await, Some(1012));
}

/// Three nodes on one Redis. `a_url` is asked for `end_point` until it names a live node
/// other than `dead`.
async fn end_point_other_than(at: &BrokerProcess, dead: &str) -> String {
    let deadline = Instant::now() + Duration::from_millis(TTL_MS) * 3;
    loop {
        let url = end_point(at).await;
        if url != dead {
            return url.trim_end_matches("/iapi/websocket").to_string();
        }
        assert!(Instant::now() < deadline, "end_point still names the dead node {dead}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn when_the_node_bigo_pushes_to_dies_bigo_retries_elsewhere_and_its_clients_recover_exactly_what_they_missed() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let mut a = node_with("node-a", &redis.url(), &prefix, true).await;
    let b = node_with("node-b", &redis.url(), &prefix, true).await;
    let c = node_with("node-c", &redis.url(), &prefix, true).await;
    // carol on c joins first (c owns the room); ann sits on a, the node BIGO pushes to.
    let mut carol = client_on(&c, "carol").await;
    carol.enter("g-move").await;
    let mut ann = client_on(&a, "ann").await;
    let epoch = ann.enter("g-move").await["epoch"].as_str().expect("epoch").to_string();

    let mut bigo = bigo_on(&a).await;
    let mut acknowledged = Vec::new();
    let mut moved = false;
    for i in 0..30 {
        let item = common::msg_item(&format!("m{i}"), common::now_ms(), &format!("item-{i:02}"));
        let push = common::push_data(&format!("q{i}"), "g-move", 2, vec![item]);
        if i == 15 {
            // Past the reorder window, the first 15 items have reached ann; then a dies with this push on the wire: BIGO gets no answer and sends it again to
            // another node (it may have been stored already: the retry is recognised).
            actix_rt::time::sleep(Duration::from_millis(1_000)).await;
            bigo.send_push(&push).await;
            a.child.kill().expect("kill -9 node a");
            let _ = a.child.wait();
        }
        let answer = match (i == 15, bigo.try_push(&push).await) {
            (false, Some(answer)) => answer,
            _ => {
                assert!(!moved, "only one node died");
                moved = true;
                bigo = bigo_on(&b).await;
                bigo.push(&push).await
            }
        };
        assert_eq!(answer["rescode"], 200, "{answer}");
        acknowledged.push(format!("item-{i:02}"));
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(moved, "BIGO moved to another node");

    // carol, on a node that lived, has every acknowledged item once, in seq order.
    let got = carol.events("send_topic_msg", acknowledged.len()).await;
    let contents: Vec<String> = got.iter().map(|e| e["content"].as_str().unwrap_or_default().to_string()).collect();
    let mut sorted = contents.clone();
    sorted.sort();
    assert_eq!(sorted, acknowledged, "every acknowledged item once");

    // ann saw what reached her before a died; through end_point she recovers the rest.
    let before: Vec<Value> =
        ann.frames_until_closed().await.into_iter().filter(|f| f["action"] == "send_topic_msg").collect();
    let last_seq = before.last().and_then(|e| e["seq"].as_u64()).expect("ann saw items before a died");
    let elsewhere = end_point_other_than(&b, &client_url(&a)).await;
    let mut ann = app_client_at(&elsewhere, "ann", None).await;
    ann.send("enter_room_report", serde_json::json!({"channel_name": "g-move", "last_seq": last_seq, "epoch": epoch}))
        .await;
    let ack = ann.recv_action("ack").await;
    assert_eq!((ack["recovered"].as_bool(), ack["epoch"].as_str()), (Some(true), Some(epoch.as_str())), "{ack}");
    // Then the missed events (her own enter_room, numbered `own` when she came in as a new
    // user, excepted), and live ones: every seq after last_seq once, in order.
    let own = ack["last_seq"].as_u64().expect("last_seq");
    let mut seen: Vec<String> = before.iter().map(|e| e["content"].as_str().unwrap_or_default().to_string()).collect();
    let mut seqs = Vec::new();
    while seen.len() < acknowledged.len() {
        let frame = ann.recv().await;
        seqs.push(frame["seq"].as_u64().expect("a room event"));
        if frame["action"] == "send_topic_msg" {
            seen.push(frame["content"].as_str().unwrap_or_default().to_string());
        }
    }
    let expected: Vec<u64> =
        (last_seq + 1..=*seqs.last().unwrap_or(&last_seq)).filter(|s| *s != own || seqs.contains(s)).collect();
    assert_eq!(seqs, expected, "every seq after last_seq once, in order (own enter {own})");
    seen.sort();
    assert_eq!(seen, acknowledged, "what she saw before + after = every acknowledged item, once");
}

#[actix_rt::test]
async fn a_node_that_shuts_down_hands_its_rooms_on_at_once() {
    let (_redis, mut a, b) = shared_pair().await;
    // ann's join makes a the owner; bob is on b.
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-handover").await;
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-handover").await;
    let mut via_b = bigo_on(&b).await;
    let t = common::now_ms();
    let first = common::push_data("h0", "g-handover", 2, vec![common::msg_item("h0", t, "before")]);
    assert_eq!(via_b.push(&first).await["rescode"], 200);
    assert_eq!(bob.events("send_topic_msg", 1).await[0]["content"], "before");

    a.terminate();
    assert!(a.wait_exit(Duration::from_secs(10)).await.is_some_and(|s| s.success()), "a clean exit");
    let gone = Instant::now();
    let next = common::push_data("h1", "g-handover", 2, vec![common::msg_item("h1", common::now_ms(), "after")]);
    assert_eq!(via_b.push(&next).await["rescode"], 200);
    let after = bob.events("send_topic_msg", 1).await;
    assert_eq!(after[0]["content"], "after");
    // Well within the lease's time: b did not wait for a's lease to run out.
    assert!(gone.elapsed() < Duration::from_millis(TTL_MS), "took {:?}", gone.elapsed());
    assert!(a.log_text().contains("room g-handover: node node-a hands it on (shutdown)"), "{}", a.log_text());
}

/// A link to Redis that stays open but carries nothing any more (half-open: no reset, no end
/// of stream): the node's store calls time out, its connections are taken for stalled and
/// replaced, and pushes are stored and delivered again without a restart.
#[actix_rt::test]
async fn a_half_open_link_to_redis_is_replaced_and_service_comes_back() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let link = common::ops::TcpCut::start(redis.port);
    let a = node_with("node-a", &format!("redis://127.0.0.1:{}", link.port), &prefix, true).await;
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-frozen").await;
    let mut via_a = bigo_on(&a).await;
    let push = |i: usize| chat_push("g-frozen", &format!("f{i}"), &format!("frozen-{i}"));
    assert_eq!(via_a.push(&push(0)).await["rescode"], 200);
    assert_eq!(ann.events("send_topic_msg", 1).await[0]["content"], "frozen-0");

    link.freeze_open();
    let frozen_at = Instant::now();
    let mut refused = 0;
    let mut i = 1;
    loop {
        let answer = via_a.push(&push(i)).await;
        if answer["rescode"] == 200 {
            break;
        }
        assert_eq!(answer["rescode"], 503, "never a 200 for what was not stored: {answer}");
        refused += 1;
        i += 1;
        assert!(frozen_at.elapsed() < Duration::from_secs(30), "the node never got Redis back: {}", a.log_text());
    }
    assert!(refused > 0, "the frozen link refused pushes first");
    assert!(a.log_text().contains("Redis requests in a row timed out on one connection"), "{}", a.log_text());
    // The stored push reaches the member: the pub/sub connection was replaced too.
    let got = ann.events("send_topic_msg", 1).await;
    assert_eq!(got[0]["content"].as_str(), Some(&*format!("frozen-{i}")));
}

#[actix_rt::test]
async fn an_owner_cut_off_from_redis_stops_owning_and_the_room_goes_on_elsewhere() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    // a reaches Redis through a link the test can cut; b directly.
    let link = common::ops::TcpCut::start(redis.port);
    let a = node_with("node-a", &format!("redis://127.0.0.1:{}", link.port), &prefix, true).await;
    let b = node_with("node-b", &redis.url(), &prefix, true).await;
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-cut").await;
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-cut").await;
    let mut via_b = bigo_on(&b).await;
    let push = |i: usize| chat_push("g-cut", &format!("c{i}"), &format!("cut-{i}"));
    assert_eq!(via_b.push(&push(0)).await["rescode"], 200);
    let first = bob.events("send_topic_msg", 1).await;
    assert!(a.log_text().contains("room g-cut: node node-a owns it"), "a owns the room");

    // a loses Redis while it keeps running; b and Redis go on.
    link.cut();
    let cut_at = Instant::now();
    for i in 1..6 {
        assert_eq!(via_b.push(&push(i)).await["rescode"], 200, "b stores pushes whoever owns the room");
        actix_rt::time::sleep(Duration::from_millis(300)).await;
    }
    let after = bob.events("send_topic_msg", 5).await;
    let contents: Vec<&str> = after.iter().map(|e| e["content"].as_str().unwrap_or_default()).collect();
    assert_eq!(contents, ["cut-1", "cut-2", "cut-3", "cut-4", "cut-5"]);
    let seqs: Vec<u64> = first.iter().chain(&after).map(|e| e["seq"].as_u64().unwrap_or(0)).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "one numbering, rising: {seqs:?}");
    assert!(cut_at.elapsed() < Duration::from_millis(TTL_MS) + Duration::from_secs(5), "took {:?}", cut_at.elapsed());
    assert!(b.log_text().contains("room g-cut: node node-b owns it now (state restored"), "{}", b.log_text());
    // a stays away until b has seen its presence missing for node_ttl_ms and removed ann.
    let deadline = cut_at + Duration::from_millis(TTL_MS * 5);
    while !b.log_text().contains("room g-cut: 1 member session(s) of dead node(s) [\"node-a\"] removed") {
        assert!(Instant::now() < deadline, "b never took a for dead: {}", b.log_text());
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }

    // a's link comes back: it finds it was taken for dead and sends its clients elsewhere; it
    // numbers nothing for the room (its commits are fenced by the lease b holds).
    link.restore();
    let kicked = ann.recv_action("kicked").await;
    assert_eq!(kicked["reason"], "reconnect");
    assert_eq!(common::closed_with(&mut ann.ws).await, Some(1012));
    let gave_up = |log: &str| {
        log.contains("room g-cut: its lease went to another node")
            || log.contains("room g-cut: lease not renewed in time, giving the room up")
            || log.contains("room g-cut: another node holds its lease now, giving it up")
    };
    let deadline = Instant::now() + Duration::from_millis(TTL_MS);
    while !gave_up(&a.log_text()) {
        assert!(Instant::now() < deadline, "a never gave the room up: {}", a.log_text());
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(via_b.push(&push(6)).await["rescode"], 200);
    let last = bob.events("send_topic_msg", 1).await;
    assert_eq!(
        (last[0]["content"].as_str(), last[0]["seq"].as_u64().map(|s| s > seqs[seqs.len() - 1])),
        (Some("cut-6"), Some(true))
    );
}

/// The next frame of `client` whose `action` is `action`, waiting up to `within` (for what
/// takes longer than one [`common::WAIT`]: a node taken for dead after a freeze).
async fn recv_action_within(client: &mut common::AppClient, action: &str, within: Duration) -> Value {
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

/// The room `user/info` on `at` names for `user`.
async fn room_of(at: &BrokerProcess, user: &str) -> String {
    let url = format!("http://{}/iapi/user/info?{}", at.addr, client_query(user, "sid-q"));
    let mut resp = awc::Client::new().get(url).send().await.expect("user/info");
    let body: Value = resp.json().await.expect("JSON");
    body["current_room_id"].as_str().unwrap_or_default().to_string()
}

/// What a client saw while it was kept alive.
#[derive(Debug, Default)]
struct Watched {
    frames: Vec<Value>,
    pings: usize,
    pongs: usize,
}

/// Keeps `client` alive for `long`, pinging every second as an app does, or until `until`
/// holds for a frame it received; answers what it received. A close (a kick, an idle timeout)
/// fails the test with what was seen before.
async fn keep_alive(client: &mut common::AppClient, long: Duration, until: impl Fn(&Value) -> bool) -> Watched {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let end = Instant::now() + long;
    let mut next_ping = Instant::now() + Duration::from_secs(1);
    let mut seen = Watched::default();
    while Instant::now() < end {
        let wait = next_ping.min(end).saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, client.ws.next()).await {
            Err(_) if Instant::now() >= next_ping => {
                client.send("ping", serde_json::json!({})).await;
                seen.pings += 1;
                next_ping += Duration::from_secs(1);
            }
            Err(_) => {}
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON frame");
                seen.pongs += usize::from(frame["action"] == "pong");
                let done = until(&frame);
                seen.frames.push(frame);
                if done {
                    break;
                }
            }
            Ok(Some(Ok(Message::Close(close)))) => {
                panic!("{} was closed ({close:?}) after {:?}", client.user_id, seen.frames)
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("{} lost its connection ({other:?}) after {:?}", client.user_id, seen.frames),
        }
    }
    seen
}

/// docs/protocol.md 2.3: any frame counts as life, whatever the session waits for. bob's enter waits
/// for a room whose owner is frozen (until its lease runs out, or the answer's time does),
/// longer than his node's idle timeout; he pings every second all along and stays connected,
/// and his pings are answered after the enter's answer, in the order he sent them.
#[actix_rt::test]
async fn a_client_pinging_every_second_through_an_enter_that_waits_is_not_closed_as_idle() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let store = format!("kind: redis, redis_url: \"{}\", shared_rooms: true", redis.url());
    // A 6 s lease: a frozen owner keeps the room 4 s at least.
    let a = node_custom("node-a", &store, &prefix, 6_000, "reorder_window_ms: 500", "").await;
    let b = node_custom("node-b", &store, &prefix, 6_000, "reorder_window_ms: 500", "idle_timeout_ms: 2000").await;
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-wait").await;
    let mut bob = client_on(&b, "bob").await;

    signal(&a, libc::SIGSTOP);
    let asked = Instant::now();
    bob.send("enter_room_report", serde_json::json!({"channel_name": "g-wait"})).await;
    let seen = keep_alive(&mut bob, Duration::from_secs(15), |f| f["for"] == "enter_room_report").await;
    let waited = asked.elapsed();
    signal(&a, libc::SIGCONT);
    let answered = seen.frames.iter().position(|f| f["for"] == "enter_room_report");
    assert_eq!(answered, Some(0), "the enter's answer first, then the pongs: {:?}", seen.frames);
    assert!(waited >= Duration::from_secs(3), "the enter waited {waited:?} only: {:?}", seen.frames);
    // Still there 3 s later, every ping answered.
    let after = keep_alive(&mut bob, Duration::from_secs(3), |_| false).await;
    let (pings, pongs) = (seen.pings + after.pings, seen.pongs + after.pongs);
    assert!(pongs + 1 >= pings && pings >= 5, "{pings} pings, {pongs} pongs (the last may be on its way)");
}

/// ann moves to another node while her first node is frozen. When that node resumes and closes
/// her old connection, it leaves her new connection's entry alone: `user/info` names her room
/// on every node, and she stays in it.
#[actix_rt::test]
async fn after_a_client_moved_off_a_frozen_node_user_info_is_right_on_every_node_once_it_resumes() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let store = format!("kind: redis, redis_url: \"{}\", shared_rooms: true", redis.url());
    // a closes a connection silent for 3 s: once it resumes, the old one goes at once.
    let a = node_custom("node-a", &store, &prefix, TTL_MS, "reorder_window_ms: 500", "idle_timeout_ms: 3000").await;
    let b = node_with("node-b", &redis.url(), &prefix, true).await;
    let c = node_with("node-c", &redis.url(), &prefix, true).await;
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-moved").await;
    let mut old = client_on(&a, "ann").await;
    old.enter("g-moved").await;
    bob.recv_action("enter_room").await;

    signal(&a, libc::SIGSTOP);
    // Same user_id and sid, on b: it replaces the frozen connection.
    let mut ann = client_on(&b, "ann").await;
    ann.enter("g-moved").await;
    for node in [&b, &c] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while room_of(node, "ann").await != "g-moved" {
            assert!(Instant::now() < deadline, "user/info on {} does not name g-moved", node.addr);
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    actix_rt::time::sleep(Duration::from_secs(4)).await;
    signal(&a, libc::SIGCONT);
    // a closes the old connection (idle, replaced, or a was taken for dead).
    assert!(common::closed_with(&mut old.ws).await.is_some(), "the old connection is closed");
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    for node in [&a, &b, &c] {
        assert_eq!(room_of(node, "ann").await, "g-moved", "user/info on {}", node.addr);
    }
    // And she is still in the room.
    bob.send("send_topic_msg_report", serde_json::json!({"channel_name": "g-moved", "content": "still here?"})).await;
    let heard = ann.recv_action("send_topic_msg").await;
    assert_eq!(heard["content"], "still here?");
}

/// docs/protocol.md 7: while Redis is unavailable, open connections stay open. Redis (persistent,
/// as docs/operating.md asks) stops for longer than `store.node_ttl_ms`, so every node's presence
/// lapses; when it is back, no node takes another for dead: no client is kicked, no member
/// leaves its room, and the room goes on. (`DANMU_TEST_OUTAGE_MS` tries another length.)
#[actix_rt::test]
async fn a_redis_outage_longer_than_the_node_ttl_kicks_no_client_and_removes_no_member() {
    let outage = std::env::var("DANMU_TEST_OUTAGE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_millis(TTL_MS * 3), Duration::from_millis);
    let mut redis = RedisServer::start_persistent();
    let prefix = unique_prefix();
    let a = node_with("node-a", &redis.url(), &prefix, true).await;
    let b = node_with("node-b", &redis.url(), &prefix, true).await;
    let c = node_with("node-c", &redis.url(), &prefix, true).await;
    let nodes = [&a, &b, &c];
    let mut members = Vec::new();
    for (node, user) in nodes.iter().zip(["ann", "bob", "carol"]) {
        let mut member = client_on(node, user).await;
        member.enter("g-outage").await;
        members.push(member);
    }
    let mut via_b = bigo_on(&b).await;
    assert_eq!(via_b.push(&chat_push("g-outage", "o0", "before")).await["rescode"], 200);
    for member in &mut members {
        assert_eq!(member.events("send_topic_msg", 1).await[0]["content"], "before");
    }
    // (BIGO, which sends no heartbeat here, comes again afterwards.)
    drop(via_b);

    // Down, back, and long enough after for any node to have taken another for dead (two
    // node_ttl_ms and their renewals), every client pinging every second all along.
    let watch = outage + Duration::from_millis(TTL_MS * 5);
    let (seen, ()) = futures_util::join!(
        futures_util::future::join_all(members.iter_mut().map(|m| keep_alive(m, watch, |_| false))),
        async {
            redis.stop();
            actix_rt::time::sleep(outage).await;
            redis.restart();
        },
    );
    for (member, seen) in members.iter().zip(&seen) {
        let kicked_or_left = seen.frames.iter().any(|f| f["action"] == "kicked" || f["action"] == "exit_room");
        assert!(!kicked_or_left, "{} saw {:?}", member.user_id, seen.frames);
    }
    for node in nodes {
        let log = node.log_text();
        assert!(!log.contains("closing its client connections"), "{log}");
        assert!(!log.contains("of dead node(s)"), "{log}");
    }

    // The room goes on with all three (a push may meet a node still reconnecting: 503, retried).
    let mut via_b = bigo_on(&b).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = via_b.push(&chat_push("g-outage", "o1", "after")).await;
        if answer["rescode"] == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "pushes refused since Redis came back: {answer}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    for member in &mut members {
        let got = member.events("send_topic_msg", 1).await;
        assert_eq!(got[0]["content"], "after", "{}", member.user_id);
    }
    let mut dave = client_on(&c, "dave").await;
    let ack = dave.enter("g-outage").await;
    assert_eq!(ack["room"]["members"], 4, "ann, bob, carol and dave: {ack}");
}
