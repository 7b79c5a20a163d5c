//! Room events as they travel: numbered and serialised once by the room, shared by every
//! member's session (STYLE "Hot path").
//!
//! A [`Bundle`] is what one room input released (usually one event in a small room, a release
//! tick's worth in a big one, cut to a bounded size), both as individual frames and as one JSON
//! array for `batch=1` members (docs/protocol.md 2.4). It travels through the room's fan-out
//! (`super::fanout`).
//!
//! Besides its JSON, every event and every bundle array carries its WebSocket text frame
//! (header + payload, unmasked as a server sends it), built once here: a member's connection
//! writes those shared bytes as they are (`crate::clients::ws_conn`), with no per-member encoding.

use std::sync::{Arc, OnceLock};

use actix_http::ws::{OpCode, Parser};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use crate::protocol::client::{EventBody, RoomEventFrame};
use crate::protocol::deflate;

/// Identifies one client connection (random, unique per process).
pub type SessionId = u64;

/// One room event, serialised once. `exclude` names the member that must not get it (a
/// member's own `enter_room`).
#[derive(Debug, Clone)]
pub struct RoomEvent {
    pub seq: Option<u64>,
    pub exclude: Option<SessionId>,
    pub json: ByteString,
    /// `json` as one WebSocket text frame, shared by every member that writes it.
    pub frame: Bytes,
    /// `json` compressed, as a frame: made once, shared by every copy of this event.
    deflated: Arc<OnceLock<Bytes>>,
}

impl PartialEq for RoomEvent {
    fn eq(&self, other: &Self) -> bool {
        (self.seq, self.exclude, &self.json) == (other.seq, other.exclude, &other.json)
    }
}

impl RoomEvent {
    /// Serialises `body` with its `seq` (None for a direct frame) and `ts`.
    pub fn new(body: &EventBody, seq: Option<u64>, ts: i64, exclude: Option<SessionId>) -> Self {
        Self::from_json(seq, exclude, serialise(body, seq, ts))
    }

    /// An event already serialised (a shared room reads them from Redis).
    pub fn from_json(seq: Option<u64>, exclude: Option<SessionId>, json: ByteString) -> Self {
        let (json, frame) = framed(&json);
        Self { seq, exclude, json, frame, deflated: Arc::default() }
    }

    /// The frame a member gets: compressed when it accepted permessage-deflate (`deflate`) and
    /// the message has at least `min` bytes; answers whether it is.
    pub fn frame_for(&self, deflate: bool, min: usize) -> (&Bytes, bool) {
        if deflate && self.json.len() >= min {
            (self.deflated.get_or_init(|| compressed_frame(self.json.as_bytes())), true)
        } else {
            (&self.frame, false)
        }
    }
}

/// `json` compressed on its own, as one frame (RSV1 set).
pub fn compressed_frame(json: &[u8]) -> Bytes {
    deflate::compressed_text_frame(&deflate::deflate(json))
}

/// `json` as a text frame, and the JSON again as a view into that frame's payload: one
/// allocation for both (a room's history keeps them).
fn framed(json: &str) -> (ByteString, Bytes) {
    let frame = text_frame(json.as_bytes());
    let payload = frame.slice(frame.len() - json.len()..);
    // The payload is a copy of a `str`: always UTF-8.
    let json = ByteString::try_from(payload).unwrap_or_else(|_| ByteString::from(json));
    (json, frame)
}

/// Events released together, as individual frames and as one JSON array (for `batch=1`).
/// The array is built only once a `batch=1` member takes the bundle, plain or compressed as
/// that member needs, once for all of them.
#[derive(Debug)]
pub struct Bundle {
    pub events: Vec<RoomEvent>,
    /// The array and its text frame (the array a view into the frame's payload).
    array: OnceLock<(ByteString, Bytes)>,
    /// The array compressed, as a frame.
    array_deflated: OnceLock<Bytes>,
}

impl Bundle {
    pub fn new(events: Vec<RoomEvent>) -> Self {
        Self { events, array: OnceLock::new(), array_deflated: OnceLock::new() }
    }

    /// The `batch=1` array's JSON.
    pub fn array(&self) -> &ByteString {
        &self.framed_array().0
    }

    /// The length of [`Bundle::array`], without building it.
    pub fn array_len(&self) -> usize {
        self.events.iter().map(|e| e.json.len() + 1).sum::<usize>() + 1 + usize::from(self.events.is_empty())
    }

    /// The array's frame for a `batch=1` member (see [`RoomEvent::frame_for`]).
    pub fn array_frame_for(&self, deflate: bool, min: usize) -> (&Bytes, bool) {
        if deflate && self.array_len() >= min {
            let compressed = self.array_deflated.get_or_init(|| match self.array.get() {
                Some((array, _)) => compressed_frame(array.as_bytes()),
                None => compressed_frame(json_array(self.events.iter()).as_bytes()),
            });
            (compressed, true)
        } else {
            (&self.framed_array().1, false)
        }
    }

    fn framed_array(&self) -> &(ByteString, Bytes) {
        self.array.get_or_init(|| framed(&json_array(self.events.iter())))
    }
}

/// One unmasked, final WebSocket text frame holding `payload` (actix-http's frame writer).
pub fn text_frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    Parser::write_message(&mut out, payload, OpCode::Text, true, false);
    out.freeze()
}

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
        let parsed: serde_json::Value = serde_json::from_str(bundle.array()).unwrap();
        assert_eq!(parsed[0]["seq"], 1);
        assert_eq!(parsed[1]["channel_name"], "b");
        assert_eq!(bundle.array_len(), bundle.array().len());
        assert_eq!(json_array(std::iter::empty()), "[]");
        assert_eq!(Bundle::new(Vec::new()).array_len(), 2);
    }

    #[test]
    fn an_event_carries_its_websocket_frame() {
        let body = EventBody::RoomStatus { channel_name: "a".into(), status: ChannelStatus::Live };
        let event = RoomEvent::new(&body, Some(1), 5, None);
        // FIN + text opcode, unmasked, 7-bit length, then the JSON itself.
        assert_eq!(event.frame[0], 0x81);
        assert_eq!(event.frame[1] as usize, event.json.len());
        assert_eq!(&event.frame[2..], event.json.as_bytes());
        let long = "x".repeat(300);
        let frame = text_frame(long.as_bytes());
        assert_eq!(&frame[..4], &[0x81, 126, 1, 44]);
        assert_eq!(frame.len(), 304);
    }
}
