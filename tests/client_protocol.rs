//! App clients (docs/protocol.md 2.1-2.3): finding a node, connecting, frame checks, heartbeat,
//! joining and leaving, chat, and isolation from a misbehaving neighbour.

mod common;

use common::*;
use serde_json::{json, Value};

fn error_code(frame: &Value) -> i64 {
    assert_eq!(frame["action"], "error", "expected an error frame: {frame}");
    frame["error_code"].as_i64().unwrap()
}

#[actix_rt::test]
async fn end_point_names_the_websocket_and_ping_interval() {
    let broker = TestBroker::start().await;
    let token = broker.token("u1");
    let (status, body) = broker
        .get_json(&format!("/iapi/websocket/end_point?user_id=u1&sid=s&timestamp={}&token={token}", now_ms()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"error_code":0,"error_reason":"","end_point":format!("ws://{}/iapi/websocket", broker.addr),"ping_interval":15})
    );
}

#[actix_rt::test]
async fn end_point_refuses_missing_parameters_and_bad_tokens() {
    let broker = TestBroker::start().await;
    let (status, body) = broker.get_json("/iapi/websocket/end_point?user_id=u1").await;
    assert_eq!((status, body["error_code"].as_i64()), (400, Some(1001)));
    let other = broker.token("someone-else");
    let (status, body) = broker
        .get_json(&format!("/iapi/websocket/end_point?user_id=u1&sid=s&timestamp={}&token={other}", now_ms()))
        .await;
    assert_eq!((status, body["error_code"].as_i64()), (401, Some(1003)));
    let (status, body) =
        broker.get_json(&format!("/iapi/websocket/end_point?user_id=u1&sid=s&timestamp={}&token=junk", now_ms())).await;
    assert_eq!((status, body["error_code"].as_i64()), (401, Some(1003)));
}

#[actix_rt::test]
async fn the_websocket_upgrade_refuses_a_bad_token() {
    let broker = TestBroker::start().await;
    let url = broker.ws_url(&format!("/iapi/websocket?user_id=u1&sid=s&timestamp={}&token=junk", now_ms()));
    let err = tokio_tungstenite::connect_async(url).await.expect_err("upgrade must be refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[actix_rt::test]
async fn connected_carries_a_fresh_online_token_each_time() {
    let broker = TestBroker::start().await;
    let a = broker.client_with("u1", "s1", false).await;
    let b = broker.client_with("u1", "s2", false).await;
    assert_eq!(a.online_token.len(), 32);
    assert!(a.online_token.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a.online_token, b.online_token);
}

#[actix_rt::test]
async fn ping_is_answered_with_pong_and_server_time() {
    let broker = TestBroker::start().await;
    let mut c = broker.client("u1").await;
    c.send("ping", json!({})).await;
    let pong = c.recv().await;
    assert_eq!(pong["action"], "pong");
    assert!((pong["server_time"].as_i64().unwrap() - now_ms()).abs() < 5_000);
}

#[actix_rt::test]
async fn a_frame_with_a_bad_sign_gets_1002() {
    let broker = TestBroker::start().await;
    let mut c = broker.client("u1").await;
    let mut frame = c.frame("ping", json!({}));
    frame["sign"] = json!("0123456789abcdef0123456789abcdef");
    c.send_text(frame.to_string()).await;
    let err = c.recv().await;
    assert_eq!(error_code(&err), 1002);
    assert_eq!(err["for"], "ping");
}

#[actix_rt::test]
async fn a_frame_with_another_online_token_gets_1003() {
    let broker = TestBroker::start().await;
    let mut c = broker.client("u1").await;
    c.online_token = "f".repeat(32);
    c.send("ping", json!({})).await;
    assert_eq!(error_code(&c.recv().await), 1003);
}

#[actix_rt::test]
async fn a_stale_timestamp_gets_1010() {
    let broker = TestBroker::start().await;
    let mut c = broker.client("u1").await;
    let ts = now_ms() - 10 * 60_000;
    let sign = md5(&format!("action=ping&online_token={}&sid={}&timestamp={ts}", c.online_token, c.sid));
    let frame = json!({"action":"ping","online_token":c.online_token,"sid":c.sid,"timestamp":ts,"sign":sign});
    c.send_text(frame.to_string()).await;
    assert_eq!(error_code(&c.recv().await), 1010);
}

/// Issue 26: the window check computed `now - timestamp`, which overflowed on these.
#[actix_rt::test]
async fn a_timestamp_at_either_end_of_i64_gets_1010_and_the_connection_goes_on() {
    let broker = TestBroker::start().await;
    let token = broker.token("u1");
    for ts in ["-9223372036854775808", "9223372036854775807"] {
        let query = format!("user_id=u1&sid=s&timestamp={ts}&token={token}");
        let (status, body) = broker.get_json(&format!("/iapi/websocket/end_point?{query}")).await;
        assert_eq!((status, body["error_code"].as_i64()), (400, Some(1010)), "end_point at {ts}: {body}");
    }
    let mut c = broker.client("u1").await;
    for ts in [json!(i64::MIN), json!(i64::MAX), json!("-9223372036854775808"), json!(-1e19), json!(1e19)] {
        let text = ts.as_str().map_or_else(|| ts.to_string(), str::to_string);
        let sign = md5(&format!("action=ping&online_token={}&sid={}&timestamp={text}", c.online_token, c.sid));
        let frame = json!({"action":"ping","online_token":c.online_token,"sid":c.sid,"timestamp":ts,"sign":sign});
        c.send_text(frame.to_string()).await;
        assert_eq!(error_code(&c.recv().await), 1010, "timestamp {ts}");
    }
    c.send("ping", json!({})).await;
    assert_eq!(c.recv().await["action"], "pong");
}

#[actix_rt::test]
async fn an_unknown_action_gets_1009_and_malformed_frames_1001() {
    let broker = TestBroker::start().await;
    let mut c = broker.client("u1").await;
    c.send("dance_report", json!({})).await;
    assert_eq!(error_code(&c.recv().await), 1009);
    c.send_text("{not json").await;
    assert_eq!(error_code(&c.recv().await), 1001);
    c.send("enter_room_report", json!({})).await;
    assert_eq!(error_code(&c.recv().await), 1001, "enter_room_report without channel_name");
    c.send("ping", json!({})).await;
    assert_eq!(c.recv().await["action"], "pong", "the connection stays usable");
}

#[actix_rt::test]
async fn a_silent_client_is_disconnected_after_the_idle_timeout() {
    let broker = TestBroker::start_with(|c| c.client.idle_timeout_ms = 600).await;
    let mut c = broker.client("u1").await;
    let started = std::time::Instant::now();
    assert!(closed_with(&mut c.ws).await.is_some());
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
}

#[actix_rt::test]
async fn pings_keep_a_client_alive_past_the_idle_timeout() {
    let broker = TestBroker::start_with(|c| c.client.idle_timeout_ms = 600).await;
    let mut c = broker.client("u1").await;
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        c.send("ping", json!({})).await;
        assert_eq!(c.recv().await["action"], "pong");
    }
}

#[actix_rt::test]
async fn entering_a_room_acks_a_snapshot_and_tells_the_others_with_the_jwt_profile() {
    let broker = TestBroker::start().await;
    let mut alice = broker.client("alice").await;
    let ack = alice.enter("lobby").await;
    assert_eq!(ack["error_code"], 0);
    assert_eq!(ack["room"]["channel_name"], "lobby");
    assert_eq!(ack["room"]["members"], 1);
    assert_eq!(ack["room"]["seats"].as_array().map(Vec::len), Some(8));
    let alice_seq = ack["last_seq"].as_u64().unwrap();

    let mut bob = broker.client("bob").await;
    let bob_ack = bob.enter("lobby").await;
    assert_eq!(bob_ack["room"]["members"], 2);
    let entered = alice.recv_action("enter_room").await;
    assert_eq!(entered["user_id"], "bob");
    assert_eq!(entered["nickname"], "nick-bob");
    assert_eq!(entered["channel_name"], "lobby");
    assert_eq!(entered["seq"].as_u64(), Some(alice_seq + 1));
    assert_eq!(entered["seq"], bob_ack["last_seq"], "the joiner's own enter_room is its ack's last_seq");

    // Bob never gets his own enter_room: the next thing he sees is Alice's message.
    alice.send("send_topic_msg_report", json!({"channel_name":"lobby","content":"hi bob"})).await;
    let next = bob.recv().await;
    assert_eq!((next["action"].as_str(), next["content"].as_str()), (Some("send_topic_msg"), Some("hi bob")));
}

#[actix_rt::test]
async fn chat_is_broadcast_to_every_member_and_acked_to_the_sender() {
    let broker = TestBroker::start().await;
    let mut alice = broker.client("alice").await;
    alice.enter("chat").await;
    let mut bob = broker.client("bob").await;
    bob.enter("chat").await;
    alice.recv_action("enter_room").await;
    bob.send("send_topic_msg_report", json!({"channel_name":"chat","content":"大家好"})).await;
    let ack = bob.recv_action("ack").await;
    assert_eq!((ack["for"].as_str(), ack["error_code"].as_i64()), (Some("send_topic_msg_report"), Some(0)));
    let msg = alice.recv_action("send_topic_msg").await;
    assert_eq!((msg["user_id"].as_str(), msg["content"].as_str()), (Some("bob"), Some("大家好")));
    assert_eq!(msg["seq"], ack["seq"]);
}

#[actix_rt::test]
async fn reports_into_a_room_one_is_not_in_get_1004() {
    let broker = TestBroker::start().await;
    let mut c = broker.client("u1").await;
    c.send("send_topic_msg_report", json!({"channel_name":"elsewhere","content":"x"})).await;
    assert_eq!(error_code(&c.recv().await), 1004);
}

#[actix_rt::test]
async fn content_over_the_limit_gets_1001() {
    let broker = TestBroker::start_with(|c| c.client.max_content_chars = 5).await;
    let mut c = broker.client("u1").await;
    c.enter("r").await;
    c.send("send_topic_msg_report", json!({"channel_name":"r","content":"六个汉字太长"})).await;
    assert_eq!(error_code(&c.recv().await), 1001);
}

#[actix_rt::test]
async fn exiting_tells_the_others_and_stops_delivery() {
    let broker = TestBroker::start().await;
    let mut alice = broker.client("alice").await;
    alice.enter("exit").await;
    let mut bob = broker.client("bob").await;
    bob.enter("exit").await;
    alice.recv_action("enter_room").await;
    bob.send("exit_room_report", json!({"user_id":"bob","channel_name":"exit"})).await;
    assert_eq!(bob.recv_action("ack").await["for"], "exit_room_report");
    let exit = alice.recv_action("exit_room").await;
    assert_eq!((exit["user_id"].as_str(), exit["channel_name"].as_str()), (Some("bob"), Some("exit")));
    bob.send("send_topic_msg_report", json!({"channel_name":"exit","content":"x"})).await;
    assert_eq!(error_code(&bob.recv().await), 1004);
}

#[actix_rt::test]
async fn a_flood_of_junk_on_one_connection_leaves_the_others_deliveries_intact() {
    let broker = TestBroker::start_with(|c| c.room.reorder_window_ms = 20).await;
    let mut calm = broker.client("calm").await;
    calm.enter("flood").await;
    let mut noisy = broker.client("noisy").await;
    noisy.enter("flood").await;
    let mut bigo = broker.bigo_logged_in().await;

    let flood = async {
        for i in 0..2_000 {
            let junk = if i % 2 == 0 { "{garbage".to_string() } else { json!({"action":"x"}).to_string() };
            noisy.send_text(junk).await;
        }
    };
    let pushes = async {
        for i in 0..50 {
            let item = msg_item(&i.to_string(), now_ms(), &format!("m{i}"));
            assert_eq!(bigo.push(&push_data(&format!("f{i}"), "flood", 2, vec![item])).await["rescode"], 200);
        }
    };
    futures_util::join!(flood, pushes);
    let events = calm.events("send_topic_msg", 50).await;
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let got: Vec<String> = events.iter().map(|e| e["content"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, expected);
    // The flooder was told to slow down, and is still connected.
    let mut saw_rate_limit = false;
    for _ in 0..200 {
        let frame = noisy.recv().await;
        if frame["error_code"] == 1006 {
            saw_rate_limit = true;
            break;
        }
    }
    assert!(saw_rate_limit, "the flooding client gets 1006");
}
