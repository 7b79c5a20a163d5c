//! The owner's checkpoints (see [`super::commit`]): a commit is one entry in the events stream,
//! carrying its dedup keys, the core's state and its member changes; a checkpoint copies those
//! of the entries since the last one into the room's own keys (`seen`, `state` with the entry
//! it covers, `members`), with one fenced script ([`CHECKPOINT`](super::scripts::CHECKPOINT)),
//! and only then trims the streams: the input streams below what is applied and no longer held,
//! the events stream below the entries that hold the last `room.history_len` events. A new
//! owner reads the checkpoint and the entries after it.
//!
//! A checkpoint is due once [`COMMITS`] commits or [`KEYS`] dedup keys were made since the
//! last one, once the input stream grew by a quarter of its cap, or once the room went
//! [`QUIET`] with commits not covered: a room at one push a second pays one every four minutes,
//! an idle one a single one after its last commit.

use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext};
use log::{debug, warn};

use super::state::{Ctx, Front, Pending, RedisEngine};
use super::wire::Entry;

/// Commits after which a checkpoint is due.
pub const COMMITS: usize = 256;

/// Dedup keys after which a checkpoint is due.
pub const KEYS: usize = 1024;

/// How long a room goes without commits before the commits not covered are checkpointed.
pub const QUIET: Duration = Duration::from_secs(5);

impl Pending {
    /// A commit went out: entry `id`, whose input streams may be trimmed to `trim` (the
    /// other nodes', its own), and whose history keeps the events from `keep_from` on.
    pub(super) fn add(&mut self, id: &str, entry: Entry, trim: (String, String), keep_from: u64) {
        self.commits += 1;
        self.upto = id.to_string();
        if let Some((core, applied)) = entry.state {
            (self.core, self.applied) = (core, applied);
        }
        if let Some(own) = entry.own_applied {
            self.own_applied = own;
        }
        (self.trim_inputs, self.trim_own) = trim;
        self.keep_from = keep_from;
        self.keys.extend(entry.keys);
        self.members.extend(entry.members);
        self.history.push_back((id.to_string(), entry.last_seq));
    }

    /// Whether a count says a checkpoint is due now.
    fn full(&self, queue_len: usize) -> bool {
        self.commits >= COMMITS || self.keys.len() >= KEYS || self.read_since_trim >= queue_len / 4
    }

    /// The id below which the events stream may go: the entries this owner knows whose events
    /// all lie before `keep_from`, save the newest entry (they are dropped from `history`).
    fn trim_history(&mut self) -> String {
        let mut min_id = String::new();
        while self.history.len() >= 2 && self.history[0].1 < self.keep_from {
            self.history.pop_front();
            min_id = self.history[0].0.clone();
        }
        min_id
    }
}

impl RedisEngine {
    /// A commit was taken: a checkpoint is due now, or once the room goes quiet.
    pub(super) fn committed(&mut self, ctx: &mut Ctx) {
        let queue_len = self.shared.config.queue_len;
        let Some(owner) = self.owner.as_mut() else { return };
        let pending = &mut owner.pending;
        pending.last_commit = Some(Instant::now());
        if pending.full(queue_len) {
            pending.due = true;
        } else if pending.timer.is_none() {
            self.checkpoint_when_quiet(QUIET, ctx);
        }
    }

    fn checkpoint_when_quiet(&mut self, wait: Duration, ctx: &mut Ctx) {
        let Some(owner) = self.owner.as_mut() else { return };
        owner.pending.timer = Some(ctx.run_later(wait, |front, ctx| {
            let room = front.engine_mut();
            let Some(owner) = room.owner.as_mut() else { return };
            let pending = &mut owner.pending;
            pending.timer = None;
            if pending.commits == 0 {
                return;
            }
            let quiet_for = pending.last_commit.map_or(QUIET, |at| at.elapsed());
            if quiet_for < QUIET {
                return room.checkpoint_when_quiet(QUIET - quiet_for, ctx);
            }
            pending.due = true;
            room.pump(ctx);
        }));
    }

    /// Writes the checkpoint of the commits made since the last one (see the module's text).
    pub(super) fn send_checkpoint(&mut self, ctx: &mut Ctx) {
        let seen_cap = self.shared.config.dedup_len.saturating_mul(2);
        let Some(owner) = self.owner.as_mut() else { return };
        let pending = &mut owner.pending;
        pending.due = false;
        // Nothing to write (or no state to write: never a blank one over the last).
        if pending.commits == 0 || pending.core.is_empty() {
            return;
        }
        pending.commits = 0;
        let keys = std::mem::take(&mut pending.keys);
        let members = std::mem::take(&mut pending.members);
        pending.keys_since_trim += keys.len();
        let trim_seen = pending.keys_since_trim >= KEYS.min(seen_cap);
        if trim_seen {
            pending.keys_since_trim = 0;
        }
        let trim_inputs = if pending.trim_inputs != pending.trimmed {
            pending.trimmed = pending.trim_inputs.clone();
            pending.read_since_trim = 0;
            pending.trim_inputs.clone()
        } else {
            String::new()
        };
        let trim_own = if pending.trim_own != pending.own_trimmed {
            pending.own_trimmed = pending.trim_own.clone();
            pending.trim_own.clone()
        } else {
            String::new()
        };
        let trim_events = pending.trim_history();
        let mut args: Vec<String> = vec![
            self.shared.node_id.clone(),
            pending.core.clone(),
            pending.applied.clone(),
            pending.upto.clone(),
            actors::protocol::now_ms().to_string(),
            if trim_seen { seen_cap.to_string() } else { "0".to_string() },
            trim_inputs,
            trim_events,
            pending.own_applied.clone(),
            trim_own,
        ];
        args.push(keys.len().to_string());
        args.extend(keys);
        let (puts, dels): (Vec<_>, Vec<_>) = members.into_iter().partition(|(_, entry)| entry.is_some());
        args.push(puts.len().to_string());
        for (session, entry) in puts {
            args.extend([session.to_string(), entry.unwrap_or_default()]);
        }
        args.push(dels.len().to_string());
        args.extend(dels.into_iter().map(|(session, _)| session.to_string()));
        let keys: Vec<String> =
            ["lease", "state", "seen", "members", "in", "events", "own"].iter().map(|w| self.key(w)).collect();
        let (conn, scripts) = (self.shared.conn.clone(), self.scripts.clone());
        let run = async move { super::scripts::run::<i64>(&scripts.checkpoint, &keys, &args, conn).await };
        self.step_busy = true;
        ctx.spawn(wrap_future::<_, Front>(run).map(|answer, front: &mut Front, ctx| {
            let room = front.engine_mut();
            room.step_busy = false;
            debug!("room {}: checkpoint answered {answer:?}", room.channel_name);
            match answer {
                Ok(1) => room.pump(ctx),
                Ok(_) => {
                    warn!("room {}: another node holds its lease now, giving it up", room.channel_name);
                    room.give_up(ctx);
                }
                Err(e) => {
                    warn!("room {}: checkpoint failed ({e}), giving the room up", room.channel_name);
                    room.give_up(ctx);
                }
            }
        }));
    }
}
