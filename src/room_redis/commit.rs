//! The owner's commits (see [`super::owner`]): what its core did, stored and published by
//! one entry in the room's events stream, fenced by its term, and one published message, one
//! at a time and in the order the core made them. What members or callers see is committed at once; what nobody sees yet (a
//! push that only filled the reorder buffer) waits for its release, or [`LAZY_COMMIT`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext};
use actors::room::{Effects, MemberChange, MembershipChanged, Now, SessionId};
use log::{debug, warn};

use super::state::{Ctx, Front, RedisEngine};
use super::wire::{Entry, MemberWire, Published, WireEvent};

/// How long inputs whose effects nobody sees yet wait for a commit at most.
pub const LAZY_COMMIT: Duration = Duration::from_secs(1);

impl RedisEngine {
    /// Inputs were applied whose effects nobody sees yet: they are committed with the next
    /// release, or after [`LAZY_COMMIT`] (so that the input stream is trimmed and a takeover
    /// reads little again).
    pub(super) fn commit_later(&mut self, ctx: &mut Ctx) {
        let Some(owner) = self.owner.as_mut() else { return };
        owner.dirty = true;
        if owner.lazy_commit.is_some() {
            return;
        }
        owner.lazy_commit = Some(ctx.run_later(LAZY_COMMIT, |front, ctx| {
            let room = front.engine_mut();
            let Some(owner) = room.owner.as_mut() else { return };
            owner.lazy_commit = None;
            if !owner.dirty {
                return;
            }
            // A release on its way commits what was applied with it: look again after it.
            if owner.release_timer.is_some() {
                return room.commit_later(ctx);
            }
            room.commit(Effects::default(), Published::default(), ctx);
        }));
    }

    /// Stages one batch of the owner's effects for the next commit (merged with any batch
    /// still waiting), and commits when the owner is free.
    pub(super) fn commit(&mut self, effects: Effects, published: Published, ctx: &mut Ctx) {
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

    /// Stores and publishes one batch of the owner's effects: one entry in the events stream,
    /// fenced by the term in its id (see `scripts::CLAIM`), then, once Redis took it, one
    /// published message. Two commands: the dedup keys, the state and the member changes ride
    /// in the entry, and reach their own keys with a checkpoint ([`super::checkpoint`]), once
    /// per many commits.
    pub(super) fn send_commit(&mut self, effects: Effects, mut published: Published, ctx: &mut Ctx) {
        if !self.shared.liveness.is_fresh(Instant::now()) {
            warn!("room {}: lease not renewed in time, giving the room up", self.channel_name);
            return self.give_up(ctx);
        }
        let history_len = self.shared.config.history_len.max(1) as u64;
        let Some(owner) = self.owner.as_mut() else { return };
        // Told once committed: a commit that fails is made again by the next owner.
        let membership = effects.membership.clone();
        // The input stream is trimmed no further than the oldest push that still has an item in
        // the reorder buffer (a room under steady load always holds some, but not old ones).
        let oldest_held = owner.core.oldest_held();
        for held in [&mut owner.held, &mut owner.own.held] {
            while held.front().is_some_and(|(_, end)| oldest_held.is_none_or(|oldest| *end <= oldest)) {
                held.pop_front();
            }
        }
        owner.dirty = false;
        // The dedup keys of the released items and of the pushes taken.
        let mut keys: Vec<String> = effects.released.iter().map(|k| format!("d|{k}")).collect();
        keys.append(&mut owner.seqids);
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
        let core_state = owner.core.state_without_members();
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
        let entry = Entry {
            last_seq: core_state.next_seq.saturating_sub(1),
            events: if published.events.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&published.events).unwrap_or_default()
            },
            state: Some((serde_json::to_string(&core_state).unwrap_or_default(), owner.applied.clone())),
            own_applied: Some(owner.own.applied.clone()),
            keys,
            members: changed.into_iter().collect(),
        };
        owner.commits += 1;
        let id = format!("{}-{}", owner.term, owner.commits);
        let trim_at =
            |held: &VecDeque<(String, u64)>, applied: &String| held.front().map_or(applied, |(id, _)| id).clone();
        let trim = (trim_at(&owner.held, &owner.applied), trim_at(&owner.own.held, &owner.own.applied));
        // The entry's fields are written; its state, keys and members then wait for the
        // checkpoint (moved, not copied).
        let fields = entry.fields();
        owner.pending.add(&id, entry, trim, core_state.next_seq.saturating_sub(history_len));
        let (events, channel) = (self.key("events"), self.key("ch"));
        let mut conn = self.shared.conn.clone();
        let run = async move {
            let _: String = redis::cmd("XADD").arg(&events).arg(&id).arg(&fields[..]).query_async(&mut conn).await?;
            if !message.is_empty() {
                conn.publish(&channel, &message).await?;
            }
            Ok::<_, redis::RedisError>(())
        };
        self.step_busy = true;
        ctx.spawn(wrap_future::<_, Front>(run).map(|answer, front: &mut Front, ctx| {
            let room = front.engine_mut();
            room.step_busy = false;
            debug!("room {}: commit answered {answer:?}", room.channel_name);
            // Refused for its id (a newer term's marker is in the stream: another node took the
            // room over), or failed: this ownership ends, and the next owner goes on from the
            // last entry Redis took.
            if let Err(e) = answer {
                warn!("room {}: commit refused or failed ({e}), giving the room up", room.channel_name);
                return room.give_up(ctx);
            }
            if let Some(hook) = &room.links.membership {
                for delta in membership {
                    hook.do_send(MembershipChanged { channel_name: room.channel_name.clone(), delta });
                }
            }
            room.committed(ctx);
            room.schedule_release(ctx);
            room.pump(ctx);
        }));
    }

    /// The release timer: due at the core's next release, its effects committed.
    pub(super) fn schedule_release(&mut self, ctx: &mut Ctx) {
        let Some(owner) = self.owner.as_mut() else { return };
        if owner.release_timer.is_some() {
            return;
        }
        if let Some(at) = owner.core.next_release() {
            let wait = at.saturating_duration_since(Instant::now());
            owner.release_timer = Some(ctx.run_later(wait, |front, ctx| {
                let room = front.engine_mut();
                let Some(owner) = room.owner.as_mut() else { return };
                owner.release_timer = None;
                let effects = owner.core.tick(Now::real());
                if is_visible(&effects, &Published::default()) || !effects.released.is_empty() {
                    room.commit(effects, Published::default(), ctx);
                } else {
                    // Nothing fell due yet (a timer a little early): no commit, look again.
                    room.schedule_release(ctx);
                }
            }));
        }
    }
}

/// Whether members or callers would see these effects (else their commit may wait).
pub(super) fn is_visible(effects: &Effects, published: &Published) -> bool {
    !(effects.events.is_empty()
        && effects.direct.is_empty()
        && effects.membership.is_empty()
        && effects.members.is_empty()
        && published.joins.is_empty()
        && published.acks.is_empty())
}

pub(super) fn merge(into: &mut Effects, from: Effects) {
    into.events.extend(from.events);
    into.direct.extend(from.direct);
    into.membership.extend(from.membership);
    into.released.extend(from.released);
    into.members.extend(from.members);
}
