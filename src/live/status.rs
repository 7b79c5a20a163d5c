//! The room status machine (docs/protocol.md 3): which move takes a room from which status to
//! which, and the clear refusal of every other one. Pure; `live::LiveRooms` applies the answer
//! with the store's atomic compare-and-set.
//!
//! ```text
//! from       move                                      to
//! new        GoLive    (owner's /live, callback 1)     live
//! new, live  Close     (owner's /close)                closed
//! live       PushEnded (callback 0, zombie poller)     closed
//! new, live  Ban       (operator)                      banned
//! ```
//!
//! `closed` and `banned` are final: a room is never reopened (the owner creates a new one).

use crate::store::LiveStatus;

/// What someone asks of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// The owner reports PUSH_BEGIN, or the cloud's push-began callback.
    GoLive,
    /// The owner ends the room (live, or new when its push never began).
    Close,
    /// The cloud says the push ended (callback, or offline in 3 polls): live rooms only.
    PushEnded,
    /// An operator bans the room.
    Ban,
}

impl Move {
    fn wanted(self) -> &'static str {
        match self {
            Self::GoLive => "go live",
            Self::Close | Self::PushEnded => "be closed",
            Self::Ban => "be banned",
        }
    }
}

/// A move the room's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("room {room_id} is {from}: it cannot {}{}", mv.wanted(), hint(*from, *mv))]
pub struct IllegalMove {
    pub room_id: u64,
    pub from: LiveStatus,
    pub mv: Move,
}

fn hint(from: LiveStatus, mv: Move) -> &'static str {
    match (from, mv) {
        (LiveStatus::Closed, Move::GoLive) => " again; create a new room",
        (LiveStatus::New, Move::PushEnded) => " before its push began",
        _ => "",
    }
}

/// The status `mv` takes a room in status `from` to.
pub fn next(room_id: u64, from: LiveStatus, mv: Move) -> Result<LiveStatus, IllegalMove> {
    use LiveStatus::*;
    match (from, mv) {
        (New, Move::GoLive) => Ok(Live),
        (New | Live, Move::Close) => Ok(Closed),
        (Live, Move::PushEnded) => Ok(Closed),
        (New | Live, Move::Ban) => Ok(Banned),
        _ => Err(IllegalMove { room_id, from, mv }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LiveStatus::*;

    #[test]
    fn every_allowed_move_and_nothing_else() {
        let all = [New, Live, Closed, Banned];
        let moves = [Move::GoLive, Move::Close, Move::PushEnded, Move::Ban];
        let allowed = [
            (New, Move::GoLive, Live),
            (New, Move::Close, Closed),
            (Live, Move::Close, Closed),
            (Live, Move::PushEnded, Closed),
            (New, Move::Ban, Banned),
            (Live, Move::Ban, Banned),
        ];
        for from in all {
            for mv in moves {
                let expected = allowed.iter().find(|(f, m, _)| *f == from && *m == mv).map(|(_, _, to)| *to);
                assert_eq!(next(1, from, mv).ok(), expected, "{from} {mv:?}");
            }
        }
    }

    #[test]
    fn a_refusal_says_what_the_room_is_and_what_was_asked() {
        let err = next(17, Closed, Move::GoLive).unwrap_err().to_string();
        assert_eq!(err, "room 17 is closed: it cannot go live again; create a new room");
        assert_eq!(next(3, Banned, Move::Close).unwrap_err().to_string(), "room 3 is banned: it cannot be closed");
    }
}
