//! The pushes a node stores for a room it does not own, and when it asks the owner for the room
//! (see [`super::handoff`]): pure, so that the rule is tested on its own.

use std::time::{Duration, Instant};

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
