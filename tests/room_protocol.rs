//! The room protocol with real clients (docs/protocol.md 2.2-2.7, seed 001): seats, gifts, calls,
//! disconnects, one connection per (user_id, sid), one room per user, `last_seq` recovery,
//! `batch=1`, and abuse limits that never disturb the other members.

mod common;

use std::time::Duration;

use common::room::*;
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

fn seat(user_id: &str, id: u32, channel: &str) -> Value {
    json!({"user_id": user_id, "id": id, "sex": 0, "avatar_url": "", "avatar_small_url": "",
           "nickname": format!("nick-{user_id}"), "status": 1, "microphone": 1, "rank": id, "room_id": channel})
}

fn free_seat(id: u32, channel: &str) -> Value {
    json!({"user_id": "", "id": id, "sex": 0, "avatar_url": "", "avatar_small_url": "", "nickname": "",
           "status": 0, "microphone": 0, "rank": id, "room_id": channel})
}

// ---------------------------------------------------------------------------------------------
// Seats

async fn up_report_takes_a_free_seat_and_every_member_sees_up_with_the_full_room_seat(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.member("a", "seats").await;
    let mut b = broker.member("b", "seats").await;
    let ack = a.request("up_report", json!({"channel_name": "seats", "seat_id": 3})).await;
    assert_eq!(error_code(&ack), 0, "{ack}");
    assert_eq!(ack["room_seat"], seat("a", 3, "seats"));
    let up = b.recv_action("up").await;
    assert_eq!(up["channel_name"], "seats");
    assert_eq!(up["room_seat"], seat("a", 3, "seats"));
    assert_eq!(up["seq"], ack["seq"]);

    let mut c = broker.client("c").await;
    let entered = c.enter("seats").await;
    let seats = entered["room"]["seats"].as_array().expect("the snapshot lists the seats");
    assert_eq!(seats.len(), broker.config.room.seats as usize);
    for (i, s) in seats.iter().enumerate() {
        let id = i as u32 + 1;
        assert_eq!(*s, if id == 3 { seat("a", 3, "seats") } else { free_seat(id, "seats") });
    }
}

async fn seed_spelling_up_deport_without_seat_or_channel_takes_the_lowest_free_seat(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.room.seats = 2).await;
    let mut a = broker.member("a", "deport").await;
    let mut b = broker.member("b", "deport").await;
    let mut c = broker.member("c", "deport").await;
    let ack = a.request("up_deport", json!({"user_id": "a"})).await;
    assert_eq!((error_code(&ack), ack["room_seat"]["id"].clone()), (0, json!(1)), "{ack}");
    let ack = b.request("up_deport", json!({"user_id": "b"})).await;
    assert_eq!((error_code(&ack), ack["room_seat"]["id"].clone()), (0, json!(2)), "{ack}");
    let ups = c.events("up", 2).await;
    assert_eq!(ups[0]["room_seat"], seat("a", 1, "deport"));
    assert_eq!(ups[1]["room_seat"], seat("b", 2, "deport"));
    let full = c.request("up_deport", json!({"user_id": "c"})).await;
    assert_eq!(full["action"], "error");
    assert_eq!(error_code(&full), 1005, "{full}");
    assert_eq!(full["error_reason"], "every seat is taken");
}

async fn two_clients_racing_for_one_seat_exactly_one_wins(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.server.workers = 2).await;
    let mut a = broker.member("a", "race").await;
    let mut b = broker.member("b", "race").await;
    let mut watcher = broker.member("w", "race").await;
    for seat_id in 1..=4u32 {
        let up = json!({"channel_name": "race", "seat_id": seat_id});
        let (fa, fb) = (a.frame("up_report", up.clone()).to_string(), b.frame("up_report", up).to_string());
        tokio::join!(a.send_text(fa), b.send_text(fb));
        let (ra, rb) = tokio::join!(a.answer("up_report"), b.answer("up_report"));
        let mut codes = vec![error_code(&ra), error_code(&rb)];
        codes.sort();
        assert_eq!(codes, vec![0, 1005], "seat {seat_id}: {ra} / {rb}");
        let winner = if error_code(&ra) == 0 { "a" } else { "b" };
        let up = watcher.recv_action("up").await;
        assert_eq!(up["room_seat"], seat(winner, seat_id, "race"), "seat {seat_id}");
    }
    // Nobody saw a second `up` for any seat.
    let late: Vec<Value> = flatten(&watcher.drain(QUIET).await).into_iter().filter(|f| f["action"] == "up").collect();
    assert!(late.is_empty(), "{late:?}");
}

async fn down_report_frees_the_seat_and_broadcasts_down(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.member("a", "down").await;
    let mut b = broker.member("b", "down").await;
    assert_eq!(error_code(&a.request("up_report", json!({"channel_name": "down", "seat_id": "2"})).await), 0);
    b.recv_action("up").await;
    let ack = a.request("down_report", json!({"channel_name": "down"})).await;
    assert_eq!(error_code(&ack), 0, "{ack}");
    assert_eq!(ack["room_seat"], free_seat(2, "down"));
    let down = b.recv_action("down").await;
    assert_eq!(down["room_seat"], free_seat(2, "down"));
    assert_eq!(down["seq"], ack["seq"]);

    let again = a.request("down_report", json!({"channel_name": "down"})).await;
    assert_eq!((error_code(&again), again["error_reason"].clone()), (1004, json!("no seat held in that room")));
}

async fn moving_to_another_seat_sends_down_then_up_and_a_bad_seat_id_gets_1001(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.member("a", "move").await;
    let mut b = broker.member("b", "move").await;
    a.request("up_report", json!({"channel_name": "move", "seat_id": 1})).await;
    let ack = a.request("up_report", json!({"channel_name": "move", "seat_id": 5})).await;
    assert_eq!(ack["room_seat"], seat("a", 5, "move"));
    let frames = b.collect_until("down").await;
    let down = flatten(&frames).into_iter().find(|f| f["action"] == "down").unwrap();
    let up = b.recv_action("up").await;
    assert_eq!(down["room_seat"], free_seat(1, "move"));
    assert_eq!(up["room_seat"], seat("a", 5, "move"));
    assert_eq!(up["seq"].as_u64(), down["seq"].as_u64().map(|s| s + 1));
    for bad in [json!(0), json!(9), json!(-1), json!("x")] {
        let err = a.request("up_report", json!({"channel_name": "move", "seat_id": bad})).await;
        assert_eq!(error_code(&err), 1001, "seat_id {bad}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Gifts

async fn a_bc_gift_reaches_every_member_with_sender_receiver_and_seats(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.member("a", "gifts").await;
    let mut b = broker.member("b", "gifts").await;
    let mut c = broker.member("c", "gifts").await;
    a.request("up_report", json!({"channel_name": "gifts", "seat_id": 1})).await;
    let gift = json!({"id": 7, "name": "Rose", "num": 3, "receiver_id": "b", "image_url": "http://img/rose.png"});
    let ack = a.request("send_gift_report", json!({"channel_name": "gifts", "notify_type": "bc", "gift": gift})).await;
    assert_eq!(error_code(&ack), 0, "{ack}");
    for member in [&mut b, &mut c] {
        let event = member.recv_action("send_gift").await;
        assert_eq!(event["notify_type"], "bc");
        assert_eq!(event["channel_name"], "gifts");
        assert_eq!(event["seq"], ack["seq"]);
        assert_eq!(
            event["gift"],
            json!({"id": "7", "sender_id": "a", "receiver_id": "b", "sender_nickname": "nick-a",
                   "receiver_nickname": "nick-b", "name": "Rose", "image_url": "http://img/rose.png",
                   "image_small_url": "", "image_big_url": "", "dynamic_image_url": "", "num": 3,
                   "sender_room_seat_id": 1, "receiver_room_seat_id": null})
        );
    }
}

async fn a_ptp_gift_reaches_only_the_receiver(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.member("a", "ptp").await;
    let mut b = broker.member("b", "ptp").await;
    let mut c = broker.member("c", "ptp").await;
    let gift = json!({"id": "g1", "name": "Kiss", "num": 1, "receiver_id": "b"});
    let ack = a.request("send_gift_report", json!({"channel_name": "ptp", "notify_type": "ptp", "gift": gift})).await;
    assert_eq!(error_code(&ack), 0, "{ack}");
    assert!(ack.get("seq").is_none(), "a ptp event has no seq: {ack}");
    let event = b.recv_action("send_gift").await;
    assert_eq!((event["notify_type"].clone(), event["gift"]["receiver_id"].clone()), (json!("ptp"), json!("b")));
    assert!(event.get("seq").is_none(), "{event}");

    // A broadcast after it: whoever did not get the gift by then never gets it.
    a.request("send_topic_msg_report", chat("ptp", "after the gift")).await;
    for other in [&mut a, &mut c] {
        let mut frames = other.collect_until("send_topic_msg").await;
        frames.extend(other.drain(QUIET).await);
        let gifts: Vec<Value> = flatten(&frames).into_iter().filter(|f| f["action"] == "send_gift").collect();
        assert!(gifts.is_empty(), "{} got {gifts:?}", other.user_id);
    }
}

async fn a_ptp_gift_to_someone_outside_the_room_gets_1004_and_without_receiver_1001(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.member("a", "ptp-x").await;
    let gift = json!({"id": "g1", "name": "Kiss", "num": 1, "receiver_id": "nobody"});
    let err = a.request("send_gift_report", json!({"channel_name": "ptp-x", "notify_type": "ptp", "gift": gift})).await;
    assert_eq!((error_code(&err), err["error_reason"].clone()), (1004, json!("receiver not in that room")));
    let gift = json!({"id": "g1", "name": "Kiss", "num": 1});
    let err = a.request("send_gift_report", json!({"channel_name": "ptp-x", "notify_type": "ptp", "gift": gift})).await;
    assert_eq!(error_code(&err), 1001, "{err}");
    let gift = json!({"id": "g1"});
    let err = a.request("send_gift_report", json!({"channel_name": "ptp-x", "notify_type": "xx", "gift": gift})).await;
    assert_eq!(error_code(&err), 1001, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Calls

async fn a_call_holds_two_users_and_a_third_joiner_gets_1007(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let _a = broker.member("a", "call:a-b").await;
    let _b = broker.member("b", "call:a-b").await;
    let mut c = broker.client("c").await;
    let err = c.request("enter_room_report", json!({"channel_name": "call:a-b"})).await;
    assert_eq!(err["action"], "error");
    assert_eq!((error_code(&err), err["error_reason"].clone()), (1007, json!("call already has two users")));
    assert_eq!(broker.user_info("c").await["current_room_id"], "");
    // The same user on a second device is not a third user.
    let mut a2 = broker.client_with("a", "sid-2", false).await;
    let ack = a2.enter("call:a-b").await;
    assert_eq!(error_code(&ack), 0);
    assert_eq!(ack["room"]["members"], 2, "members counts users, not devices");
}

async fn hang_up_report_gives_the_peer_hang_up_with_or_without_receiver_id(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.member("a", "call:hang").await;
    let mut b = broker.member("b", "call:hang").await;
    let ack = a.request("hang_up_report", json!({"receiver_id": "b"})).await;
    assert_eq!(error_code(&ack), 0, "{ack}");
    let hang_up = b.recv_action("hang_up").await;
    assert_eq!(hang_up["user_id"], "a");
    assert_eq!(hang_up["receiver_id"], "b");
    assert_eq!(hang_up["channel_name"], "call:hang");
    assert!(hang_up.get("seq").is_none(), "hang_up goes to one member only: {hang_up}");
    // Seed 001's hang_up_report names only the caller: the other side of the call is meant.
    let ack = b.request("hang_up_report", json!({"user_id": "b"})).await;
    assert_eq!(error_code(&ack), 0, "{ack}");
    let hang_up = a.recv_action("hang_up").await;
    assert_eq!((hang_up["user_id"].clone(), hang_up["receiver_id"].clone()), (json!("b"), json!("a")));
}

async fn a_dropped_call_peer_gives_the_other_side_hang_up_and_exit_room(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.client.idle_timeout_ms = 1000).await;
    let a = broker.member("a", "call:drop").await;
    let mut b = broker.member("b", "call:drop").await;
    a.drop_without_close();
    let mut frames = b.collect_until("hang_up").await;
    if !flatten(&frames).iter().any(|f| f["action"] == "exit_room") {
        frames.extend(b.collect_until("exit_room").await);
    }
    let events = flatten(&frames);
    let hang_up = events.iter().find(|f| f["action"] == "hang_up").unwrap();
    assert_eq!((hang_up["user_id"].clone(), hang_up["receiver_id"].clone()), (json!("a"), json!("b")));
    let exit = events.iter().find(|f| f["action"] == "exit_room").unwrap();
    assert_eq!(exit["user_id"], "a");
}

// ---------------------------------------------------------------------------------------------
// Disconnects

async fn a_client_killed_without_a_close_frame_leaves_and_its_seat_is_freed(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.client.idle_timeout_ms = 1000).await;
    let mut a = broker.member("a", "drops").await;
    let mut b = broker.member("b", "drops").await;
    a.request("up_report", json!({"channel_name": "drops", "seat_id": 4})).await;
    b.recv_action("up").await;
    assert_eq!(broker.user_info("a").await["current_room_id"], "drops");
    a.drop_without_close();
    let exit = b.await_event("exit_room").await;
    assert_eq!(exit["user_id"], "a");
    assert_eq!(exit["channel_name"], "drops");
    assert_eq!(exit["room_seat"], free_seat(4, "drops"));
    assert_eq!(broker.user_info("a").await["current_room_id"], "");
    assert_eq!(broker.user_info("b").await["current_room_id"], "drops");
    // The seat is free for the next taker.
    assert_eq!(error_code(&b.request("up_report", json!({"channel_name": "drops", "seat_id": 4})).await), 0);
}

async fn a_silent_client_is_removed_after_the_idle_timeout_and_its_seat_freed(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.client.idle_timeout_ms = 800).await;
    let mut a = broker.member("a", "silent").await;
    let mut b = broker.member("b", "silent").await;
    a.request("up_report", json!({"channel_name": "silent", "seat_id": 1})).await;
    // From here `a` sends nothing; `b` pings while it waits.
    let exit = b.await_event("exit_room").await;
    assert_eq!(exit["user_id"], "a");
    assert_eq!(exit["room_seat"], free_seat(1, "silent"));
    assert_eq!(closed_with(&mut a.ws).await, Some(1000));
    assert_eq!(broker.user_info("a").await["current_room_id"], "");
}

async fn exit_room_report_about_another_user_is_the_relay_acknowledgement(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.client.idle_timeout_ms = 1000).await;
    let a = broker.member("a", "relay").await;
    let mut b = broker.member("b", "relay").await;
    let mut c = broker.member("c", "relay").await;
    a.drop_without_close();
    b.await_event("exit_room").await;
    c.await_event("exit_room").await;
    // Seed 001 2.4: B tells the server it relayed A's exit (the seed's frame has no channel_name).
    let ack = b.request("exit_room_report", json!({"user_id": "a"})).await;
    assert_eq!(ack["action"], "ack");
    assert_eq!(error_code(&ack), 0);
    // B is still a member: the acknowledgement changed nothing for it or for C.
    assert_eq!(broker.user_info("b").await["current_room_id"], "relay");
    b.request("send_topic_msg_report", chat("relay", "still here")).await;
    let frames = c.collect_until("send_topic_msg").await;
    assert!(flatten(&frames).iter().all(|f| f["action"] != "exit_room"), "{frames:?}");
}

async fn exit_room_report_for_oneself_in_seed_form_leaves_the_current_room(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.member("a", "leave").await;
    let mut b = broker.member("b", "leave").await;
    a.request("up_report", json!({"channel_name": "leave", "seat_id": 2})).await;
    let ack = a.request("exit_room_report", json!({"user_id": "a"})).await;
    assert_eq!(error_code(&ack), 0, "{ack}");
    let exit = b.recv_action("exit_room").await;
    assert_eq!((exit["user_id"].clone(), exit["room_seat"].clone()), (json!("a"), free_seat(2, "leave")));
    assert_eq!(broker.user_info("a").await["current_room_id"], "");
    let err = a.request("exit_room_report", json!({"user_id": "a"})).await;
    assert_eq!(error_code(&err), 1004, "{err}");
}

async fn user_info_names_the_current_room_and_is_empty_before_and_after(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.client("a").await;
    assert_eq!(
        broker.user_info("a").await,
        json!({"error_code":0,"error_reason":"","user_id":"a","current_room_id":""})
    );
    a.enter("info").await;
    assert_eq!(broker.user_info("a").await["current_room_id"], "info");
    a.request("exit_room_report", json!({"user_id": "a", "channel_name": "info"})).await;
    assert_eq!(broker.user_info("a").await["current_room_id"], "");
}

// ---------------------------------------------------------------------------------------------
// One connection per (user_id, sid), one room per user

async fn a_second_connection_of_the_same_user_and_sid_replaces_the_first(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut first = broker.member("a", "replace").await;
    let mut b = broker.member("b", "replace").await;
    let mut second = broker.client("a").await;
    let kicked = first.recv_action("kicked").await;
    assert_eq!(kicked, json!({"action": "kicked", "reason": "replaced"}));
    assert_eq!(closed_with(&mut first.ws).await, Some(1000));
    // The replaced connection left the room like any other.
    assert_eq!(b.recv_action("exit_room").await["user_id"], "a");
    assert_eq!(broker.user_info("a").await["current_room_id"], "");
    // Another sid of the same user is another device: nobody is kicked.
    let mut other_device = broker.client_with("a", "sid-2", false).await;
    second.send("ping", json!({})).await;
    assert_eq!(second.recv().await["action"], "pong");
    other_device.send("ping", json!({})).await;
    assert_eq!(other_device.recv().await["action"], "pong");
}

async fn a_user_entering_a_room_on_one_device_leaves_the_room_of_the_other(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut phone = broker.member("a", "room-a").await;
    let mut b = broker.member("b", "room-a").await;
    phone.request("up_report", json!({"channel_name": "room-a", "seat_id": 1})).await;
    b.recv_action("up").await;
    let mut tablet = broker.client_with("a", "sid-2", false).await;
    tablet.enter("room-b").await;
    // The phone learns it was moved out; the room's members see it leave and free its seat.
    let moved = phone.recv_action("exit_room").await;
    assert_eq!((moved["user_id"].clone(), moved["channel_name"].clone()), (json!("a"), json!("room-a")));
    let exit = b.recv_action("exit_room").await;
    assert_eq!(exit["room_seat"], free_seat(1, "room-a"));
    assert_eq!(exit["seq"], moved["seq"]);
    assert_eq!(broker.user_info("a").await["current_room_id"], "room-b");
    // The phone stays connected, outside any room.
    let err = phone.request("send_topic_msg_report", chat("room-a", "hello?")).await;
    assert_eq!(error_code(&err), 1004);
}

async fn entering_another_room_on_the_same_connection_leaves_the_first(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.member("a", "first").await;
    let mut b = broker.member("b", "first").await;
    a.enter("second").await;
    assert_eq!(b.recv_action("exit_room").await["user_id"], "a");
    assert_eq!(broker.user_info("a").await["current_room_id"], "second");
}

// ---------------------------------------------------------------------------------------------
// Recovery

/// Pushes `n` msg items under `seqid` into `game_sess`, contents `{prefix}{i}`.
async fn push_msgs(bigo: &mut BigoClient, game_sess: &str, seqid: &str, prefix: &str, n: usize) {
    let ts = now_ms();
    let items =
        (0..n).map(|i| msg_item(&format!("{seqid}-{i}"), ts + i as i64, &format!("{prefix}{i}"))).collect::<Vec<_>>();
    let resp = bigo.push(&push_data(seqid, game_sess, 2, items)).await;
    assert_eq!(resp["rescode"], 200, "{resp}");
}

async fn replay_after_reconnect_returns_exactly_the_missed_seq_range_before_live_events(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut bigo = broker.bigo_logged_in().await;
    let mut a = broker.member("a", "gs-replay").await;
    let mut b = broker.member("b", "gs-replay").await;
    push_msgs(&mut bigo, "gs-replay", "1", "seen-", 3).await;
    let seen = a.events("send_topic_msg", 3).await;
    let last_seen = seqs(&seen).last().copied().unwrap();
    b.events("send_topic_msg", 3).await;

    a.drop_without_close();
    b.recv_action("exit_room").await;
    push_msgs(&mut bigo, "gs-replay", "2", "missed-", 4).await;
    b.events("send_topic_msg", 4).await;

    let mut a = broker.client("a").await;
    let ack = a.enter_after("gs-replay", last_seen).await;
    assert_eq!(error_code(&ack), 0, "{ack}");
    assert_eq!(ack["recovered"], true);
    let own = ack["last_seq"].as_u64().unwrap();
    assert_eq!(ack["room"]["last_seq"], own);
    let mut replay = Vec::new();
    for _ in last_seen + 1..own {
        replay.push(a.recv().await);
    }
    assert_eq!(seqs(&replay), range(last_seen + 1, own - 1));
    assert_eq!(replay[0]["action"], "exit_room", "its own departure was missed too");
    let contents: Vec<&str> = replay[1..].iter().map(|f| f["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["missed-0", "missed-1", "missed-2", "missed-3"]);

    push_msgs(&mut bigo, "gs-replay", "3", "live-", 1).await;
    let live = a.recv().await;
    assert_eq!((live["content"].clone(), live["seq"].clone()), (json!("live-0"), json!(own + 1)));
}

async fn recovered_is_false_once_history_has_moved_on(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.room.history_len = 5).await;
    let mut bigo = broker.bigo_logged_in().await;
    let a = broker.member("a", "gs-lost").await;
    let mut b = broker.client("b").await;
    let last_seen = b.enter("gs-lost").await["last_seq"].as_u64().unwrap();
    let mut watcher = broker.member("w", "gs-lost").await;
    a.drop_without_close();
    b.drop_without_close();
    push_msgs(&mut bigo, "gs-lost", "1", "m", 8).await;
    watcher.events("send_topic_msg", 8).await;
    let mut b = broker.client("b").await;
    let ack = b.enter_after("gs-lost", last_seen).await;
    assert_eq!(ack["recovered"], false, "{ack}");
    let own = ack["last_seq"].as_u64().unwrap();
    let mut replay = Vec::new();
    for _ in 0..4 {
        replay.push(b.recv().await);
    }
    // Only the newest `history_len` events are still held, the newcomer's own enter_room
    // among them: what is left of the missed ones comes, in order.
    assert_eq!(seqs(&replay), range(own - 4, own - 1));
    assert!(b.drain(QUIET).await.is_empty());
}

async fn entering_with_the_newest_last_seq_is_recovered_with_nothing_to_replay(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.client("a").await;
    let last = a.enter("gs-fresh").await["last_seq"].as_u64().unwrap();
    a.request("exit_room_report", json!({"user_id": "a"})).await;
    let ack = a.enter_after("gs-fresh", last + 1).await;
    assert_eq!(ack["recovered"], true, "{ack}");
    assert_eq!(ack["last_seq"], last + 2);
    assert!(a.drain(QUIET).await.is_empty());
}

async fn a_last_seq_beyond_the_newest_is_not_recovered_and_replays_nothing(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.client("a").await;
    let ack = a.enter("gs-future").await;
    let (last, epoch) = (ack["last_seq"].as_u64().unwrap(), ack["epoch"].as_str().unwrap().to_string());
    a.request("exit_room_report", json!({"user_id": "a"})).await;
    // The room's newest event is now a's exit_room (last + 1): last + 2 was never numbered.
    let fields = json!({"channel_name": "gs-future", "last_seq": last + 2, "epoch": epoch});
    let ack = a.request("enter_room_report", fields).await;
    assert_eq!((ack["recovered"].clone(), ack["last_seq"].clone()), (json!(false), json!(last + 2)), "{ack}");
    assert!(a.drain(QUIET).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// batch=1

async fn batch_clients_get_arrays_in_seq_order_and_others_one_event_per_frame(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut bigo = broker.bigo_logged_in().await;
    let mut batched = broker.client_with("a", "sid-1", true).await;
    batched.enter("gs-batch").await;
    let mut plain = broker.member("b", "gs-batch").await;
    assert_eq!(batched.recv().await[0]["action"], "enter_room", "a single event is a one-element array");

    // One push: its status change (`room_status: game`) and four items leave the reorder
    // buffer together.
    push_msgs(&mut bigo, "gs-batch", "1", "m", 4).await;
    let frame = batched.recv().await;
    let events = frame.as_array().unwrap_or_else(|| panic!("an array: {frame}"));
    let mut actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    actions.sort();
    assert_eq!(actions, ["room_status", "send_topic_msg", "send_topic_msg", "send_topic_msg", "send_topic_msg"]);
    let first = events[0]["seq"].as_u64().unwrap();
    let last = first + 4;
    assert_eq!(seqs(std::slice::from_ref(&frame)), range(first, last));
    for seq in first..=last {
        let event = plain.recv().await;
        assert!(event.is_object(), "{event}");
        assert_eq!(event["seq"], seq);
    }

    // Replay to a batch client is one array too.
    batched.drop_without_close();
    plain.recv_action("exit_room").await;
    push_msgs(&mut bigo, "gs-batch", "2", "n", 2).await;
    plain.events("send_topic_msg", 2).await;
    let mut batched = broker.client_with("a", "sid-1", true).await;
    let ack = batched.enter_after("gs-batch", last).await;
    assert!(ack.is_object() && ack["recovered"] == true, "{ack}");
    let replay = batched.recv().await;
    assert!(replay.is_array(), "{replay}");
    assert_eq!(seqs(std::slice::from_ref(&replay)), range(last + 1, last + 3));
}

// ---------------------------------------------------------------------------------------------
// Abuse

async fn a_flooding_client_gets_1006_while_another_member_receives_every_event(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.client.rate_per_s = 5).await;
    let mut flooder = broker.member("f", "flood").await;
    let mut talker = broker.member("t", "flood").await;
    let mut observer = broker.client("o").await;
    let from = observer.enter("flood").await["last_seq"].as_u64().unwrap();
    for i in 0..40 {
        flooder.send("send_topic_msg_report", chat("flood", &format!("flood {i}"))).await;
    }
    let answers = flooder.drain(QUIET).await;
    let acks = answers.iter().filter(|f| f["action"] == "ack").count();
    let limited = answers.iter().filter(|f| f["action"] == "error" && error_code(f) == 1006).count();
    assert!(acks >= 1 && limited >= 1, "acks {acks}, 1006s {limited}: {answers:?}");

    let ack = talker.request("send_topic_msg_report", chat("flood", "the end")).await;
    assert_eq!(error_code(&ack), 0);
    let mut received = observer.collect_until("send_topic_msg").await;
    while !flatten(&received).iter().any(|f| f["content"] == "the end") {
        received.extend(observer.collect_until("send_topic_msg").await);
    }
    let events = flatten(&received);
    let end = ack["seq"].as_u64().unwrap();
    assert_eq!(seqs(&events), range(from + 1, end), "every event, in order");
    let flood = events.iter().filter(|e| e["user_id"] == "f").count();
    assert_eq!(flood, acks, "every accepted flood frame reached the observer");
}

async fn a_frame_over_max_frame_bytes_gets_1008_then_close_1009_and_the_room_carries_on(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.client.max_frame_bytes = 1024).await;
    let mut big = broker.member("a", "big").await;
    let mut b = broker.member("b", "big").await;
    let frame = big.frame("send_topic_msg_report", chat("big", &"x".repeat(2000))).to_string();
    big.send_raw(frame).await;
    let err = big.recv_action("error").await;
    assert_eq!((err["action"].clone(), error_code(&err)), (json!("error"), 1008), "{err}");
    assert_eq!(closed_with(&mut big.ws).await, Some(1009));
    assert_eq!(b.recv_action("exit_room").await["user_id"], "a");
    assert_eq!(error_code(&b.request("send_topic_msg_report", chat("big", "fine")).await), 0);
}

async fn long_content_gets_1001_and_an_unknown_action_1009_without_disturbing_anyone(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.client.max_content_chars = 10).await;
    let mut a = broker.member("a", "limits").await;
    let mut b = broker.member("b", "limits").await;
    let err = a.request("send_topic_msg_report", chat("limits", "01234567890")).await;
    assert_eq!(error_code(&err), 1001, "{err}");
    let err = a.request("dance_report", json!({"channel_name": "limits"})).await;
    assert_eq!(error_code(&err), 1009, "{err}");
    // The limit counts characters, not bytes.
    let ack = a.request("send_topic_msg_report", chat("limits", "弹幕弹幕弹幕弹幕弹幕")).await;
    assert_eq!(error_code(&ack), 0, "{ack}");
    let said = b.recv_action("send_topic_msg").await;
    assert_eq!((said["content"].clone(), said["seq"].clone()), (json!("弹幕弹幕弹幕弹幕弹幕"), ack["seq"].clone()));
    assert!(b.drain(QUIET).await.is_empty());
}

async fn a_user_on_two_devices_in_one_room_is_one_member_to_the_others(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut other = broker.member("b", "two-devices").await;
    let mut phone = broker.client_with("a", "phone", false).await;
    assert_eq!(phone.enter("two-devices").await["room"]["members"], 2);
    assert_eq!(other.recv_action("enter_room").await["user_id"], "a");
    let mut tablet = broker.client_with("a", "tablet", false).await;
    let ack = tablet.enter("two-devices").await;
    assert_eq!(ack["room"]["members"], 2, "the second device is not a new member: {ack}");
    // The tablet leaving is not the user leaving: nobody hears of it, and the next event
    // the others see is the user's message from the phone.
    tablet.send("exit_room_report", json!({"user_id": "a", "channel_name": "two-devices"})).await;
    assert_eq!(tablet.recv_action("ack").await["for"], "exit_room_report");
    phone.send("send_topic_msg_report", chat("two-devices", "still here")).await;
    let next = other.recv().await;
    assert_eq!((next["action"].clone(), next["content"].clone()), (json!("send_topic_msg"), json!("still here")));
    // The last device leaving is the user leaving.
    phone.send("exit_room_report", json!({"user_id": "a", "channel_name": "two-devices"})).await;
    assert_eq!(other.recv_action("exit_room").await["user_id"], "a");
}

async fn a_member_that_stops_reading_is_closed_with_1013_while_the_others_get_everything(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| {
        c.client.send_queue_len = 8;
        c.room.reorder_window_ms = 0;
    })
    .await;
    let mut stalled = broker.member("stalled", "g-slow").await;
    let mut reader = broker.member("reader", "g-slow").await;
    let mut bigo = broker.bigo_logged_in().await;
    // 300 events of 64 KB: far more than the loopback socket buffers hold, so the stalled
    // member's session falls more than its 8-bundle ring behind.
    let big = "x".repeat(64 * 1024);
    for i in 0..300 {
        let item = msg_item(&i.to_string(), now_ms(), &format!("{i}:{big}"));
        assert_eq!(bigo.push(&push_data(&format!("big{i}"), "g-slow", 2, vec![item])).await["rescode"], 200);
        let event = reader.recv_action("send_topic_msg").await;
        assert!(event["content"].as_str().unwrap().starts_with(&format!("{i}:")), "reader missed event {i}");
    }
    // The stalled member reads what reached its socket, then the close.
    assert_eq!(closed_with(&mut stalled.ws).await, Some(1013));
    let metrics = broker.get_text("/metrics").await.1;
    assert!(metrics.lines().any(|l| l == "danmu_slow_clients_disconnected_total 1"), "{metrics}");
}

async fn a_burst_reaches_a_reading_member_whole_and_one_that_reads_nothing_is_closed_with_1013(engine: Engine) {
    let write_timeout = Duration::from_millis(2_000);
    let broker = TestBroker::start_on(engine, |c| c.client.write_timeout_ms = write_timeout.as_millis() as u64).await;
    let channel = "gs-burst";
    let mut reader = broker.member("reader", channel).await;
    let mut stalled = broker.client_with_small_window("stalled").await;
    stalled.enter(channel).await;
    let other = broker.member("other", channel).await;
    let _ = reader.events("enter_room", 2).await;

    // A gift storm: 3,800 items of about 1.2 KB (5.7 MB as events, more than the stalled
    // member's socket buffers hold), 50 to a push, every push in flight at once.
    let (pushes, per_push, total) = (76, 50, 3_800);
    let reading = |mut member: AppClient| {
        actix_rt::spawn(async move {
            let mut contents = Vec::new();
            let mut numbers = Vec::new();
            while contents.len() < total {
                for event in flatten(&[member.recv().await]) {
                    numbers.extend(event["seq"].as_u64());
                    if event["action"] == "send_topic_msg" {
                        contents.push(event["content"].as_str().unwrap_or_default()[..9].to_string());
                    }
                }
            }
            (member, contents, numbers, std::time::Instant::now())
        })
    };
    let (reader_task, other_task) = (reading(reader), reading(other));
    let mut bigo = broker.bigo_logged_in().await;
    let filler = "礼".repeat(400);
    let ts = now_ms();
    for p in 0..pushes {
        let items = (0..per_push)
            .map(|i| {
                let n = p * per_push + i;
                msg_item(&format!("b{n}"), ts, &format!("item{n:05}{filler}"))
            })
            .collect();
        bigo.send_push(&push_data(&format!("burst{p}"), channel, 2, items)).await;
    }
    for _ in 0..pushes {
        assert_eq!(BigoClient::data_of(&bigo.recv().await)["rescode"], 200);
    }
    let expected: Vec<String> = (0..total).map(|n| format!("item{n:05}")).collect();
    for task in [reader_task, other_task] {
        let (_member, contents, numbers, _) = task.await.expect("a reading member");
        assert_eq!(contents, expected, "every item once, in the order pushed");
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "no seq missing");
    }
    // The one that read nothing: closed with 1013 once its socket took nothing for the write
    // timeout; when it reads again, it finds the close after what its socket already held.
    tokio::time::sleep(write_timeout + Duration::from_millis(1_000)).await;
    assert_eq!(broker.user_info("stalled").await["current_room_id"], "", "it left the room");
    let frames = tokio::time::timeout(write_timeout * 3, async {
        let mut frames = 0;
        loop {
            match stalled.ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(close))) => {
                    return (frames, close.map(|c| u16::from(c.code)))
                }
                Some(Ok(_)) => frames += 1,
                _ => return (frames, None),
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(frames.1, Some(1013), "after {} frames", frames.0);
    assert!(frames.0 < total, "it did not read the whole burst: {}", frames.0);
    assert_eq!(broker.metric_on_every_node("danmu_slow_clients_disconnected_total").await, 1.0);
}

// ---------------------------------------------------------------------------------------------
// epochs

async fn the_enter_ack_carries_the_rooms_epoch_and_a_known_epoch_recovers(engine: Engine) {
    let broker = TestBroker::start_on(engine, |_| {}).await;
    let mut a = broker.client("a").await;
    let ack = a.enter("gs-epoch").await;
    let epoch = ack["epoch"].as_str().expect("the ack carries epoch").to_string();
    assert_eq!(ack["room"]["epoch"], epoch.as_str());
    let last = ack["last_seq"].as_u64().unwrap();
    a.request("exit_room_report", json!({"user_id": "a"})).await;
    a.send("enter_room_report", json!({"channel_name": "gs-epoch", "last_seq": last, "epoch": epoch})).await;
    let again = a.recv_action("ack").await;
    assert_eq!((again["recovered"].as_bool(), again["epoch"].as_str()), (Some(true), Some(epoch.as_str())));
}

async fn a_room_that_stopped_keeps_its_epoch_only_where_its_state_is_stored(engine: Engine) {
    let broker = TestBroker::start_on(engine, |c| c.room.idle_stop_ms = 200).await;
    let mut a = broker.client("a").await;
    let first = a.enter("gs-restart").await;
    let (old_epoch, last) = (first["epoch"].as_str().unwrap().to_string(), first["last_seq"].as_u64().unwrap());
    a.request("exit_room_report", json!({"user_id": "a"})).await;
    // Enough for the empty room to stop (idle checks run every 100 ms at this setting).
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    a.send("enter_room_report", json!({"channel_name": "gs-restart", "last_seq": last, "epoch": old_epoch})).await;
    let ack = a.recv_action("ack").await;
    if engine == Engine::Memory {
        // On the memory store the room's state went with it: numbering started again.
        assert_ne!(ack["epoch"].as_str(), Some(old_epoch.as_str()), "a new epoch");
        assert_eq!(ack["recovered"], false, "{ack}");
        assert_eq!(ack["last_seq"], 1, "its own enter_room is the new room's first event");
        assert!(a.drain(QUIET).await.is_empty(), "another epoch replays nothing");
    } else {
        // In Redis the room goes on where it stopped: the missed exit_room is replayed.
        assert_eq!((ack["epoch"].as_str(), ack["recovered"].as_bool()), (Some(old_epoch.as_str()), Some(true)));
        assert_eq!(ack["last_seq"], last + 2, "{ack}");
        let replay = a.drain(QUIET).await;
        assert_eq!((replay.len(), replay[0]["action"].as_str()), (1, Some("exit_room")), "{replay:?}");
    }
}

on_every_engine!(
    up_report_takes_a_free_seat_and_every_member_sees_up_with_the_full_room_seat,
    seed_spelling_up_deport_without_seat_or_channel_takes_the_lowest_free_seat,
    two_clients_racing_for_one_seat_exactly_one_wins,
    down_report_frees_the_seat_and_broadcasts_down,
    moving_to_another_seat_sends_down_then_up_and_a_bad_seat_id_gets_1001,
    a_bc_gift_reaches_every_member_with_sender_receiver_and_seats,
    a_ptp_gift_reaches_only_the_receiver,
    a_ptp_gift_to_someone_outside_the_room_gets_1004_and_without_receiver_1001,
    a_call_holds_two_users_and_a_third_joiner_gets_1007,
    hang_up_report_gives_the_peer_hang_up_with_or_without_receiver_id,
    a_dropped_call_peer_gives_the_other_side_hang_up_and_exit_room,
    a_client_killed_without_a_close_frame_leaves_and_its_seat_is_freed,
    a_silent_client_is_removed_after_the_idle_timeout_and_its_seat_freed,
    exit_room_report_about_another_user_is_the_relay_acknowledgement,
    exit_room_report_for_oneself_in_seed_form_leaves_the_current_room,
    user_info_names_the_current_room_and_is_empty_before_and_after,
    a_second_connection_of_the_same_user_and_sid_replaces_the_first,
    a_user_entering_a_room_on_one_device_leaves_the_room_of_the_other,
    entering_another_room_on_the_same_connection_leaves_the_first,
    replay_after_reconnect_returns_exactly_the_missed_seq_range_before_live_events,
    recovered_is_false_once_history_has_moved_on,
    entering_with_the_newest_last_seq_is_recovered_with_nothing_to_replay,
    a_last_seq_beyond_the_newest_is_not_recovered_and_replays_nothing,
    batch_clients_get_arrays_in_seq_order_and_others_one_event_per_frame,
    a_flooding_client_gets_1006_while_another_member_receives_every_event,
    a_frame_over_max_frame_bytes_gets_1008_then_close_1009_and_the_room_carries_on,
    long_content_gets_1001_and_an_unknown_action_1009_without_disturbing_anyone,
    a_user_on_two_devices_in_one_room_is_one_member_to_the_others,
    a_member_that_stops_reading_is_closed_with_1013_while_the_others_get_everything,
    a_burst_reaches_a_reading_member_whole_and_one_that_reads_nothing_is_closed_with_1013,
    the_enter_ack_carries_the_rooms_epoch_and_a_known_epoch_recovers,
    a_room_that_stopped_keeps_its_epoch_only_where_its_state_is_stored,
);
