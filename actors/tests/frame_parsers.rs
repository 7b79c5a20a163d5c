//! The frame parsers never panic, and every frame ends in one of docs/protocol.md's answers:
//! arbitrary bytes and mutated valid frames fed to the BIGO ingress checks (section 1: an
//! `errorResp` 400, a login `code` 400, a `dataReception` rescode 400/401/403, or accepted)
//! and to the client frame checks (section 2.3: errors 1001, 1002, 1003, 1009, 1010, or an
//! authentic frame).
//!
//! Numbers at their extremes in every number field (issue 26: `i64::MIN`, `-1e19`, `1e19`,
//! floats, long digit strings, as numbers and as strings) are answered cleanly: a time check
//! fails, or the value counts as absent; nothing overflows.

use actors::clients::client_session::check_frame;
use actors::config::{BigoAccount, BigoConfig, ClientConfig};
use actors::ingress::bigo_session::{check_data, check_login, up_cost};
use actors::protocol::bigo::{self, Request};
use actors::protocol::client::ErrorCode;
use actors::protocol::clock::{plausible, LATEST_MS};
use actors::protocol::{lenient, sign};
use proptest::prelude::*;
use serde_json::json;

const NOW: i64 = 1_700_000_000_000;
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn bigo_config() -> BigoConfig {
    BigoConfig {
        accounts: vec![BigoAccount { account: "acc".into(), password: "pw".into() }],
        platform_abbr: "inke".into(),
        ..BigoConfig::default()
    }
}

/// What the BIGO session would answer a text frame from a logged-in connection with: the
/// wire code (200 for accepted frames).
fn bigo_answer(text: &str) -> u16 {
    let config = bigo_config();
    let Ok(req) = serde_json::from_str::<Request>(text) else { return 400 };
    match req.uri.as_deref() {
        Some(bigo::URI_LOGIN) => match check_login(&config, &req, NOW) {
            Ok(_) => 200,
            Err(message) => {
                assert!(
                    ["data unparsable", "account not found", "sign is error.", "timestamp expired"].contains(&message),
                    "unexpected login failure {message:?}"
                );
                400
            }
        },
        Some(bigo::URI_DATA) => match check_data(&config, Some(TOKEN), &req, req.data_text().as_deref()) {
            Ok(data) => {
                // Reading the items must not panic either.
                let _ = data.items();
                200
            }
            Err(rejection) => rejection.rescode,
        },
        _ => 400,
    }
}

fn login_frame() -> String {
    login_frame_at(&NOW.to_string())
}

/// A login whose `timestamp` is the text `ts`, correctly signed.
fn login_frame_at(ts: &str) -> String {
    let data = json!({"account":"acc","timestamp":ts,"sign":sign::bigo_login("pw", ts, "inke", "acc")}).to_string();
    json!({"uri":"platformLogin","retry_cnt":0,"send_time":NOW,"data":data}).to_string()
}

fn push_frame() -> String {
    let data = json!({"seqid":"1","timestamp":NOW,"game_id":"g","game_sess":"gs","status":2,
        "danmu_data":[{"openid":"a","datas":[{"type":"msg","user":"u","ts":"1","data_seq":"1","content":"hi"}]}]})
    .to_string();
    let sign = sign::bigo_message(&data, TOKEN, "inke");
    json!({"uri":"dataReception","retry_cnt":0,"send_time":NOW,"data":data,"access_token":TOKEN,"sign":sign})
        .to_string()
}

const ONLINE: &str = "fedcba9876543210fedcba9876543210";

fn client_frame(action: &str, fields: serde_json::Value) -> String {
    let ts = NOW.to_string();
    let mut frame = json!({"action":action,"online_token":ONLINE,"sid":"s","timestamp":ts,
                           "sign":sign::client_frame(action, ONLINE, "s", &ts)});
    if let (Some(obj), serde_json::Value::Object(extra)) = (frame.as_object_mut(), fields) {
        obj.extend(extra);
    }
    frame.to_string()
}

fn client_answer(text: &str) -> u16 {
    match check_frame(text, ONLINE, &ClientConfig::default(), NOW) {
        Ok(_) => 0,
        Err(refusal) => {
            let allowed = [
                ErrorCode::BadParameters,
                ErrorCode::BadSign,
                ErrorCode::TokenInvalid,
                ErrorCode::UnknownAction,
                ErrorCode::TimestampOutOfWindow,
            ];
            assert!(allowed.contains(&refusal.code), "unexpected refusal {refusal:?}");
            refusal.code.code()
        }
    }
}

/// The JSON text of a number at or past the ends of `i64`: as a number or a string, a float
/// beyond `i64` (`-1e19` reads as `i64::MIN`), a fraction, or a long run of digits.
fn extreme_number() -> impl Strategy<Value = String> {
    let ends = prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::MIN + 1),
        Just(-1),
        Just(0),
        Just(NOW),
        Just(LATEST_MS + 1),
        any::<i64>()
    ];
    const TEXTS: &[&str] =
        &["-1e19", "1e19", "1.5", "-0.0", "1.7e12", "1e308", "-1e308", "123456789012345678901234567890"];
    prop_oneof![
        ends.clone().prop_map(|n| n.to_string()),
        ends.prop_map(|n| format!("\"{n}\"")),
        prop::sample::select(TEXTS).prop_map(str::to_string),
        prop::sample::select(TEXTS).prop_map(|t| format!("\"{t}\"")),
        "-?[1-9][0-9]{0,39}",
        "-?[0-9]{1,40}".prop_map(|digits| format!("\"{digits}\"")),
    ]
}

/// The text the server reads from the JSON `number` (a string's contents, a number's digits).
fn text_of(number: &str) -> String {
    serde_json::from_str(number).ok().and_then(|v| lenient::text_of(&v)).unwrap_or_default()
}

/// True when `text` is an integer within `max_skew_ms` of [`NOW`].
fn in_window(text: &str, max_skew_ms: i64) -> bool {
    text.parse::<i64>().is_ok_and(|t| (i128::from(t) - i128::from(NOW)).abs() <= i128::from(max_skew_ms))
}

/// A valid frame with some bytes changed, inserted or cut off.
fn mutated(frame: String) -> impl Strategy<Value = String> {
    let len = frame.len();
    (prop::collection::vec((0..len, any::<u8>(), 0u8..3), 1..6), 0..=len).prop_map(move |(edits, cut)| {
        let mut bytes = frame.clone().into_bytes();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len().saturating_sub(1));
            match kind {
                0 if !bytes.is_empty() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        bytes.truncate(cut.max(1).min(bytes.len()));
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A ping whose `timestamp` is the JSON text `ts` (a number or a string), correctly signed
/// over the text the server reads from it.
fn ping_at(ts: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(ts).expect("ts is JSON");
    let text = lenient::text_of(&value).unwrap_or_default();
    let sign = sign::client_frame("ping", ONLINE, "s", &text);
    format!(r#"{{"action":"ping","online_token":"{ONLINE}","sid":"s","timestamp":{ts},"sign":"{sign}"}}"#)
}

#[test]
fn the_valid_frames_are_accepted() {
    assert_eq!(bigo_answer(&login_frame()), 200);
    assert_eq!(bigo_answer(&push_frame()), 200);
    assert_eq!(client_answer(&client_frame("ping", json!({}))), 0);
    assert_eq!(client_answer(&client_frame("enter_room_report", json!({"channel_name":"c","last_seq":3}))), 0);
}

// Issue 26: each of these overflowed where overflow checks are on, and wrapped in release.

#[test]
fn up_cost_of_a_send_time_no_clock_could_tell_is_zero() {
    for send_time in [json!(i64::MIN), json!("-9223372036854775808"), json!(-1e19), json!(1e19), json!(i64::MAX)] {
        assert_eq!(up_cost(&send_time, NOW), 0, "send_time {send_time}");
    }
    assert_eq!(up_cost(&json!(NOW - 40), NOW), 40);
    assert_eq!(up_cost(&json!((NOW - 40).to_string()), NOW), 40);
    assert_eq!(up_cost(&json!("soon"), NOW), 0);
}

#[test]
fn a_client_timestamp_at_either_end_of_i64_is_out_of_the_window() {
    for ts in ["-9223372036854775808", "9223372036854775807", "\"-9223372036854775808\"", "-1e19", "1e19"] {
        assert_eq!(client_answer(&ping_at(ts)), 1010, "timestamp {ts}");
    }
    assert_eq!(client_answer(&ping_at(&NOW.to_string())), 0);
}

#[test]
fn a_login_timestamp_at_either_end_of_i64_has_expired() {
    let config = bigo_config();
    for ts in ["-9223372036854775808", "9223372036854775807"] {
        let frame = login_frame_at(ts);
        let req: Request = serde_json::from_str(&frame).expect("a login frame");
        assert_eq!(check_login(&config, &req, NOW).err(), Some("timestamp expired"), "timestamp {ts}");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_get_a_bigo_error(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!([200, 400, 401, 403].contains(&bigo_answer(&text)));
    }

    #[test]
    fn mutated_logins_get_200_or_400(text in mutated(login_frame())) {
        prop_assert!([200, 400].contains(&bigo_answer(&text)));
    }

    #[test]
    fn mutated_pushes_get_a_protocol_rescode(text in mutated(push_frame())) {
        prop_assert!([200, 400, 401, 403].contains(&bigo_answer(&text)));
    }

    #[test]
    fn arbitrary_json_data_in_a_signed_push_never_panics(data in "\\PC{0,200}") {
        let sign = sign::bigo_message(&data, TOKEN, "inke");
        let frame = json!({"uri":"dataReception","data":data,"access_token":TOKEN,"sign":sign}).to_string();
        prop_assert!([200, 400].contains(&bigo_answer(&frame)));
    }

    #[test]
    fn arbitrary_bytes_get_a_client_error(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(client_answer(&text) != 0 || text.contains(ONLINE));
    }

    #[test]
    fn mutated_client_frames_end_in_a_protocol_error_or_pass(
        text in mutated(client_frame("send_gift_report", json!({"channel_name":"c","notify_type":"bc",
            "gift":{"id":"g","name":"n","num":2,"receiver_id":"r"}})))
    ) {
        client_answer(&text);
    }

    #[test]
    fn bigo_numbers_at_their_extremes_are_answered_cleanly(
        send_time in extreme_number(), login_ts in extreme_number(), push_ts in extreme_number(),
        ts in extreme_number(), count in extreme_number(), seqid in extreme_number(),
    ) {
        let config = bigo_config();
        let send_time: serde_json::Value = serde_json::from_str(&send_time).expect("JSON");
        let cost = up_cost(&send_time, NOW);
        let sent = lenient::as_i64(&send_time).and_then(plausible);
        prop_assert!(cost == 0 || sent.is_some(), "up_cost {} for {}", cost, send_time);

        let login_ts = text_of(&login_ts);
        let req_text = login_frame_at(&login_ts);
        let req: Request = serde_json::from_str(&req_text).expect("a login frame");
        let expected = if in_window(&login_ts, config.login_max_skew_ms) { Ok(()) } else { Err("timestamp expired") };
        prop_assert_eq!(check_login(&config, &req, NOW).map(|_| ()), expected);

        let item = format!(r#"{{"type":"heart","ts":{ts},"count":{count},"gift_count":{count},"data_seq":{seqid}}}"#);
        let entry = format!(r#"{{"openid":"a","datas":[{item}]}}"#);
        let data = format!(r#"{{"seqid":{seqid},"timestamp":{push_ts},"game_sess":"gs","danmu_data":[{entry}]}}"#);
        let sign = sign::bigo_message(&data, TOKEN, "inke");
        let frame = json!({"uri":"dataReception","send_time":send_time,"data":data,"access_token":TOKEN,"sign":sign});
        let frame = frame.to_string();
        let req: Request = serde_json::from_str(&frame).expect("a push frame");
        let pushed = check_data(&config, Some(TOKEN), &req, req.data_text().as_deref());
        prop_assert!(pushed.is_ok(), "{:?}", pushed.as_ref().err());
        let pushed = pushed.expect("taken");
        prop_assert!(pushed.timestamp.is_none_or(|t| plausible(t).is_some()), "timestamp {}", push_ts);
        prop_assert!(pushed.items().iter().all(|i| plausible(i.ts).is_some()), "ts {}", ts);
    }

    #[test]
    fn client_timestamps_at_their_extremes_get_1010_unless_within_the_window(ts in extreme_number()) {
        let expected = if in_window(&text_of(&ts), ClientConfig::default().max_skew_ms) { 0 } else { 1010 };
        prop_assert_eq!(client_answer(&ping_at(&ts)), expected, "timestamp {}", ts);
    }

    #[test]
    fn authentic_frames_with_arbitrary_fields_get_1001_1009_or_pass(
        action in prop_oneof![Just("up_report".to_string()), Just("enter_room_report".to_string()), "[a-z_]{0,20}"],
        fields in prop::collection::hash_map("[a-z_]{1,12}", prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            "\\PC{0,20}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            Just(json!({"x":[1,2]})),
        ], 0..5)
    ) {
        let fields: serde_json::Map<String, serde_json::Value> = fields.into_iter()
            .filter(|(k, _)| !["action", "online_token", "sid", "timestamp", "sign"].contains(&k.as_str()))
            .collect();
        let code = client_answer(&client_frame(&action, serde_json::Value::Object(fields)));
        prop_assert!([0, 1001, 1009].contains(&code), "code {}", code);
    }
}
