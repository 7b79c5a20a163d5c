//! A room's event log: it numbers events (`seq`, from 1, strictly increasing) and keeps the
//! last `history_len` of them for `last_seq` replay (docs/protocol.md 2.3, 2.6; what a replay
//! sends is decided by `super::replay`). With shared rooms the history that members replay
//! from is the room's events stream in Redis; this log then only numbers.

use std::collections::VecDeque;

use serde::{Deserialize, Deserializer};

/// The highest `seq` a room gives: the largest integer a JavaScript client holds exactly
/// (`Number.MAX_SAFE_INTEGER`). No room gets there (a million events a second for 285 years),
/// so a stored state that says otherwise is corrupt and refused ([`stored_next_seq`]).
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// Reads a stored `next_seq` (a room's state as the store gives it back): 1 to [`MAX_SEQ`], a
/// numbering that can go on. Anything else is no state to restore: the room starts a new
/// numbering under a new epoch (docs/protocol.md 2.6, Epochs) rather than wrap `seq` to 0.
pub fn stored_next_seq<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let next_seq = u64::deserialize(d)?;
    if (1..=MAX_SEQ).contains(&next_seq) {
        Ok(next_seq)
    } else {
        Err(serde::de::Error::custom(format!("next_seq {next_seq} is not 1 to {MAX_SEQ}")))
    }
}

/// A ring of the newest `capacity` events, and the next `seq`.
pub struct MemoryLog<E> {
    events: VecDeque<E>,
    capacity: usize,
    next_seq: u64,
}

impl<E> MemoryLog<E> {
    pub fn new(capacity: usize) -> Self {
        Self::starting_at(capacity, 1)
    }

    /// A log whose next event gets `next_seq`: a room taken over from another node goes on
    /// numbering where it stopped (its earlier events live in the shared history).
    pub fn starting_at(capacity: usize, next_seq: u64) -> Self {
        Self { events: VecDeque::with_capacity(capacity.min(1024)), capacity, next_seq: next_seq.max(1) }
    }

    /// The seq of the oldest event held.
    fn oldest_seq(&self) -> u64 {
        self.next_seq - self.events.len() as u64
    }

    /// The seq the next appended event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The seq of the newest event (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Appends an event that was given `next_seq()`.
    pub fn append(&mut self, event: E) {
        // Never reached from a stored state (`stored_next_seq`); saturating all the same, so
        // that no caller can make `seq` wrap to 0.
        self.next_seq = self.next_seq.saturating_add(1);
        if self.capacity == 0 {
            return;
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// The events `from..=to` still held, in order.
    pub fn range(&self, from: u64, to: u64) -> Vec<E>
    where
        E: Clone,
    {
        let (oldest, to) = (self.oldest_seq(), to.min(self.last_seq()));
        let from = from.max(oldest);
        if from > to {
            return Vec::new();
        }
        // Both within the ring now: positions from the oldest held.
        let (start, end) = ((from - oldest) as usize, (to - oldest) as usize);
        self.events.range(start..=end).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: u64, capacity: usize) -> MemoryLog<u64> {
        let mut log = MemoryLog::new(capacity);
        for _ in 0..n {
            let seq = log.next_seq();
            log.append(seq);
        }
        log
    }

    #[test]
    fn seqs_start_at_one_and_increase() {
        let log = log_with(3, 10);
        assert_eq!(log.last_seq(), 3);
        assert_eq!(log.next_seq(), 4);
    }

    #[test]
    fn a_range_is_exactly_the_events_asked_for_that_are_held() {
        let log = log_with(5, 10);
        assert_eq!(log.range(3, 5), vec![3, 4, 5]);
        assert_eq!(log.range(6, 9), Vec::<u64>::new(), "nothing numbered there yet");
        assert_eq!(log.range(4, 3), Vec::<u64>::new());
    }

    #[test]
    fn once_history_moved_on_a_range_holds_what_is_left() {
        let log = log_with(10, 3);
        assert_eq!(log.range(7, 10), vec![8, 9, 10]);
        assert_eq!(log.range(1, 5), Vec::<u64>::new());
    }

    #[test]
    fn a_log_at_the_end_of_the_range_never_wraps_to_zero() {
        let mut log = MemoryLog::starting_at(4, u64::MAX);
        log.append(u64::MAX);
        assert_eq!(log.next_seq(), u64::MAX);
        assert_eq!(log.range(u64::MAX, u64::MAX), Vec::<u64>::new());
    }
}
