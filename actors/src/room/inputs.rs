//! What goes into a room's core and what comes out of it: the inputs' types ([`Push`],
//! [`JoinRequest`], [`Action`], [`LeaveReason`]), the answers ([`IngestOutcome`],
//! [`JoinAnswer`], [`ActionDone`], [`Refused`]), the [`Effects`] of each input, the clock as a
//! value ([`Now`]), and the [`RoomState`] a room carries over to go on elsewhere. Plain types:
//! the core ([`super::core`]) decides, the engines carry these between it and the world. What
//! a room on Redis sends between nodes (actions, leave reasons, join answers, acks, refusals)
//! has serde here, so that its stream and channel carry these types themselves.

use std::time::{Duration, Instant};

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use super::events::{RoomEvent, SessionId};
use crate::protocol::bigo::{BigoStatus, DanmuItem};
use crate::protocol::client::{ErrorCode, GiftReport, NotifyType, Profile, RoomSnapshot, Seat};
use crate::protocol::status::{ChannelStatus, LiveStatus};

/// The time an input happens at: a monotonic instant for windows and ticks, and the Unix
/// milliseconds that events carry as `ts`.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix_ms: i64,
}

impl Now {
    pub fn real() -> Self {
        Self { at: Instant::now(), unix_ms: crate::protocol::now_ms() }
    }

    /// `d` later, on both clocks.
    pub fn after(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self { at: self.at + d, unix_ms: self.unix_ms.saturating_add(ms) }
    }
}

/// What an input caused besides its answer.
#[derive(Debug, Default)]
pub struct Effects {
    /// Numbered events for every member, in `seq` order (one bundle).
    pub events: Vec<RoomEvent>,
    /// Frames for one session only (`ptp` gifts, `hang_up`, the `exit_room` of a moved member).
    pub direct: Vec<(SessionId, ByteString)>,
    /// +1 when a user became a member, -1 when one stopped being one (viewer counts).
    pub membership: Vec<i64>,
    /// The dedup keys (`game_sess/data_seq`) of the items that left the reorder buffer: a
    /// room whose state is shared records them, so that whoever takes it over next does not
    /// deliver them again.
    pub released: Vec<String>,
    /// Sessions that became or stopped being members, in order: a room whose state is shared
    /// stores its members one by one instead of rewriting the whole list.
    pub members: Vec<MemberChange>,
}

/// One change of the member list (see [`Effects::members`]).
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    In(SessionId, Profile),
    Out(SessionId),
}

/// A push (or a pulled batch, with an empty seqid) for this room.
#[derive(Debug, Clone)]
pub struct Push {
    pub game_sess: String,
    pub seqid: String,
    /// The push's own time: a status change is ordered by it.
    pub timestamp: i64,
    pub status: Option<BigoStatus>,
    pub items: Vec<DanmuItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Taken; `new_items` of them were not seen before.
    Accepted { new_items: usize },
    /// The seqid was taken before (a retry): nothing to do, answer 200 again.
    DuplicateSeqid,
    /// The room's queue is full: 503.
    Full,
}

/// Why the room refused a join or an action: the wire code and the `error_reason` sent back.
/// Travels between nodes as `[code, reason]` (a room on Redis answers on another node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "(u16, &'static str)")]
pub struct Refused {
    pub code: ErrorCode,
    pub reason: &'static str,
}

impl Refused {
    pub const fn new(code: ErrorCode, reason: &'static str) -> Self {
        Self { code, reason }
    }
}

/// Every `error_reason` a room gives, so that a refusal that travelled between nodes as text
/// can be given back as the same `&'static str` ([`Refused::reason_of`]).
const REASONS: &[&str] = &[
    "not in that room",
    "room closed",
    "receiver not in that room",
    "call already has two users",
    "seat taken",
    "every seat is taken",
    "no seat with that seat_id",
    "no seat held in that room",
    "a ptp gift needs gift.receiver_id",
];

impl Refused {
    /// The room's own reason text for `text`, or a general one for a text it never gives.
    pub fn reason_of(text: &str) -> &'static str {
        REASONS.iter().copied().find(|r| *r == text).unwrap_or("refused by the room")
    }
}

impl From<Refused> for (u16, &'static str) {
    fn from(r: Refused) -> Self {
        (r.code.code(), r.reason)
    }
}

impl<'de> Deserialize<'de> for Refused {
    /// A refusal that travelled between nodes; a code this build does not know reads as 1011.
    /// (Not `#[serde(from)]`: the derive would borrow the `&'static str` from the input.)
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (code, reason) = <(u16, String)>::deserialize(d)?;
        Ok(Self::new(ErrorCode::from_code(code).unwrap_or(ErrorCode::Unavailable), Self::reason_of(&reason)))
    }
}

/// What a client asked for when entering (docs/protocol.md 2.3 `enter_room_report`).
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub session: SessionId,
    pub profile: Profile,
    pub last_seq: Option<u64>,
    /// The epoch `last_seq` belongs to; `None` = the room's current one.
    pub epoch: Option<String>,
}

/// A join's answer. What to replay is decided from it by `super::replay`, the same for every
/// engine.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinAnswer {
    pub snapshot: RoomSnapshot,
    /// The member's own `enter_room` seq (the ack's `last_seq`).
    pub own_seq: u64,
    /// The newest seq before this join's own events: the most a returning member can know.
    pub newest: u64,
}

/// Why a member leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// `exit_room_report` for oneself.
    Exit,
    /// Joined another room.
    Switch,
    /// Connection closed, timed out or was replaced.
    Disconnect,
    /// The same user joined another room on another connection: a user is in one room at a
    /// time. The member also gets the `exit_room` about itself, since it did not ask to leave.
    Moved,
}

/// Member actions (docs/protocol.md 2.3). Serde: a room on Redis carries them in its input stream,
/// tagged by `t`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Action {
    Say {
        content: String,
    },
    Gift {
        notify_type: NotifyType,
        gift: GiftReport,
    },
    /// `None`: the seat the user holds, or else the lowest free one.
    Up {
        seat_id: Option<u32>,
    },
    Down,
    /// An empty `receiver_id` means every other user in the room (the call peer).
    HangUp {
        receiver_id: String,
    },
}

/// An accepted action: the seq of the event it caused, and the seat it concerned.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionDone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_seat: Option<Seat>,
}

/// What a room must carry over to go on elsewhere (another node taking it over, docs/protocol.md
/// 7): its numbering, members, seats and statuses. Not in it: history (kept apart, in the
/// shared store), dedup (rebuilt from the shared store) and the items held for reordering
/// (their pushes are read again from the room's input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomState {
    pub epoch: String,
    /// The seq the next event gets; a stored one outside 1..=`MAX_SEQ` is refused.
    #[serde(deserialize_with = "super::history::stored_next_seq")]
    pub next_seq: u64,
    pub members: Vec<(SessionId, Profile)>,
    /// Seat holders, in seat order.
    pub seats: Vec<Option<Profile>>,
    pub status: Option<ChannelStatus>,
    pub bigo_status: Option<BigoStatus>,
    pub live_status: Option<LiveStatus>,
}
