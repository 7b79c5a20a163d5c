//! Bounded "seen before?" sets for a room's seqids and data_seqs (docs/protocol.md 2.6).
//!
//! A set remembers the last `capacity` keys and forgets the oldest first, so its memory is
//! bounded by `capacity` keys (each stored once, shared between the set and the FIFO). A retry
//! or a pulled copy that arrives after its key was forgotten would be delivered again; with the
//! default 100,000 keys per kind and room that needs a retry more than 100,000 items late.

use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

/// A bounded set: a hash set plus a FIFO of the same keys for eviction. (With shared rooms the
/// owner rebuilds it from Redis when it takes a room over: `room_redis::owner`.)
pub struct DedupWindow {
    seen: HashSet<Rc<str>>,
    order: VecDeque<Rc<str>>,
    capacity: usize,
}

impl DedupWindow {
    pub fn new(capacity: usize) -> Self {
        Self { seen: HashSet::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl DedupWindow {
    /// Records `key`; true the first time it is seen, false for a duplicate.
    pub fn first_time(&mut self, key: &str) -> bool {
        if self.seen.contains(key) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        let key: Rc<str> = Rc::from(key);
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }

    /// True when `key` has been recorded (without recording it).
    pub fn contains(&self, key: &str) -> bool {
        self.seen.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_new_once() {
        let mut d = DedupWindow::new(10);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        assert!(d.contains("a"));
    }

    #[test]
    fn the_oldest_key_is_forgotten_at_capacity() {
        let mut d = DedupWindow::new(2);
        assert!(d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("c"));
        assert_eq!(d.len(), 2);
        assert!(!d.contains("a"));
        assert!(d.contains("b") && d.contains("c"));
    }
}
