//! Several broker processes on one Redis (docs/protocol.md 7): every node publishes its presence
//! and client count, and `end_point` on any node names the live node with the fewest
//! clients; a node that dies drops out within `store.node_ttl_ms`; the session rules, a store
//! outage and a node taken for dead, across nodes. Rooms shared through Redis:
//! `shared_rooms.rs`.

mod common;

use std::time::{Duration, Instant};

use common::live::{unique_prefix, RedisServer};
use common::nodes::*;
use common::ops::{app_client_at, client_query, BrokerProcess};
use common::SECRET;
use serde_json::Value;

/// The URL `end_point` on `at` names.
async fn end_point(at: &BrokerProcess) -> String {
    let url = format!("http://{}/iapi/websocket/end_point?{}", at.addr, client_query("asker", "sid-x"));
    let mut resp = awc::Client::new().get(url).send().await.expect("end_point");
    let body: Value = resp.json().await.expect("JSON answer");
    assert_eq!(body["error_code"], 0, "{body}");
    body["end_point"].as_str().expect("end_point").to_string()
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
