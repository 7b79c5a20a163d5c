//! What a channel's name says it is, read in one place (docs/protocol.md 2.4, 3): a live room's
//! channel is its `room_id` in canonical decimal, a 1:1 call's starts with `call:`, and any
//! other name is a game session's (a BIGO `game_sess` routed to a channel of its own name, as
//! a `game_sess` not linked to a live room is).

/// The kind of a channel, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// The channel of the live room with this `room_id`.
    LiveRoom(u64),
    /// A 1:1 call: at most two users, and a peer that leaves is hung up on.
    Call,
    /// Any other name: a BIGO `game_sess` of its own.
    GameSession,
}

impl ChannelKind {
    pub fn of(channel_name: &str) -> Self {
        if channel_name.starts_with("call:") {
            Self::Call
        } else if let Some(room_id) = room_id_of(channel_name) {
            Self::LiveRoom(room_id)
        } else {
            Self::GameSession
        }
    }

    pub fn is_call(self) -> bool {
        self == Self::Call
    }

    /// The live room this channel belongs to, if it is one's.
    pub fn live_room(self) -> Option<u64> {
        match self {
            Self::LiveRoom(room_id) => Some(room_id),
            _ => None,
        }
    }
}

/// A `room_id` as channel names and stream ids write it: a decimal number above 0, without
/// sign or leading zeros (so that one room has one channel).
pub fn room_id_of(text: &str) -> Option<u64> {
    let id: u64 = text.parse().ok()?;
    (id > 0 && id.to_string() == text).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_positive_numbers_name_live_rooms() {
        assert_eq!(ChannelKind::of("17"), ChannelKind::LiveRoom(17));
        for other in ["017", "+17", "0", "-1", "game-1", ""] {
            assert_eq!(ChannelKind::of(other), ChannelKind::GameSession, "{other}");
        }
        assert_eq!(ChannelKind::of("call:1:2"), ChannelKind::Call);
        assert!(ChannelKind::of("call:ann:bob").is_call());
        assert_eq!(ChannelKind::of("call:1:2").live_room(), None);
    }
}
