//! The reorder buffer: holds danmu items at most `window` so that a late, earlier item can
//! pass them, then releases them sorted by `ts` (docs/protocol.md 2.6).
//!
//! Rule: an item is due `window` after it *arrived*. When items fall due, let `D` be the
//! largest `ts` among them; every held item with `ts <= D` is released, in `ts` order (ties in
//! arrival order). So no item waits longer than the window, and an item never overtakes a held
//! one with a smaller `ts`. An item whose `ts` is below one already released is *late*: it is
//! still released (never dropped) and counted.
//!
//! Cost: O(log n) per item (a binary heap by `ts`, a FIFO of arrival deadlines).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

struct Held<T> {
    ts: i64,
    arrival_no: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.arrival_no) == (other.ts, other.arrival_no)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ts, self.arrival_no).cmp(&(other.ts, other.arrival_no))
    }
}

/// An item leaving the buffer.
#[derive(Debug, PartialEq)]
pub struct Released<T> {
    pub item: T,
    pub ts: i64,
    /// True when an item with a larger `ts` had already been released.
    pub late: bool,
}

pub struct ReorderBuffer<T> {
    window: Duration,
    held: BinaryHeap<Reverse<Held<T>>>,
    /// (due time, ts) per arrival, in arrival order; entries of items already released early
    /// are harmless (their ts is at most a released one).
    due: VecDeque<(Instant, i64)>,
    arrivals: u64,
    max_released_ts: Option<i64>,
}

impl<T> ReorderBuffer<T> {
    pub fn new(window: Duration) -> Self {
        Self { window, held: BinaryHeap::new(), due: VecDeque::new(), arrivals: 0, max_released_ts: None }
    }

    /// Items held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// How many items have arrived so far (the arrival number of the last one).
    pub fn arrivals(&self) -> u64 {
        self.arrivals
    }

    /// The arrival number of the oldest item still held (O(n): asked once per commit of a
    /// shared room, to know how far its input stream may be trimmed).
    pub fn oldest_held(&self) -> Option<u64> {
        self.held.iter().map(|Reverse(h)| h.arrival_no).min()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn push(&mut self, ts: i64, item: T, now: Instant) {
        self.arrivals += 1;
        self.held.push(Reverse(Held { ts, arrival_no: self.arrivals, item }));
        self.due.push_back((now + self.window, ts));
    }

    /// When the next held item falls due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        if self.held.is_empty() {
            None
        } else {
            self.due.front().map(|(at, _)| *at)
        }
    }

    /// Releases every item that must leave by `now`, in order.
    pub fn release_due(&mut self, now: Instant) -> Vec<Released<T>> {
        let mut bound: Option<i64> = None;
        while let Some(&(at, ts)) = self.due.front() {
            if at > now {
                break;
            }
            bound = Some(bound.map_or(ts, |b: i64| b.max(ts)));
            self.due.pop_front();
        }
        match bound {
            Some(bound) => self.release_while(|ts| ts <= bound),
            None => Vec::new(),
        }
    }

    /// Releases everything held (shutdown flush), in `ts` order.
    pub fn drain(&mut self) -> Vec<Released<T>> {
        self.due.clear();
        self.release_while(|_| true)
    }

    fn release_while(&mut self, mut keep_going: impl FnMut(i64) -> bool) -> Vec<Released<T>> {
        let mut out = Vec::new();
        while let Some(Reverse(top)) = self.held.peek() {
            if !keep_going(top.ts) {
                break;
            }
            let Some(Reverse(held)) = self.held.pop() else {
                break;
            };
            let late = self.max_released_ts.is_some_and(|m| held.ts < m);
            self.max_released_ts = Some(self.max_released_ts.map_or(held.ts, |m| m.max(held.ts)));
            out.push(Released { item: held.item, ts: held.ts, late });
        }
        if self.held.is_empty() {
            self.due.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(300);

    fn ts_of(released: &[Released<&str>]) -> Vec<i64> {
        released.iter().map(|r| r.ts).collect()
    }

    #[test]
    fn nothing_leaves_before_its_window() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(W);
        b.push(10, "a", t0);
        assert!(b.release_due(t0 + Duration::from_millis(299)).is_empty());
        assert_eq!(b.next_due(), Some(t0 + W));
        assert_eq!(ts_of(&b.release_due(t0 + W)), vec![10]);
        assert!(b.is_empty());
    }

    #[test]
    fn an_earlier_item_arriving_within_the_window_passes_a_later_one() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(W);
        b.push(20, "later", t0);
        b.push(10, "earlier", t0 + Duration::from_millis(100));
        let out = b.release_due(t0 + W);
        assert_eq!(out.iter().map(|r| r.item).collect::<Vec<_>>(), vec!["earlier", "later"]);
        assert!(out.iter().all(|r| !r.late));
    }

    #[test]
    fn an_item_later_than_the_window_is_released_and_marked_late() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(W);
        b.push(20, "a", t0);
        assert_eq!(b.release_due(t0 + W).len(), 1);
        b.push(10, "b", t0 + W);
        let out = b.release_due(t0 + W + W);
        assert_eq!(out, vec![Released { item: "b", ts: 10, late: true }]);
    }

    #[test]
    fn a_due_item_drags_held_smaller_ts_items_out_with_it() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(W);
        b.push(50, "x", t0);
        b.push(40, "y", t0 + Duration::from_millis(200));
        b.push(60, "z", t0 + Duration::from_millis(200));
        assert_eq!(ts_of(&b.release_due(t0 + W)), vec![40, 50]);
        assert_eq!(b.len(), 1);
        assert_eq!(ts_of(&b.release_due(t0 + Duration::from_millis(500))), vec![60]);
    }

    #[test]
    fn zero_window_releases_at_once() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(Duration::ZERO);
        b.push(1, "a", t0);
        assert_eq!(b.release_due(t0).len(), 1);
    }

    #[test]
    fn drain_releases_everything_in_ts_order() {
        let t0 = Instant::now();
        let mut b = ReorderBuffer::new(W);
        b.push(3, "c", t0);
        b.push(1, "a", t0);
        b.push(2, "b", t0);
        assert_eq!(ts_of(&b.drain()), vec![1, 2, 3]);
        assert_eq!(b.next_due(), None);
    }
}
