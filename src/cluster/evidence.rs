//! `Evidence`: what this node has seen of the other nodes' presence records, and for how long,
//! so that it takes a node for dead only on evidence that it was itself fine to judge
//! (docs/protocol.md 7; the rule is in docs/protocol.md 7, "How a node is taken for dead").
//!
//! A node is dead in this node's eyes only when **both** hold:
//! - this node has been connected to Redis for longer than `store.node_ttl_ms`: its own
//!   renewals succeeded all that time, none more than [`Evidence::max_gap`] after the last
//!   (a node frozen or cut off for that long starts counting again);
//! - it has seen that node's record missing, at every renewal, for longer than
//!   `store.node_ttl_ms`.
//!
//! After a Redis outage that every node saw, nobody has been connected long enough to judge
//! until every live node had time to write its record again; a record lost with a Redis restart
//! is written again within a renewal. A node frozen or cut off on its own is seen missing by
//! nodes that stayed connected, and is taken for dead.
//!
//! Pure, with the clock passed in; the presence actor ([`super::presence`]) feeds it every
//! renewal and asks it on behalf of the rooms' owners.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct Evidence {
    ttl: Duration,
    /// Since when every renewal of this node's own record succeeded (`None`: the last failed,
    /// or none yet).
    connected_since: Option<Instant>,
    /// The last renewal that succeeded, while connected.
    last_renewed: Option<Instant>,
    /// Each watched node whose record was missing at every renewal since this instant.
    missing_since: HashMap<String, Instant>,
}

impl Evidence {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, connected_since: None, last_renewed: None, missing_since: HashMap::new() }
    }

    /// The longest time between two successful renewals that still counts as staying
    /// connected: less than a record's lifetime, so that a record seen missing at two renewals
    /// in a row was missing all the time between (one written in between would still be there).
    pub fn max_gap(&self) -> Duration {
        self.ttl * 2 / 3
    }

    /// This node's renewal succeeded at `now`; `seen` tells, for every watched node, whether
    /// its record was there.
    pub fn renewed<'a>(&mut self, now: Instant, seen: impl IntoIterator<Item = (&'a str, bool)>) {
        let gap_too_long = self.last_renewed.is_none_or(|last| now.saturating_duration_since(last) > self.max_gap());
        if gap_too_long || self.connected_since.is_none() {
            // Back from an outage, a freeze or a start: nothing seen before counts.
            self.connected_since = Some(now);
            self.missing_since.clear();
        }
        self.last_renewed = Some(now);
        let mut missing = HashMap::new();
        for (node, present) in seen {
            if !present {
                let since = self.missing_since.get(node).copied().unwrap_or(now);
                missing.insert(node.to_string(), since);
            }
        }
        self.missing_since = missing;
    }

    /// This node's renewal failed: it has seen nothing it may judge by.
    pub fn failed(&mut self) {
        self.connected_since = None;
        self.last_renewed = None;
        self.missing_since.clear();
    }

    /// Whether `node` may be taken for dead at `now`.
    pub fn is_dead(&self, node: &str, now: Instant) -> bool {
        let longer_than_ttl = |since: Instant| now.saturating_duration_since(since) > self.ttl;
        let fresh = self.last_renewed.is_some_and(|last| now.saturating_duration_since(last) <= self.max_gap());
        fresh
            && self.connected_since.is_some_and(longer_than_ttl)
            && self.missing_since.get(node).copied().is_some_and(longer_than_ttl)
    }

    /// Whether `node`'s record was missing at the last renewal.
    pub fn seen_missing(&self, node: &str) -> bool {
        self.missing_since.contains_key(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(3000);
    const EVERY: Duration = Duration::from_millis(1000);

    /// Renewals every second from `from` for `n` seconds, with `b` present or not.
    fn renew(e: &mut Evidence, from: Instant, n: u32, b_present: bool) -> Instant {
        let mut at = from;
        for i in 0..n {
            at = from + EVERY * i;
            e.renewed(at, [("b", b_present)]);
        }
        at
    }

    #[test]
    fn a_node_missing_longer_than_the_ttl_to_an_observer_connected_that_long_is_dead() {
        let t0 = Instant::now();
        let mut e = Evidence::new(TTL);
        let t = renew(&mut e, t0, 5, true);
        let t = renew(&mut e, t + EVERY, 3, false);
        assert!(!e.is_dead("b", t), "missing for 2 s only");
        let t = renew(&mut e, t + EVERY, 2, false);
        assert!(e.is_dead("b", t), "missing since 4 s");
        assert!(!e.is_dead("c", t), "never seen missing");
    }

    #[test]
    fn after_an_outage_everybody_saw_nobody_is_judged_before_they_could_write_again() {
        let t0 = Instant::now();
        let mut e = Evidence::new(TTL);
        let t = renew(&mut e, t0, 5, true);
        // Redis down for 10 s: every renewal fails; every record expired meanwhile.
        e.failed();
        let back = t + Duration::from_secs(10);
        // b writes its record again within a renewal or two.
        e.renewed(back, [("b", false)]);
        e.renewed(back + EVERY, [("b", false)]);
        assert!(!e.is_dead("b", back + EVERY * 3), "not connected for the ttl yet");
        e.renewed(back + EVERY * 2, [("b", true)]);
        let t = renew(&mut e, back + EVERY * 3, 5, true);
        assert!(!e.is_dead("b", t));
    }

    #[test]
    fn an_observer_frozen_longer_than_the_gap_starts_counting_again() {
        let t0 = Instant::now();
        let mut e = Evidence::new(TTL);
        let t = renew(&mut e, t0, 6, false);
        assert!(e.is_dead("b", t));
        // Frozen for 5 s: what it saw before does not count, nor does an old renewal.
        assert!(!e.is_dead("b", t + Duration::from_secs(5)), "no fresh renewal");
        let back = t + Duration::from_secs(5);
        e.renewed(back, [("b", false)]);
        assert!(!e.is_dead("b", back), "it starts counting again");
        let t = renew(&mut e, back + EVERY, 4, false);
        assert!(e.is_dead("b", t));
    }

    #[test]
    fn a_node_seen_again_is_not_missing_any_more() {
        let t0 = Instant::now();
        let mut e = Evidence::new(TTL);
        let t = renew(&mut e, t0, 4, false);
        e.renewed(t + EVERY, [("b", true)]);
        assert!(!e.seen_missing("b"));
        let t = renew(&mut e, t + EVERY * 2, 3, false);
        assert!(!e.is_dead("b", t), "missing for 2 s since it came back");
    }
}
