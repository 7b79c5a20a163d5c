//! What this node's presence last saw of the nodes, shared with its rooms (docs/protocol.md 7).
//!
//! A room's lease names the node that owns it and holds for as long as that node's presence
//! record does: the owner renews nothing per room, so an idle owned room costs Redis nothing.
//! Another node takes a room over once the holder's record was missing at its own last
//! renewal, and a node owns rooms only while its own record is fresh (written within two
//! thirds of `store.node_ttl_ms`): by the time another node may see it missing, it has stopped
//! committing. [`super::presence::NodePresence`] writes this after every renewal; the rooms
//! read it with no Redis call.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Liveness {
    seen: Arc<RwLock<Seen>>,
    /// Bumped at every renewal, so that a room looks again only when there is news.
    round: Arc<AtomicU64>,
    ttl: Duration,
}

#[derive(Default)]
struct Seen {
    /// When this node's own record was last written.
    renewed: Option<Instant>,
    /// The nodes whose records were there at that renewal (this one too).
    live: HashSet<String>,
}

impl Liveness {
    pub fn new(ttl: Duration) -> Self {
        Self { seen: Arc::default(), round: Arc::default(), ttl }
    }

    /// A renewal reached Redis at `at` and found the records of `live`.
    pub fn renewed(&self, at: Instant, live: HashSet<String>) {
        if let Ok(mut seen) = self.seen.write() {
            *seen = Seen { renewed: Some(at), live };
        }
        self.round.fetch_add(1, Ordering::Release);
    }

    /// Counts the renewals: a room compares it with the one it last looked at.
    pub fn round(&self) -> u64 {
        self.round.load(Ordering::Acquire)
    }

    /// This node's record was written within two thirds of its lifetime: it may own rooms.
    pub fn is_fresh(&self, now: Instant) -> bool {
        let renewed = self.seen.read().ok().and_then(|seen| seen.renewed);
        renewed.is_some_and(|at| now.saturating_duration_since(at) <= self.ttl * 2 / 3)
    }

    /// `node` holds nothing any more: its record was missing at this node's last renewal, that
    /// renewal was sent after `since` (when the caller learnt that `node` held something: its
    /// record was there when it took it), and it is fresh (a node that cannot reach Redis
    /// judges nobody).
    pub fn is_gone(&self, node: &str, since: Instant, now: Instant) -> bool {
        self.is_fresh(now)
            && self.seen.read().is_ok_and(|seen| seen.renewed.is_some_and(|at| at > since) && !seen.live.contains(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(3000);

    #[test]
    fn a_node_is_gone_only_on_a_fresh_renewal_that_missed_its_record() {
        let liveness = Liveness::new(TTL);
        let t0 = Instant::now();
        let learnt = t0;
        assert!(!liveness.is_fresh(t0), "never renewed");
        assert!(!liveness.is_gone("b", learnt, t0), "no judgement before a renewal");
        liveness.renewed(t0 + TTL / 6, HashSet::from(["a".to_string(), "b".to_string()]));
        assert!(liveness.is_fresh(t0 + TTL / 2));
        assert!(!liveness.is_gone("b", learnt, t0 + TTL / 6));
        liveness.renewed(t0 + TTL / 3, HashSet::from(["a".to_string()]));
        assert!(liveness.is_gone("b", learnt, t0 + TTL / 3));
        assert!(liveness.is_gone("forgotten", learnt, t0 + TTL / 3), "a node nobody lists holds nothing");
        assert!(
            !liveness.is_gone("c", t0 + TTL / 2, t0 + TTL / 2),
            "a holder learnt after the renewal may not have written its record then"
        );
        let late = t0 + TTL / 3 + TTL * 2 / 3 + Duration::from_millis(1);
        assert!(!liveness.is_fresh(late), "not renewed in time");
        assert!(!liveness.is_gone("b", learnt, late), "and judges nobody then");
        assert_eq!(liveness.round(), 2);
    }
}
