//! What a shared room sends through Redis (see `room`): the inputs of its stream, the message
//! its owner publishes after each commit, and the conversions between them and the room
//! core's types. Plain serde types with short field names: they travel with every push.

use actors::protocol::bigo::BigoStatus;
use actors::protocol::client::{ErrorCode, NotifyType, Profile, RoomSnapshot, Seat};
use actors::protocol::status::{ChannelStatus, RoomStatus};
use actors::room::{Action, LeaveReason, SessionId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One input of the room's stream, by kind (`k`) with its body (`b`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(crate) enum Input {
    Push { gs: String, sq: String, t: i64, st: Option<BigoStatus>, items: Vec<(String, Value)> },
    Join { s: SessionId, n: String, p: Profile },
    Leave { s: SessionId, why: Why },
    Act { s: SessionId, n: String, r: u64, a: WireAction },
    Status { st: RoomStatus },
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Why {
    Exit,
    Switch,
    Disconnect,
    Moved,
}

impl From<LeaveReason> for Why {
    fn from(r: LeaveReason) -> Self {
        match r {
            LeaveReason::Exit => Self::Exit,
            LeaveReason::Switch => Self::Switch,
            LeaveReason::Disconnect => Self::Disconnect,
            LeaveReason::Moved => Self::Moved,
        }
    }
}

impl From<Why> for LeaveReason {
    fn from(w: Why) -> Self {
        match w {
            Why::Exit => Self::Exit,
            Why::Switch => Self::Switch,
            Why::Disconnect => Self::Disconnect,
            Why::Moved => Self::Moved,
        }
    }
}

/// A member action as it travels (the core's `Action` holds a report type without serde).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum WireAction {
    Say { content: String },
    Gift { notify_type: NotifyType, gift: Value },
    Up { seat_id: Option<u32> },
    Down,
    HangUp { receiver_id: String },
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

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JoinAnswerWire {
    pub(crate) s: SessionId,
    /// The snapshot, the member's own seq, and the newest seq before the join's own events.
    pub(crate) ok: Option<(Value, u64, u64)>,
    pub(crate) err: Option<(u16, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AckWire {
    pub(crate) n: String,
    pub(crate) r: u64,
    pub(crate) ok: Option<(Option<u64>, Option<Value>)>,
    pub(crate) err: Option<(u16, String)>,
}

/// A code that travelled between nodes; one this build does not know reads as 1011.
pub(crate) fn code_of(code: u16) -> ErrorCode {
    ErrorCode::from_code(code).unwrap_or(ErrorCode::Unavailable)
}

/// Stream ids compare as (ms, seq) pairs.
pub(crate) fn stream_id_le(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        (ms.parse::<u64>().unwrap_or(0), seq.parse::<u64>().unwrap_or(0))
    };
    parse(a) <= parse(b)
}

pub(crate) fn wire_action(action: Action) -> WireAction {
    match action {
        Action::Say { content } => WireAction::Say { content },
        Action::Gift { notify_type, gift } => {
            let mut value = serde_json::Map::from_iter(gift.extra);
            value.insert("id".into(), gift.id.into());
            value.insert("name".into(), gift.name.into());
            if let Some(num) = gift.num {
                value.insert("num".into(), num.into());
            }
            value.insert("receiver_id".into(), gift.receiver_id.into());
            WireAction::Gift { notify_type, gift: Value::Object(value) }
        }
        Action::Up { seat_id } => WireAction::Up { seat_id },
        Action::Down => WireAction::Down,
        Action::HangUp { receiver_id } => WireAction::HangUp { receiver_id },
    }
}

pub(crate) fn action_of(action: WireAction) -> Option<Action> {
    Some(match action {
        WireAction::Say { content } => Action::Say { content },
        WireAction::Gift { notify_type, gift } => {
            Action::Gift { notify_type, gift: serde_json::from_value(gift).ok()? }
        }
        WireAction::Up { seat_id } => Action::Up { seat_id },
        WireAction::Down => Action::Down,
        WireAction::HangUp { receiver_id } => Action::HangUp { receiver_id },
    })
}

/// The snapshot as it travels (the wire type only serialises).
#[derive(Debug, Deserialize)]
pub(crate) struct SnapshotWire {
    pub(crate) channel_name: String,
    pub(crate) members: usize,
    pub(crate) seats: Vec<SeatWire>,
    pub(crate) last_seq: u64,
    pub(crate) epoch: String,
    pub(crate) status: Option<ChannelStatus>,
}

impl SnapshotWire {
    pub(crate) fn into_snapshot(self) -> RoomSnapshot {
        RoomSnapshot {
            channel_name: self.channel_name,
            members: self.members,
            seats: self.seats.into_iter().map(SeatWire::into_seat).collect(),
            last_seq: self.last_seq,
            epoch: self.epoch,
            status: self.status,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SeatWire {
    pub(crate) id: u32,
    pub(crate) user_id: String,
    pub(crate) nickname: String,
    pub(crate) sex: Value,
    pub(crate) avatar_url: String,
    pub(crate) avatar_small_url: String,
    pub(crate) status: u8,
    pub(crate) microphone: u8,
    pub(crate) rank: u32,
    pub(crate) room_id: String,
}

impl SeatWire {
    pub(crate) fn into_seat(self) -> Seat {
        Seat {
            id: self.id,
            user_id: self.user_id,
            nickname: self.nickname,
            sex: self.sex,
            avatar_url: self.avatar_url,
            avatar_small_url: self.avatar_small_url,
            status: self.status,
            microphone: self.microphone,
            rank: self.rank,
            room_id: self.room_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_as_pairs() {
        assert!(stream_id_le("5-1", "5-2"));
        assert!(stream_id_le("5-2", "5-2"));
        assert!(!stream_id_le("10-0", "9-9"));
        assert!(stream_id_le("0-0", "1-0"));
    }

    #[test]
    fn inputs_read_back_what_they_write() {
        let input = Input::Act { s: 7, n: "a".into(), r: 3, a: WireAction::Up { seat_id: Some(2) } };
        let json = serde_json::to_string(&input).unwrap();
        assert!(matches!(serde_json::from_str::<Input>(&json).unwrap(), Input::Act { s: 7, r: 3, .. }));
    }
}

/// One member in a room's member hash (`room:{C}:members`, field = session id).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MemberWire {
    pub(crate) p: Profile,
    /// The node the member's session is on.
    pub(crate) n: String,
}
