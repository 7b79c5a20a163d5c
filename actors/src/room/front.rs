//! `RoomFront`: a room's member side, written once for every engine. One runs per channel on
//! every node that serves the channel; what numbers the room's inputs is its [`Engine`].
//!
//! The front owns what concerns this node's members (docs/protocol.md 2.3-2.6): their sessions and
//! direct frames, the joins and reports waiting for their answers, the replay of a returning
//! member ([`super::replay`]), the fan-out of the room's events ([`Fanout`]), the idle stop
//! and the rooms gauge. It hands every input to its engine, and carries out what the engine
//! answers ([`Output`]), in the engine's order.
//!
//! The engine is the seam ([`Engine`]): it takes pushes and member inputs, numbers them under
//! one order, and answers in that order. Two exist, chosen once at start: the in-process one
//! (`super::local::LocalEngine`, the room's core on this node) and the Redis one (the server
//! crate's `room_redis`, for several nodes). One node and several differ only there.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use log::debug;
use tokio::sync::oneshot;

use super::events::{RoomEvent, SessionId};
use super::fanout::Fanout;
use super::handle::{
    Flush, Ingest, Join, Joined, Leave, MemberAction, Notice, RoomHandle, RoomStopped, SetStatus, ToMember,
};
use super::inputs::{Action, ActionDone, IngestOutcome, JoinAnswer, JoinRequest, LeaveReason, Push, Refused};
use super::replay::{self, Replay};
use crate::metrics::Metrics;
use crate::protocol::client::ErrorCode;
use crate::protocol::status::LiveStatus;

/// How long a join or a report waits for its engine's answer before it is error 1011.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The answer to a join or a report that its engine could not give: 1011, retry.
pub const UNAVAILABLE: Refused = Refused::new(ErrorCode::Unavailable, "store unavailable, retry");

/// An input of this node for the room's engine, besides pushes.
#[derive(Debug)]
pub enum Input {
    /// Answered by [`Output::Joined`].
    Join(JoinRequest),
    Leave {
        session: SessionId,
        reason: LeaveReason,
    },
    /// Answered by [`Output::Acted`] with the same `rid`.
    Act {
        session: SessionId,
        rid: u64,
        action: Action,
    },
    Status(LiveStatus),
    Notice {
        content: String,
        expire_time: i64,
        client_url: String,
    },
}

/// What an engine answers, in the room's order.
#[derive(Debug)]
pub enum Output {
    /// Numbered events for every member, in `seq` order, none missing since the last.
    Events(Vec<RoomEvent>),
    /// A join of this node answered; comes before every event numbered after it.
    Joined { session: SessionId, answer: Result<JoinAnswer, Refused> },
    /// A report of this node answered.
    Acted { rid: u64, answer: Result<ActionDone, Refused> },
    /// Frames for single sessions (`ptp` gifts, `hang_up`, a moved member's own `exit_room`).
    Direct(Vec<(SessionId, ByteString)>),
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// What sequences a room's inputs: the seam between the member side and one node's core or the
/// shared state in Redis. Its methods answer what they can at once; what comes later (an
/// answer from Redis) the engine hands to [`RoomFront::apply`] itself, from its own futures.
pub trait Engine: Sized + Unpin + 'static {
    /// The room started: timers, subscriptions, the live-room status.
    fn started(&mut self, ctx: &mut Context<RoomFront<Self>>);
    /// The room stopped.
    fn stopped(&mut self, ctx: &mut Context<RoomFront<Self>>);
    /// A push: `reply` is answered once the engine has taken it (BIGO's 200 then).
    fn ingest(
        &mut self,
        push: Push,
        reply: oneshot::Sender<IngestOutcome>,
        ctx: &mut Context<RoomFront<Self>>,
    ) -> Vec<Output>;
    /// Any other input.
    fn submit(&mut self, input: Input, ctx: &mut Context<RoomFront<Self>>) -> Vec<Output>;
    /// The events `from..=to` that the room's history holds, in order.
    fn history(&self, from: u64, to: u64) -> BoxFuture<Vec<RoomEvent>>;
    /// Shutdown: what the room holds goes out or is handed on; done when the future is.
    fn flush(&mut self, ctx: &mut Context<RoomFront<Self>>) -> (Vec<Output>, BoxFuture<()>);
    /// Whether this node has members in the room, or joins on their way.
    fn attended(&mut self, attended: bool, ctx: &mut Context<RoomFront<Self>>);
    /// True when the engine has nothing left to do here (the room may stop).
    fn is_idle(&self) -> bool;
}

/// A join waiting for its engine's answer.
struct PendingJoin {
    last_seq: Option<u64>,
    epoch: Option<String>,
    reply: oneshot::Sender<Result<Joined, Refused>>,
}

pub struct RoomFront<E: Engine> {
    channel_name: String,
    engine: E,
    metrics: Arc<Metrics>,
    stopped: Recipient<RoomStopped>,
    queue_len: usize,
    idle_stop: Duration,
    fanout: Fanout,
    /// Where each member session of this node gets its direct frames.
    sessions: HashMap<SessionId, Recipient<ToMember>>,
    /// Members moved out by another connection of their user (docs/protocol.md 2.3): they left the
    /// room's events but still get the `exit_room` about themselves.
    moved_out: HashMap<SessionId, (Recipient<ToMember>, Instant)>,
    pending_joins: HashMap<SessionId, PendingJoin>,
    pending_acts: HashMap<u64, oneshot::Sender<Result<ActionDone, Refused>>>,
    next_rid: u64,
    attended: bool,
}

/// What a front needs besides its engine.
pub struct FrontConfig {
    pub channel_name: String,
    pub metrics: Arc<Metrics>,
    pub stopped: Recipient<RoomStopped>,
    /// The room's mailbox capacity (`room.queue_len`).
    pub queue_len: usize,
    pub idle_stop: Duration,
    pub send_queue_len: usize,
}

impl<E: Engine> RoomFront<E> {
    pub fn new(config: FrontConfig, engine: E) -> Self {
        Self {
            channel_name: config.channel_name,
            engine,
            metrics: config.metrics,
            stopped: config.stopped,
            queue_len: config.queue_len,
            idle_stop: config.idle_stop,
            fanout: Fanout::new(config.send_queue_len),
            sessions: HashMap::new(),
            moved_out: HashMap::new(),
            pending_joins: HashMap::new(),
            pending_acts: HashMap::new(),
            next_rid: 1,
            attended: false,
        }
    }

    pub fn channel_name(&self) -> &str {
        &self.channel_name
    }

    /// The engine, for its own futures and timers.
    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// Carries out what the engine answered, in order.
    pub fn apply(&mut self, outputs: Vec<Output>, ctx: &mut Context<Self>) {
        for output in outputs {
            match output {
                Output::Events(events) => {
                    if !events.is_empty() {
                        self.fanout.publish(events);
                    }
                }
                Output::Joined { session, answer } => self.answer_join(session, answer, ctx),
                Output::Acted { rid, answer } => {
                    if let Some(reply) = self.pending_acts.remove(&rid) {
                        let _ = reply.send(answer);
                    }
                }
                Output::Direct(frames) => self.send_direct(frames),
            }
        }
        self.attend(ctx);
    }

    /// A join answered: the member reads every event after its own from now on, after the
    /// events it missed (the one replay rule, [`replay`]).
    fn answer_join(&mut self, session: SessionId, answer: Result<JoinAnswer, Refused>, ctx: &mut Context<Self>) {
        // Gone: the member left meanwhile (its leave follows the join in the room's order).
        let Some(pending) = self.pending_joins.remove(&session) else { return };
        let answer = match answer {
            Ok(answer) => answer,
            Err(refused) => {
                self.sessions.remove(&session);
                let _ = pending.reply.send(Err(refused));
                return;
            }
        };
        let events = self.fanout.feed();
        let JoinAnswer { snapshot, own_seq, newest } = answer;
        let plan = replay::plan(pending.last_seq, pending.epoch.as_deref(), &snapshot.epoch, newest);
        let Replay::Fetch { from, to } = plan else {
            let recovered = match plan {
                Replay::Answered(recovered) => Some(recovered),
                _ => None,
            };
            let _ = pending.reply.send(Ok(Joined { events, snapshot, own_seq, replay: Vec::new(), recovered }));
            return;
        };
        let found = self.engine.history(from, to);
        ctx.spawn(found.into_actor(self).map(move |found, _front, _ctx| {
            let (replay, complete) = replay::recovered(from, to, found, session);
            let _ = pending.reply.send(Ok(Joined { events, snapshot, own_seq, replay, recovered: Some(complete) }));
        }));
    }

    fn send_direct(&mut self, frames: Vec<(SessionId, ByteString)>) {
        for (session, frame) in frames {
            let moved = self.moved_out.remove(&session).map(|(to, _)| to);
            if let Some(to) = self.sessions.get(&session).or(moved.as_ref()) {
                // A member whose mailbox is full misses a direct frame rather than stall the room.
                let _ = to.try_send(ToMember::Frame(frame));
            }
        }
    }

    /// Tells the engine when this node starts or stops having members here.
    fn attend(&mut self, ctx: &mut Context<Self>) {
        self.moved_out.retain(|_, (_, since)| since.elapsed() < ANSWER_TIMEOUT);
        let attended = !(self.sessions.is_empty() && self.pending_joins.is_empty() && self.moved_out.is_empty());
        if attended != self.attended {
            self.attended = attended;
            self.engine.attended(attended, ctx);
        }
    }

    fn submit(&mut self, input: Input, ctx: &mut Context<Self>) {
        let outputs = self.engine.submit(input, ctx);
        self.apply(outputs, ctx);
    }

    fn is_idle(&self) -> bool {
        !self.attended && self.pending_acts.is_empty() && self.engine.is_idle()
    }
}

impl<E: Engine> Actor for RoomFront<E> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.queue_len.max(16));
        self.metrics.rooms.inc();
        self.engine.started(ctx);
        let check = (self.idle_stop / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        ctx.run_interval(check, |front, ctx| {
            front.attend(ctx);
            if front.is_idle() {
                debug!("room {}: idle and empty, stopping", front.channel_name);
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.metrics.rooms.dec();
        self.engine.stopped(ctx);
        let channel_name = self.channel_name.clone();
        self.stopped.do_send(RoomStopped { channel_name, room: RoomHandle::of(&ctx.address()) });
    }
}

impl<E: Engine> Handler<Ingest> for RoomFront<E> {
    type Result = ();

    fn handle(&mut self, msg: Ingest, ctx: &mut Self::Context) {
        let outputs = self.engine.ingest(msg.push, msg.reply, ctx);
        self.apply(outputs, ctx);
    }
}

impl<E: Engine> Handler<Join> for RoomFront<E> {
    type Result = ResponseActFuture<Self, Result<Joined, Refused>>;

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        let session = msg.request.session;
        let (reply, answer) = oneshot::channel();
        let pending = PendingJoin { last_seq: msg.request.last_seq, epoch: msg.request.epoch.clone(), reply };
        self.sessions.insert(session, msg.addr);
        self.pending_joins.insert(session, pending);
        self.attend(ctx);
        self.submit(Input::Join(msg.request), ctx);
        Box::pin(async move { tokio::time::timeout(ANSWER_TIMEOUT, answer).await }.into_actor(self).map(
            move |answer, front, ctx| match answer {
                Ok(Ok(answer)) => answer,
                _ => {
                    // Not answered in time: the engine may still take the join later, so the
                    // member leaves again in the room's order.
                    if front.pending_joins.remove(&session).is_some() {
                        front.sessions.remove(&session);
                        front.submit(Input::Leave { session, reason: LeaveReason::Disconnect }, ctx);
                    }
                    Err(UNAVAILABLE)
                }
            },
        ))
    }
}

impl<E: Engine> Handler<Leave> for RoomFront<E> {
    type Result = Result<(), ErrorCode>;

    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) -> Self::Result {
        let left = self.sessions.remove(&msg.session);
        let known = left.is_some();
        self.pending_joins.remove(&msg.session);
        if let (Some(to), LeaveReason::Moved) = (left, msg.reason) {
            self.moved_out.insert(msg.session, (to, Instant::now()));
        }
        self.submit(Input::Leave { session: msg.session, reason: msg.reason }, ctx);
        if known {
            Ok(())
        } else {
            Err(ErrorCode::NotInRoom)
        }
    }
}

impl<E: Engine> Handler<MemberAction> for RoomFront<E> {
    type Result = ResponseActFuture<Self, Result<ActionDone, Refused>>;

    fn handle(&mut self, msg: MemberAction, ctx: &mut Self::Context) -> Self::Result {
        let rid = self.next_rid;
        self.next_rid += 1;
        let (reply, answer) = oneshot::channel();
        self.pending_acts.insert(rid, reply);
        self.submit(Input::Act { session: msg.session, rid, action: msg.action }, ctx);
        Box::pin(async move { tokio::time::timeout(ANSWER_TIMEOUT, answer).await }.into_actor(self).map(
            move |answer, front, _ctx| {
                front.pending_acts.remove(&rid);
                match answer {
                    Ok(Ok(answer)) => answer,
                    _ => Err(UNAVAILABLE),
                }
            },
        ))
    }
}

impl<E: Engine> Handler<SetStatus> for RoomFront<E> {
    type Result = ();

    fn handle(&mut self, msg: SetStatus, ctx: &mut Self::Context) {
        self.submit(Input::Status(msg.status), ctx);
    }
}

impl<E: Engine> Handler<Notice> for RoomFront<E> {
    type Result = ();

    fn handle(&mut self, msg: Notice, ctx: &mut Self::Context) {
        let input = Input::Notice { content: msg.content, expire_time: msg.expire_time, client_url: msg.client_url };
        self.submit(input, ctx);
    }
}

impl<E: Engine> Handler<Flush> for RoomFront<E> {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        let (outputs, done) = self.engine.flush(ctx);
        self.apply(outputs, ctx);
        done
    }
}
