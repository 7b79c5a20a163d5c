//! The owner's commits (see [`super::owner`]): what its core did, stored and published by
//! one fenced script ([`COMMIT`](super::scripts::COMMIT)), one at a time and in the order the
//! core made them. What members or callers see is committed at once; what nobody sees yet (a
//! push that only filled the reorder buffer) waits for its release, or [`LAZY_COMMIT`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext};
use actors::room::{Effects, MemberChange, MembershipChanged, Now, SessionId};
use log::{debug, warn};

use super::state::{Ctx, Front, RedisEngine};
use super::wire::{MemberWire, Published, WireEvent};

/// How long inputs whose effects nobody sees yet wait for a commit at most.
pub const LAZY_COMMIT: Duration = Duration::from_secs(1);

/// How often at most the owner trims its input stream.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Dedup keys written between two trims of the room's dedup set to its cap.
const SEEN_TRIM_EVERY: usize = 1024;

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

    /// Stores and publishes one batch of the owner's effects, fenced by the lease.
    pub(super) fn send_commit(&mut self, effects: Effects, mut published: Published, ctx: &mut Ctx) {
        if !self.shared.liveness.is_fresh(Instant::now()) {
            warn!("room {}: lease not renewed in time, giving the room up", self.channel_name);
            return self.give_up(ctx);
        }
        let Some(owner) = self.owner.as_mut() else { return };
        // Told once committed: a commit that fails is made again by the next owner.
        let membership = effects.membership.clone();
        // The input stream is trimmed no further than the oldest push that still has an item in
        // the reorder buffer (a room under steady load always holds some, but not old ones).
        let oldest_held = owner.core.oldest_held();
        while owner.held.front().is_some_and(|(_, end)| oldest_held.is_none_or(|oldest| *end <= oldest)) {
            owner.held.pop_front();
        }
        owner.dirty = false;
        // Trimmed every TRIM_EVERY, or once a quarter of the queue cap was read since: a new
        // owner reads a little more again, and a quiet room does not trim once per push.
        let mut trim = owner.held.front().map(|(id, _)| id.clone()).unwrap_or_else(|| owner.applied.clone());
        let now = Instant::now();
        let due = now.saturating_duration_since(owner.trimmed.1) >= TRIM_EVERY
            || owner.read_since_trim >= self.shared.config.queue_len / 4;
        if trim == owner.trimmed.0 || !due {
            trim = String::new();
        } else {
            owner.trimmed = (trim.clone(), now);
            owner.read_since_trim = 0;
        }
        // The dedup keys of the released items and of the pushes taken; the set is trimmed to
        // its cap once enough keys were added to matter.
        let mut seen: Vec<String> = effects.released.iter().map(|k| format!("d|{k}")).collect();
        seen.append(&mut owner.seqids);
        owner.seen_since_trim += seen.len();
        let seen_cap = self.shared.config.dedup_len.saturating_mul(2);
        let trim_seen = owner.seen_since_trim >= SEEN_TRIM_EVERY.min(seen_cap);
        if trim_seen {
            owner.seen_since_trim = 0;
        }
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
        let state = serde_json::to_string(&core_state).unwrap_or_default();
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
        // The commit's events go into the history as one entry, `<last seq>-1`; the history
        // keeps every entry with an event among the last `room.history_len`.
        let (last_seq, history) = match published.events.last() {
            Some(last) => (last.seq.to_string(), serde_json::to_string(&published.events).unwrap_or_default()),
            None => (String::new(), String::new()),
        };
        let keep_from = core_state.next_seq.saturating_sub(self.shared.config.history_len.max(1) as u64);
        let keys: Vec<String> =
            ["lease", "events", "state", "seen", "in", "members"].iter().map(|w| self.key(w)).collect();
        let mut args: Vec<String> = vec![
            self.shared.node_id.clone(),
            String::new(),
            if trim_seen { seen_cap.to_string() } else { "0".to_string() },
            actors::protocol::now_ms().to_string(),
            state,
            applied,
            trim,
            self.key("ch"),
            message,
            self.shared.conn.publish_command().to_string(),
            last_seq,
            history,
            format!("{keep_from}-0"),
        ];
        args.push(seen.len().to_string());
        args.extend(seen);
        let (puts, dels): (Vec<_>, Vec<_>) = changed.into_iter().partition(|(_, entry)| entry.is_some());
        args.push(puts.len().to_string());
        for (session, entry) in puts {
            args.extend([session.to_string(), entry.unwrap_or_default()]);
        }
        args.push(dels.len().to_string());
        args.extend(dels.into_iter().map(|(session, _)| session.to_string()));
        let conn = self.shared.conn.clone();
        let scripts = self.scripts.clone();
        let run = async move { super::scripts::run::<i64>(&scripts.commit, &keys, &args, conn).await };
        self.step_busy = true;
        ctx.spawn(wrap_future::<_, Front>(run).map(|answer, front: &mut Front, ctx| {
            let room = front.engine_mut();
            room.step_busy = false;
            debug!("room {}: commit answered {answer:?}", room.channel_name);
            match answer {
                Ok(1) => {
                    if let Some(hook) = &room.links.membership {
                        for delta in membership {
                            hook.do_send(MembershipChanged { channel_name: room.channel_name.clone(), delta });
                        }
                    }
                }
                Ok(_) => {
                    warn!("room {}: another node holds its lease now, giving it up", room.channel_name);
                    return room.give_up(ctx);
                }
                // Also an events stream already ahead of this owner (its first XADD fails).
                Err(e) => {
                    warn!("room {}: commit failed ({e}), giving it up", room.channel_name);
                    return room.give_up(ctx);
                }
            }
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
