//! A room moves to the node its pushes arrive on. BIGO pushes a room's danmu over one
//! connection, to one node; when that node does not own the room, each push costs a Lua call
//! and a wake-up on top of the owner's commit, where the owner's own pushes cost one `XADD`
//! (see `RedisEngine::send_own`). So a node that has been the room's only pusher for a while
//! asks the owner for it, with an input in the room's stream ([`Pushing`]); the owner hands the
//! lease over unless it got pushes of its own lately ([`OWN_QUIET`]), by one fenced script
//! ([`HANDOFF`](super::scripts::HANDOFF)), and stops owning the room; the asking node sees the
//! lease name it (with its next inputs, or by reading it at its presence renewals while it
//! waits) and takes the room over as after any claim. Rooms pushed from several nodes stay
//! where they are.

use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext};
use log::{info, warn};

use super::state::{Ctx, Front, RedisEngine};
use super::wire::Input as WireInput;

/// How long a node must have been pushing to a room it does not own before it asks for it.
pub const AFTER: Duration = Duration::from_secs(5);

/// Pushes it must have sent in that run, at the least.
pub const MIN_PUSHES: u32 = 3;

/// A gap between two pushes that ends a run.
pub const RUN_GAP: Duration = Duration::from_secs(5);

/// How long after asking a node waits for the lease (reading it at each presence renewal);
/// and how long before it asks again.
pub const WAIT: Duration = Duration::from_secs(3);
pub const ASK_AGAIN: Duration = Duration::from_secs(60);

/// An owner that got a push of its own this recently keeps the room.
pub const OWN_QUIET: Duration = Duration::from_secs(5);

/// The pushes a node stores for a room it does not own.
#[derive(Debug, Default)]
pub struct Pushing {
    run_since: Option<Instant>,
    last: Option<Instant>,
    pushes: u32,
    asked: Option<Instant>,
}

impl Pushing {
    /// A push of this node goes into the room's input stream: whether to ask for the room now.
    pub fn pushed(&mut self, now: Instant) -> bool {
        if self.last.is_none_or(|last| now.saturating_duration_since(last) > RUN_GAP) {
            (self.run_since, self.pushes) = (Some(now), 0);
        }
        self.last = Some(now);
        self.pushes = self.pushes.saturating_add(1);
        let long_enough = self.run_since.is_some_and(|since| now.saturating_duration_since(since) >= AFTER);
        let not_lately = self.asked.is_none_or(|at| now.saturating_duration_since(at) >= ASK_AGAIN);
        if long_enough && self.pushes >= MIN_PUSHES && not_lately {
            self.asked = Some(now);
            return true;
        }
        false
    }

    /// Asked, and waiting for the lease.
    pub fn waiting(&self, now: Instant) -> bool {
        self.asked.is_some_and(|at| now.saturating_duration_since(at) < WAIT)
    }
}

impl RedisEngine {
    /// A push of this node went into the room's stream: it asks for the room when it has been
    /// its only pusher for a while (the owner decides).
    pub(super) fn pushed_here(&mut self, ctx: &mut Ctx) {
        if self.owner.is_some() || !self.pushing.pushed(Instant::now()) {
            return;
        }
        info!(
            "room {}: node {} asks its owner for it (its pushes arrive here)",
            self.channel_name, self.shared.node_id
        );
        // Read again with the next inputs, and at each renewal while waiting (`owner::watch`).
        self.holder = None;
        let ask = WireInput::Handoff { n: self.shared.node_id.clone() };
        self.send_input(&ask, super::state::Answer::None, ctx);
    }

    /// The owner gives the lease to `to` (it asked), then stops owning the room: whatever it
    /// applied and did not commit, `to` reads again from the streams, as after any takeover.
    pub(super) fn send_handoff(&mut self, to: String, ctx: &mut Ctx) {
        let (mut conn, scripts) = (self.shared.conn.clone(), self.scripts.clone());
        let (lease, node) = (self.key("lease"), self.shared.node_id.clone());
        let given = to.clone();
        let run = async move { scripts.handoff.key(lease).arg(node).arg(given).invoke_async::<i64>(&mut conn).await };
        self.step_busy = true;
        ctx.spawn(wrap_future::<_, Front>(run).map(move |answer, front: &mut Front, ctx| {
            let room = front.engine_mut();
            room.step_busy = false;
            match answer {
                Ok(1) => {
                    info!(
                        "room {}: node {} hands it to node {to} (its pushes arrive there)",
                        room.channel_name, room.shared.node_id
                    );
                    room.give_up(ctx);
                }
                Ok(_) => {
                    warn!("room {}: another node holds its lease now, giving it up", room.channel_name);
                    room.give_up(ctx);
                }
                Err(e) => {
                    warn!("room {}: could not hand it to node {to} ({e}); keeping it", room.channel_name);
                    room.pump(ctx);
                }
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_asks_once_it_has_pushed_for_a_while_and_not_again_soon() {
        let start = Instant::now();
        let mut pushing = Pushing::default();
        let at = |s: u64| start + Duration::from_secs(s);
        assert!(!pushing.pushed(at(0)));
        assert!(!pushing.pushed(at(1)));
        assert!(!pushing.pushed(at(3)), "not for long enough");
        assert!(pushing.pushed(at(5)), "5 s of pushes, 4 of them");
        assert!(pushing.waiting(at(6)));
        assert!(!pushing.waiting(at(9)));
        for s in (7..65).step_by(2) {
            assert!(!pushing.pushed(at(s)), "not again within a minute ({s} s)");
        }
        assert!(pushing.pushed(at(66)), "a minute later");
    }

    #[test]
    fn a_gap_starts_a_new_run() {
        let start = Instant::now();
        let mut pushing = Pushing::default();
        let at = |s: u64| start + Duration::from_secs(s);
        assert!(!pushing.pushed(at(0)));
        assert!(!pushing.pushed(at(2)));
        assert!(!pushing.pushed(at(10)), "a gap of 8 s: a new run");
        assert!(!pushing.pushed(at(12)));
        assert!(pushing.pushed(at(15)));
    }
}
