//! How the rest of the system reaches a room: the messages every room takes, and the
//! [`RoomHandle`] that sessions, ingesters, the registry and the live-room layer hold instead
//! of a room type; and [`RoomLinks`], where a room's outside world is.
//!
//! Who sends what: BIGO sessions and pullers send [`Ingest`] (see `crate::ingress::ingest`);
//! `ClientSession` sends [`Join`], [`Leave`] and [`MemberAction`] and takes [`ToMember`]; the
//! live-room layer sends [`SetStatus`] and [`Notice`] through the registry and answers
//! [`StatusOf`] when a room starts; shutdown sends [`Flush`]. A room tells whoever started it
//! that it stopped ([`RoomStopped`]) and reports membership changes ([`MembershipChanged`]).

use actix::prelude::*;
use bytestring::ByteString;
use tokio::sync::oneshot;

use super::events::{RoomEvent, SessionId};
use super::fanout::Feed;
use super::inputs::{Action, ActionDone, IngestOutcome, JoinRequest, LeaveReason, Push, Refused};
use crate::protocol::client::{ErrorCode, RoomSnapshot};
use crate::protocol::status::LiveStatus;

/// A push (or pulled batch) for this room. The answer comes on `reply` only after the room has
/// taken the items into its buffers: that is when BIGO may get its 200.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ingest {
    pub push: Push,
    pub reply: oneshot::Sender<IngestOutcome>,
}

/// A client joins (docs/protocol.md 2.3 `enter_room_report`).
#[derive(Message)]
#[rtype(result = "Result<Joined, Refused>")]
pub struct Join {
    pub request: JoinRequest,
    pub addr: Recipient<ToMember>,
}

pub struct Joined {
    pub events: Feed,
    pub snapshot: RoomSnapshot,
    /// The member's own `enter_room` seq (the ack's `last_seq`).
    pub own_seq: u64,
    /// Missed events from history, in order, when `last_seq` was given.
    pub replay: Vec<RoomEvent>,
    pub recovered: Option<bool>,
}

#[derive(Message)]
#[rtype(result = "Result<(), ErrorCode>")]
pub struct Leave {
    pub session: SessionId,
    pub reason: LeaveReason,
}

/// A member's report (docs/protocol.md 2.3). Answers the seq of the event it caused, when any.
#[derive(Message)]
#[rtype(result = "Result<ActionDone, Refused>")]
pub struct MemberAction {
    pub session: SessionId,
    pub action: Action,
}

/// A direct message from a room to one member's session.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum ToMember {
    /// A frame for this member only (`ptp` gift, `hang_up`, its own forced `exit_room`).
    Frame(ByteString),
}

/// The live-room status changed (docs/protocol.md 3): broadcasts `room_status`; `closed`/`banned`
/// make member reports answer 1007.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStatus {
    pub status: LiveStatus,
}

/// An operator notice (docs/protocol.md 3 admin `notice`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Notice {
    pub content: String,
    pub expire_time: i64,
    pub client_url: String,
}

/// Releases everything held in the reorder buffer now (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Asked of the live-room layer when a room starts: the status of the live room this channel
/// belongs to (`None`: not a live room's channel, or unknown). The store is the truth for
/// live rooms, so a room that stopped and started again comes back as it was.
#[derive(Message)]
#[rtype(result = "Option<LiveStatus>")]
pub struct StatusOf {
    pub channel_name: String,
}

/// A member joined (`delta` 1) or left (`delta` -1): for the viewer count (docs/protocol.md 3).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct MembershipChanged {
    pub channel_name: String,
    pub delta: i64,
}

/// The room stopped (idle).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomStopped {
    pub channel_name: String,
    pub room: RoomHandle,
}

/// How the rest of the system reaches a room: the messages every room takes, whichever engine
/// sequences it. Sessions, pullers, the registry and the live-room layer hold handles, never a
/// room type.
#[derive(Clone)]
pub struct RoomHandle {
    pub ingest: Recipient<Ingest>,
    pub join: Recipient<Join>,
    pub leave: Recipient<Leave>,
    pub act: Recipient<MemberAction>,
    pub set_status: Recipient<SetStatus>,
    pub notice: Recipient<Notice>,
    pub flush: Recipient<Flush>,
}

impl RoomHandle {
    /// The handle of any actor that takes every room message.
    pub fn of<A>(addr: &Addr<A>) -> Self
    where
        A: Actor
            + Handler<Ingest>
            + Handler<Join>
            + Handler<Leave>
            + Handler<MemberAction>
            + Handler<SetStatus>
            + Handler<Notice>
            + Handler<Flush>,
        A::Context: actix::dev::ToEnvelope<A, Ingest>
            + actix::dev::ToEnvelope<A, Join>
            + actix::dev::ToEnvelope<A, Leave>
            + actix::dev::ToEnvelope<A, MemberAction>
            + actix::dev::ToEnvelope<A, SetStatus>
            + actix::dev::ToEnvelope<A, Notice>
            + actix::dev::ToEnvelope<A, Flush>,
    {
        Self {
            ingest: addr.clone().recipient(),
            join: addr.clone().recipient(),
            leave: addr.clone().recipient(),
            act: addr.clone().recipient(),
            set_status: addr.clone().recipient(),
            notice: addr.clone().recipient(),
            flush: addr.clone().recipient(),
        }
    }

    /// False once the room has stopped.
    pub fn connected(&self) -> bool {
        self.ingest.connected()
    }

    /// True when both handles reach the same room.
    pub fn same_room(&self, other: &RoomHandle) -> bool {
        self.ingest == other.ingest
    }
}

/// Where a room's outside world is: who hears about membership and stopping, and who knows
/// live-room statuses. The same for every room of a node.
#[derive(Clone)]
pub struct RoomLinks {
    pub stopped: Recipient<RoomStopped>,
    pub membership: Option<Recipient<MembershipChanged>>,
    pub status_of: Option<Recipient<StatusOf>>,
}
