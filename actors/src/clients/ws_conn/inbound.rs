//! The inbound half of a client connection: bytes into complete frames (continuation frames
//! joined, permessage-deflate inflated under the frame limit), or why the connection must close.

use std::time::Instant;

use actix_http::ws::{self, Codec, Message, ProtocolError};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use tokio_util::codec::Decoder;

use crate::protocol::deflate::{self, Agreed, InflateError};
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
/// exists only while a compressed frame is being inflated.
pub(super) struct Inbound {
    codec: Codec,
    /// permessage-deflate, when the client accepted it (docs/protocol.md 2.8).
    deflate: Option<Agreed>,
    /// The frame at the front of the input had RSV1 set (compressed), cleared for the codec.
    compressed_next: bool,
    max_frame_bytes: usize,
    frames: Reassembler,
    /// When the client last sent a frame: any frame counts as life.
    pub(super) last_input: Instant,
}

impl Inbound {
    pub(super) fn new(max_frame_bytes: usize, deflate: Option<Agreed>) -> Self {
        Self {
            codec: Codec::new().max_size(max_frame_bytes),
            deflate,
            compressed_next: false,
            max_frame_bytes,
            frames: Reassembler::new(max_frame_bytes),
            last_input: Instant::now(),
        }
    }

    /// Whether the client accepted permessage-deflate.
    pub(super) fn deflates(&self) -> bool {
        self.deflate.is_some()
    }

    /// Decodes the next complete frame from `buf` (joining continuation frames); `None` when
    /// none is complete yet. Every frame decoded, a part of a joined one too, counts as life.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Option<Incoming> {
        loop {
            self.note_compressed(buf);
            let frame = match self.codec.decode(buf) {
                Ok(None) => return None,
                Ok(Some(frame)) => frame,
                Err(ProtocolError::Overflow) => return Some(Incoming::TooBig),
                Err(e) => return Some(Incoming::Protocol(e.to_string())),
            };
            self.last_input = Instant::now();
            let compressed = std::mem::take(&mut self.compressed_next);
            match inflated(frame, compressed, self.max_frame_bytes)
                .and_then(message_of)
                .and_then(|msg| self.frames.push(msg).map_err(incoming_of))
            {
                Ok(Some(frame)) => return Some(Incoming::Frame(frame)),
                Ok(None) => {}
                Err(refused) => return Some(refused),
            }
        }
    }

    /// With permessage-deflate, a frame whose RSV1 bit is set is compressed: the bit is
    /// cleared for actix-http's codec (which refuses any RSV bit) and remembered here.
    fn note_compressed(&mut self, buf: &mut BytesMut) {
        if self.deflate.is_some() && !self.compressed_next && buf.first().is_some_and(|b| b & 0x40 != 0) {
            buf[0] &= !0x40;
            self.compressed_next = true;
        }
    }
}

/// A compressed frame's payload inflated, under the frame limit (a bomb is refused as too
/// large without inflating the rest). A compressed message must come in one frame.
fn inflated(frame: ws::Frame, compressed: bool, max: usize) -> Result<ws::Frame, Incoming> {
    if !compressed {
        return Ok(frame);
    }
    match frame {
        ws::Frame::Text(payload) => match deflate::inflate(&payload, max) {
            Ok(text) => Ok(ws::Frame::Text(Bytes::from(text))),
            Err(InflateError::TooBig) => Err(Incoming::TooBig),
            Err(InflateError::Corrupt) => Err(Incoming::Protocol("not a deflate stream".into())),
        },
        ws::Frame::Binary(_) => Err(Incoming::Binary),
        _ => Err(Incoming::Protocol("a compressed message must come in one frame".into())),
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

/// A decoded frame as the reassembler takes it; text must be UTF-8.
fn message_of(frame: ws::Frame) -> Result<Message, Incoming> {
    Ok(match frame {
        ws::Frame::Text(bytes) => {
            Message::Text(ByteString::try_from(bytes).map_err(|e| Incoming::Protocol(e.to_string()))?)
        }
        ws::Frame::Binary(bytes) => Message::Binary(bytes),
        ws::Frame::Continuation(item) => Message::Continuation(item),
        ws::Frame::Ping(payload) => Message::Ping(payload),
        ws::Frame::Pong(payload) => Message::Pong(payload),
        ws::Frame::Close(reason) => Message::Close(reason),
    })
}

fn incoming_of(e: FrameError) -> Incoming {
    match e {
        FrameError::TooBig => Incoming::TooBig,
        FrameError::Binary => Incoming::Binary,
    }
}
