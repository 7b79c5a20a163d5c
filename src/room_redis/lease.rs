//! A node's hold on one room's lease (`room:{C}:lease` in Redis), as a typed state: which
//! step of owning the room this node is at, and the rules that move it from one to the next.
//! The engine ([`super::engine`]) makes the Redis calls; this decides what they mean. Pure, with
//! the clock passed in, so that each transition is tested on its own.
//!
//! The lease is claimed with `SET NX PX` by a node that uses the room, renewed every third of
//! `store.node_ttl_ms`, and given up when a commit finds another holder, when a renewal did
//! not succeed in time (another node may take it for dead any moment), or when this node
//! shuts down (it hands its rooms on, and claims nothing more).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Another node holds it, or nobody does and this node has not asked.
    NotOurs,
    /// A claim is on its way to Redis.
    Claiming,
    /// Won: the room's state is being read from Redis before this node numbers anything.
    Restoring,
    /// This node owns the room; the lease was last renewed (or claimed) at `renewed`.
    Owned { renewed: Instant },
    /// This node shuts down: it gave the room up and never claims it again.
    HandedOn,
}

/// What to do with a claim's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// Restore the room and start owning it.
    TakeOver,
    /// Lost: someone else holds it.
    Lost,
    /// Won while handing rooms on: give it straight back.
    GiveBack,
}

impl Lease {
    /// Whether to claim the lease now that its holder is known to be `holder` ("" = nobody).
    /// `commit_in_flight`: an earlier ownership's commit is still unanswered (a new ownership
    /// waits for it, so that commits reach Redis in the order they were made).
    pub fn should_claim(self, holder: &str, me: &str, commit_in_flight: bool) -> bool {
        self == Lease::NotOurs && (holder.is_empty() || holder == me) && !commit_in_flight
    }

    /// A claim goes out.
    pub fn claim(&mut self) {
        if *self == Lease::NotOurs {
            *self = Lease::Claiming;
        }
    }

    /// The claim's answer came.
    pub fn claimed(&mut self, won: bool) -> Claimed {
        match (*self, won) {
            (Lease::HandedOn, true) => Claimed::GiveBack,
            (Lease::HandedOn, false) => Claimed::Lost,
            (_, true) => {
                *self = Lease::Restoring;
                Claimed::TakeOver
            }
            (_, false) => {
                *self = Lease::NotOurs;
                Claimed::Lost
            }
        }
    }

    /// The room's state is restored: this node owns it from `now`.
    pub fn restored(&mut self, now: Instant) -> bool {
        if *self == Lease::Restoring {
            *self = Lease::Owned { renewed: now };
            return true;
        }
        false
    }

    /// A renewal sent at `sent` was answered: `ours` tells whether the lease still named us.
    pub fn renewed(&mut self, ours: bool, sent: Instant) {
        if let Lease::Owned { renewed } = self {
            if ours {
                *renewed = (*renewed).max(sent);
            } else {
                *self = Lease::NotOurs;
            }
        }
    }

    /// True when the lease was not renewed for two thirds of `ttl`: another node may take it
    /// for dead any moment, so nothing more may be committed under it.
    pub fn is_stale(self, now: Instant, ttl: Duration) -> bool {
        matches!(self, Lease::Owned { renewed } if now.saturating_duration_since(renewed) > ttl * 2 / 3)
    }

    /// Ownership ended (another node holds the lease, a commit failed, it went stale).
    pub fn lost(&mut self) {
        if *self != Lease::HandedOn {
            *self = Lease::NotOurs;
        }
    }

    /// This node shuts down.
    pub fn hand_on(&mut self) {
        *self = Lease::HandedOn;
    }

    pub fn is_owned(self) -> bool {
        matches!(self, Lease::Owned { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(3000);

    #[test]
    fn a_vacant_lease_is_claimed_and_owned_once_the_state_is_restored() {
        let mut lease = Lease::NotOurs;
        assert!(lease.should_claim("", "a", false));
        assert!(lease.should_claim("a", "a", false), "a lease that still names us (a restart)");
        lease.claim();
        assert_eq!(lease, Lease::Claiming);
        assert!(!lease.should_claim("", "a", false), "one claim at a time");
        assert_eq!(lease.claimed(true), Claimed::TakeOver);
        assert!(!lease.is_owned(), "not before the state is restored");
        let t0 = Instant::now();
        assert!(lease.restored(t0));
        assert_eq!(lease, Lease::Owned { renewed: t0 });
    }

    #[test]
    fn another_holder_or_a_commit_in_flight_holds_the_claim_back() {
        let lease = Lease::NotOurs;
        assert!(!lease.should_claim("b", "a", false));
        assert!(!lease.should_claim("", "a", true), "an earlier ownership's commit first");
        let mut lease = Lease::Claiming;
        assert_eq!(lease.claimed(false), Claimed::Lost);
        assert_eq!(lease, Lease::NotOurs);
    }

    #[test]
    fn renewals_keep_it_fresh_and_a_missed_one_makes_it_stale() {
        let t0 = Instant::now();
        let mut lease = Lease::Owned { renewed: t0 };
        assert!(!lease.is_stale(t0 + TTL / 2, TTL));
        lease.renewed(true, t0 + TTL / 3);
        assert!(!lease.is_stale(t0 + TTL, TTL));
        assert!(lease.is_stale(t0 + TTL + TTL * 2 / 3 + Duration::from_millis(1), TTL));
        lease.renewed(true, t0);
        assert_eq!(lease, Lease::Owned { renewed: t0 + TTL / 3 }, "a late answer to an older renewal");
    }

    #[test]
    fn a_renewal_that_finds_another_holder_ends_the_ownership() {
        let t0 = Instant::now();
        let mut lease = Lease::Owned { renewed: t0 };
        lease.renewed(false, t0);
        assert_eq!(lease, Lease::NotOurs);
    }

    #[test]
    fn a_node_taken_for_dead_that_comes_back_loses_the_room_and_may_claim_it_again_later() {
        let t0 = Instant::now();
        // Frozen: no renewal for longer than the lease; another node took the room meanwhile.
        let mut lease = Lease::Owned { renewed: t0 };
        assert!(lease.is_stale(t0 + TTL * 2, TTL));
        lease.lost();
        assert_eq!(lease, Lease::NotOurs);
        assert!(!lease.should_claim("b", "a", false), "b holds it now");
        assert!(lease.should_claim("", "a", false), "once b gives it up");
    }

    #[test]
    fn a_node_handing_its_rooms_on_claims_nothing_and_gives_back_a_claim_it_wins() {
        let mut lease = Lease::Claiming;
        lease.hand_on();
        assert_eq!(lease.claimed(true), Claimed::GiveBack);
        assert_eq!(lease, Lease::HandedOn);
        assert!(!lease.should_claim("", "a", false));
        lease.lost();
        assert_eq!(lease, Lease::HandedOn, "handed on for good");
        assert!(!lease.restored(Instant::now()));
    }
}
