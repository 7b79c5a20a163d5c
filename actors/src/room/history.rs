//! A room's event log: it numbers events (`seq`, from 1, strictly increasing) and keeps the
//! last `history_len` of them for `last_seq` replay (PROTOCOL.md 2.3, 2.6).
//!
//! [`EventLog`] is the interface a Redis-backed log (scale-out: one order per room across
//! nodes) will implement; [`MemoryLog`] is the embedded one.

use std::collections::VecDeque;

use serde::{Deserialize, Deserializer};

/// The highest `seq` a room gives: the largest integer a JavaScript client holds exactly
/// (`Number.MAX_SAFE_INTEGER`). No room gets there (a million events a second for 285 years),
/// so a stored state that says otherwise is corrupt and refused ([`stored_next_seq`]).
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// Reads a stored `next_seq` (a room's state as the store gives it back): 1 to [`MAX_SEQ`], a
/// numbering that can go on. Anything else is no state to restore: the room starts a new
/// numbering under a new epoch (PROTOCOL.md 2.6, Epochs) rather than wrap `seq` to 0.
pub fn stored_next_seq<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let next_seq = u64::deserialize(d)?;
    if (1..=MAX_SEQ).contains(&next_seq) {
        Ok(next_seq)
    } else {
        Err(serde::de::Error::custom(format!("next_seq {next_seq} is not 1 to {MAX_SEQ}")))
    }
}

/// What a replay request finds in the log.
#[derive(Debug, PartialEq)]
pub struct Replay<E> {
    /// The events after the client's `last_seq` that the log still holds, in order.
    pub events: Vec<E>,
    /// True when `events` is every event after `last_seq`.
    pub complete: bool,
}

pub trait EventLog<E> {
    /// The seq the next appended event will get.
    fn next_seq(&self) -> u64;
    /// The seq of the newest event (0 when none).
    fn last_seq(&self) -> u64 {
        self.next_seq() - 1
    }
    /// Appends an event that was given `next_seq()`.
    fn append(&mut self, event: E);
    /// Events after `last_seq`.
    fn since(&self, last_seq: u64) -> Replay<E>;
}

/// The in-memory [`EventLog`]: a ring of the newest `capacity` events.
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
}

impl<E: Clone> EventLog<E> for MemoryLog<E> {
    fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn append(&mut self, event: E) {
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

    fn since(&self, last_seq: u64) -> Replay<E> {
        let newest = self.last_seq();
        if last_seq > newest {
            // A seq this numbering never reached (from before a restart): nothing here follows
            // it, and what was missed cannot be told.
            return Replay { events: Vec::new(), complete: false };
        }
        let oldest = self.oldest_seq();
        let complete = last_seq + 1 >= oldest;
        let skip = (last_seq + 1).saturating_sub(oldest) as usize;
        Replay { events: self.events.iter().skip(skip).cloned().collect(), complete }
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
    fn replay_returns_exactly_the_missed_range() {
        let log = log_with(5, 10);
        assert_eq!(log.since(2), Replay { events: vec![3, 4, 5], complete: true });
        assert_eq!(log.since(5), Replay { events: vec![], complete: true });
    }

    #[test]
    fn replay_is_incomplete_once_history_moved_on() {
        let log = log_with(10, 3);
        assert_eq!(log.since(6), Replay { events: vec![8, 9, 10], complete: false });
        assert_eq!(log.since(7), Replay { events: vec![8, 9, 10], complete: true });
    }

    #[test]
    fn a_log_at_the_end_of_the_range_never_wraps_to_zero() {
        let mut log = MemoryLog::starting_at(4, u64::MAX);
        log.append(u64::MAX);
        assert_eq!(log.next_seq(), u64::MAX);
        assert_eq!(log.since(u64::MAX), Replay { events: vec![], complete: false });
    }

    #[test]
    fn a_last_seq_from_the_future_is_incomplete_and_replays_nothing() {
        let log = log_with(2, 10);
        assert_eq!(log.since(9), Replay { events: vec![], complete: false });
    }
}
