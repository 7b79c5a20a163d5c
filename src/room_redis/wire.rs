//! What a shared room sends through Redis (see `room`): the inputs of its stream and the
//! message its owner publishes after each commit. The room core's own types travel inside
//! them (they have serde); these envelopes add who asked (session, node, request id) with
//! short field names, since they travel with every push. A push travels as its items' raw
//! JSON, not as the parsed `DanmuItem`s: the owner parses them again.

use actors::protocol::bigo::BigoStatus;
use actors::protocol::client::Profile;
use actors::protocol::status::LiveStatus;
use actors::room::{Action, ActionDone, JoinAnswer, LeaveReason, Refused, SessionId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One input of the room's stream, by kind (`k`) with its body (`b`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(crate) enum Input {
    Push { gs: String, sq: String, t: i64, st: Option<BigoStatus>, items: Vec<(String, Value)> },
    Join { s: SessionId, n: String, p: Profile },
    Leave { s: SessionId, why: LeaveReason },
    Act { s: SessionId, n: String, r: u64, a: Action },
    Status { st: LiveStatus },
    Notice { c: String, e: i64, u: String },
}

impl Input {
    /// The stream entry's `k` field, for an operator reading the stream (the body says it too).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Push { .. } => "push",
            Self::Join { .. } => "join",
            Self::Leave { .. } => "leave",
            Self::Act { .. } => "act",
            Self::Status { .. } => "status",
            Self::Notice { .. } => "notice",
        }
    }
}

/// What the owner publishes after a commit.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Published {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) events: Vec<WireEvent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) joins: Vec<JoinAnswerWire>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) acks: Vec<AckWire>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) direct: Vec<(SessionId, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireEvent {
    pub(crate) seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) x: Option<SessionId>,
    pub(crate) j: String,
}

/// The core's answer to a join, for the session `s`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JoinAnswerWire {
    pub(crate) s: SessionId,
    pub(crate) a: Result<JoinAnswer, Refused>,
}

/// The core's answer to the action `r` of node `n`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AckWire {
    pub(crate) n: String,
    pub(crate) r: u64,
    pub(crate) a: Result<ActionDone, Refused>,
}

/// One member in a room's member hash (`room:{C}:members`, field = session id).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MemberWire {
    pub(crate) p: Profile,
    /// The node the member's session is on.
    pub(crate) n: String,
}

/// Stream ids compare as (ms, seq) pairs.
pub(crate) fn stream_id_le(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        (ms.parse::<u64>().unwrap_or(0), seq.parse::<u64>().unwrap_or(0))
    };
    parse(a) <= parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::protocol::client::{ErrorCode, NotifyType, RoomSnapshot, Seat};
    use actors::protocol::status::ChannelStatus;

    #[test]
    fn stream_ids_compare_as_pairs() {
        assert!(stream_id_le("5-1", "5-2"));
        assert!(stream_id_le("5-2", "5-2"));
        assert!(!stream_id_le("10-0", "9-9"));
        assert!(stream_id_le("0-0", "1-0"));
    }

    #[test]
    fn inputs_read_back_what_they_write() {
        let input = Input::Act { s: 7, n: "a".into(), r: 3, a: Action::Up { seat_id: Some(2) } };
        let json = serde_json::to_string(&input).unwrap();
        assert_eq!(json, r#"{"k":"act","s":7,"n":"a","r":3,"a":{"t":"up","seat_id":2}}"#);
        let back = serde_json::from_str::<Input>(&json).unwrap();
        assert!(matches!(back, Input::Act { s: 7, r: 3, a: Action::Up { seat_id: Some(2) }, .. }));
        let leave = serde_json::to_string(&Input::Leave { s: 1, why: LeaveReason::Moved }).unwrap();
        assert_eq!(leave, r#"{"k":"leave","s":1,"why":"moved"}"#);
    }

    #[test]
    fn a_gift_travels_with_its_extra_fields() {
        let report = r#"{"id":7,"name":"Rose","num":"3","receiver_id":"u2","image_url":"http://img/r.png"}"#;
        let gift = serde_json::from_str(report).unwrap();
        let input = Input::Act { s: 1, n: "a".into(), r: 1, a: Action::Gift { notify_type: NotifyType::Ptp, gift } };
        let json = serde_json::to_string(&input).unwrap();
        let Input::Act { a: Action::Gift { notify_type, gift }, .. } = serde_json::from_str(&json).unwrap() else {
            panic!("a gift: {json}")
        };
        assert_eq!(
            (notify_type, gift.id.as_str(), gift.num, gift.receiver_id.as_str()),
            (NotifyType::Ptp, "7", Some(3), "u2")
        );
        assert_eq!(gift.extra.get("image_url"), Some(&Value::from("http://img/r.png")));
    }

    #[test]
    fn answers_read_back_what_they_write() {
        let seat = Seat {
            id: 2,
            user_id: "u1".into(),
            nickname: "Ann".into(),
            sex: Value::from(1),
            avatar_url: String::new(),
            avatar_small_url: String::new(),
            status: 1,
            microphone: 1,
            rank: 2,
            room_id: "c".into(),
        };
        let snapshot = RoomSnapshot {
            channel_name: "c".into(),
            members: 2,
            seats: vec![seat.clone()],
            last_seq: 9,
            epoch: "e1".into(),
            status: Some(ChannelStatus::Game),
        };
        let join = JoinAnswerWire { s: 4, a: Ok(JoinAnswer { snapshot: snapshot.clone(), own_seq: 9, newest: 8 }) };
        let back: JoinAnswerWire = serde_json::from_str(&serde_json::to_string(&join).unwrap()).unwrap();
        let Ok(answer) = back.a else { panic!("a join answer") };
        assert_eq!((answer.snapshot, answer.own_seq, answer.newest), (snapshot, 9, 8));
        let done = ActionDone { seq: Some(5), room_seat: Some(seat) };
        let ack = AckWire { n: "a".into(), r: 2, a: Ok(done) };
        let back: AckWire = serde_json::from_str(&serde_json::to_string(&ack).unwrap()).unwrap();
        assert_eq!(back.a, ack.a);
    }

    #[test]
    fn a_refusal_travels_as_its_code_and_reason() {
        let refused = Refused::new(ErrorCode::SeatTaken, "seat taken");
        let json = serde_json::to_string(&AckWire { n: "a".into(), r: 1, a: Err(refused) }).unwrap();
        assert_eq!(json, r#"{"n":"a","r":1,"a":{"Err":[1005,"seat taken"]}}"#);
        let back: AckWire = serde_json::from_str(&json).unwrap();
        assert_eq!(back.a, Err(refused));
        let unknown: AckWire = serde_json::from_str(r#"{"n":"a","r":1,"a":{"Err":[1999,"new"]}}"#).unwrap();
        assert_eq!(unknown.a, Err(Refused::new(ErrorCode::Unavailable, "refused by the room")));
    }
}
