//! Rooms (docs/protocol.md 2.4, 2.6): danmu from the BIGO ingress reach every member once, in `ts`
//! order within the reorder window, numbered by a contiguous `seq`, mapped to client events.

mod common;

use actors::protocol::clock::LATEST_MS;
use common::*;
use serde_json::{json, Value};

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().expect("seq")).collect()
}

fn contents(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["content"].as_str().unwrap_or_default().to_string()).collect()
}

async fn a_pushed_msg_reaches_a_member_as_send_topic_msg(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-map-msg").await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    assert_eq!(bigo.push(&push_data("m1", "g-map-msg", 2, vec![msg_item("1", ts, "你好 👋")])).await["rescode"], 200);
    let event = alice.recv_action("send_topic_msg").await;
    assert_eq!(
        event,
        json!({"action":"send_topic_msg","user_id":"viewer-1","nickname":"Viewer","sex":0,
               "avatar_url":"http://img/v1.png","avatar_small_url":"http://img/v1.png",
               "content":"你好 👋","channel_name":"g-map-msg","seq":event["seq"],"ts":ts})
    );
}

async fn gift_heart_and_unknown_items_map_to_send_gift_like_and_danmu(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-map").await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    let odd = json!({"type":"fireworks","user":"v9","ts":(ts + 2).to_string(),"data_seq":"3","size":"xl"});
    let items = vec![gift_item("1", ts), heart_item("2", ts + 1), odd.clone()];
    assert_eq!(bigo.push(&push_data("p1", "g-map", 2, items)).await["rescode"], 200);

    let gift = alice.recv_action("send_gift").await;
    assert_eq!(gift["notify_type"], "bc");
    assert_eq!(gift["channel_name"], "g-map");
    let g = &gift["gift"];
    assert_eq!((g["id"].as_str(), g["name"].as_str(), g["num"].as_i64()), (Some("g7"), Some("Rose"), Some(3)));
    assert_eq!((g["image_url"].as_str(), g["sender_id"].as_str()), (Some("http://img/rose.png"), Some("viewer-2")));
    assert_eq!((g["sender_nickname"].as_str(), g["receiver_id"].as_str()), (Some("Giver"), Some("anchor-1")));

    let like = alice.recv_action("like").await;
    assert_eq!(
        like,
        json!({"action":"like","channel_name":"g-map","user_id":"viewer-3","nickname":"Liker",
               "avatar_url":"http://img/v3.png","count":5,"seq":like["seq"],"ts":ts + 1})
    );

    let danmu = alice.recv_action("danmu").await;
    assert_eq!(danmu["item"], odd, "unknown types are forwarded as received");
}

async fn retried_seqid_is_delivered_once(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-retry").await;
    let mut bigo = broker.bigo_logged_in().await;
    let push = push_data("same-seqid", "g-retry", 2, vec![msg_item("1", now_ms(), "once")]);
    for _ in 0..3 {
        assert_eq!(bigo.push(&push).await["rescode"], 200, "a retry is acknowledged again");
    }
    bigo.push(&push_data("next", "g-retry", 2, vec![msg_item("2", now_ms(), "marker")])).await;
    let events = alice.events("send_topic_msg", 2).await;
    assert_eq!(contents(&events), vec!["once", "marker"]);
}

async fn a_data_seq_repeated_in_a_later_push_is_delivered_once(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-dseq").await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    bigo.push(&push_data("a", "g-dseq", 2, vec![msg_item("42", ts, "first")])).await;
    bigo.push(&push_data("b", "g-dseq", 2, vec![msg_item("42", ts, "first"), msg_item("43", ts + 1, "second")])).await;
    let events = alice.events("send_topic_msg", 2).await;
    assert_eq!(contents(&events), vec!["first", "second"]);
}

async fn items_pushed_out_of_order_within_the_window_arrive_sorted_by_ts(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.room.reorder_window_ms = 300).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-order").await;
    let mut bigo = broker.bigo_logged_in().await;
    let base = now_ms();
    // Five pushes whose item ts run backwards, all inside one window.
    for (i, offset) in [50, 40, 30, 20, 10].into_iter().enumerate() {
        let item = msg_item(&i.to_string(), base + offset, &format!("t{offset}"));
        assert_eq!(bigo.push(&push_data(&format!("o{i}"), "g-order", 2, vec![item])).await["rescode"], 200);
    }
    let events = alice.events("send_topic_msg", 5).await;
    assert_eq!(contents(&events), vec!["t10", "t20", "t30", "t40", "t50"]);
    let ts: Vec<i64> = events.iter().map(|e| e["ts"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
}

async fn an_item_later_than_the_window_is_still_delivered(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.room.reorder_window_ms = 100).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-late").await;
    let mut bigo = broker.bigo_logged_in().await;
    let base = now_ms();
    bigo.push(&push_data("l1", "g-late", 2, vec![msg_item("1", base, "on time")])).await;
    assert_eq!(contents(&alice.events("send_topic_msg", 1).await), vec!["on time"]);
    bigo.push(&push_data("l2", "g-late", 2, vec![msg_item("2", base - 5_000, "five seconds late")])).await;
    let late = alice.events("send_topic_msg", 1).await;
    assert_eq!(contents(&late), vec!["five seconds late"]);
    let (_, metrics) = broker.get_text("/metrics").await;
    assert!(metrics.contains("danmu_late_items_total 1"), "{metrics}");
}

/// Issue 26: a room panicked on such an item once its window ended, and was lost.
async fn a_ts_and_timestamp_no_clock_could_tell_take_the_brokers_clock_and_the_room_goes_on(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-absurd").await;
    let mut bigo = broker.bigo_logged_in().await;
    let before = now_ms();
    let mut data = push_data("a1", "g-absurd", 2, vec![msg_item("1", 0, "absurd")]);
    data["timestamp"] = json!(-1e19);
    data["danmu_data"][0]["datas"][0]["ts"] = json!("-9223372036854775808");
    assert_eq!(bigo.push(&data).await["rescode"], 200);
    let absurd = alice.events("send_topic_msg", 1).await;
    let ts = absurd[0]["ts"].as_i64().expect("ts");
    assert!((before..=now_ms()).contains(&ts), "{absurd:?}");
    assert_eq!(bigo.push(&push_data("a2", "g-absurd", 2, vec![msg_item("2", now_ms(), "next")])).await["rescode"], 200);
    assert_eq!(contents(&alice.events("send_topic_msg", 1).await), vec!["next"]);
}

/// docs/protocol.md 2.6, Far-off `ts`.
async fn items_from_1970_and_from_year_9999_are_delivered_in_ts_order_and_hold_nothing_back(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-far").await;
    let mut bigo = broker.bigo_logged_in().await;
    let now = now_ms();
    let items = vec![msg_item("1", LATEST_MS, "year 9999"), msg_item("2", now, "now"), msg_item("3", 1, "1970")];
    assert_eq!(bigo.push(&push_data("f1", "g-far", 2, items)).await["rescode"], 200);
    let events = alice.events("send_topic_msg", 3).await;
    assert_eq!(contents(&events), vec!["1970", "now", "year 9999"]);
    let ts: Vec<i64> = events.iter().map(|e| e["ts"].as_i64().unwrap_or_default()).collect();
    assert_eq!(ts, vec![1, now, LATEST_MS], "the ts as BIGO gave it");
    assert_eq!(bigo.push(&push_data("f2", "g-far", 2, vec![msg_item("4", now_ms(), "after")])).await["rescode"], 200);
    assert_eq!(contents(&alice.events("send_topic_msg", 1).await), vec!["after"]);
}

async fn seq_is_contiguous_across_pushes_and_client_events(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut alice = broker.client("alice").await;
    let ack = alice.enter("g-seq").await;
    let first = ack["last_seq"].as_u64().unwrap();
    let mut bigo = broker.bigo_logged_in().await;
    for i in 0..10 {
        let items = vec![msg_item(&format!("{i}a"), now_ms(), "x"), heart_item(&format!("{i}b"), now_ms())];
        bigo.push(&push_data(&format!("c{i}"), "g-seq", 2, items)).await;
    }
    alice.send("send_topic_msg_report", json!({"channel_name":"g-seq","content":"mine"})).await;
    let mut got = Vec::new();
    while got.len() < 21 {
        let frame = alice.recv().await;
        if frame["seq"].is_u64() && frame["action"] != "ack" {
            got.push(frame);
        }
    }
    let expected: Vec<u64> = (first + 1..=first + 21).collect();
    assert_eq!(seqs(&got), expected);
}

async fn status_changes_become_room_status_and_3_closes(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-status").await;
    let mut bigo = broker.bigo_logged_in().await;
    bigo.push(&push_data("s1", "g-status", 1, vec![])).await;
    assert_eq!(alice.recv_action("room_status").await["status"], "live");
    bigo.push(&push_data("s2", "g-status", 1, vec![msg_item("1", now_ms(), "still live")])).await;
    bigo.push(&push_data("s3", "g-status", 2, vec![])).await;
    let next = alice.recv().await;
    assert_eq!(next["content"], "still live", "an unchanged status sends nothing");
    assert_eq!(alice.recv_action("room_status").await["status"], "game");
    bigo.push(&push_data("s4", "g-status", 3, vec![msg_item("2", now_ms() - 10, "last words")])).await;
    assert_eq!(alice.recv().await["content"], "last words", "items pushed with status 3 come first");
    let closed = alice.recv().await;
    assert_eq!((closed["action"].as_str(), closed["status"].as_str()), (Some("room_status"), Some("closed")));
    assert_eq!(closed["channel_name"], "g-status");
}

async fn three_clients_in_one_room_receive_the_same_events_in_the_same_order(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.room.reorder_window_ms = 50).await;
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        let mut client = broker.client(name).await;
        client.enter("g-three").await;
        members.push(client);
    }
    let mut bigo = broker.bigo_logged_in().await;
    let base = now_ms();
    for i in 0..30i64 {
        let ts = base + (i * 7919) % 97; // scrambled ts
        bigo.send_push(&push_data(&format!("x{i}"), "g-three", 2, vec![msg_item(&i.to_string(), ts, &i.to_string())]))
            .await;
    }
    for _ in 0..30 {
        assert_eq!(BigoClient::data_of(&bigo.recv().await)["rescode"], 200);
    }
    let mut orders = Vec::new();
    for member in &mut members {
        let events = member.events("send_topic_msg", 30).await;
        orders.push(events.iter().map(|e| (e["seq"].clone(), e["content"].clone())).collect::<Vec<_>>());
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2]);
}

async fn a_room_whose_queue_is_full_answers_503_and_takes_the_retry_later(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| {
        c.room.queue_len = 3;
        c.room.reorder_window_ms = 400;
    })
    .await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    // One room holds `room.queue_len` items (memory) or inputs (Redis, docs/protocol.md deviation in
    // docs/protocol.md) while they wait out the window: a few pushes fill it either way.
    let mut refused = None;
    for i in 0..5 {
        let push = push_data(&format!("f{i}"), "g-full", 2, vec![msg_item(&i.to_string(), ts, "x")]);
        let answer = bigo.push(&push).await;
        if answer["rescode"] == 503 {
            assert_eq!(answer["seqid"], format!("f{i}"));
            refused = Some(push);
            break;
        }
        assert_eq!(answer["rescode"], 200, "{answer}");
    }
    let refused = refused.expect("a full queue answers 503");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let retried = bigo.push(&refused).await;
    assert_eq!(retried["rescode"], 200, "the retry is taken once the queue drained: {retried}");
}

async fn an_idle_empty_room_stops_and_a_new_push_starts_it_again(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.room.idle_stop_ms = 300).await;
    let mut bigo = broker.bigo_logged_in().await;
    bigo.push(&push_data("i1", "g-idle", 2, vec![msg_item("1", now_ms(), "x")])).await;
    assert_eq!(broker.metric_on_every_node("danmu_rooms").await, 1.0);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(broker.metric_on_every_node("danmu_rooms").await, 0.0);
    let mut alice = broker.client("alice").await;
    alice.enter("g-idle").await;
    bigo.push(&push_data("i2", "g-idle", 2, vec![msg_item("2", now_ms(), "after restart")])).await;
    assert_eq!(alice.recv_action("send_topic_msg").await["content"], "after restart");
}

/// Sends `pushes` (seqid, ts, content) on one connection without waiting, then reads every
/// answer; all must be 200.
async fn push_back_to_back(bigo: &mut BigoClient, game_sess: &str, pushes: &[(String, i64, String)]) {
    for (i, (seqid, ts, content)) in pushes.iter().enumerate() {
        let item = msg_item(&format!("d{i}"), *ts, content);
        bigo.send_push(&push_data(seqid, game_sess, 2, vec![item])).await;
    }
    for _ in pushes {
        let resp = bigo.recv().await;
        assert_eq!(BigoClient::data_of(&resp)["rescode"], 200, "{resp}");
    }
}

async fn pushes_with_one_ts_reach_members_in_the_order_they_were_sent(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-tie").await;
    let mut bigo = broker.bigo_logged_in().await;
    let ts = now_ms();
    let pushes: Vec<_> = (0..400).map(|i| (format!("t{i}"), ts, format!("{i:04}"))).collect();
    push_back_to_back(&mut bigo, "g-tie", &pushes).await;
    let got = contents(&alice.events("send_topic_msg", 400).await);
    let sent: Vec<String> = pushes.into_iter().map(|(_, _, c)| c).collect();
    assert_eq!(got, sent, "equal ts must keep the order of arrival");
}

async fn equal_and_shuffled_ts_leave_in_ts_order_with_ties_in_sending_order(engine: Engine) {
    // A wide window so that every push of the burst is held together, whatever the machine.
    let broker = TestBroker::start_on(engine, |c| c.room.reorder_window_ms = 2_000).await;
    let mut alice = broker.client("alice").await;
    alice.enter("g-mix").await;
    let mut bigo = broker.bigo_logged_in().await;
    let base = now_ms();
    // 300 pushes over 30 distinct ts values, sent in a scrambled ts order (a fixed LCG).
    let mut state: u64 = 17;
    let pushes: Vec<(String, i64, String)> = (0..300)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let ts = base + ((state >> 33) % 30) as i64 * 10;
            (format!("m{i}"), ts, format!("{i:03}"))
        })
        .collect();
    push_back_to_back(&mut bigo, "g-mix", &pushes).await;
    let mut expected = pushes.clone();
    expected.sort_by_key(|(_, ts, _)| *ts); // stable: ties keep the sending order
    let events = alice.events("send_topic_msg", 300).await;
    let expected: Vec<String> = expected.into_iter().map(|(_, _, c)| c).collect();
    assert_eq!(contents(&events), expected);
    let seqs = seqs(&events);
    // The first push's status (2, `room_status: game`) is numbered among the items, ordered by
    // that push's own `timestamp`: where it falls depends on the clock, so one gap may be it.
    let gaps: u64 = seqs.windows(2).map(|w| w[1].saturating_sub(w[0] + 1)).sum();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]) && gaps <= 1, "seq rises, one gap at most: {seqs:?}");
}

on_every_engine!(
    a_pushed_msg_reaches_a_member_as_send_topic_msg,
    gift_heart_and_unknown_items_map_to_send_gift_like_and_danmu,
    retried_seqid_is_delivered_once,
    a_data_seq_repeated_in_a_later_push_is_delivered_once,
    items_pushed_out_of_order_within_the_window_arrive_sorted_by_ts,
    an_item_later_than_the_window_is_still_delivered,
    a_ts_and_timestamp_no_clock_could_tell_take_the_brokers_clock_and_the_room_goes_on,
    items_from_1970_and_from_year_9999_are_delivered_in_ts_order_and_hold_nothing_back,
    seq_is_contiguous_across_pushes_and_client_events,
    status_changes_become_room_status_and_3_closes,
    three_clients_in_one_room_receive_the_same_events_in_the_same_order,
    a_room_whose_queue_is_full_answers_503_and_takes_the_retry_later,
    an_idle_empty_room_stops_and_a_new_push_starts_it_again,
    pushes_with_one_ts_reach_members_in_the_order_they_were_sent,
    equal_and_shuffled_ts_leave_in_ts_order_with_ties_in_sending_order,
);
