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
    Push {
        gs: String,
        sq: String,
        t: i64,
        st: Option<BigoStatus>,
        items: Vec<(String, Value)>,
    },
    Join {
        s: SessionId,
        n: String,
        p: Profile,
    },
    Leave {
        s: SessionId,
        why: LeaveReason,
    },
    Act {
        s: SessionId,
        n: String,
        r: u64,
        a: Action,
    },
    Status {
        st: LiveStatus,
    },
    Notice {
        c: String,
        e: i64,
        u: String,
    },
    /// Node `n` asks the owner for the room: its pushes arrive there (see `handoff`).
    Handoff {
        n: String,
    },
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
            Self::Handoff { .. } => "handoff",
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

/// One entry of the room's events stream: one commit of its owner, id `<term>-<n>` (the n-th
/// commit of the owner's term; see `scripts::CLAIM`). It carries what a new owner needs to go
/// on from it, so that a commit is one write: the core's state and the last input applied, the
/// dedup keys and the member changes it made, and its events (the history). Checkpoints copy
/// the state, the keys and the members into their own keys, so that the stream can be trimmed.
/// A claim's marker (`t`, the claimant) carries nothing else; an entry written before
/// entries carried state (`<seq>-1`, events only) is read for its events alone.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    /// The last seq the room had numbered at this commit (its last event's, if it has any).
    pub(crate) last_seq: u64,
    /// Its events, as one JSON array of [`WireEvent`]s; empty when it has none.
    pub(crate) events: String,
    /// The core's state without the members (JSON), and the last input applied.
    pub(crate) state: Option<(String, String)>,
    /// The last of the owner's own inputs applied (its `own` stream).
    pub(crate) own_applied: Option<String>,
    /// The dedup keys it added (`d|…` released items, `s|…` pushes taken).
    pub(crate) keys: Vec<String>,
    /// The member hash's changes: an entry per session, or `None` when it left.
    pub(crate) members: Vec<(SessionId, Option<String>)>,
}

impl Entry {
    /// The stream entry's fields (`q`, `s`, `a`, `o`, and `e`, `d`, `m` when not empty).
    pub(crate) fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![("q", self.last_seq.to_string())];
        if let Some((state, applied)) = &self.state {
            fields.push(("s", state.clone()));
            fields.push(("a", applied.clone()));
        }
        if let Some(own) = &self.own_applied {
            fields.push(("o", own.clone()));
        }
        if !self.events.is_empty() {
            fields.push(("e", self.events.clone()));
        }
        if !self.keys.is_empty() {
            fields.push(("d", self.keys.join("\n")));
        }
        if !self.members.is_empty() {
            fields.push(("m", serde_json::to_string(&self.members).unwrap_or_default()));
        }
        fields
    }

    /// An entry as the stream gives it back; `None` for a claim's marker.
    pub(crate) fn read(entry: &redis::streams::StreamId) -> Option<Self> {
        if entry.map.contains_key("t") {
            return None;
        }
        let text = |field: &str| entry.get::<String>(field);
        // Before entries carried state, an entry's id was its last event's `<seq>-1`.
        let last_seq = match text("q") {
            Some(q) => q.parse().ok()?,
            None => entry.id.split_once('-').and_then(|(ms, _)| ms.parse().ok())?,
        };
        Some(Self {
            last_seq,
            events: text("e").unwrap_or_default(),
            state: text("s").zip(text("a")),
            own_applied: text("o"),
            keys: text("d").map(|d| d.split('\n').map(str::to_string).collect()).unwrap_or_default(),
            members: text("m").and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_default(),
        })
    }

    /// Its events (none if they cannot be read).
    pub(crate) fn wire_events(&self) -> Vec<WireEvent> {
        if self.events.is_empty() {
            return Vec::new();
        }
        serde_json::from_str(&self.events).unwrap_or_default()
    }
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
