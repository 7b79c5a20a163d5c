//! A room: one per channel (PROTOCOL.md 2.6, Channels). It deduplicates pushes and items,
//! orders them by `ts` within the reorder window, numbers every event (`seq`, under an
//! `epoch`), keeps history, members, seats and calls, and fans events out to the members.
//!
//! - [`core`]: [`RoomCore`], the room's state and rules as plain Rust: inputs in, effects out,
//!   the clock passed in. Everything a room decides is decided there.
//! - [`actor`]: [`RoomActor`], the actix shell that feeds the core from messages and timers
//!   and carries its effects out (broadcast ring, direct frames, viewer hook); its messages.
//! - [`events`]: events as they travel, serialised once ([`RoomEvent`], [`Bundle`]).
//! - [`fanout`]: the events held once for all of this node's members, and each member's
//!   [`Feed`] of them, bounded in events ([`Fanout`]).
//! - [`mapping`]: the danmu mapping of PROTOCOL.md 2.4 and the gifts of member reports.
//! - [`replay`]: the one rule for a join's `last_seq` and `epoch`: what to replay, and whether
//!   the member recovered.
//! - The core's parts: [`dedup`] (seen seqids / data_seqs), [`reorder`] (the window),
//!   [`tick`] (release ticks), [`history`] (numbering and replay), [`members`], [`seats`].

pub mod actor;
pub mod core;
pub mod dedup;
pub mod events;
pub mod fanout;
pub mod history;
pub mod mapping;
pub mod members;
pub mod reorder;
pub mod replay;
pub mod seats;
pub mod tick;

pub use self::actor::{
    Flush, Ingest, Join, Joined, Leave, MemberAction, MembershipChanged, Notice, RoomActor, RoomHandle, RoomLinks,
    RoomStopped, SetStatus, StatusOf, ToMember,
};
pub use self::core::{
    Action, ActionDone, Effects, IngestOutcome, JoinAnswer, JoinRequest, LeaveReason, MemberChange, Now, Push, Refused,
    RoomCore, RoomState,
};
pub use self::events::{json_array, text_frame, Bundle, RoomEvent, SessionId};
pub use self::fanout::{Fanout, Feed, Taken};
