//! Who owns a shared room (docs/protocol.md 7), and what keeps two owners from writing: each
//! claim starts a term whose marker Redis puts past an earlier owner's ids, commits are entries
//! that carry the room's state until a checkpoint copies it, and a room moves to the node its
//! pushes arrive on. The failures that end an ownership (a kill, a cut link, a shutdown, a
//! Redis restart) are in `shared_rooms.rs`.

mod common;

use std::time::{Duration, Instant};

use common::live::{unique_prefix, RedisCluster, RedisServer};
use common::nodes::*;
use common::ops::BrokerProcess;

async fn until_logged(node: &BrokerProcess, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node.log_text().contains(line) {
        assert!(Instant::now() < deadline, "no {line:?}: {}", node.log_text());
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An owner whose room another node claimed while it went on (frozen, or cut off, and not
/// knowing yet) stores and commits nothing more: the claim's markers put the ids of the events
/// stream and of the owner's own input stream past its term, so Redis refuses its next commit
/// (a push another node stored) and its next own input (a push it got itself: 503, BIGO sends
/// it again), and it gives the room up. The other node's claim is made by hand here, with what
/// `CLAIM` writes: the lease, the term and the markers.
#[actix_rt::test]
async fn an_owner_whose_room_was_claimed_in_a_newer_term_stores_and_commits_nothing_more() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let a = node_with("node-a", &redis.url(), &prefix, true).await;
    let b = node_with("node-b", &redis.url(), &prefix, true).await;
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-term").await;
    let (mut via_a, mut via_b) = (bigo_on(&a).await, bigo_on(&b).await);
    assert_eq!(via_a.push(&chat_push("g-term", "t0", "first")).await["rescode"], 200);
    let first = ann.events("send_topic_msg", 1).await;
    assert_eq!(first[0]["content"], "first");

    let mut conn = redis::Client::open(redis.url()).and_then(|c| c.get_connection()).expect("a Redis connection");
    let key = |what: &str| format!("{prefix}room:{{g-term}}:{what}");
    // node-z claims the room, as CLAIM does; node-z has no presence record, so a takes the room
    // back (in a newer term) once it has seen node-z missing.
    let mut claim_by_hand = || {
        let term: u64 = redis::cmd("INCR").arg(key("term")).query(&mut conn).expect("INCR");
        let _: () = redis::cmd("SET").arg(key("lease")).arg("node-z").query(&mut conn).expect("SET");
        for stream in ["events", "own"] {
            let _: String = redis::cmd("XADD")
                .arg(key(stream))
                .arg(format!("{term}-0"))
                .arg("t")
                .arg("node-z")
                .query(&mut conn)
                .expect("XADD");
        }
        term
    };
    // b stores a push; a applies it, and its commit is refused.
    let term = claim_by_hand();
    assert_eq!(via_b.push(&chat_push("g-term", "t1", "other")).await["rescode"], 200);
    until_logged(&a, "room g-term: commit refused or failed").await;
    until_logged(&a, &format!("term {}, ", term + 1)).await;
    // a's own input is refused (503; BIGO sends it again).
    let term = claim_by_hand();
    assert_eq!(via_a.push(&chat_push("g-term", "t2", "own")).await["rescode"], 503);
    until_logged(&a, "room g-term: own inputs not stored").await;
    assert_eq!(via_a.push(&chat_push("g-term", "t2", "own")).await["rescode"], 200);
    let mut after: Vec<(String, u64)> = ann
        .events("send_topic_msg", 2)
        .await
        .iter()
        .map(|e| (e["content"].as_str().unwrap_or_default().to_string(), e["seq"].as_u64().unwrap_or(0)))
        .collect();
    assert!(after.iter().all(|(_, seq)| Some(*seq) > first[0]["seq"].as_u64()), "{after:?}");
    after.sort();
    assert_eq!(after.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["other", "own"]);
    let mut conn = redis::Client::open(redis.url()).and_then(|c| c.get_connection()).expect("a Redis connection");
    for stream in ["events", "own"] {
        let entries: redis::streams::StreamRangeReply =
            redis::cmd("XRANGE").arg(key(stream)).arg(format!("({term}-0")).arg("+").query(&mut conn).expect("XRANGE");
        let terms: Vec<u64> = entries.ids.iter().filter_map(|e| e.id.split_once('-')?.0.parse().ok()).collect();
        assert!(terms.iter().all(|t| *t > term), "{stream} after the last marker: {terms:?}");
    }
    let again = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            let frame = ann.recv().await;
            if frame["action"] == "send_topic_msg" {
                return frame;
            }
        }
    });
    assert!(again.await.is_err(), "each push was delivered once");
}

/// A commit is one entry that carries the room's state and dedup keys; a checkpoint copies them
/// into the room's own keys once the room goes quiet, and trims the history to the entries of
/// its last `room.history_len` events. A node taking the room over after a checkpoint and more
/// commits goes on from the last commit: re-sent pushes from before and after the checkpoint
/// are both dropped.
#[actix_rt::test]
async fn a_takeover_after_a_checkpoint_goes_on_from_the_last_commit() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let store = format!("kind: redis, redis_url: \"{}\", shared_rooms: true", redis.url());
    let room = "reorder_window_ms: 100, history_len: 5";
    let mut a = node_custom("node-a", &store, &prefix, TTL_MS, room, "").await;
    let b = node_custom("node-b", &store, &prefix, TTL_MS, room, "").await;
    let mut ann = client_on(&a, "ann").await;
    ann.enter("g-ckpt").await;
    let mut bob = client_on(&b, "bob").await;
    bob.enter("g-ckpt").await;
    let mut via_b = bigo_on(&b).await;
    let push = |i: usize| chat_push("g-ckpt", &format!("c{i}"), &format!("ckpt-{i}"));
    for i in 0..8 {
        assert_eq!(via_b.push(&push(i)).await["rescode"], 200);
    }
    assert_eq!(bob.events("send_topic_msg", 8).await.len(), 8);

    // Quiet past the checkpoint: the state hash names the entry it covers, and the history
    // holds the last 5 events' entries, not all 8 pushes.
    let mut conn = redis::Client::open(redis.url()).and_then(|c| c.get_connection()).expect("a Redis connection");
    let key = |what: &str| format!("{prefix}room:{{g-ckpt}}:{what}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let upto: Option<String> = redis::cmd("HGET").arg(key("state")).arg("upto").query(&mut conn).expect("HGET");
        if upto.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint: {}", a.log_text());
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    let history: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(key("events")).arg("-").arg("+").query(&mut conn).expect("XRANGE");
    let kept = history.ids.iter().filter(|e| e.get::<String>("e").is_some_and(|e| e.contains("ckpt-"))).count();
    assert!((1..8).contains(&kept), "entries with pushes kept: {kept}");

    for i in 8..10 {
        assert_eq!(via_b.push(&push(i)).await["rescode"], 200);
    }
    assert_eq!(bob.events("send_topic_msg", 2).await[1]["content"], "ckpt-9");
    a.child.kill().expect("kill -9 the owner");
    let _ = a.child.wait();
    // Re-sent: one from before the checkpoint, one after it; then a new one.
    for i in [1, 9, 10] {
        assert_eq!(via_b.push(&push(i)).await["rescode"], 200);
    }
    let next = bob.events("send_topic_msg", 1).await;
    assert_eq!(next[0]["content"], "ckpt-10", "re-sent pushes are dropped");
    assert!(b.log_text().contains("room g-ckpt: node node-b owns it now (state restored"), "{}", b.log_text());
}

/// A room moves to the node its pushes arrive on: b, the only node BIGO pushes the room to for a
/// while, asks a (the owner, by ann's join) for it, and a hands it over; the members on both
/// nodes get every push once, in order, before and after.
async fn a_room_moves_to_its_pusher(a: &BrokerProcess, b: &BrokerProcess, channel: &str) {
    let mut ann = client_on(a, "ann").await;
    ann.enter(channel).await;
    let mut bob = client_on(b, "bob").await;
    bob.enter(channel).await;
    let mut via_b = bigo_on(b).await;
    let mut sent = Vec::new();
    let mut i = 0;
    let started = Instant::now();
    while !(a.log_text().contains(&format!("room {channel}: node node-a hands it to node node-b"))
        && b.log_text().contains(&format!("room {channel}: node node-b owns it now (state restored")))
    {
        assert!(started.elapsed() < Duration::from_secs(15), "not moved: {}\n{}", a.log_text(), b.log_text());
        assert_eq!(via_b.push(&chat_push(channel, &format!("m{i}"), &format!("{i:02}"))).await["rescode"], 200);
        sent.push(format!("{i:02}"));
        i += 1;
        actix_rt::time::sleep(Duration::from_millis(400)).await;
    }
    for j in i..i + 3 {
        assert_eq!(via_b.push(&chat_push(channel, &format!("m{j}"), &format!("{j:02}"))).await["rescode"], 200);
        sent.push(format!("{j:02}"));
    }
    for member in [&mut ann, &mut bob] {
        let got = seqs_and_contents(&member.events("send_topic_msg", sent.len()).await);
        let contents: Vec<String> = got.iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(contents, sent, "every push once, in order");
        assert!(got.windows(2).all(|w| w[1].0 > w[0].0), "seq rises: {got:?}");
    }
}

#[actix_rt::test]
async fn a_room_moves_to_the_node_its_pushes_arrive_on() {
    let (_redis, a, b) = shared_pair().await;
    a_room_moves_to_its_pusher(&a, &b, "g-move").await;
}

#[actix_rt::test]
async fn on_a_redis_cluster_a_room_moves_to_the_node_its_pushes_arrive_on() {
    let cluster = RedisCluster::start();
    let prefix = unique_prefix();
    let (a, b) = (cluster_node("node-a", &cluster, &prefix).await, cluster_node("node-b", &cluster, &prefix).await);
    a_room_moves_to_its_pusher(&a, &b, "g-move-c").await;
}
