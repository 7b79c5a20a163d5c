//! Zombie-room detection (docs/protocol.md 3, seed 002 section 4): a `live` room whose stream the
//! cloud reports offline in 3 polls in a row is closed. This is the pure bookkeeping; the
//! polling itself is `crate::cloud::CloudAgent`.
//!
//! Only an answer counts: `status` 0 adds one to the room's streak, any other status (1
//! pushing, 3 forbidden, ...) ends the streak. No answer (the API unreachable, an HTTP error,
//! `ret` != 0) neither counts as offline nor ends the streak: an outage of the status API must
//! not close rooms, and it must not hide a stream that was offline before and after it either.

use std::collections::{HashMap, HashSet};

/// The polls in a row a room must be offline in before it is closed.
pub const OFFLINE_POLLS: u32 = 3;

/// What one poll learnt about one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollAnswer {
    Offline,
    /// Any other status the API answered (pushing, forbidden, ...).
    NotOffline,
    /// Unreachable, HTTP error, `ret` != 0 or an answer we could not read.
    NoAnswer,
}

#[derive(Debug, Default)]
pub struct ZombieWatch {
    streaks: HashMap<u64, u32>,
}

impl ZombieWatch {
    /// Records one poll's answer for `room_id`; true when the room has now been offline in
    /// [`OFFLINE_POLLS`] polls in a row (its streak starts over).
    pub fn observe(&mut self, room_id: u64, answer: PollAnswer) -> bool {
        match answer {
            PollAnswer::Offline => {
                let streak = self.streaks.entry(room_id).or_default();
                *streak += 1;
                if *streak >= OFFLINE_POLLS {
                    self.streaks.remove(&room_id);
                    return true;
                }
                false
            }
            PollAnswer::NotOffline => {
                self.streaks.remove(&room_id);
                false
            }
            PollAnswer::NoAnswer => false,
        }
    }

    /// Forgets rooms that are no longer live.
    pub fn retain(&mut self, live: &HashSet<u64>) {
        self.streaks.retain(|room_id, _| live.contains(room_id));
    }
}

#[cfg(test)]
mod tests {
    use super::PollAnswer::*;
    use super::*;

    #[test]
    fn three_offline_answers_in_a_row_close_two_do_not() {
        let mut watch = ZombieWatch::default();
        assert!(!watch.observe(1, Offline));
        assert!(!watch.observe(1, Offline));
        assert!(watch.observe(1, Offline));
    }

    #[test]
    fn an_online_answer_ends_the_streak() {
        let mut watch = ZombieWatch::default();
        for answer in [Offline, Offline, NotOffline, Offline, Offline] {
            assert!(!watch.observe(1, answer));
        }
    }

    #[test]
    fn no_answer_neither_counts_nor_ends_the_streak() {
        let mut watch = ZombieWatch::default();
        for answer in [NoAnswer, NoAnswer, NoAnswer, Offline, NoAnswer, Offline] {
            assert!(!watch.observe(1, answer));
        }
        assert!(watch.observe(1, Offline));
    }

    #[test]
    fn rooms_that_left_the_live_list_are_forgotten() {
        let mut watch = ZombieWatch::default();
        watch.observe(1, Offline);
        watch.observe(1, Offline);
        watch.retain(&HashSet::new());
        assert!(!watch.observe(1, Offline));
    }
}
