//! What one node knows of one room on Redis: the [`RedisEngine`]'s fields, read and changed by
//! [`super::engine`] (every node's side) and [`super::owner`] (the owner's side), and the
//! [`Owner`]'s. Kept apart so that neither side depends on the other.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use actix::{Context, SpawnHandle};
use actors::room::{Effects, IngestOutcome, Now, RoomCore, RoomFront, RoomLinks, SessionId};
use tokio::sync::oneshot;

use super::lease::Lease;
use super::pushing::Pushing;
use super::scripts::Scripts;
use super::wire::Published;
use super::SharedRooms;

pub type Front = RoomFront<RedisEngine>;
pub type Ctx = Context<Front>;

/// What to do with an input's fate once Redis answered.
pub(super) enum Answer {
    Push { reply: oneshot::Sender<IngestOutcome>, items: usize },
    Join(SessionId),
    Act(u64),
    None,
}

/// An input waiting to be sent (see [`RedisEngine::send_outbox`]).
pub(super) struct Outgoing {
    pub(super) kind: &'static str,
    pub(super) body: String,
    pub(super) answer: Answer,
}

pub struct RedisEngine {
    pub(super) channel_name: String,
    pub(super) shared: SharedRooms,
    pub(super) links: RoomLinks,
    pub(super) scripts: Arc<Scripts>,
    /// Inputs waiting for the call on its way to answer.
    pub(super) outbox: Vec<Outgoing>,
    pub(super) outbox_busy: bool,
    /// Subscribed to the room's channel (this node has members here), or on its way.
    pub(super) subscribed: bool,
    /// The subscription is on its way: inputs wait, so that a join's answer is not missed.
    pub(super) subscribing: bool,
    /// The last seq handed to the front (None before any).
    pub(super) delivered: Option<u64>,
    pub(super) lease: Lease,
    pub(super) owner: Option<Owner>,
    /// One of the owner's reads or commits is on its way to Redis (at most one at a time, and
    /// a new ownership waits for an earlier one's).
    pub(super) step_busy: bool,
    pub(super) last_activity: Instant,
    /// The lease's holder as Redis last told it ("" = nobody; `None`: not known), and when
    /// this node learnt it. Asked for with the inputs only while not known (see `INGEST`).
    pub(super) holder: Option<(String, Instant)>,
    /// When the input stream's length was last read, and what it was: a node reads it with
    /// its inputs every [`QUEUE_CHECK_EVERY`](super::engine::QUEUE_CHECK_EVERY), and sooner
    /// once that length and what it stored since reach a quarter of the cap.
    pub(super) queue_checked: Option<(Instant, u64)>,
    /// Inputs this node stored since it last read the stream's length.
    pub(super) stored_since_check: u64,
    /// The presence renewal this room last looked at (see `owner::watch`).
    pub(super) watched_round: u64,
    /// The lease was vacant when this node could not claim it yet (its presence not written
    /// or stale): it claims after its next renewal.
    pub(super) claim_pending: bool,
    /// The pushes this node stores while it does not own the room (see `handoff`).
    pub(super) pushing: Pushing,
}

impl RedisEngine {
    pub fn new(channel_name: String, shared: SharedRooms, links: RoomLinks) -> Self {
        Self {
            channel_name,
            shared,
            links,
            scripts: Arc::new(Scripts::new()),
            outbox: Vec::new(),
            outbox_busy: false,
            subscribed: false,
            subscribing: false,
            delivered: None,
            lease: Lease::NotOurs,
            owner: None,
            step_busy: false,
            last_activity: Instant::now(),
            holder: None,
            queue_checked: None,
            stored_since_check: 0,
            watched_round: 0,
            claim_pending: false,
            pushing: Pushing::default(),
        }
    }

    pub(super) fn key(&self, what: &str) -> String {
        self.shared.keys.room(&self.channel_name, what)
    }
}

/// The owner's state: the core and where it is in the input stream.
pub struct Owner {
    pub(super) core: RoomCore,
    /// This ownership's term (see `scripts::CLAIM`): its commits are entries `<term>-<n>`.
    pub(super) term: u64,
    /// Commits made in this term (the last entry's `n`).
    pub(super) commits: u64,
    /// The last input read (stream id).
    pub(super) last_read: String,
    /// The last input applied and committed.
    pub(super) applied: String,
    /// Push inputs that may have items in the reorder buffer, oldest first: each with the
    /// arrival number after its last item's (see `RoomCore::oldest_held`).
    pub(super) held: VecDeque<(String, u64)>,
    /// Effects applied to the core and not yet sent to Redis (see [`RedisEngine::pump`]).
    pub(super) staged: Option<(Effects, Published)>,
    /// The input stream may hold inputs not read yet (the wake-up channel was subscribed
    /// again, a full page).
    pub(super) read_wanted: bool,
    /// A read of the input stream is on its way: inputs that wake-ups carry meanwhile wait
    /// here, and those the read did not return are applied after it.
    pub(super) reading: bool,
    pub(super) arrived: Vec<(String, String)>,
    /// Inputs were applied since the last commit whose effects are not committed yet (a push
    /// that only filled the reorder buffer): committed with the next release, or after
    /// [`LAZY_COMMIT`](super::commit::LAZY_COMMIT) at the latest.
    pub(super) dirty: bool,
    pub(super) lazy_commit: Option<SpawnHandle>,
    /// The dedup keys of the pushes applied since the last commit (`s|game_sess/seqid`).
    pub(super) seqids: Vec<String>,
    /// The seqids of the pushes taken before this ownership (`game_sess/seqid`), for the core
    /// once the stream's backlog is read.
    pub(super) taken_before: Option<Vec<String>>,
    /// Which node each member session is on (direct frames, answers).
    pub(super) node_of: HashMap<SessionId, String>,
    pub(super) release_timer: Option<SpawnHandle>,
    /// What the next checkpoint writes (see [`super::checkpoint`]).
    pub(super) pending: Pending,
    /// This node's own inputs, in the room's `own` stream (see `RedisEngine::send_own`).
    pub(super) own: OwnInputs,
    /// When the owner last applied a push of its own node, and the node it will hand the
    /// room to (it asked, and this node got none of its own lately: see `handoff`).
    pub(super) own_push_at: Option<Instant>,
    pub(super) hand_to: Option<String>,
}

/// The inputs of the owner's own node: its front hands them to its core directly, once stored
/// in the room's `own` stream with ids of the owner's term (`<term>-<n>`), so that the stream
/// takes none from an owner that lost the room. A new owner reads the stream at its takeover.
#[derive(Default)]
pub struct OwnInputs {
    /// Inputs stored in this term: the last id's `n`.
    pub(super) stored: u64,
    /// The last one applied, and the pushes that may still have items in the reorder buffer
    /// (as `Owner::held`).
    pub(super) applied: String,
    pub(super) held: VecDeque<(String, u64)>,
}

/// Which stream an input came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `room:{C}:in`: the other nodes' inputs (and this node's before it owned the room).
    In,
    /// `room:{C}:own`: the owner's own.
    Own,
}

/// The commits made since the last checkpoint, and what a checkpoint of them writes.
#[derive(Default)]
pub struct Pending {
    /// Commits not covered by a checkpoint yet.
    pub(super) commits: usize,
    /// The newest committed entry's id, and its state: the core (JSON) and the last input.
    pub(super) upto: String,
    pub(super) core: String,
    pub(super) applied: String,
    /// Where the input streams may be trimmed to, and the first event the history keeps, as of
    /// the newest commit; the last own input applied.
    pub(super) trim_inputs: String,
    pub(super) trim_own: String,
    pub(super) own_applied: String,
    pub(super) keep_from: u64,
    /// The commits' dedup keys, and the member hash's changes (the last one per session).
    pub(super) keys: Vec<String>,
    pub(super) members: HashMap<SessionId, Option<String>>,
    /// A checkpoint is due (a count was reached, or the room went quiet).
    pub(super) due: bool,
    pub(super) timer: Option<SpawnHandle>,
    pub(super) last_commit: Option<Instant>,
    /// The entries of the events stream this owner knows (read at its takeover, or written),
    /// oldest first, with their last seqs: the history is trimmed by them.
    pub(super) history: VecDeque<(String, u64)>,
    /// Dedup keys written since the dedup set was last trimmed.
    pub(super) keys_since_trim: usize,
    /// The ids the input streams were last trimmed to; inputs read since then.
    pub(super) trimmed: String,
    pub(super) own_trimmed: String,
    pub(super) read_since_trim: usize,
}

impl Owner {
    /// Nothing held, nobody in the room, and nothing left to commit.
    pub fn is_idle(&self) -> bool {
        self.core.is_idle(Now::real()) && self.staged.is_none() && !self.dirty && self.release_timer.is_none()
    }
}
