//! `SharedRoom`: a room whose state lives in Redis, so that several nodes serve it in one
//! order (PROTOCOL.md 7). One runs per channel on every node that uses the room; it takes
//! the same messages as a `RoomActor` (sessions and ingesters hold a `RoomHandle`).
//!
//! Every node, for its own callers:
//! - hands each input (a push, a join, a leave, a member action, a status, a notice) to the
//!   room's input stream `room:{C}:in` with one Lua script ([`INGEST`]) that also drops a
//!   seqid seen before; a push is answered 200 once it is there (stored: a node dying now
//!   loses nothing), 503 when Redis cannot take it;
//! - while it has members, subscribes to the room's channel and feeds what the owner
//!   publishes (numbered events, join answers, acks, direct frames) to its members through a
//!   local broadcast ring, filling any gap in `seq` from the events stream.
//!
//! One node, the owner (it holds `room:{C}:lease`, claimed with `SET NX PX` by a node that
//! uses the room and renewed every third of `store.node_ttl_ms`), also runs the room's
//! [`RoomCore`] on the inputs, in stream order, and commits each batch's effects with one
//! fenced Lua script ([`COMMIT`]): the events (stream `room:{C}:events`, trimmed to
//! `room.history_len`, ids `<seq>-1`), the dedup keys of released items, the core's state,
//! the last input applied, the input stream trimmed below the oldest push that may still
//! hold items, and one published message. A commit that finds another node's lease, or that
//! fails, ends this node's ownership at once; whoever owns the room next restores the state,
//! reads the inputs still in the stream again (pushes only, for the items still held; what
//! was released is in the dedup keys), and goes on numbering where the last commit stopped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::conn::RedisConn;
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, ResponseActFuture, ResponseFuture,
    SpawnHandle, WrapFuture,
};
use actors::config::RoomConfig;
use actors::metrics::Metrics;
use actors::protocol::bigo::DanmuItem;
use actors::protocol::client::ErrorCode;
use actors::room::replay::{self, Replay};
use actors::room::{
    ActionDone, Effects, Fanout, Flush, Ingest, IngestOutcome, Join, JoinRequest, Joined, Leave, LeaveReason,
    MemberAction, MemberChange, MembershipChanged, Notice, Now, Push, Refused, RoomCore, RoomEvent, RoomLinks,
    RoomState, SessionId, SetStatus, StatusOf, ToMember,
};
use bytestring::ByteString;
use log::{debug, info, warn};
use tokio::sync::oneshot;

use super::bus::{Bus, BusMessage, Subscribe, Unsubscribe};
use super::keys::Keys;
use super::scripts::Scripts;
use super::wire::{
    action_of, code_of, stream_id_le, wire_action, AckWire, Input, JoinAnswerWire, MemberWire, Published, SeatWire,
    SnapshotWire, WireEvent,
};

/// How long a member's report waits for the owner's answer before it is error 1011.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an owner reads its input stream without being woken (every input publishes a
/// wake message; this is for one that was lost, e.g. while the pub/sub link reconnected).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Inputs read per round.
const READ_COUNT: usize = 500;

/// Everything a shared room needs that is the same for every room of a node.
#[derive(Clone)]
pub struct SharedRooms {
    pub node_id: String,
    pub keys: Keys,
    pub conn: RedisConn,
    pub bus: Addr<Bus>,
    pub lease_ttl: Duration,
    pub config: RoomConfig,
    pub send_queue_len: usize,
    pub metrics: Arc<Metrics>,
}

/// The registry's room factory for shared rooms: a `SharedRoom` on the given arbiter.
pub fn factory(shared: SharedRooms) -> actors::registry::RoomFactory {
    Box::new(move |channel_name, links, arbiter| {
        let shared = shared.clone();
        let make = move |_: &mut Context<SharedRoom>| SharedRoom::new(channel_name, shared, links);
        let addr = match arbiter {
            None => SharedRoom::create(make),
            Some(arbiter) => SharedRoom::start_in_arbiter(&arbiter, make),
        };
        actors::room::RoomHandle::of(&addr)
    })
}

const UNAVAILABLE: Refused = Refused::new(ErrorCode::Unavailable, "store unavailable, retry");

// ---------------------------------------------------------------------------------------------
// The actor

/// What became of an input sent to the room's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    New,
    /// A push whose seqid was taken before: nothing stored.
    SeenBefore,
    /// A push refused: the room's stream holds `room.queue_len` inputs already.
    Full,
}

impl Stored {
    fn of(answer: i64) -> Self {
        match answer {
            0 => Self::New,
            1 => Self::SeenBefore,
            _ => Self::Full,
        }
    }
}

/// An input waiting to be sent (see [`SharedRoom::send_outbox`]).
struct Outgoing {
    seqid_key: String,
    kind: &'static str,
    body: String,
    reply: oneshot::Sender<Result<(Stored, String), String>>,
}

struct PendingJoin {
    request: JoinRequest,
    reply: oneshot::Sender<Result<Joined, Refused>>,
}

/// The owner's side: the core and where it is in the input stream.
struct Owner {
    core: RoomCore,
    /// The last input read (stream id).
    last_read: String,
    /// The last input applied and committed.
    applied: String,
    /// Push inputs read since the reorder buffer was last empty (their items may be held).
    held: VecDeque<String>,
    /// Effects applied to the core and not yet sent to Redis (see [`SharedRoom::pump`]).
    staged: Option<(Effects, Published)>,
    /// The input stream may hold inputs not read yet (a wake, the poll, a full page).
    read_wanted: bool,
    /// Which node each member session is on (direct frames, answers).
    node_of: HashMap<SessionId, String>,
    /// When the lease was last renewed (or claimed).
    renewed: Instant,
    release_timer: Option<SpawnHandle>,
}

pub struct SharedRoom {
    channel_name: String,
    shared: SharedRooms,
    links: RoomLinks,
    scripts: Arc<Scripts>,
    fanout: Fanout,
    sessions: HashMap<SessionId, actix::Recipient<ToMember>>,
    /// Members moved out by another connection of their user (PROTOCOL.md 2.3): they left the
    /// room's events but still get the `exit_room` about themselves, which comes a moment later.
    moved_out: HashMap<SessionId, (actix::Recipient<ToMember>, Instant)>,
    pending_joins: HashMap<SessionId, PendingJoin>,
    pending_acts: HashMap<u64, oneshot::Sender<Result<ActionDone, Refused>>>,
    next_rid: u64,
    /// Inputs waiting for the call on its way to answer (see [`Self::send_outbox`]).
    outbox: Vec<Outgoing>,
    outbox_busy: bool,
    subscribed: bool,
    /// The last seq given to local members (None before any).
    delivered: Option<u64>,
    owner: Option<Owner>,
    /// One of the owner's reads or commits is on its way to Redis (at most one at a time).
    owner_busy: bool,
    claiming: bool,
    /// This node shuts down: it handed the room on and claims it no more.
    handed_on: bool,
    last_activity: Instant,
}

impl SharedRoom {
    pub fn new(channel_name: String, shared: SharedRooms, links: RoomLinks) -> Self {
        let fanout = Fanout::new(shared.send_queue_len);
        Self {
            channel_name,
            shared,
            links,
            scripts: Arc::new(Scripts::new()),
            fanout,
            sessions: HashMap::new(),
            moved_out: HashMap::new(),
            pending_joins: HashMap::new(),
            pending_acts: HashMap::new(),
            next_rid: 1,
            outbox: Vec::new(),
            outbox_busy: false,
            subscribed: false,
            delivered: None,
            owner: None,
            owner_busy: false,
            claiming: false,
            handed_on: false,
            last_activity: Instant::now(),
        }
    }

    fn key(&self, what: &str) -> String {
        self.shared.keys.room(&self.channel_name, what)
    }

    /// Puts an input into the room's stream, after every input this node's callers sent the
    /// room before it; answers what became of it, and the room's owner.
    fn send_input(
        &mut self,
        input: &Input,
        seqid_key: &str,
        ctx: &mut Context<Self>,
    ) -> impl std::future::Future<Output = Result<(Stored, String), String>> + 'static {
        let (reply, answer) = oneshot::channel();
        let body = serde_json::to_string(input).unwrap_or_default();
        self.outbox.push(Outgoing { seqid_key: seqid_key.to_string(), kind: input.kind(), body, reply });
        self.send_outbox(ctx);
        async move { answer.await.unwrap_or_else(|_| Err("the room stopped".to_string())) }
    }

    /// Sends every input waiting in the outbox with one script call, unless a call is on its
    /// way: inputs reach the stream in the order the room's handlers took them (spawned
    /// futures are not polled in the order they were spawned, so each input cannot go alone).
    fn send_outbox(&mut self, ctx: &mut Context<Self>) {
        if self.outbox_busy || self.outbox.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.outbox);
        self.outbox_busy = true;
        let mut conn = self.shared.conn.clone();
        let scripts = self.scripts.clone();
        let keys = (self.key("seen"), self.key("in"), self.key("lease"));
        let mut args = vec![
            actors::protocol::now_ms().to_string(),
            self.shared.node_id.clone(),
            self.key("wake"),
            self.shared.conn.publish_command().to_string(),
            self.shared.config.queue_len.to_string(),
            batch.len().to_string(),
        ];
        let mut replies = Vec::with_capacity(batch.len());
        for out in batch {
            args.extend([out.seqid_key, out.kind.to_string(), out.body]);
            replies.push(out.reply);
        }
        let run = async move {
            let mut invocation = scripts.ingest.key(keys.0);
            invocation.key(keys.1).key(keys.2);
            for arg in args {
                invocation.arg(arg);
            }
            invocation.invoke_async::<(String, Vec<i64>)>(&mut conn).await
        };
        ctx.spawn(run.into_actor(self).map(|answer, room, ctx| {
            room.outbox_busy = false;
            match answer {
                Ok((owner, answers)) => {
                    for (reply, answer) in replies.into_iter().zip(answers.into_iter().map(Stored::of)) {
                        let _ = reply.send(Ok((answer, owner.clone())));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            room.send_outbox(ctx);
        }));
    }

    /// After an input went in: a room without an owner is claimed by this node (it uses it).
    fn claim_if_vacant(&mut self, owner: &str, ctx: &mut Context<Self>) {
        let ours = owner == self.shared.node_id;
        // (An earlier ownership's commit still on its way: claim once it is answered.)
        if !(owner.is_empty() || ours) || self.owner.is_some() || self.claiming || self.handed_on || self.owner_busy {
            return;
        }
        self.claiming = true;
        let mut conn = self.shared.conn.clone();
        let (lease, node, ttl) = (self.key("lease"), self.shared.node_id.clone(), self.shared.lease_ttl);
        let scripts = self.scripts.clone();
        let claim = async move {
            let won: redis::RedisResult<i64> =
                scripts.claim.key(lease).arg(node).arg(ttl.as_millis() as u64).invoke_async(&mut conn).await;
            matches!(won, Ok(1))
        };
        ctx.spawn(claim.into_actor(self).map(|won, room, ctx| {
            room.claiming = false;
            if won && room.handed_on {
                // Won while this node was handing its rooms on (shutdown): give it back.
                ctx.spawn(room.release_lease().into_actor(room));
            } else if won {
                room.take_over(ctx);
            }
        }));
    }

    /// Became the owner: restores the room from Redis, then reads its inputs.
    fn take_over(&mut self, ctx: &mut Context<Self>) {
        let mut conn = self.shared.conn.clone();
        let (state, seen, events, members) =
            (self.key("state"), self.key("seen"), self.key("events"), self.key("members"));
        let status_of = self.links.status_of.clone();
        let channel_name = self.channel_name.clone();
        let load = async move {
            let (saved, seen, members): (HashMap<String, String>, Vec<String>, HashMap<SessionId, String>) =
                redis::pipe().hgetall(&state).zrange(&seen, 0, -1).hgetall(&members).query_async(&mut conn).await?;
            // A state that cannot be read back (corrupt, or a `next_seq` no numbering can go
            // on from) counts as none: its events would clash with the new numbering's.
            let core = saved.get("core").map(|j| serde_json::from_str::<RoomState>(j));
            if let Some(Err(e)) = &core {
                warn!("room {channel_name}: its stored state is unreadable ({e}), numbering starts again");
            }
            let core = core.and_then(Result::ok);
            let live_status = match (&status_of, core.is_none()) {
                (Some(source), true) => source.send(StatusOf { channel_name }).await.ok().flatten(),
                _ => None,
            };
            if core.is_none() {
                // Numbering starts from nothing: a new epoch, and no history of an old one.
                let _: () = redis::cmd("DEL").arg(&events).arg(&members).query_async(&mut conn).await?;
            }
            Ok::<_, redis::RedisError>((core, saved.get("applied").cloned(), seen, members, live_status))
        };
        ctx.wait(load.into_actor(self).map(|loaded, room, ctx| {
            let (state, applied, seen, members, live_status) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    warn!("room {}: cannot load its state ({e}), not taking it over", room.channel_name);
                    return;
                }
            };
            let now = Now::real();
            let mut config = room.shared.config.clone();
            // An acknowledged push is never refused later: the owner's buffer has no cap.
            config.queue_len = usize::MAX;
            let mut node_of = HashMap::new();
            let mut listed: Vec<(SessionId, actors::protocol::client::Profile)> = Vec::new();
            for (session, entry) in members {
                if let Ok(m) = serde_json::from_str::<MemberWire>(&entry) {
                    node_of.insert(session, m.n);
                    listed.push((session, m.p));
                }
            }
            listed.sort_by_key(|(session, _)| *session);
            let state = state.map(|state| RoomState { members: listed, ..state });
            let restored = state.is_some();
            let mut core = match state {
                Some(state) => {
                    RoomCore::restore(room.channel_name.clone(), state, config, room.shared.metrics.clone(), now)
                }
                None => {
                    let epoch = actors::protocol::sign::random_token()[..8].to_string();
                    RoomCore::new(room.channel_name.clone(), epoch, config, room.shared.metrics.clone(), now)
                }
            };
            if let Some(status) = live_status {
                core.restore_live_status(status);
            }
            core.seen_before(seen.into_iter().filter_map(|k| k.strip_prefix("d|").map(str::to_string)));
            let applied = applied.unwrap_or_else(|| "0-0".to_string());
            info!(
                "room {}: node {} owns it now ({}, epoch {})",
                room.channel_name,
                room.shared.node_id,
                if restored { "state restored" } else { "new numbering" },
                core.epoch()
            );
            room.owner = Some(Owner {
                core,
                last_read: "-".to_string(),
                applied,
                held: VecDeque::new(),
                staged: None,
                read_wanted: true,
                node_of,
                renewed: Instant::now(),
                release_timer: None,
            });
            room.subscribe(&room.key("wake"), ctx);
            room.pump(ctx);
        }));
    }

    /// Subscribes this room to `channel` on the bus (in the background).
    fn subscribe(&self, channel: &str, ctx: &mut Context<Self>) {
        let ask = self.shared.bus.send(Subscribe { channel: channel.to_string(), to: ctx.address().recipient() });
        let channel = channel.to_string();
        ctx.spawn(
            async move {
                if !matches!(ask.await, Ok(Ok(()))) {
                    warn!("bus: could not subscribe to {channel}");
                }
            }
            .into_actor(self),
        );
    }

    /// The owner's inputs may have grown (a wake, the poll): read them when the owner is free.
    fn want_read(&mut self, ctx: &mut Context<Self>) {
        if let Some(owner) = self.owner.as_mut() {
            owner.read_wanted = true;
            self.pump(ctx);
        }
    }

    /// Drives the owner, one step at a time: a commit of what is staged, else a read of the
    /// inputs when some are wanted. Each step is spawned, not waited for, so that the room
    /// goes on taking pushes, joins and timers (the lease renewal above all) while Redis
    /// answers; and the next step starts only once the last one is answered, so commits reach
    /// Redis in the order the core made them.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.owner_busy {
            return;
        }
        let Some(owner) = self.owner.as_mut() else { return };
        if let Some((effects, published)) = owner.staged.take() {
            return self.send_commit(effects, published, ctx);
        }
        if owner.read_wanted {
            owner.read_wanted = false;
            self.read_inputs(ctx);
        }
    }

    /// Reads the inputs after the last one read and applies them (staging their commit).
    fn read_inputs(&mut self, ctx: &mut Context<Self>) {
        let Some(owner) = &self.owner else { return };
        let from = if owner.last_read == "-" { "-".to_string() } else { format!("({}", owner.last_read) };
        let mut conn = self.shared.conn.clone();
        let stream = self.key("in");
        let read = async move {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(stream)
                .arg(from)
                .arg("+")
                .arg("COUNT")
                .arg(READ_COUNT)
                .query_async(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>(reply.ids)
        };
        self.owner_busy = true;
        ctx.spawn(read.into_actor(self).map(|entries, room, ctx| {
            room.owner_busy = false;
            match entries {
                Ok(entries) if !entries.is_empty() => {
                    if let Some(owner) = room.owner.as_mut() {
                        owner.read_wanted |= entries.len() == READ_COUNT;
                    }
                    room.apply_inputs(entries, ctx);
                }
                Ok(_) => {}
                Err(e) => warn!("room {}: cannot read its inputs: {e}", room.channel_name),
            }
            room.pump(ctx);
        }));
    }

    fn apply_inputs(&mut self, entries: Vec<redis::streams::StreamId>, ctx: &mut Context<Self>) {
        let Some(owner) = self.owner.as_mut() else { return };
        let now = Now::real();
        let mut effects = Effects::default();
        let mut published = Published::default();
        for entry in entries {
            owner.last_read = entry.id.clone();
            let already_applied = stream_id_le(&entry.id, &owner.applied);
            let body: Option<String> = entry.get("b");
            let Some(input) = body.and_then(|b| serde_json::from_str::<Input>(&b).ok()) else {
                warn!("room {}: input {} unreadable, skipped", self.channel_name, entry.id);
                continue;
            };
            match input {
                Input::Push { gs, sq, t, st, items } => {
                    let items = items.into_iter().map(|(openid, raw)| DanmuItem::from_value(raw, &openid, t)).collect();
                    let push = Push { game_sess: gs, seqid: sq, timestamp: t, status: st, items };
                    let (_, fx) = owner.core.push(push, now);
                    merge(&mut effects, fx);
                    owner.held.push_back(entry.id.clone());
                }
                // Applied before the last commit: its effects are in the state already.
                _ if already_applied => {}
                Input::Join { s, n, p } => {
                    let (answer, fx) =
                        owner.core.join(JoinRequest { session: s, profile: p, last_seq: None, epoch: None }, now);
                    merge(&mut effects, fx);
                    published.joins.push(match answer {
                        Ok(a) => {
                            owner.node_of.insert(s, n);
                            let snapshot = serde_json::to_value(&a.snapshot).unwrap_or_default();
                            JoinAnswerWire { s, ok: Some((snapshot, a.own_seq, a.newest)), err: None }
                        }
                        Err(r) => JoinAnswerWire { s, ok: None, err: Some((r.code.code(), r.reason.to_string())) },
                    });
                }
                Input::Leave { s, why } => {
                    let (_, fx) = owner.core.leave(s, why.into(), now);
                    merge(&mut effects, fx);
                    owner.node_of.remove(&s);
                }
                Input::Act { s, n, r, a } => {
                    let answer = match action_of(a) {
                        Some(action) => {
                            let (answer, fx) = owner.core.act(s, action, now);
                            merge(&mut effects, fx);
                            answer
                        }
                        None => Err(Refused::new(ErrorCode::BadParameters, "bad action")),
                    };
                    published.acks.push(match answer {
                        Ok(done) => AckWire {
                            n,
                            r,
                            ok: Some((done.seq, done.room_seat.and_then(|s| serde_json::to_value(s).ok()))),
                            err: None,
                        },
                        Err(e) => AckWire { n, r, ok: None, err: Some((e.code.code(), e.reason.to_string())) },
                    });
                }
                Input::Status { st } => merge(&mut effects, owner.core.set_live_status(st, now)),
                Input::Notice { c, e, u } => merge(&mut effects, owner.core.notice(c, e, u, now)),
            }
            if !already_applied {
                owner.applied = entry.id;
            }
        }
        self.commit(effects, published, ctx);
    }

    /// Stages one batch of the owner's effects for the next commit (merged with any batch
    /// still waiting), and commits when the owner is free.
    fn commit(&mut self, effects: Effects, published: Published, ctx: &mut Context<Self>) {
        let Some(owner) = self.owner.as_mut() else { return };
        match owner.staged.as_mut() {
            Some((staged, into)) => {
                merge(staged, effects);
                into.joins.extend(published.joins);
                into.acks.extend(published.acks);
            }
            None => owner.staged = Some((effects, published)),
        }
        self.pump(ctx);
    }

    /// Stores and publishes one batch of the owner's effects, fenced by the lease.
    fn send_commit(&mut self, effects: Effects, mut published: Published, ctx: &mut Context<Self>) {
        let Some(owner) = self.owner.as_mut() else { return };
        if owner.renewed.elapsed() > self.shared.lease_ttl * 2 / 3 {
            warn!("room {}: lease not renewed in time, giving the room up", self.channel_name);
            return self.give_up(ctx);
        }
        for delta in &effects.membership {
            if let Some(hook) = &self.links.membership {
                hook.do_send(MembershipChanged { channel_name: self.channel_name.clone(), delta: *delta });
            }
        }
        // While anything is held, any push read since the buffer was last empty may hold it:
        // the input stream is trimmed no further than the oldest of them.
        if owner.core.held() == 0 {
            owner.held.clear();
        }
        let trim = owner.held.front().cloned().unwrap_or_else(|| owner.applied.clone());
        published.events = effects
            .events
            .iter()
            .map(|e| WireEvent { seq: e.seq.unwrap_or(0), x: e.exclude, j: e.json.to_string() })
            .collect();
        published.direct = effects.direct.iter().map(|(s, f)| (*s, f.to_string())).collect();
        let message = if published.events.is_empty()
            && published.joins.is_empty()
            && published.acks.is_empty()
            && published.direct.is_empty()
        {
            String::new()
        } else {
            serde_json::to_string(&published).unwrap_or_default()
        };
        let state = serde_json::to_string(&owner.core.state_without_members()).unwrap_or_default();
        // The member list changes one entry at a time: the last change of each session wins.
        let mut changed: HashMap<SessionId, Option<String>> = HashMap::new();
        for change in &effects.members {
            let (session, entry) = match change {
                MemberChange::In(session, profile) => {
                    let n = owner.node_of.get(session).cloned().unwrap_or_default();
                    (*session, serde_json::to_string(&MemberWire { p: profile.clone(), n }).ok())
                }
                MemberChange::Out(session) => (*session, None),
            };
            changed.insert(session, entry);
        }
        let applied = owner.applied.clone();
        let keys: Vec<String> =
            ["lease", "events", "state", "seen", "in", "members"].iter().map(|w| self.key(w)).collect();
        let mut args: Vec<String> = vec![
            self.shared.node_id.clone(),
            self.shared.config.history_len.max(1).to_string(),
            self.shared.config.dedup_len.saturating_mul(2).to_string(),
            actors::protocol::now_ms().to_string(),
            state,
            applied,
            trim,
            self.key("ch"),
            message,
            published.events.len().to_string(),
            self.shared.conn.publish_command().to_string(),
        ];
        for e in published.events {
            args.extend([e.seq.to_string(), e.x.map(|x| x.to_string()).unwrap_or_default(), e.j]);
        }
        args.push(effects.released.len().to_string());
        args.extend(effects.released);
        let (puts, dels): (Vec<_>, Vec<_>) = changed.into_iter().partition(|(_, entry)| entry.is_some());
        args.push(puts.len().to_string());
        for (session, entry) in puts {
            args.extend([session.to_string(), entry.unwrap_or_default()]);
        }
        args.push(dels.len().to_string());
        args.extend(dels.into_iter().map(|(session, _)| session.to_string()));
        let mut conn = self.shared.conn.clone();
        let scripts = self.scripts.clone();
        let run = async move {
            let mut invocation = scripts.commit.prepare_invoke();
            for key in keys {
                invocation.key(key);
            }
            for arg in args {
                invocation.arg(arg);
            }
            invocation.invoke_async::<i64>(&mut conn).await
        };
        self.owner_busy = true;
        ctx.spawn(run.into_actor(self).map(|answer, room, ctx| {
            room.owner_busy = false;
            match answer {
                Ok(1) => {}
                Ok(0) => {
                    warn!("room {}: another node holds its lease now, giving it up", room.channel_name);
                    return room.give_up(ctx);
                }
                Ok(_) => {
                    warn!("room {}: its events stream is ahead of this owner, giving it up", room.channel_name);
                    return room.give_up(ctx);
                }
                Err(e) => {
                    warn!("room {}: commit failed ({e}), giving it up", room.channel_name);
                    return room.give_up(ctx);
                }
            }
            room.schedule_release(ctx);
            room.pump(ctx);
        }));
    }

    /// Stops acting as owner (the lease lapsed, another node took it, or Redis failed).
    /// Deletes the room's lease if it still names this node.
    fn release_lease(&self) -> impl std::future::Future<Output = ()> + 'static {
        let (mut conn, scripts) = (self.shared.conn.clone(), self.scripts.clone());
        let (lease, node) = (self.key("lease"), self.shared.node_id.clone());
        async move {
            let released: redis::RedisResult<i64> = scripts.release.key(lease).arg(node).invoke_async(&mut conn).await;
            if let Err(e) = released {
                debug!("a lease was not given up ({e}); it runs out by itself");
            }
        }
    }

    fn give_up(&mut self, ctx: &mut Context<Self>) {
        if let Some(owner) = self.owner.take() {
            if let Some(timer) = owner.release_timer {
                ctx.cancel_future(timer);
            }
            self.shared.bus.do_send(Unsubscribe { channel: self.key("wake") });
        }
    }

    fn schedule_release(&mut self, ctx: &mut Context<Self>) {
        let Some(owner) = self.owner.as_mut() else { return };
        if owner.release_timer.is_some() {
            return;
        }
        if let Some(at) = owner.core.next_release() {
            let wait = at.saturating_duration_since(Instant::now());
            owner.release_timer = Some(ctx.run_later(wait, |room, ctx| {
                let Some(owner) = room.owner.as_mut() else { return };
                owner.release_timer = None;
                let effects = owner.core.tick(Now::real());
                room.commit(effects, Published::default(), ctx);
            }));
        }
    }

    /// Every third of the lease: the owner renews it; a node with members here claims it when
    /// it is vacant (the owner died), so that the room goes on without waiting for an input.
    fn renew(&mut self, ctx: &mut Context<Self>) {
        if self.owner.is_none() {
            if self.sessions.is_empty() || self.claiming {
                return;
            }
            let mut conn = self.shared.conn.clone();
            let lease = self.key("lease");
            let holder = async move {
                let holder: Option<String> = redis::cmd("GET").arg(lease).query_async(&mut conn).await.ok()?;
                Some(holder.unwrap_or_default())
            };
            ctx.spawn(holder.into_actor(self).map(|holder, room, ctx| {
                if let Some(holder) = holder {
                    room.claim_if_vacant(&holder, ctx);
                }
            }));
            return;
        }
        let mut conn = self.shared.conn.clone();
        let (lease, node, ttl) =
            (self.key("lease"), self.shared.node_id.clone(), self.shared.lease_ttl.as_millis() as u64);
        let scripts = self.scripts.clone();
        let started = Instant::now();
        let run = async move { scripts.renew.key(lease).arg(node).arg(ttl).invoke_async::<i64>(&mut conn).await };
        ctx.spawn(run.into_actor(self).map(move |answer, room, ctx| match answer {
            Ok(1) => {
                if let Some(owner) = room.owner.as_mut() {
                    owner.renewed = started;
                }
                room.remove_members_of_dead_nodes(ctx);
            }
            Ok(_) => {
                warn!("room {}: its lease went to another node", room.channel_name);
                room.give_up(ctx);
            }
            Err(e) => debug!("room {}: lease renewal failed: {e}", room.channel_name),
        }));
    }

    /// The owner removes the members of nodes whose presence record has expired (killed or
    /// cut off): `exit_room` for the others, seats freed, viewers corrected (PROTOCOL.md 7).
    fn remove_members_of_dead_nodes(&mut self, ctx: &mut Context<Self>) {
        let Some(owner) = &self.owner else { return };
        let mut nodes: Vec<String> = owner.node_of.values().filter(|n| **n != self.shared.node_id).cloned().collect();
        nodes.sort_unstable();
        nodes.dedup();
        if nodes.is_empty() {
            return;
        }
        let mut conn = self.shared.conn.clone();
        let records: Vec<String> = nodes.iter().map(|n| self.shared.keys.node(n)).collect();
        let check = async move {
            let mut pipe = redis::pipe();
            for record in &records {
                pipe.exists(record);
            }
            let alive: Vec<bool> = pipe.query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>(
                nodes.into_iter().zip(alive).filter(|(_, a)| !a).map(|(n, _)| n).collect::<Vec<_>>(),
            )
        };
        ctx.spawn(check.into_actor(self).map(|dead, room, ctx| {
            let Ok(dead) = dead else { return };
            let Some(owner) = room.owner.as_mut() else { return };
            let gone: Vec<SessionId> =
                owner.node_of.iter().filter(|(_, n)| dead.contains(n)).map(|(s, _)| *s).collect();
            if gone.is_empty() {
                return;
            }
            info!("room {}: {} member session(s) of dead node(s) {:?} removed", room.channel_name, gone.len(), dead);
            let now = Now::real();
            let mut effects = Effects::default();
            for session in gone {
                owner.node_of.remove(&session);
                merge(&mut effects, owner.core.leave(session, LeaveReason::Disconnect, now).1);
            }
            room.commit(effects, Published::default(), ctx);
        }));
    }

    /// A message on the room's channel: events for the local members, answers, direct frames.
    fn on_published(&mut self, published: Published, ctx: &mut Context<Self>) {
        let mut events = published.events;
        let mut joins = published.joins;
        // Anything missing between what was delivered and this batch comes from the stream.
        if let (Some(delivered), Some(first)) = (self.delivered, events.first().map(|e| e.seq)) {
            // Seqs come through Redis: no `+ 1` that a stored u64::MAX could overflow.
            if first > delivered.saturating_add(1) {
                let (from, to) = (delivered.saturating_add(1), first - 1);
                let fetch = self.fetch_events(from, to);
                ctx.wait(fetch.into_actor(self).map(move |missing, room, ctx| {
                    let mut all = missing.unwrap_or_default();
                    all.append(&mut events);
                    room.deliver(all, std::mem::take(&mut joins), ctx);
                }));
                self.answer_acks(published.acks);
                self.send_direct(published.direct);
                return;
            }
        }
        self.deliver(events, joins, ctx);
        self.answer_acks(published.acks);
        self.send_direct(published.direct);
    }

    /// The room's channel was subscribed again (a new or reconnected pub/sub connection):
    /// what was published meanwhile is read from the events stream, so that the last events
    /// before a quiet spell are not left waiting for the next one's gap check.
    fn catch_up(&mut self, ctx: &mut Context<Self>) {
        let Some(delivered) = self.delivered else { return };
        let fetch = self.fetch_events(delivered.saturating_add(1), u64::MAX);
        ctx.wait(fetch.into_actor(self).map(|missed, room, ctx| {
            let missed = missed.unwrap_or_default();
            if !missed.is_empty() {
                info!(
                    "room {}: {} event(s) published while its channel was away, read from the stream",
                    room.channel_name,
                    missed.len()
                );
            }
            room.deliver(missed, Vec::new(), ctx);
        }));
    }

    fn deliver(&mut self, events: Vec<WireEvent>, mut joins: Vec<JoinAnswerWire>, ctx: &mut Context<Self>) {
        joins.sort_by_key(|j| j.ok.as_ref().map_or(0, |(_, own, _)| *own));
        let mut batch: Vec<RoomEvent> = Vec::new();
        let mut joins = joins.into_iter().peekable();
        for e in events {
            if self.delivered.is_some_and(|d| e.seq <= d) {
                continue;
            }
            // A join answered at or before this seq starts reading after its own enter_room.
            while joins.peek().is_some_and(|j| j.ok.as_ref().is_none_or(|(_, own, _)| *own < e.seq)) {
                self.flush_batch(&mut batch);
                let join = joins.next();
                if let Some(join) = join {
                    self.answer_join(join, ctx);
                }
            }
            self.delivered = Some(e.seq);
            batch.push(RoomEvent::from_json(Some(e.seq), e.x, ByteString::from(e.j)));
        }
        self.flush_batch(&mut batch);
        for join in joins {
            self.answer_join(join, ctx);
        }
    }

    fn flush_batch(&mut self, batch: &mut Vec<RoomEvent>) {
        if !batch.is_empty() {
            self.fanout.publish(std::mem::take(batch));
        }
    }

    fn answer_join(&mut self, join: JoinAnswerWire, ctx: &mut Context<Self>) {
        let Some(pending) = self.pending_joins.remove(&join.s) else { return };
        let (snapshot, own_seq, newest) = match (join.ok, join.err) {
            (Some((snapshot, own_seq, newest)), _) => match serde_json::from_value::<SnapshotWire>(snapshot) {
                Ok(s) => (s, own_seq, newest),
                Err(_) => return drop(pending.reply.send(Err(UNAVAILABLE))),
            },
            (None, Some((code, reason))) => {
                self.sessions.remove(&join.s);
                return drop(pending.reply.send(Err(Refused::new(code_of(code), Refused::reason_of(&reason)))));
            }
            (None, None) => return drop(pending.reply.send(Err(UNAVAILABLE))),
        };
        if self.delivered.is_none_or(|d| d < own_seq) {
            self.delivered = Some(own_seq);
        }
        // Reading from now on: every later event, none of the earlier ones.
        let events = self.fanout.feed();
        let (last_seq, epoch) = (pending.request.last_seq, pending.request.epoch.as_deref());
        let plan = replay::plan(last_seq, epoch, &snapshot.epoch, newest);
        let snapshot = snapshot.into_snapshot();
        let (from, to) = match plan {
            Replay::NotAsked | Replay::Answered(_) => {
                let recovered = match plan {
                    Replay::Answered(recovered) => Some(recovered),
                    _ => None,
                };
                let joined = Joined { events, snapshot, own_seq, replay: Vec::new(), recovered };
                return drop(pending.reply.send(Ok(joined)));
            }
            Replay::Fetch { from, to } => (from, to),
        };
        let session = join.s;
        let fetch = self.fetch_events(from, to);
        ctx.spawn(fetch.into_actor(self).map(move |found, _room, _ctx| {
            let found = found
                .unwrap_or_default()
                .into_iter()
                .map(|e| RoomEvent::from_json(Some(e.seq), e.x, ByteString::from(e.j)))
                .collect();
            let (replay, complete) = replay::recovered(from, to, found, session);
            let _ = pending.reply.send(Ok(Joined { events, snapshot, own_seq, replay, recovered: Some(complete) }));
        }));
    }

    fn answer_acks(&mut self, acks: Vec<AckWire>) {
        for ack in acks.into_iter().filter(|a| a.n == self.shared.node_id) {
            let Some(reply) = self.pending_acts.remove(&ack.r) else { continue };
            let answer = match (ack.ok, ack.err) {
                (Some((seq, seat)), _) => Ok(ActionDone {
                    seq,
                    room_seat: seat.and_then(|s| serde_json::from_value::<SeatWire>(s).ok()).map(SeatWire::into_seat),
                }),
                (None, Some((code, reason))) => Err(Refused::new(code_of(code), Refused::reason_of(&reason))),
                (None, None) => Err(UNAVAILABLE),
            };
            let _ = reply.send(answer);
        }
    }

    fn send_direct(&mut self, direct: Vec<(SessionId, String)>) {
        for (session, frame) in direct {
            let moved = self.moved_out.remove(&session).map(|(to, _)| to);
            if let Some(to) = self.sessions.get(&session).or(moved.as_ref()) {
                let _ = to.try_send(ToMember::Frame(ByteString::from(frame)));
            }
        }
        self.maybe_unsubscribe();
    }

    /// Events `from..=to` from the room's history stream.
    fn fetch_events(&self, from: u64, to: u64) -> impl std::future::Future<Output = Option<Vec<WireEvent>>> + 'static {
        let mut conn = self.shared.conn.clone();
        let stream = self.key("events");
        async move {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(stream)
                .arg(format!("{from}-1"))
                .arg(format!("{to}-1"))
                .query_async(&mut conn)
                .await
                .ok()?;
            Some(
                reply
                    .ids
                    .into_iter()
                    .filter_map(|id| {
                        let seq = id.id.split('-').next()?.parse().ok()?;
                        let json: String = id.get("e")?;
                        let x = id.get::<String>("x").and_then(|x| x.parse().ok());
                        Some(WireEvent { seq, x, j: json })
                    })
                    .collect(),
            )
        }
    }

    /// Subscribes to the room's channel before a local join goes out.
    fn ensure_subscribed(&mut self, ctx: &mut Context<Self>) -> impl std::future::Future<Output = bool> + 'static {
        let first = !self.subscribed;
        self.subscribed = true;
        let ask =
            first.then(|| self.shared.bus.send(Subscribe { channel: self.key("ch"), to: ctx.address().recipient() }));
        async move {
            match ask {
                Some(ask) => matches!(ask.await, Ok(Ok(()))),
                None => true,
            }
        }
    }

    fn maybe_unsubscribe(&mut self) {
        self.moved_out.retain(|_, (_, since)| since.elapsed() < ANSWER_TIMEOUT);
        if self.subscribed && self.sessions.is_empty() && self.pending_joins.is_empty() && self.moved_out.is_empty() {
            self.subscribed = false;
            self.delivered = None;
            self.shared.bus.do_send(Unsubscribe { channel: self.key("ch") });
        }
    }
}

impl Actor for SharedRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.shared.config.queue_len.max(16));
        self.shared.metrics.rooms.inc();
        ctx.run_interval(POLL_EVERY, |room, ctx| room.want_read(ctx));
        ctx.run_interval(self.shared.lease_ttl / 3, |room, ctx| room.renew(ctx));
        let idle = Duration::from_millis(self.shared.config.idle_stop_ms);
        ctx.run_interval((idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30)), move |room, ctx| {
            let quiet =
                room.sessions.is_empty() && room.pending_joins.is_empty() && room.last_activity.elapsed() >= idle;
            let owner_idle = room.owner.as_ref().is_none_or(|o| o.core.is_idle(Now::real()));
            if quiet && owner_idle {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.shared.metrics.rooms.dec();
        if self.owner.is_some() {
            // Hand the room on at once rather than after the lease's time: whoever uses it
            // next (here or elsewhere) restores it from Redis.
            actix::spawn(self.release_lease());
        }
        self.give_up(ctx);
        if self.subscribed {
            self.shared.bus.do_send(Unsubscribe { channel: self.key("ch") });
        }
        let room = actors::room::RoomHandle::of(&ctx.address());
        self.links.stopped.do_send(actors::room::RoomStopped { channel_name: self.channel_name.clone(), room });
    }
}

impl Handler<BusMessage> for SharedRoom {
    type Result = ();

    fn handle(&mut self, msg: BusMessage, ctx: &mut Self::Context) {
        if msg.channel == self.key("wake") {
            return self.want_read(ctx);
        }
        if msg.resubscribed {
            return self.catch_up(ctx);
        }
        match serde_json::from_str::<Published>(&msg.payload) {
            Ok(published) => self.on_published(published, ctx),
            Err(e) => warn!("room {}: unreadable message on its channel: {e}", self.channel_name),
        }
    }
}

impl Handler<Ingest> for SharedRoom {
    type Result = ();

    fn handle(&mut self, msg: Ingest, ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        let Ingest { push, reply } = msg;
        let n = push.items.len();
        let seqid_key =
            if push.seqid.is_empty() { String::new() } else { format!("{}/{}", push.game_sess, push.seqid) };
        let input = Input::Push {
            items: push.items.into_iter().map(|i| (i.openid, i.raw)).collect(),
            gs: push.game_sess,
            sq: push.seqid,
            t: push.timestamp,
            st: push.status,
        };
        let sent = self.send_input(&input, &seqid_key, ctx);
        ctx.spawn(sent.into_actor(self).map(move |answer, room, ctx| match answer {
            Ok((stored, owner)) => {
                let _ = reply.send(match stored {
                    Stored::New => IngestOutcome::Accepted { new_items: n },
                    Stored::SeenBefore => IngestOutcome::DuplicateSeqid,
                    Stored::Full => {
                        warn!("room {}: its input stream is full, a push refused with 503", room.channel_name);
                        IngestOutcome::Full
                    }
                });
                room.claim_if_vacant(&owner, ctx);
            }
            Err(e) => {
                warn!("room {}: push not stored ({e}): 503", room.channel_name);
                let _ = reply.send(IngestOutcome::Full);
            }
        }));
    }
}

impl Handler<Join> for SharedRoom {
    type Result = ResponseActFuture<Self, Result<Joined, Refused>>;

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        let session = msg.request.session;
        self.sessions.insert(session, msg.addr);
        let (reply, answer) = oneshot::channel();
        let input = Input::Join { s: session, n: self.shared.node_id.clone(), p: msg.request.profile.clone() };
        self.pending_joins.insert(session, PendingJoin { request: msg.request, reply });
        let subscribed = self.ensure_subscribed(ctx);
        let sent = self.send_input(&input, "", ctx);
        Box::pin(
            async move {
                if !subscribed.await {
                    return Err(UNAVAILABLE);
                }
                let (_, owner) = sent.await.map_err(|_| UNAVAILABLE)?;
                Ok(owner)
            }
            .into_actor(self)
            .then(move |sent, room, ctx| {
                if let Ok(owner) = &sent {
                    room.claim_if_vacant(owner, ctx);
                }
                async move {
                    sent?;
                    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
                        Ok(Ok(answer)) => answer,
                        _ => Err(UNAVAILABLE),
                    }
                }
                .into_actor(room)
                .map(move |answer, room, _ctx| {
                    if answer.is_err() {
                        room.pending_joins.remove(&session);
                        room.sessions.remove(&session);
                        room.maybe_unsubscribe();
                    }
                    answer
                })
            }),
        )
    }
}

impl Handler<Leave> for SharedRoom {
    type Result = ResponseActFuture<Self, Result<(), ErrorCode>>;

    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        let left = self.sessions.remove(&msg.session);
        let known = left.is_some();
        if let (Some(to), LeaveReason::Moved) = (left, msg.reason) {
            self.moved_out.insert(msg.session, (to, Instant::now()));
        }
        self.maybe_unsubscribe();
        let sent = self.send_input(&Input::Leave { s: msg.session, why: msg.reason.into() }, "", ctx);
        let channel = self.channel_name.clone();
        Box::pin(
            async move {
                if let Err(e) = sent.await {
                    warn!("room {channel}: a leave could not be stored: {e}");
                }
                if known {
                    Ok(())
                } else {
                    Err(ErrorCode::NotInRoom)
                }
            }
            .into_actor(self),
        )
    }
}

impl Handler<MemberAction> for SharedRoom {
    type Result = ResponseActFuture<Self, Result<ActionDone, Refused>>;

    fn handle(&mut self, msg: MemberAction, ctx: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        let rid = self.next_rid;
        self.next_rid += 1;
        let (reply, answer) = oneshot::channel();
        self.pending_acts.insert(rid, reply);
        let input = Input::Act { s: msg.session, n: self.shared.node_id.clone(), r: rid, a: wire_action(msg.action) };
        let sent = self.send_input(&input, "", ctx);
        Box::pin(
            async move {
                sent.await.map_err(|_| UNAVAILABLE)?;
                match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
                    Ok(Ok(answer)) => answer,
                    _ => Err(UNAVAILABLE),
                }
            }
            .into_actor(self)
            .map(move |answer, room, _ctx| {
                room.pending_acts.remove(&rid);
                answer
            }),
        )
    }
}

impl Handler<SetStatus> for SharedRoom {
    type Result = ();

    fn handle(&mut self, msg: SetStatus, ctx: &mut Self::Context) {
        let sent = self.send_input(&Input::Status { st: msg.status }, "", ctx);
        ctx.spawn(sent.into_actor(self).map(|answer, room, ctx| {
            if let Ok((_, owner)) = answer {
                room.claim_if_vacant(&owner, ctx);
            }
        }));
    }
}

impl Handler<Notice> for SharedRoom {
    type Result = ();

    fn handle(&mut self, msg: Notice, ctx: &mut Self::Context) {
        let input = Input::Notice { c: msg.content, e: msg.expire_time, u: msg.client_url };
        let sent = self.send_input(&input, "", ctx);
        ctx.spawn(sent.into_actor(self).map(|answer, room, ctx| {
            if let Ok((_, owner)) = answer {
                room.claim_if_vacant(&owner, ctx);
            }
        }));
    }
}

/// The node shuts down: the owner hands the room on instead of flushing it. What its reorder
/// window holds is still in the input stream, so the next owner (restoring the state, as after
/// a death) releases it in order; giving the lease up now spares the room the lease's time.
impl Handler<Flush> for SharedRoom {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        if self.owner.is_none() {
            return Box::pin(async {});
        }
        self.handed_on = true;
        self.give_up(ctx);
        info!("room {}: node {} hands it on (shutdown)", self.channel_name, self.shared.node_id);
        Box::pin(self.release_lease())
    }
}

fn merge(into: &mut Effects, from: Effects) {
    into.events.extend(from.events);
    into.direct.extend(from.direct);
    into.membership.extend(from.membership);
    into.released.extend(from.released);
    into.members.extend(from.members);
}
