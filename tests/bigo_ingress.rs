//! BIGO ingress (docs/protocol.md 1.1-1.4): login, envelope, rescodes, frame limits.

mod common;

use common::*;
use serde_json::{json, Value};

#[actix_rt::test]
async fn login_with_the_right_sign_gets_a_32_hex_access_token() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo().await;
    let sent = now_ms();
    let data = bigo.login(ACCOUNT, PASSWORD, sent).await;
    assert_eq!(data["code"], 200);
    assert_eq!(data["message"], "");
    let token = data["access_token"].as_str().unwrap();
    assert_eq!(token.len(), 32);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
}

/// The harness signs with `actors::protocol::bigo_client`; this test spells out the formulas of
/// docs/protocol.md 1.2 and 1.4 itself, so that the server and the shared client module cannot agree
/// on a wrong formula unnoticed.
#[actix_rt::test]
async fn frames_signed_with_the_formulas_of_protocol_md_written_out_are_accepted() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo().await;
    let ts = now_ms().to_string();
    let sign = md5(&format!("password:{PASSWORD}&tamp:{ts}&{ABBR}&account:{ACCOUNT}"));
    let data = json!({"account": ACCOUNT, "timestamp": ts, "sign": sign}).to_string();
    bigo.send_text(json!({"uri":"platformLogin","retry_cnt":0,"send_time":now_ms(),"data":data}).to_string()).await;
    let login = BigoClient::data_of(&bigo.recv().await);
    assert_eq!(login["code"], 200, "{login}");
    let token = login["access_token"].as_str().expect("access_token").to_string();

    let data = push_data("lit-1", "g-literal", 2, vec![msg_item("1", now_ms(), "written out")]).to_string();
    let sign = md5(&format!("{data}&token:{token}&{ABBR}"));
    let frame = json!({"uri":"dataReception","retry_cnt":0,"send_time":now_ms(),"data":data,
                       "access_token":token,"sign":sign});
    bigo.send_text(frame.to_string()).await;
    let resp = bigo.recv().await;
    assert_eq!(resp["uri"], "dataReceptionResp", "{resp}");
    assert_eq!(BigoClient::data_of(&resp), json!({"seqid":"lit-1","rescode":200,"message":""}));
}

#[actix_rt::test]
async fn response_envelope_echoes_retry_cnt_and_send_time() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo().await;
    let ts = now_ms().to_string();
    let sign = md5(&format!("password:{PASSWORD}&tamp:{ts}&{ABBR}&account:{ACCOUNT}"));
    let data = json!({"account": ACCOUNT, "timestamp": ts, "sign": sign}).to_string();
    let send_time = now_ms() - 40;
    bigo.send_text(json!({"uri":"platformLogin","retry_cnt":2,"send_time":send_time,"data":data}).to_string()).await;
    let resp = bigo.recv().await;
    assert_eq!(resp["uri"], "platformLoginResp");
    assert_eq!(resp["retry_cnt"], 2);
    assert_eq!(resp["send_time"], send_time);
    let resp_time = resp["resp_time"].as_i64().unwrap();
    assert!(resp_time >= send_time + 40);
    assert!(resp["up_cost"].as_i64().unwrap() >= 40);
    assert!(resp["data"].is_string(), "data must be a JSON-encoded string: {resp}");
}

#[actix_rt::test]
async fn each_login_failure_names_its_cause() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo().await;
    let data = bigo.login(ACCOUNT, "wrong-password", now_ms()).await;
    assert_eq!((data["code"].clone(), data["message"].clone()), (json!(400), json!("sign is error.")));
    let data = bigo.login("nobody", PASSWORD, now_ms()).await;
    assert_eq!((data["code"].clone(), data["message"].clone()), (json!(400), json!("account not found")));
    let mut bigo = broker.bigo().await;
    let data = bigo.login(ACCOUNT, PASSWORD, now_ms() - 600_000).await;
    assert_eq!((data["code"].clone(), data["message"].clone()), (json!(400), json!("timestamp expired")));
}

/// Issue 26: `now - send_time` and the login's time check overflowed on these.
#[actix_rt::test]
async fn times_no_clock_could_tell_get_up_cost_0_and_an_expired_login_and_the_connection_stays_open() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo().await;
    for send_time in [json!("-9223372036854775808"), json!(i64::MIN), json!(-1e19), json!(1e19)] {
        bigo.send_text(json!({ "send_time": send_time }).to_string()).await;
        let resp = bigo.recv().await;
        assert_eq!((resp["uri"].as_str(), resp["up_cost"].as_i64()), (Some("errorResp"), Some(0)), "{resp}");
        assert_eq!(resp["send_time"], send_time, "echoed as sent");
    }
    // The harness sends the login's timestamp as its send_time too.
    let data = bigo.login(ACCOUNT, PASSWORD, i64::MIN).await;
    assert_eq!((data["code"].clone(), data["message"].clone()), (json!(400), json!("timestamp expired")));
    assert_eq!(bigo.login(ACCOUNT, PASSWORD, now_ms()).await["code"], 200);
}

#[actix_rt::test]
async fn third_login_failure_closes_the_connection_with_1008() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo().await;
    for _ in 0..2 {
        assert_eq!(bigo.login(ACCOUNT, "bad", now_ms()).await["code"], 400);
    }
    let ts = now_ms().to_string();
    let data = json!({"account": ACCOUNT, "timestamp": ts, "sign": "bad"}).to_string();
    bigo.send_text(json!({"uri":"platformLogin","retry_cnt":0,"send_time":now_ms(),"data":data}).to_string()).await;
    assert_eq!(closed_with(&mut bigo.ws).await, Some(1008));
}

#[actix_rt::test]
async fn data_reception_before_login_is_401_and_discarded() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo().await;
    bigo.token = "0".repeat(32);
    let data = bigo.push(&push_data("s1", "g-401", 2, vec![msg_item("1", now_ms(), "hi")])).await;
    assert_eq!(data, json!({"seqid":"s1","rescode":401,"message":"not logged in"}));
}

#[actix_rt::test]
async fn data_reception_with_a_wrong_token_is_401() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo_logged_in().await;
    bigo.token = "f".repeat(32);
    let data = bigo.push(&push_data("s2", "g-tok", 2, vec![])).await;
    assert_eq!(data["rescode"], 401);
    assert_eq!(data["seqid"], "s2");
}

#[actix_rt::test]
async fn data_reception_with_a_wrong_sign_is_403() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo_logged_in().await;
    let data = push_data("s3", "g-sign", 2, vec![]).to_string();
    let frame = json!({"uri":"dataReception","retry_cnt":0,"send_time":now_ms(),"data":data,
                       "access_token":bigo.token,"sign":"0123456789abcdef0123456789abcdef"});
    bigo.send_text(frame.to_string()).await;
    let data = BigoClient::data_of(&bigo.recv().await);
    assert_eq!(data, json!({"seqid":"s3","rescode":403,"message":"sign is error."}));
}

#[actix_rt::test]
async fn malformed_data_is_400_naming_the_field() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo_logged_in().await;
    let no_sess = json!({"seqid":"s4","timestamp":now_ms(),"danmu_data":[]});
    let data = bigo.push(&no_sess).await;
    assert_eq!((data["rescode"].clone(), data["seqid"].clone()), (json!(400), json!("s4")));
    assert!(data["message"].as_str().unwrap().contains("game_sess"), "{data}");
    let no_seqid = json!({"game_sess":"g","timestamp":now_ms(),"danmu_data":[]});
    let data = bigo.push(&no_seqid).await;
    assert_eq!((data["rescode"].clone(), data["seqid"].clone()), (json!(400), json!("")));
    assert!(data["message"].as_str().unwrap().contains("seqid"), "{data}");
    let not_json = Value::String("{not json".into());
    let data = bigo.push(&not_json).await;
    assert_eq!(data["rescode"], 400);
}

#[actix_rt::test]
async fn data_sent_as_a_plain_object_is_signed_over_its_text() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo_logged_in().await;
    let data_text = r#"{"seqid":"obj1","game_sess":"g-obj","status":2,"timestamp":1,"danmu_data":[]}"#;
    let sign = md5(&format!("{data_text}&token:{}&{ABBR}", bigo.token));
    let frame = format!(
        r#"{{"uri":"dataReception","retry_cnt":0,"send_time":{},"data":{data_text},"access_token":"{}","sign":"{sign}"}}"#,
        now_ms(),
        bigo.token
    );
    bigo.send_text(frame).await;
    let data = BigoClient::data_of(&bigo.recv().await);
    assert_eq!(data, json!({"seqid":"obj1","rescode":200,"message":""}));
}

#[actix_rt::test]
async fn junk_frames_get_error_resp_and_the_connection_stays_open() {
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo_logged_in().await;
    for junk in ["not json", r#"{"retry_cnt":0}"#, r#"{"uri":"whatIsThis","data":"{}"}"#] {
        bigo.send_text(junk).await;
        let resp = bigo.recv().await;
        assert_eq!(resp["uri"], "errorResp", "{junk}");
        assert_eq!(BigoClient::data_of(&resp)["code"], 400);
    }
    let data = bigo.push(&push_data("after-junk", "g-junk", 2, vec![])).await;
    assert_eq!(data["rescode"], 200);
}

#[actix_rt::test]
async fn a_binary_frame_closes_with_1003() {
    use futures_util::SinkExt;
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo().await;
    bigo.ws.send(tokio_tungstenite::tungstenite::Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(closed_with(&mut bigo.ws).await, Some(1003));
}

#[actix_rt::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let broker = TestBroker::start_with(|c| c.bigo.max_frame_bytes = 1024).await;
    let mut bigo = broker.bigo().await;
    bigo.send_text("x".repeat(2048)).await;
    assert_eq!(closed_with(&mut bigo.ws).await, Some(1009));
}

#[actix_rt::test]
async fn pings_are_answered_with_the_same_payload() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let broker = TestBroker::start().await;
    let mut bigo = broker.bigo().await;
    bigo.ws.send(Message::Ping(b"beat".to_vec().into())).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, bigo.ws.next()).await.unwrap().unwrap().unwrap() {
            Message::Pong(payload) => break assert_eq!(&payload[..], b"beat"),
            _ => continue,
        }
    }
}

#[actix_rt::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let broker = TestBroker::start_with(|c| c.bigo.idle_timeout_ms = 600).await;
    let mut bigo = broker.bigo().await;
    let started = std::time::Instant::now();
    assert!(closed_with(&mut bigo.ws).await.is_some());
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
}
