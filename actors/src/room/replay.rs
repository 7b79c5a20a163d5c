//! The one rule for a join's `last_seq` and `epoch` (docs/protocol.md 2.3 `enter_room_report`,
//! 2.6 Epochs): what to replay, and whether the member `recovered`. Every room, whichever
//! engine numbers its events, answers joins through [`plan`] and [`recovered`]; only where the
//! events come from differs (the room's own history, or the shared events stream).

use super::events::{RoomEvent, SessionId};

/// What a join asks of history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// No `last_seq`: nothing to replay, and no `recovered` in the ack.
    NotAsked,
    /// Nothing to replay, and the answer is known already: `recovered` is this.
    Answered(bool),
    /// Replay the events `from..=to` that history still holds (the member's own excluded);
    /// `recovered` tells whether it held them all ([`recovered`]).
    Fetch { from: u64, to: u64 },
}

/// The plan for a join with `last_seq` (and the `epoch` it belongs to, `None` meaning the
/// room's current one) into a room of `room_epoch` whose newest event before this join's own
/// is `newest`.
pub fn plan(last_seq: Option<u64>, epoch: Option<&str>, room_epoch: &str, newest: u64) -> Replay {
    let Some(last_seq) = last_seq else { return Replay::NotAsked };
    if epoch.is_some_and(|e| e != room_epoch) {
        // Another numbering's seq means nothing here: the client reloads.
        return Replay::Answered(false);
    }
    if last_seq > newest {
        // The client knew events this room never had: its view cannot be vouched for.
        return Replay::Answered(false);
    }
    if last_seq == newest {
        return Replay::Answered(true);
    }
    Replay::Fetch { from: last_seq + 1, to: newest }
}

/// The events of a [`Replay::Fetch`] that `session` gets (not its own), and whether they are
/// every event `from..=to`: `found` is what history held of that range, in order.
pub fn recovered(from: u64, to: u64, found: Vec<RoomEvent>, session: SessionId) -> (Vec<RoomEvent>, bool) {
    let seqs: Vec<u64> = found.iter().filter_map(|e| e.seq).collect();
    // `to` may be a shared room's `newest` as Redis gave it back: no `to + 1` that overflows.
    let wanted = to.checked_sub(from).and_then(|n| n.checked_add(1));
    let complete = wanted == Some(seqs.len() as u64) && seqs.first() == Some(&from);
    let replay = found.into_iter().filter(|e| e.exclude != Some(session) && e.seq.is_some_and(|s| s <= to)).collect();
    (replay, complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::client::EventBody;
    use crate::protocol::status::ChannelStatus;

    fn events(seqs: impl IntoIterator<Item = u64>) -> Vec<RoomEvent> {
        let body = EventBody::RoomStatus { channel_name: "c".into(), status: ChannelStatus::Live };
        seqs.into_iter().map(|seq| RoomEvent::new(&body, Some(seq), 0, None)).collect()
    }

    #[test]
    fn no_last_seq_asks_nothing() {
        assert_eq!(plan(None, Some("e1"), "e1", 9), Replay::NotAsked);
    }

    #[test]
    fn another_epoch_is_not_recovered_and_no_epoch_means_the_current_one() {
        assert_eq!(plan(Some(3), Some("e0"), "e1", 9), Replay::Answered(false));
        assert_eq!(plan(Some(3), None, "e1", 9), Replay::Fetch { from: 4, to: 9 });
    }

    #[test]
    fn the_newest_seq_is_recovered_with_nothing_to_replay_and_one_beyond_it_is_not() {
        assert_eq!(plan(Some(9), Some("e1"), "e1", 9), Replay::Answered(true));
        assert_eq!(plan(Some(10), Some("e1"), "e1", 9), Replay::Answered(false));
        assert_eq!(plan(Some(0), None, "e1", 0), Replay::Answered(true), "a new room, known from the start");
    }

    #[test]
    fn a_replay_is_recovered_only_when_history_held_every_event_of_the_range() {
        assert!(recovered(4, 6, events(4..=6), 1).1);
        let (replay, complete) = recovered(2, 6, events(4..=6), 1);
        assert_eq!((replay.len(), complete), (3, false), "the oldest ones are gone: what is left, not recovered");
        assert!(!recovered(4, 6, events([4, 6]), 1).1, "a hole is not recovered");
    }

    #[test]
    fn a_range_to_the_end_of_u64_is_not_recovered_and_does_not_overflow() {
        let (replay, complete) = recovered(4, u64::MAX, events(4..=6), 1);
        assert_eq!((replay.len(), complete), (3, false));
        assert_eq!(plan(Some(3), None, "e1", u64::MAX), Replay::Fetch { from: 4, to: u64::MAX });
    }

    #[test]
    fn a_members_own_events_are_not_replayed_to_it() {
        let body = EventBody::RoomStatus { channel_name: "c".into(), status: ChannelStatus::Live };
        let mut found = events(4..=5);
        found.push(RoomEvent::new(&body, Some(6), 0, Some(7)));
        let (replay, complete) = recovered(4, 6, found, 7);
        assert_eq!((replay.len(), complete), (2, true));
    }
}
