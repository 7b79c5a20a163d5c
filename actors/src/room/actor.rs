//! `RoomActor`: the actix shell around one [`RoomCore`]. It turns messages and timers into
//! core inputs and carries the core's effects out: events into the room's fan-out, direct
//! frames to one session's mailbox, membership deltas to the viewer hook.
//!
//! Fan-out is O(1) per event in the number of members: each event is serialised once (by the
//! core) and published in bundles through the room's [`Fanout`], which every member's session
//! reads at its own pace. A member that falls more than `client.send_queue_len` events behind
//! disconnects itself with 1013; nobody waits for it.
//!
//! Who talks to it: BIGO sessions and pullers send [`Ingest`] (see `crate::ingest`);
//! `ClientSession` sends [`Join`], [`Leave`] and [`MemberAction`]; the live-room layer sends
//! [`SetStatus`] and [`Notice`] through the registry, and answers [`StatusOf`] when a room
//! starts. Whoever started the room learns that it stopped through a [`RoomStopped`]
//! recipient.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use log::{debug, warn};
use tokio::sync::oneshot;

use super::core::{Action, ActionDone, Effects, IngestOutcome, JoinRequest, LeaveReason, Now, Push, Refused, RoomCore};
use super::events::{RoomEvent, SessionId};
use super::fanout::{Fanout, Feed};
use super::replay::{self, Replay};
use crate::config::RoomConfig;
use crate::metrics::Metrics;
use crate::protocol::client::{ErrorCode, RoomSnapshot};
use crate::protocol::status::RoomStatus;

/// How long a starting room waits for the live-room layer to say its status.
const STATUS_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Messages

/// A push (or pulled batch) for this room. The answer comes on `reply` only after the room has
/// taken the items into its buffers: that is when BIGO may get its 200.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ingest {
    pub push: Push,
    pub reply: oneshot::Sender<IngestOutcome>,
}

/// A client joins (PROTOCOL.md 2.3 `enter_room_report`).
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

/// A member's report (PROTOCOL.md 2.3). Answers the seq of the event it caused, when any.
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

/// The live-room status changed (PROTOCOL.md 3): broadcasts `room_status`; `closed`/`banned`
/// make member reports answer 1007.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStatus {
    pub status: RoomStatus,
}

/// An operator notice (PROTOCOL.md 3 admin `notice`).
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
#[rtype(result = "Option<RoomStatus>")]
pub struct StatusOf {
    pub channel_name: String,
}

/// A member joined (`delta` 1) or left (`delta` -1): for the viewer count (PROTOCOL.md 3).
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

/// How the rest of the system reaches a room: the messages every kind of room takes. A
/// `RoomActor` is one kind (the room itself, on this node); with several nodes the shell
/// provides another that forwards to the room's owner through Redis. Sessions, pullers, the
/// registry and the live-room layer hold handles, never a room type.
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

// ---------------------------------------------------------------------------------------------
// The actor

pub struct RoomActor {
    core: RoomCore,
    config: RoomConfig,
    metrics: Arc<Metrics>,
    links: RoomLinks,
    fanout: Fanout,
    /// Where each member session's direct frames go.
    sessions: HashMap<SessionId, Recipient<ToMember>>,
    release_timer: Option<SpawnHandle>,
}

impl RoomActor {
    pub fn new(
        channel_name: String,
        config: RoomConfig,
        send_queue_len: usize,
        metrics: Arc<Metrics>,
        links: RoomLinks,
    ) -> Self {
        let fanout = Fanout::new(send_queue_len);
        let core = RoomCore::new(channel_name, new_epoch(), config.clone(), metrics.clone(), Now::real());
        Self { core, config, metrics, links, fanout, sessions: HashMap::new(), release_timer: None }
    }

    /// Carries the core's effects out.
    fn apply(&mut self, effects: Effects) {
        // `released` matters only where the room's state is shared (several nodes).
        let Effects { events, direct, membership, released: _, members: _ } = effects;
        if !events.is_empty() {
            self.fanout.publish(events);
        }
        for (session, frame) in direct {
            if let Some(addr) = self.sessions.get(&session) {
                // A member whose mailbox is full misses a direct frame rather than stall the room.
                let _ = addr.try_send(ToMember::Frame(frame));
            }
        }
        if let Some(hook) = &self.links.membership {
            for delta in membership {
                // do_send, not try_send: a lost delta would leave the viewer count wrong for good.
                hook.do_send(MembershipChanged { channel_name: self.core.channel_name().to_string(), delta });
            }
        }
    }

    /// Sets the release timer for the core's next release, unless one is set (releases only
    /// fall due later than the ones already waited for).
    fn schedule_release(&mut self, ctx: &mut Context<Self>) {
        if self.release_timer.is_some() {
            return;
        }
        if let Some(at) = self.core.next_release() {
            let wait = at.saturating_duration_since(std::time::Instant::now());
            self.release_timer = Some(ctx.run_later(wait, |room, ctx| {
                room.release_timer = None;
                let effects = room.core.tick(Now::real());
                room.apply(effects);
                room.schedule_release(ctx);
            }));
        }
    }

    /// Asks the live-room layer for this channel's status before serving anyone.
    fn look_up_status(&mut self, ctx: &mut Context<Self>) {
        let Some(status_of) = self.links.status_of.clone() else { return };
        let ask = status_of.send(StatusOf { channel_name: self.core.channel_name().to_string() });
        ctx.wait(ask.timeout(STATUS_LOOKUP_TIMEOUT).into_actor(self).map(|answer, room, _ctx| match answer {
            Ok(Some(status)) => room.core.restore_live_status(status),
            Ok(None) => {}
            Err(e) => warn!("room {}: live-room status unknown ({e}), serving it as open", room.core.channel_name()),
        }));
    }
}

/// A fresh epoch: 8 hex digits, new each time a room's numbering starts from nothing.
fn new_epoch() -> String {
    format!("{:08x}", rand::random::<u32>())
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.config.queue_len.max(16));
        self.metrics.rooms.inc();
        self.look_up_status(ctx);
        let check = Duration::from_millis((self.config.idle_stop_ms / 4).clamp(100, 30_000));
        ctx.run_interval(check, |room, ctx| {
            if room.core.is_idle(Now::real()) {
                debug!("room {}: idle and empty, stopping", room.core.channel_name());
                ctx.stop();
            }
        });
        debug!("room {}: started, epoch {}", self.core.channel_name(), self.core.epoch());
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.metrics.rooms.dec();
        let channel_name = self.core.channel_name().to_string();
        self.links.stopped.do_send(RoomStopped { channel_name, room: RoomHandle::of(&ctx.address()) });
    }
}

impl Handler<Ingest> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Ingest, ctx: &mut Self::Context) {
        let (outcome, effects) = self.core.push(msg.push, Now::real());
        // Taken (or refused): answer before the effects go out, so BIGO's 200 waits for nothing.
        let _ = msg.reply.send(outcome);
        self.apply(effects);
        self.schedule_release(ctx);
    }
}

impl Handler<Join> for RoomActor {
    type Result = Result<Joined, Refused>;

    fn handle(&mut self, msg: Join, _ctx: &mut Self::Context) -> Self::Result {
        // Subscribe before the join publishes anything so that no event falls between the
        // replay and the live ones.
        let events = self.fanout.feed();
        let session = msg.request.session;
        let (last_seq, epoch) = (msg.request.last_seq, msg.request.epoch.clone());
        let (answer, effects) = self.core.join(msg.request, Now::real());
        let answer = answer?;
        self.sessions.insert(session, msg.addr);
        self.apply(effects);
        let (replay, recovered) = match replay::plan(last_seq, epoch.as_deref(), self.core.epoch(), answer.newest) {
            Replay::NotAsked => (Vec::new(), None),
            Replay::Answered(recovered) => (Vec::new(), Some(recovered)),
            Replay::Fetch { from, to } => {
                let (events, complete) = replay::recovered(from, to, self.core.history(from, to), session);
                (events, Some(complete))
            }
        };
        Ok(Joined { events, snapshot: answer.snapshot, own_seq: answer.own_seq, replay, recovered })
    }
}

impl Handler<Leave> for RoomActor {
    type Result = Result<(), ErrorCode>;

    fn handle(&mut self, msg: Leave, _ctx: &mut Self::Context) -> Self::Result {
        let (answer, effects) = self.core.leave(msg.session, msg.reason, Now::real());
        // The leaving session may still get a frame about itself (a forced exit_room).
        self.apply(effects);
        self.sessions.remove(&msg.session);
        answer
    }
}

impl Handler<MemberAction> for RoomActor {
    type Result = Result<ActionDone, Refused>;

    fn handle(&mut self, msg: MemberAction, _ctx: &mut Self::Context) -> Self::Result {
        let (answer, effects) = self.core.act(msg.session, msg.action, Now::real());
        self.apply(effects);
        answer
    }
}

impl Handler<SetStatus> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: SetStatus, _ctx: &mut Self::Context) {
        let effects = self.core.set_live_status(msg.status, Now::real());
        self.apply(effects);
    }
}

impl Handler<Notice> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Notice, _ctx: &mut Self::Context) {
        let effects = self.core.notice(msg.content, msg.expire_time, msg.client_url, Now::real());
        self.apply(effects);
    }
}

impl Handler<Flush> for RoomActor {
    type Result = ();

    fn handle(&mut self, _: Flush, _ctx: &mut Self::Context) {
        let effects = self.core.flush(Now::real());
        self.apply(effects);
    }
}
