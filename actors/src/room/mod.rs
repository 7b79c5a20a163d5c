//! A room: one per channel (docs/protocol.md 2.6, Channels). It deduplicates pushes and items,
//! orders them by `ts` within the reorder window, numbers every event (`seq`, under an
//! `epoch`), keeps history, members, seats and calls, and fans events out to the members.
//!
//! How it is built, from the inside out:
//! - [`core`]: [`RoomCore`], the room's state and rules as plain Rust: inputs in, effects out
//!   ([`inputs`]), the clock passed in. Everything a room decides is decided there. Its parts: [`dedup`]
//!   (seen seqids / data_seqs), [`reorder`] (the window), [`tick`] (release ticks),
//!   [`history`] (numbering), [`members`], [`seats`], [`mapping`] (the danmu mapping of
//!   docs/protocol.md 2.4 and the gifts of member reports).
//! - [`front`]: [`RoomFront`], the room's member side on one node, written once: this node's
//!   members, their joins and reports, replay ([`replay`]: the one rule for `last_seq` and
//!   `epoch`), the fan-out ([`fanout`]), the idle stop. It hands inputs to an [`Engine`], the
//!   seam, which numbers them under one order and answers in that order.
//! - [`local`]: [`LocalEngine`], the engine that runs the core on this node. The other engine,
//!   for several nodes on Redis, is the server crate's `room_redis`.
//! - [`handle`]: the messages every room takes and the [`RoomHandle`] the rest of the system
//!   holds. [`events`]: events as they travel, serialised once.

pub mod core;
pub mod dedup;
pub mod events;
pub mod fanout;
pub mod front;
pub mod handle;
pub mod history;
pub mod inputs;
pub mod local;
pub mod mapping;
pub mod members;
pub mod reorder;
pub mod replay;
pub mod seats;
pub mod tick;

pub use self::core::RoomCore;
pub use self::events::{json_array, text_frame, Bundle, RoomEvent, SessionId};
pub use self::fanout::{Fanout, Feed, Taken};
pub use self::front::{Engine, FrontConfig, Input, Output, RoomFront};
pub use self::handle::{
    Flush, Ingest, Join, Joined, Leave, MemberAction, MembershipChanged, Notice, RoomHandle, RoomLinks, RoomStopped,
    SetStatus, StatusOf, ToMember,
};
pub use self::inputs::{
    Action, ActionDone, Effects, IngestOutcome, JoinAnswer, JoinRequest, LeaveReason, MemberChange, Now, Push, Refused,
    RoomState,
};
pub use self::local::LocalEngine;
