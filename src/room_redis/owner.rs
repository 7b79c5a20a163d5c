//! The owner's side of a room on Redis: the one node that holds the room's lease runs the
//! room's [`RoomCore`] on the inputs of its stream, in stream order, and commits each batch's
//! effects as one entry of the events stream (see [`super::commit`]), copied into the room's
//! keys by checkpoints ([`super::checkpoint`]). A commit refused or failed ends this node's
//! ownership at once; whoever owns the room next restores the last checkpoint and the entries
//! after it, reads the inputs still in the stream again (pushes only, for the items still
//! held; what was released is in the dedup keys), and goes on numbering where the last commit
//! stopped.
//!
//! Every step that waits for Redis (a read, a commit) is spawned, one at a time ([`pump`]):
//! the room goes on taking pushes, joins and timers while Redis answers, and commits reach
//! Redis in the order the core made them.
//!
//! [`pump`]: RedisEngine::pump

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext};
use actors::protocol::bigo::DanmuItem;
use actors::room::{
    Effects, IngestOutcome, JoinRequest, LeaveReason, Now, Push, RoomCore, RoomState, SessionId, StatusOf,
};
use log::{debug, info, warn};

use super::commit::{is_visible, merge};
use super::lease::Lease;
use super::state::{Ctx, Front, OwnInputs, Owner, Pending, RedisEngine, Stream};
use super::wire::{stream_id_le, AckWire, Entry, Input, JoinAnswerWire, MemberWire, Published};
use crate::cluster::bus::Unsubscribe;
use crate::cluster::presence::DeadNodes;

/// Inputs read per round.
const READ_COUNT: usize = 500;

/// How long the owner waits before reading its stream again after a read failed.
const READ_RETRY: Duration = Duration::from_millis(500);

impl RedisEngine {
    /// Became the owner, in `term`: restores the room from Redis (its last checkpoint and the
    /// entries after it), then reads its inputs.
    pub(super) fn take_over(&mut self, term: u64, ctx: &mut Ctx) {
        let mut conn = self.shared.conn.clone();
        let [state_key, seen_key, events, members_key, own_key] =
            ["state", "seen", "events", "members", "own"].map(|w| self.key(w));
        let node = self.shared.node_id.clone();
        let status_of = self.links.status_of.clone();
        let channel_name = self.channel_name.clone();
        let load = async move {
            let (saved, seen, members): (HashMap<String, String>, Vec<String>, HashMap<SessionId, String>) =
                redis::pipe()
                    .hgetall(&state_key)
                    .zrange(&seen_key, 0, -1)
                    .hgetall(&members_key)
                    .query_async(&mut conn)
                    .await?;
            // The commits after the checkpoint (every entry, before there was one).
            let from = saved.get("upto").map_or_else(|| "-".to_string(), |id| format!("({id}"));
            let reply: redis::streams::StreamRangeReply =
                redis::cmd("XRANGE").arg(&events).arg(from).arg("+").query_async(&mut conn).await?;
            let entries: Vec<(String, Entry)> =
                reply.ids.iter().filter_map(|e| Some((e.id.clone(), Entry::read(e)?))).collect();
            // The newest state: the last entry's, else the checkpoint's (it is the last commit's
            // when no entry came after it).
            let newest = entries.iter().rev().find_map(|(_, e)| e.state.clone().map(|s| (s, e.own_applied.clone())));
            let (core, applied, own_applied) = match newest {
                Some(((core, applied), own)) => (Some(core), Some(applied), own),
                None => (saved.get("core").cloned(), saved.get("applied").cloned(), saved.get("own").cloned()),
            };
            // The inputs earlier owners stored for themselves (a claim's marker aside).
            let own: redis::streams::StreamRangeReply =
                redis::cmd("XRANGE").arg(&own_key).arg("-").arg("+").query_async(&mut conn).await?;
            let own: Vec<(String, String)> =
                own.ids.into_iter().filter_map(|e| Some((e.id.clone(), e.get::<String>("b")?))).collect();
            // A state that cannot be read back (corrupt, or a `next_seq` no numbering can go
            // on from) counts as none: its events would clash with the new numbering's.
            let core = core.map(|j| serde_json::from_str::<RoomState>(&j));
            if let Some(Err(e)) = &core {
                warn!("room {channel_name}: its stored state is unreadable ({e}), numbering starts again");
            }
            let core = core.and_then(Result::ok);
            let live_status = match (&status_of, core.is_none()) {
                (Some(source), true) => source.send(StatusOf { channel_name }).await.ok().flatten(),
                _ => None,
            };
            if core.is_none() {
                // Numbering starts from nothing: a new epoch, and no history of an old one. The
                // term's marker goes back in, so that earlier owners' commits still fail.
                let _: () = redis::pipe()
                    .del(&[&events, &members_key])
                    .ignore()
                    .cmd("XADD")
                    .arg(&events)
                    .arg(format!("{term}-0"))
                    .arg("t")
                    .arg(&node)
                    .ignore()
                    .query_async(&mut conn)
                    .await?;
                return Ok((None, None, Vec::new(), HashMap::new(), Vec::new(), live_status, (None, own)));
            }
            Ok::<_, redis::RedisError>((core, applied, seen, members, entries, live_status, (own_applied, own)))
        };
        ctx.spawn(wrap_future::<_, Front>(load).map(move |loaded, front: &mut Front, ctx| {
            let room = front.engine_mut();
            let (state, applied, mut seen, mut members, entries, live_status, (own_applied, own)) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    warn!("room {}: cannot load its state ({e}), not taking it over", room.channel_name);
                    room.lease.lost();
                    ctx.spawn(wrap_future(room.release_lease()));
                    return;
                }
            };
            if !room.lease.restored() {
                // Handed on meanwhile (shutdown).
                ctx.spawn(wrap_future(room.release_lease()));
                return;
            }
            // What the entries after the checkpoint added: the next checkpoint writes it.
            let mut pending = Pending::default();
            let replayed = entries.len();
            for (id, entry) in entries {
                seen.extend(entry.keys.iter().cloned());
                for (session, member) in &entry.members {
                    match member {
                        Some(member) => members.insert(*session, member.clone()),
                        None => members.remove(session),
                    };
                }
                // (An entry written before entries carried state has nothing to checkpoint.)
                if entry.state.is_some() {
                    pending.add(&id, entry, (String::new(), String::new()), 0);
                }
            }
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
            core.seen_before(seen.iter().filter_map(|k| k.strip_prefix("d|").map(str::to_string)));
            // The pushes taken before: remembered once the stream is read (it may hold some of
            // them still, which are applied again, not dropped as re-sends).
            let seqids = seen.iter().filter_map(|k| k.strip_prefix("s|").map(str::to_string)).collect();
            let applied = applied.unwrap_or_else(|| "0-0".to_string());
            info!(
                "room {}: node {} owns it now ({}, epoch {}, term {term}, {} commit(s) after the checkpoint)",
                room.channel_name,
                room.shared.node_id,
                if restored { "state restored" } else { "new numbering" },
                core.epoch(),
                replayed
            );
            room.owner = Some(Owner {
                core,
                term,
                commits: 0,
                last_read: "-".to_string(),
                applied,
                held: VecDeque::new(),
                staged: None,
                read_wanted: true,
                reading: false,
                arrived: Vec::new(),
                dirty: false,
                lazy_commit: None,
                seqids: Vec::new(),
                taken_before: Some(seqids),
                node_of,
                release_timer: None,
                pending,
                own: OwnInputs { stored: 0, applied: own_applied.unwrap_or_default(), held: VecDeque::new() },
                own_push_at: None,
                hand_to: None,
            });
            room.apply_inputs(own, Stream::Own, ctx);
            if replayed > 0 {
                room.committed(ctx);
            }
            room.subscribe_wake(ctx);
            room.pump(ctx);
        }));
    }

    /// The input stream may hold inputs the owner has not seen (its wake-up channel was
    /// subscribed, or subscribed again after a reconnection): read it when the owner is free.
    pub(super) fn want_read(&mut self, ctx: &mut Ctx) {
        if let Some(owner) = self.owner.as_mut() {
            owner.read_wanted = true;
            self.pump(ctx);
        }
    }

    /// A wake-up: the inputs another call just stored, `id\nbody` each, in stream order. They
    /// are applied at once, unless a read of the stream is due or on its way (they wait for it,
    /// so that the inputs are applied in stream order).
    pub(super) fn woken(&mut self, payload: &str, ctx: &mut Ctx) {
        let Some(owner) = self.owner.as_mut() else { return };
        let mut lines = payload.split('\n');
        let mut entries = Vec::new();
        while let (Some(id), Some(body)) = (lines.next(), lines.next()) {
            entries.push((id.to_string(), body.to_string()));
        }
        if owner.reading || owner.read_wanted {
            owner.arrived.extend(entries);
            return;
        }
        self.apply_inputs(entries, Stream::In, ctx);
    }

    /// Drives the owner, one step at a time: a commit of what is staged, else a checkpoint when
    /// one is due, else a read of the inputs when one is wanted. Each step is spawned, not waited for, so that the room
    /// goes on taking pushes, joins and timers (the lease renewal above all) while Redis
    /// answers; and the next step starts only once the last one is answered, so commits reach
    /// Redis in the order the core made them.
    pub(super) fn pump(&mut self, ctx: &mut Ctx) {
        if self.step_busy {
            return;
        }
        let Some(owner) = self.owner.as_mut() else { return };
        if let Some((effects, published)) = owner.staged.take() {
            return self.send_commit(effects, published, ctx);
        }
        if owner.pending.due {
            return self.send_checkpoint(ctx);
        }
        if let Some(to) = owner.hand_to.take() {
            return self.send_handoff(to, ctx);
        }
        if owner.read_wanted {
            owner.read_wanted = false;
            self.read_inputs(ctx);
        }
    }

    /// Reads the inputs after the last one seen and applies them (staging their commit); the
    /// inputs wake-ups carried meanwhile follow.
    fn read_inputs(&mut self, ctx: &mut Ctx) {
        let Some(owner) = self.owner.as_mut() else { return };
        let from = if owner.last_read == "-" { "-".to_string() } else { format!("({}", owner.last_read) };
        owner.reading = true;
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
        self.step_busy = true;
        ctx.spawn(wrap_future::<_, Front>(read).map(|entries, front: &mut Front, ctx| {
            let room = front.engine_mut();
            room.step_busy = false;
            let Some(owner) = room.owner.as_mut() else { return };
            owner.reading = false;
            match entries {
                Ok(entries) => {
                    debug!(
                        "room {}: read {} input(s), {} arrived meanwhile",
                        room.channel_name,
                        entries.len(),
                        owner.arrived.len()
                    );
                    let full = entries.len() == READ_COUNT;
                    let entries =
                        entries.into_iter().map(|e| (e.id.clone(), e.get::<String>("b").unwrap_or_default())).collect();
                    if full {
                        owner.read_wanted = true;
                        room.apply_inputs(entries, Stream::In, ctx);
                    } else {
                        let arrived = std::mem::take(&mut owner.arrived);
                        room.apply_inputs(entries, Stream::In, ctx);
                        if let Some(owner) = room.owner.as_mut() {
                            if let Some(taken) = owner.taken_before.take() {
                                owner.core.seqids_seen_before(taken);
                            }
                        }
                        room.apply_inputs(arrived, Stream::In, ctx);
                    }
                }
                Err(e) => {
                    warn!("room {}: cannot read its inputs: {e}", room.channel_name);
                    ctx.run_later(READ_RETRY, |front, ctx| front.engine_mut().want_read(ctx));
                }
            }
            room.pump(ctx);
        }));
    }

    /// Applies inputs in stream order (those not seen before). What members or callers must
    /// see (events, answers, member changes) is committed at once; a push that only filled the
    /// reorder buffer waits for its release, so that a busy room commits once per release and
    /// not once per push.
    pub(super) fn apply_inputs(&mut self, entries: Vec<(String, String)>, stream: Stream, ctx: &mut Ctx) {
        let Some(owner) = self.owner.as_mut() else { return };
        let now = Now::real();
        let mut effects = Effects::default();
        let mut published = Published::default();
        let mut applied_any = false;
        for (id, body) in entries {
            // The other nodes' inputs may come twice (read, and carried by a wake-up); the
            // owner's own come once (stored by it, or read at its takeover).
            if stream == Stream::In {
                if owner.last_read != "-" && stream_id_le(&id, &owner.last_read) {
                    continue;
                }
                owner.last_read = id.clone();
                owner.pending.read_since_trim += 1;
            }
            applied_any = true;
            let (applied, held) = match stream {
                Stream::In => (&mut owner.applied, &mut owner.held),
                Stream::Own => (&mut owner.own.applied, &mut owner.own.held),
            };
            let already_applied = stream_id_le(&id, applied);
            let Ok(input) = serde_json::from_str::<Input>(&body) else {
                warn!("room {}: input {id} unreadable, skipped", self.channel_name);
                continue;
            };
            match input {
                Input::Push { gs, sq, t, st, items } => {
                    let items = items.into_iter().map(|(openid, raw)| DanmuItem::from_value(raw, &openid, t)).collect();
                    let seqid = (!sq.is_empty()).then(|| format!("s|{gs}/{sq}"));
                    let push = Push { game_sess: gs, seqid: sq, timestamp: t, status: st, items };
                    let (outcome, fx) = owner.core.push(push, now);
                    if let (IngestOutcome::Accepted { .. }, Some(seqid)) = (outcome, seqid) {
                        owner.seqids.push(seqid);
                    }
                    merge(&mut effects, fx);
                    // Its items, if any were taken, arrived before this number.
                    held.push_back((id.clone(), owner.core.arrivals() + 1));
                    if stream == Stream::Own {
                        owner.own_push_at = Some(Instant::now());
                    }
                }
                // Applied before the last commit: its effects are in the state already.
                _ if already_applied => {}
                Input::Join { s, n, p } => {
                    let (answer, fx) =
                        owner.core.join(JoinRequest { session: s, profile: p, last_seq: None, epoch: None }, now);
                    merge(&mut effects, fx);
                    if answer.is_ok() {
                        owner.node_of.insert(s, n);
                    }
                    published.joins.push(JoinAnswerWire { s, a: answer });
                }
                Input::Leave { s, why } => {
                    let (_, fx) = owner.core.leave(s, why, now);
                    merge(&mut effects, fx);
                    owner.node_of.remove(&s);
                }
                Input::Act { s, n, r, a } => {
                    let (answer, fx) = owner.core.act(s, a, now);
                    merge(&mut effects, fx);
                    published.acks.push(AckWire { n, r, a: answer });
                }
                Input::Status { st } => merge(&mut effects, owner.core.set_live_status(st, now)),
                Input::Notice { c, e, u } => merge(&mut effects, owner.core.notice(c, e, u, now)),
                Input::Handoff { n } => {
                    let quiet = owner.own_push_at.is_none_or(|at| at.elapsed() >= super::pushing::OWN_QUIET);
                    if n != self.shared.node_id && quiet {
                        owner.hand_to = Some(n);
                    }
                }
            }
            if !already_applied {
                *applied = id;
            }
        }
        if !applied_any {
            return;
        }
        if is_visible(&effects, &published) {
            self.commit(effects, published, ctx);
        } else {
            self.commit_later(ctx);
        }
        self.schedule_release(ctx);
        if self.owner.as_ref().is_some_and(|owner| owner.hand_to.is_some()) {
            self.pump(ctx);
        }
    }

    /// Stops acting as owner (the lease lapsed, another node took it, or Redis failed).
    /// Deletes the room's lease if it still names this node.
    pub(super) fn release_lease(&self) -> impl std::future::Future<Output = ()> + 'static {
        let (mut conn, scripts) = (self.shared.conn.clone(), self.scripts.clone());
        let (lease, node) = (self.key("lease"), self.shared.node_id.clone());
        async move {
            let released: redis::RedisResult<i64> = scripts.release.key(lease).arg(node).invoke_async(&mut conn).await;
            if let Err(e) = released {
                debug!("a lease was not given up ({e}); it runs out by itself");
            }
        }
    }

    pub(super) fn give_up(&mut self, ctx: &mut Ctx) {
        self.lease.lost();
        self.holder = None;
        if let Some(owner) = self.owner.take() {
            for timer in [owner.release_timer, owner.lazy_commit, owner.pending.timer].into_iter().flatten() {
                ctx.cancel_future(timer);
            }
            self.shared.bus.do_send(Unsubscribe { channel: self.key("wake") });
        }
    }

    /// Four times a second, with no Redis call unless this node's presence was renewed since
    /// the last look: an owner whose presence went stale gives the room up (another node may
    /// take it for gone any moment); the owner removes the members of dead nodes; a node with
    /// members here takes the room over once its holder is gone, so that the room goes on
    /// without waiting for an input.
    pub(super) fn watch(&mut self, ctx: &mut Ctx) {
        let liveness = &self.shared.liveness;
        if self.lease.is_owned() && !liveness.is_fresh(Instant::now()) {
            warn!("room {}: lease not renewed in time, giving the room up", self.channel_name);
            return self.give_up(ctx);
        }
        let round = liveness.round();
        if round == self.watched_round {
            return;
        }
        self.watched_round = round;
        if self.lease.is_owned() {
            return self.remove_members_of_dead_nodes(ctx);
        }
        // A node that asked for the room reads the lease until it names it (see `handoff`).
        let asked = self.pushing.waiting(Instant::now());
        if !(self.subscribed || self.claim_pending || asked) || self.lease != Lease::NotOurs {
            return;
        }
        if let Some((holder, _)) = self.holder.clone().filter(|_| !asked) {
            return self.claim_if_vacant(&holder, ctx);
        }
        let mut conn = self.shared.conn.clone();
        let lease = self.key("lease");
        let holder = async move {
            let holder: Option<String> = redis::cmd("GET").arg(lease).query_async(&mut conn).await.ok()?;
            Some(holder.unwrap_or_default())
        };
        ctx.spawn(wrap_future::<_, Front>(holder).map(|holder, front: &mut Front, ctx| {
            if let Some(holder) = holder {
                front.engine_mut().claim_if_vacant(&holder, ctx);
            }
        }));
    }

    /// The owner removes the members of nodes taken for dead (killed or cut off): `exit_room`
    /// for the others, seats freed, viewers corrected (docs/protocol.md 7). This node's presence
    /// judges, on evidence that this node was itself connected all along
    /// ([`crate::cluster::evidence`]); a node whose record merely lapsed in a Redis outage is
    /// not dead.
    fn remove_members_of_dead_nodes(&mut self, ctx: &mut Ctx) {
        let Some(owner) = &self.owner else { return };
        let mut nodes: Vec<String> = owner.node_of.values().filter(|n| **n != self.shared.node_id).cloned().collect();
        nodes.sort_unstable();
        nodes.dedup();
        if nodes.is_empty() {
            return;
        }
        let ask = self.shared.presence.send(DeadNodes { nodes });
        ctx.spawn(wrap_future::<_, Front>(ask).map(|dead, front: &mut Front, ctx| {
            let room = front.engine_mut();
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
}
