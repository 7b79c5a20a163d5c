//! The two status types of a channel, each in one place.
//!
//! - [`LiveStatus`]: a live room's lifecycle (docs/protocol.md 3): `new` -> `live` ->
//!   `closed`/`banned`. The store keeps it, the live-room layer moves it, the registry and the
//!   room act on it (an ended room answers member reports with 1007).
//! - [`ChannelStatus`]: the word of the `room_status` event and of the snapshot (docs/protocol.md
//!   2.4): `live`, `game`, `closed`, `banned`, from BIGO's `status` or from the live room.

use serde::{Deserialize, Serialize};

use super::bigo::BigoStatus;

/// A live room's status (docs/protocol.md 3); the moves between them are the live-room layer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveStatus {
    New,
    Live,
    Closed,
    Banned,
}

impl LiveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Live => "live",
            Self::Closed => "closed",
            Self::Banned => "banned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "new" => Some(Self::New),
            "live" => Some(Self::Live),
            "closed" => Some(Self::Closed),
            "banned" => Some(Self::Banned),
            _ => None,
        }
    }

    /// `closed` and `banned` are final: the room's channel answers member reports with 1007.
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Closed | Self::Banned)
    }

    /// What members are told when the live room enters this status (`new` tells nothing).
    pub fn channel_status(self) -> Option<ChannelStatus> {
        match self {
            Self::New => None,
            Self::Live => Some(ChannelStatus::Live),
            Self::Closed => Some(ChannelStatus::Closed),
            Self::Banned => Some(ChannelStatus::Banned),
        }
    }
}

impl std::fmt::Display for LiveStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `status` of a `room_status` event (docs/protocol.md 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelStatus {
    Live,
    Game,
    Closed,
    Banned,
}

impl ChannelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Game => "game",
            Self::Closed => "closed",
            Self::Banned => "banned",
        }
    }
}

impl std::fmt::Display for ChannelStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<BigoStatus> for ChannelStatus {
    /// BIGO `status` 1, 2, 3 become `live`, `game`, `closed`.
    fn from(status: BigoStatus) -> Self {
        match status {
            BigoStatus::Live => Self::Live,
            BigoStatus::Game => Self::Game,
            BigoStatus::Closed => Self::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_statuses_read_back_what_they_write() {
        for s in [LiveStatus::New, LiveStatus::Live, LiveStatus::Closed, LiveStatus::Banned] {
            assert_eq!(LiveStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::Value::from(s.as_str()));
        }
        assert_eq!(LiveStatus::parse("Closed"), None);
    }

    #[test]
    fn channel_statuses_print_as_they_serialise() {
        for s in [ChannelStatus::Live, ChannelStatus::Game, ChannelStatus::Closed, ChannelStatus::Banned] {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::Value::from(s.to_string()));
        }
    }

    #[test]
    fn only_closed_and_banned_are_ended_and_new_tells_members_nothing() {
        assert!(LiveStatus::Closed.is_ended() && LiveStatus::Banned.is_ended());
        assert!(!LiveStatus::New.is_ended() && !LiveStatus::Live.is_ended());
        assert_eq!(LiveStatus::New.channel_status(), None);
        assert_eq!(LiveStatus::Banned.channel_status(), Some(ChannelStatus::Banned));
    }

    #[test]
    fn bigo_statuses_map_to_the_room_status_words() {
        let words: Vec<_> = [BigoStatus::Live, BigoStatus::Game, BigoStatus::Closed]
            .into_iter()
            .map(|s| serde_json::to_value(ChannelStatus::from(s)).unwrap())
            .collect();
        assert_eq!(words, vec!["live", "game", "closed"]);
    }
}
