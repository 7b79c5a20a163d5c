//! A node's hold on one room's lease (`room:{C}:lease` in Redis), as a typed state: which
//! step of owning the room this node is at, and the rules that move it from one to the next.
//! The engine ([`super::engine`]) makes the Redis calls; this decides what they mean. Pure, so
//! that each transition is tested on its own.
//!
//! The lease names the node that owns the room and has no expiry of its own: it holds while
//! that node's presence record does ([`crate::cluster::liveness`]), so an owned room renews
//! nothing. A node that uses the room claims it when nobody holds it, when it still names
//! this node, or when its holder's record was missing at this node's last renewal; it gives it
//! up when a commit finds another holder, when its own presence was not renewed in time
//! (another node may take it for gone any moment), or when it shuts down (it hands its rooms
//! on, and claims nothing more).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Another node holds it, or nobody does and this node has not asked.
    NotOurs,
    /// A claim is on its way to Redis.
    Claiming,
    /// Won: the room's state is being read from Redis before this node numbers anything.
    Restoring,
    /// This node owns the room.
    Owned,
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
    /// Whether to claim the lease now. `vacant`: nobody holds it, it names this node, or its
    /// holder is gone. `commit_in_flight`: an earlier ownership's commit is still unanswered
    /// (a new ownership waits for it, so that commits reach Redis in the order they were made).
    pub fn should_claim(self, vacant: bool, commit_in_flight: bool) -> bool {
        self == Lease::NotOurs && vacant && !commit_in_flight
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

    /// The room's state is restored: this node owns it now.
    pub fn restored(&mut self) -> bool {
        if *self == Lease::Restoring {
            *self = Lease::Owned;
            return true;
        }
        false
    }

    /// Ownership ended (another node holds the lease, a commit failed, the presence went stale).
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
        self == Lease::Owned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vacant_lease_is_claimed_and_owned_once_the_state_is_restored() {
        let mut lease = Lease::NotOurs;
        assert!(lease.should_claim(true, false));
        lease.claim();
        assert_eq!(lease, Lease::Claiming);
        assert!(!lease.should_claim(true, false), "one claim at a time");
        assert_eq!(lease.claimed(true), Claimed::TakeOver);
        assert!(!lease.is_owned(), "not before the state is restored");
        assert!(lease.restored());
        assert_eq!(lease, Lease::Owned);
    }

    #[test]
    fn a_held_lease_or_a_commit_in_flight_holds_the_claim_back() {
        let lease = Lease::NotOurs;
        assert!(!lease.should_claim(false, false));
        assert!(!lease.should_claim(true, true), "an earlier ownership's commit first");
        let mut lease = Lease::Claiming;
        assert_eq!(lease.claimed(false), Claimed::Lost);
        assert_eq!(lease, Lease::NotOurs);
    }

    #[test]
    fn a_node_that_lost_the_room_may_claim_it_again_once_it_is_vacant() {
        let mut lease = Lease::Owned;
        lease.lost();
        assert_eq!(lease, Lease::NotOurs);
        assert!(!lease.should_claim(false, false), "another node holds it now");
        assert!(lease.should_claim(true, false), "once that one gives it up or is gone");
    }

    #[test]
    fn a_node_handing_its_rooms_on_claims_nothing_and_gives_back_a_claim_it_wins() {
        let mut lease = Lease::Claiming;
        lease.hand_on();
        assert_eq!(lease.claimed(true), Claimed::GiveBack);
        assert_eq!(lease, Lease::HandedOn);
        assert!(!lease.should_claim(true, false));
        lease.lost();
        assert_eq!(lease, Lease::HandedOn, "handed on for good");
        assert!(!lease.restored());
    }
}
