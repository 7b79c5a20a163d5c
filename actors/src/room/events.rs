//! Room events as they travel: numbered and serialised once by the room, shared by every
//! member's session (STYLE "Hot path").
//!
//! A [`Bundle`] is what one room input released (usually one event in a small room, a release
//! tick's worth in a big one), both as individual frames and as one JSON array for `batch=1`
//! members (PROTOCOL.md 2.4). It travels as a [`Fanout`] through the room's broadcast ring.

use std::sync::Arc;

use bytestring::ByteString;

use crate::protocol::client::{EventBody, RoomEventFrame};

/// Identifies one client connection (random, unique per process).
pub type SessionId = u64;

/// One room event, serialised once. `exclude` names the member that must not get it (a
/// member's own `enter_room`).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomEvent {
    pub seq: Option<u64>,
    pub exclude: Option<SessionId>,
    pub json: ByteString,
}

impl RoomEvent {
    /// Serialises `body` with its `seq` (None for a direct frame) and `ts`.
    pub fn new(body: &EventBody, seq: Option<u64>, ts: i64, exclude: Option<SessionId>) -> Self {
        Self { seq, exclude, json: serialise(body, seq, ts) }
    }
}

/// Events released together, as individual frames and as one JSON array (for `batch=1`).
#[derive(Debug)]
pub struct Bundle {
    pub events: Vec<RoomEvent>,
    pub array: ByteString,
}

impl Bundle {
    pub fn new(events: Vec<RoomEvent>) -> Self {
        let array = json_array(events.iter());
        Self { events, array }
    }
}

pub type Fanout = Arc<Bundle>;

/// `[a,b,c]` from already-serialised events.
pub fn json_array<'a>(events: impl Iterator<Item = &'a RoomEvent> + Clone) -> ByteString {
    let len: usize = events.clone().map(|e| e.json.len() + 1).sum::<usize>() + 2;
    let mut out = String::with_capacity(len);
    out.push('[');
    for (i, e) in events.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.json);
    }
    out.push(']');
    ByteString::from(out)
}

/// The wire form of a room event: its body plus `seq` (absent for direct frames) and `ts`.
pub fn serialise(body: &EventBody, seq: Option<u64>, ts: i64) -> ByteString {
    // Our event types hold only strings, numbers and JSON values: serialising cannot fail.
    ByteString::from(serde_json::to_string(&RoomEventFrame { body, seq, ts }).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::status::ChannelStatus;

    #[test]
    fn a_bundle_array_joins_the_serialised_events() {
        let body = |c: &str| EventBody::RoomStatus { channel_name: c.into(), status: ChannelStatus::Live };
        let bundle = Bundle::new(vec![
            RoomEvent::new(&body("a"), Some(1), 5, None),
            RoomEvent::new(&body("b"), Some(2), 6, None),
        ]);
        let parsed: serde_json::Value = serde_json::from_str(&bundle.array).unwrap();
        assert_eq!(parsed[0]["seq"], 1);
        assert_eq!(parsed[1]["channel_name"], "b");
        assert_eq!(json_array(std::iter::empty()), "[]");
    }
}
