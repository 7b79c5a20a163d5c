//! The app's side of docs/protocol.md section 2, written once: the common parameters of
//! `end_point` and of the upgrade (2.1, 2.2), reading `end_point`'s answer, the signed frames
//! an app sends (2.3), and reading what the broker sends it (the frames addressed to the
//! connection; anything else is a room event, 2.4). Pure functions and serde types, no I/O:
//! each client brings its own transport.
//!
//! `danmu-broker listen`, the load generator (`danmu-bench`) and the test harness speak to the
//! broker through this module. A frame's fields are the server's own [`ClientRequest`], an
//! ack's the server's own [`AckDetail`], and the sign is [`super::sign::client_frame`], the
//! function the server checks with; `tests/client_protocol.rs` keeps a check against the
//! formula of docs/protocol.md 2.3 written out, so that a wrong formula here cannot pass unnoticed
//! on both sides. The token (a JWT, 2.1) is not made here: `danmu_broker::auth` issues it, the
//! server crate, which also verifies it; `jsonwebtoken` stays out of the actor crate.

use serde::{Deserialize, Serialize};

use super::client::{AckDetail, ClientRequest, KickReason};
use super::sign;

/// Where an app asks which node to use (2.1), below the broker's HTTP address.
pub const END_POINT_PATH: &str = "/iapi/websocket/end_point";

/// The "common parameters" of `end_point` and of the upgrade (2.1); `token` is the user's JWT.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CommonParams<'a> {
    pub user_id: &'a str,
    pub sid: &'a str,
    /// The app's clock, Unix ms.
    pub timestamp: i64,
    pub token: &'a str,
}

impl CommonParams<'_> {
    /// The query of `end_point`, URL-encoded.
    pub fn query(&self) -> String {
        // Strings and an integer always encode.
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    /// The query of the upgrade (2.2): the same, with `batch=1` to receive room events in
    /// arrays.
    pub fn upgrade_query(&self, batch: bool) -> String {
        let query = self.query();
        if batch {
            query + "&batch=1"
        } else {
            query
        }
    }
}

/// `end_point`'s answer (2.1), or its refusal (an HTTP error whose body has `error_code` and
/// `error_reason`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EndPointAnswer {
    #[serde(default)]
    pub error_code: i64,
    #[serde(default)]
    pub error_reason: String,
    #[serde(default)]
    pub end_point: String,
    #[serde(default)]
    pub ping_interval: Option<u64>,
}

impl EndPointAnswer {
    /// The WebSocket URL to connect to, when the answer names one.
    pub fn url(&self) -> Option<&str> {
        Some(self.end_point.as_str()).filter(|url| self.error_code == 0 && !url.is_empty())
    }
}

/// Signs one connection's frames (2.3) with its `online_token` (from `connected`) and `sid`.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    pub online_token: &'a str,
    pub sid: &'a str,
}

/// A client frame: the body (which carries `action`) and the envelope of 2.3.
#[derive(Serialize)]
struct Signed<'a, B: ?Sized> {
    #[serde(flatten)]
    body: &'a B,
    online_token: &'a str,
    sid: &'a str,
    timestamp: i64,
    sign: String,
}

/// The body of a frame written from an action name and loose fields.
#[derive(Serialize)]
struct Named<'a, F: ?Sized> {
    action: &'a str,
    #[serde(flatten)]
    fields: &'a F,
}

impl Signer<'_> {
    /// The frame of `request`, sent at `timestamp` (Unix ms, the app's clock).
    pub fn request(&self, request: &ClientRequest, timestamp: i64) -> String {
        self.signed(request.action(), request, timestamp)
    }

    /// A frame of any `action` with `fields` (a JSON object or a struct): the frames a
    /// [`ClientRequest`] cannot write, such as the tests' unknown actions and bad fields.
    pub fn frame<F: Serialize + ?Sized>(&self, action: &str, fields: &F, timestamp: i64) -> String {
        self.signed(action, &Named { action, fields }, timestamp)
    }

    fn signed<B: Serialize + ?Sized>(&self, action: &str, body: &B, timestamp: i64) -> String {
        let sign = sign::client_frame(action, self.online_token, self.sid, &timestamp.to_string());
        let frame = Signed { body, online_token: self.online_token, sid: self.sid, timestamp, sign };
        // Fails only for fields that are not an object (a caller's mistake): an empty frame,
        // which the broker refuses with 1001.
        serde_json::to_string(&frame).unwrap_or_default()
    }
}

/// A frame from the broker, by its `action`: the ones addressed to this connection (2.2, 2.3),
/// or a room event (2.4), which a client keeps as the text it came in. Read and dropped one at
/// a time, so the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum BrokerFrame {
    Connected {
        online_token: String,
        #[serde(default)]
        ping_interval: Option<u64>,
    },
    Pong {},
    Ack {
        #[serde(rename = "for")]
        for_action: String,
        #[serde(flatten)]
        detail: AckDetail,
    },
    Error {
        #[serde(rename = "for", default)]
        for_action: String,
        error_code: u16,
        #[serde(default)]
        error_reason: String,
    },
    Kicked {
        reason: KickReason,
        /// When to come back (docs/protocol.md 4: a node that stops spreads its clients' returns).
        #[serde(default)]
        retry_after_ms: Option<u64>,
    },
    /// Any other action: a room event.
    #[serde(other)]
    RoomEvent,
}

impl BrokerFrame {
    /// Reads one text frame (as text or as its bytes). An array of room events (`batch=1`) is
    /// not one frame: an error.
    pub fn parse(text: impl AsRef<[u8]>) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text.as_ref())
    }

    /// The answer to `action`: its ack's detail, or the refusal's code and reason.
    pub fn answer_to(self, action: &str) -> Option<Result<AckDetail, (u16, String)>> {
        match self {
            Self::Ack { for_action, detail } if for_action == action => Some(Ok(detail)),
            Self::Error { for_action, error_code, error_reason } if for_action == action => {
                Some(Err((error_code, error_reason)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::protocol::client::{Envelope, RoomSnapshot};
    use crate::protocol::status::ChannelStatus;

    /// The `connected` frame and the entry of docs/protocol.md 2.2 and 2.3.
    const ONLINE_TOKEN: &str = "8d2e61f0b3a94c7d9e15a06b4f2c8e73";
    const SIGNER: Signer = Signer { online_token: ONLINE_TOKEN, sid: "dev1" };

    fn enter(channel_name: &str, last_seq: Option<i64>, epoch: Option<&str>) -> ClientRequest {
        ClientRequest::EnterRoom { channel_name: channel_name.into(), last_seq, epoch: epoch.map(str::to_string) }
    }

    #[test]
    fn the_entry_of_protocol_2_3_carries_its_known_sign() {
        let frame: Value =
            serde_json::from_str(&SIGNER.request(&enter("room1", None, None), 1_764_081_601_200)).unwrap();
        // md5("action=enter_room_report&online_token=8d2e...8e73&sid=dev1&timestamp=1764081601200"),
        // computed apart.
        let expected = json!({"action":"enter_room_report","online_token":ONLINE_TOKEN,"sid":"dev1",
                              "timestamp":1_764_081_601_200_i64,"sign":"00dca184a66d24dcbb6b4f17d213c566",
                              "channel_name":"room1"});
        assert_eq!(frame, expected);
    }

    #[test]
    fn requests_pass_the_server_check_and_read_back() {
        let text = SIGNER.request(&enter("c", Some(7), Some("e1")), 42);
        let envelope: Envelope = serde_json::from_str(&text).unwrap();
        let signed = sign::client_frame(&envelope.action, ONLINE_TOKEN, "dev1", &envelope.timestamp.to_string());
        assert_eq!(envelope.sign.as_deref(), Some(signed.as_str()));
        let request: ClientRequest = serde_json::from_str(&text).unwrap();
        assert!(matches!(request, ClientRequest::EnterRoom { last_seq: Some(7), epoch: Some(ref e), .. } if e == "e1"));
        let ping: Value = serde_json::from_str(&SIGNER.request(&ClientRequest::Ping, 42)).unwrap();
        assert_eq!(ping.as_object().map(|o| o.len()), Some(5), "a ping is its envelope: {ping}");
    }

    #[test]
    fn every_request_is_signed_as_the_action_it_is_sent_as() {
        let gift = serde_json::from_value(json!({"id":"g","name":"Rose","num":1,"receiver_id":"u2"})).unwrap();
        let requests = [
            ClientRequest::Ping,
            enter("c", None, None),
            ClientRequest::ExitRoom { user_id: "u".into(), channel_name: "c".into() },
            ClientRequest::SendTopicMsg { channel_name: "c".into(), content: "hi".into() },
            ClientRequest::SendGift {
                channel_name: "c".into(),
                notify_type: crate::protocol::client::NotifyType::Bc,
                gift,
            },
            ClientRequest::Up { channel_name: "c".into(), seat_id: Some(2) },
            ClientRequest::Down { channel_name: "c".into() },
            ClientRequest::HangUp { receiver_id: "u2".into() },
        ];
        for request in requests {
            let envelope: Envelope = serde_json::from_str(&SIGNER.request(&request, 1)).unwrap();
            assert_eq!(envelope.action, request.action());
            assert!(ClientRequest::ACTIONS.contains(&request.action()));
        }
    }

    #[test]
    fn loose_frames_carry_their_fields_and_the_sign_of_their_action() {
        let frame: Value = serde_json::from_str(&SIGNER.frame("no_such_action", &json!({"x": [1]}), 5)).unwrap();
        assert_eq!((frame["action"].as_str(), frame["x"].clone()), (Some("no_such_action"), json!([1])));
        let signed = sign::client_frame("no_such_action", ONLINE_TOKEN, "dev1", "5");
        assert_eq!(frame["sign"], signed.as_str());
    }

    #[test]
    fn the_common_parameters_are_url_encoded() {
        let params = CommonParams { user_id: "a b&c", sid: "s", timestamp: 9, token: "x.y-z_" };
        assert_eq!(params.query(), "user_id=a+b%26c&sid=s&timestamp=9&token=x.y-z_");
        assert_eq!(params.upgrade_query(true), "user_id=a+b%26c&sid=s&timestamp=9&token=x.y-z_&batch=1");
    }

    #[test]
    fn an_end_point_answer_names_a_url_only_when_it_is_one() {
        let ok = r#"{"error_code":0,"error_reason":"","end_point":"ws://h:1/iapi/websocket","ping_interval":15}"#;
        let answer: EndPointAnswer = serde_json::from_str(ok).unwrap();
        assert_eq!((answer.url(), answer.ping_interval), (Some("ws://h:1/iapi/websocket"), Some(15)));
        let refused: EndPointAnswer =
            serde_json::from_str(r#"{"error_code":1003,"error_reason":"token invalid"}"#).unwrap();
        assert_eq!(refused.url(), None);
    }

    #[test]
    fn frames_for_the_connection_are_told_from_room_events() {
        let parse = |text: &str| BrokerFrame::parse(text).unwrap();
        assert_eq!(
            parse(r#"{"action":"connected","online_token":"t","ping_interval":15,"server_time":1}"#),
            BrokerFrame::Connected { online_token: "t".into(), ping_interval: Some(15) }
        );
        assert_eq!(parse(r#"{"action":"pong","server_time":1}"#), BrokerFrame::Pong {});
        let ack = parse(
            r#"{"action":"ack","for":"enter_room_report","error_code":0,"error_reason":"",
                "room":{"channel_name":"c","members":2,"seats":[],"last_seq":4,"epoch":"e","status":"game"},
                "last_seq":4,"epoch":"e","recovered":true}"#,
        );
        let room = RoomSnapshot {
            channel_name: "c".into(),
            members: 2,
            seats: Vec::new(),
            last_seq: 4,
            epoch: "e".into(),
            status: Some(ChannelStatus::Game),
        };
        let detail = AckDetail {
            room: Some(room),
            last_seq: Some(4),
            epoch: Some("e".into()),
            recovered: Some(true),
            ..Default::default()
        };
        assert_eq!(ack.answer_to("enter_room_report"), Some(Ok(detail)));
        let refused =
            parse(r#"{"action":"error","for":"enter_room_report","error_code":1007,"error_reason":"room closed"}"#);
        assert_eq!(refused.answer_to("enter_room_report"), Some(Err((1007, "room closed".into()))));
        let pong = parse(r#"{"action":"pong","server_time":1}"#);
        assert_eq!(pong.answer_to("ping"), None, "a pong is not an ack");
        assert_eq!(
            parse(r#"{"action":"kicked","reason":"shutdown"}"#),
            BrokerFrame::Kicked { reason: KickReason::Shutdown, retry_after_ms: None }
        );
        assert_eq!(
            parse(r#"{"action":"kicked","reason":"shutdown","retry_after_ms":1234}"#),
            BrokerFrame::Kicked { reason: KickReason::Shutdown, retry_after_ms: Some(1234) }
        );
        for event in [
            r#"{"action":"room_status","channel_name":"c","status":"game","seq":2,"ts":1}"#,
            r#"{"action":"send_topic_msg","user_id":"v1","content":"hi","channel_name":"c","seq":3,"ts":1}"#,
        ] {
            assert_eq!(parse(event), BrokerFrame::RoomEvent, "{event}");
        }
        assert!(BrokerFrame::parse(r#"[{"action":"room_status","seq":2,"ts":1}]"#).is_err());
    }
}
