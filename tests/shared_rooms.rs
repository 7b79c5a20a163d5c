//! Rooms shared through Redis by several broker processes (docs/protocol.md 7): a room's pushes
//! may arrive on any node and its members sit on any node, and every member gets every item
//! once, in one `seq` order, in `ts` order; one node owns the room, another takes it over when it
//! dies, is cut off or shuts down, losing nothing acknowledged; and a room costs Redis nothing
//! while nothing happens in it.

mod common;

use std::time::{Duration, Instant};

use common::live::{unique_prefix, RedisCluster, RedisServer};
use common::nodes::*;
use common::ops::{app_client_at, BrokerProcess};

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
    // a, the owner, stores pushes it gets itself in its own stream: it dies with them in its
    // reorder window too.
    for i in 0..3 {
        let push = common::push_data(
            &format!("o{i}"),
            "g-kill",
            2,
            vec![common::msg_item(&format!("o{i}"), common::now_ms(), &format!("own-{i}"))],
        );
        assert_eq!(via_a.push(&push).await["rescode"], 200);
        acknowledged.push(format!("own-{i}"));
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
    // Past the presence renewals' own rounds (every 667 ms), any commit still due, and the
    // checkpoint of the last commits (5 s after them).
    actix_rt::time::sleep(Duration::from_millis(6_500)).await;
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
