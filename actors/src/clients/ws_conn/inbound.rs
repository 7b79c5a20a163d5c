//! The inbound half of a client connection: bytes into complete frames (continuation frames
//! joined, permessage-deflate inflated under the frame limit), or why the connection must close.

use std::time::Instant;

use actix_http::ws::ProtocolError;
use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::protocol::deflate::{Agreed, InflatingCodec};
use crate::ws_frames::{Frame, FrameError, Reassembler};

/// Input as the session sees it: a complete frame, or why the connection must close.
#[derive(Debug)]
pub enum Incoming {
    Frame(Frame),
    /// Over `client.max_frame_bytes` (joined continuation frames too): error 1008, close 1009.
    TooBig,
    /// Binary data: close 1003.
    Binary,
    /// Not WebSocket (bad opcode, unmasked, bad UTF-8 text...): close 1002.
    Protocol(String),
}

/// Turns what a client sent into [`Incoming`]s. The bytes stay with the caller; inflate state
/// exists only while a compressed frame is being inflated ([`InflatingCodec`]).
pub(super) struct Inbound {
    /// With permessage-deflate when the client accepted it (docs/protocol.md 2.8).
    codec: InflatingCodec,
    frames: Reassembler,
    /// When the client last sent a frame: any frame counts as life.
    pub(super) last_input: Instant,
}

impl Inbound {
    pub(super) fn new(max_frame_bytes: usize, deflate: Option<Agreed>) -> Self {
        Self {
            codec: InflatingCodec::server(max_frame_bytes, deflate.is_some()),
            frames: Reassembler::new(max_frame_bytes),
            last_input: Instant::now(),
        }
    }

    /// Whether the client accepted permessage-deflate.
    pub(super) fn deflates(&self) -> bool {
        self.codec.agreed()
    }

    /// Decodes the next complete frame from `buf` (joining continuation frames); `None` when
    /// none is complete yet. Every frame decoded, a part of a joined one too, counts as life.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Option<Incoming> {
        loop {
            let message = match self.codec.decode(buf) {
                Ok(None) => return None,
                Ok(Some(message)) => message,
                // A frame over the limit, or a compressed one that inflates past it.
                Err(ProtocolError::Overflow) => return Some(Incoming::TooBig),
                Err(e) => return Some(Incoming::Protocol(e.to_string())),
            };
            self.last_input = Instant::now();
            match self.frames.push(message) {
                Ok(Some(frame)) => return Some(Incoming::Frame(frame)),
                Ok(None) => {}
                Err(FrameError::TooBig) => return Some(Incoming::TooBig),
                Err(FrameError::Binary) => return Some(Incoming::Binary),
            }
        }
    }
}

/// After this, nothing more is read: the session closes the connection on it.
pub(super) fn ends_input(incoming: &Incoming) -> bool {
    !matches!(incoming, Incoming::Frame(Frame::Text(_) | Frame::Ping(_)))
}

/// What a held frame counts against [`super::HOLD_MAX`].
pub(super) fn held_size(incoming: &Incoming) -> usize {
    match incoming {
        Incoming::Frame(Frame::Text(text)) => text.len(),
        Incoming::Frame(Frame::Ping(payload)) => payload.len(),
        _ => 0,
    }
}
