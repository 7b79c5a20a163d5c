//! permessage-deflate (RFC 7692) as this broker speaks it (docs/protocol.md 2.8): the negotiation,
//! a message compressed once for every member that accepted the extension, and a client's
//! compressed message inflated under a bound. The deflate itself is flate2's (zlib-rs); what is
//! here is the RFC's framing around it.
//!
//! The terms are always the same: `server_no_context_takeover` (each server message is
//! compressed on its own, so one compressed room frame can go to every member unchanged) and
//! `client_no_context_takeover` (each client message is inflated on its own, so an idle
//! connection holds no inflate state: RFC 7692 7.1.1.2 lets a server ask it of any client).
//! `client_max_window_bits` is answered with at most `client.inflate_window_bits`; a client
//! that did not offer it uses a window of 2^15, so with a smaller bound configured such a
//! client is served without the extension.
//!
//! [`InflatingCodec`] reads a connection's frames: actix-http's codec with RSV1 cleared before it
//! and the compressed message inflated after it. Every reader of frames that may be compressed
//! uses it: the client transport (`crate::clients::ws_conn`), the BIGO ingress
//! (`crate::ingress::inflating_frames`) and, through [`ServerFrames`], `danmu-broker listen`.

use actix_http::ws::{Codec, Frame, Message, OpCode, Parser, ProtocolError};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio_util::codec::{Decoder, Encoder};

/// The first header bit an extension may use: permessage-deflate's "compressed" (RFC 7692 6).
const RSV1: u8 = 0x40;

/// The tail every sync-flushed message ends with, left off on the wire (RFC 7692 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The extension as agreed with one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The window the client compresses with, when we named one.
    pub client_max_window_bits: Option<u8>,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` answer.
    pub fn response_header(&self) -> String {
        let mut answer = String::from("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        if let Some(bits) = self.client_max_window_bits {
            answer.push_str(&format!("; client_max_window_bits={bits}"));
        }
        answer
    }
}

/// The first `permessage-deflate` offer of `header` (a `Sec-WebSocket-Extensions` value) that
/// these terms can accept, with the client's window bounded by `max_window_bits` (9 to 15).
pub fn negotiate(header: &str, max_window_bits: u8) -> Option<Agreed> {
    header.split(',').find_map(|offer| accept(offer, max_window_bits))
}

fn accept(offer: &str, max_window_bits: u8) -> Option<Agreed> {
    let mut params = offer.split(';').map(str::trim);
    if !params.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut client_window: Option<Option<u8>> = None;
    for param in params.filter(|p| !p.is_empty()) {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" => {}
            // We compress with a full window; a client that wants a smaller one gets none.
            "server_max_window_bits" => {
                if value.and_then(|v| v.parse::<u8>().ok()) != Some(15) {
                    return None;
                }
            }
            "client_max_window_bits" => {
                let bits = match value {
                    None => None,
                    Some(v) => Some(v.parse::<u8>().ok().filter(|b| (8..=15).contains(b))?),
                };
                client_window = Some(bits);
            }
            _ => return None,
        }
    }
    match client_window {
        // The client takes any window we name (up to what it offered).
        Some(offered) => {
            let bits = offered.unwrap_or(15).min(max_window_bits).max(9);
            Some(Agreed { client_max_window_bits: Some(bits) })
        }
        // It compresses with 2^15: acceptable only when that is within our bound.
        None => (max_window_bits >= 15).then_some(Agreed { client_max_window_bits: None }),
    }
}

/// `payload` compressed on its own (raw deflate, sync flush, the tail left off).
pub fn deflate(payload: &[u8]) -> Bytes {
    let mut compress = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    loop {
        let consumed = compress.total_in() as usize;
        // Compressing into a Vec cannot fail; a full Vec only asks for more room.
        let _ = compress.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync);
        if compress.total_in() as usize == payload.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    Bytes::from(out)
}

/// One unmasked, final, compressed text frame (RSV1 set) holding `compressed`.
pub fn compressed_text_frame(compressed: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(compressed.len() + 10);
    Parser::write_message(&mut out, compressed, OpCode::Text, true, false);
    out[0] |= RSV1;
    out.freeze()
}

/// Why a compressed client message was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the bound: refused as too large (1008, close 1009).
    TooBig,
    /// Not a deflate stream.
    Corrupt,
}

/// A client's message inflated, stopping as soon as it passes `max` bytes (a compression bomb
/// costs at most `max` plus one step). The inflater lives only for this message.
pub fn inflate(compressed: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
    let input = [compressed, &TAIL[..]].concat();
    let mut inflater = Decompress::new(false);
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.capacity() - out.len() < 1024 {
            // Doubling, but never far past the bound.
            let limit = (max + 1).saturating_sub(out.len()).max(1024);
            out.reserve(out.capacity().max(4096).min(limit));
        }
        let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress_vec(&input[before_in as usize..], &mut out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        if out.len() > max {
            return Err(InflateError::TooBig);
        }
        let all_in = inflater.total_in() as usize == input.len();
        let room_left = out.len() < out.capacity();
        if status == Status::StreamEnd || (all_in && room_left) {
            return Ok(out);
        }
        if (inflater.total_in(), inflater.total_out()) == (before_in, before_out) && room_left {
            // No progress with room to write: done if everything was read, else cut short.
            return if all_in { Ok(out) } else { Err(InflateError::Corrupt) };
        }
    }
}

/// actix-http's WebSocket decoder with the extension's reading side in front of it: the one
/// place this broker reads frames that may be compressed, on the client connection
/// (`crate::clients::ws_conn`), the BIGO ingress (`crate::ingress::inflating_frames`) and, in
/// client mode, `danmu-broker listen` ([`ServerFrames`]).
///
/// When the extension was agreed, a frame with RSV1 set is a compressed message: its bit is
/// cleared for the codec (which refuses any RSV bit) and its payload inflated under the frame
/// limit. A message that inflates past the limit is [`ProtocolError::Overflow`], as a frame
/// over it is (close 1009); one that is not deflate, or that is fragmented (browsers and `ws`
/// send one frame), or a compressed control frame, is a protocol error (close 1002). Without
/// the extension RSV1 is refused by the codec. No inflate state outlives a message, so an idle
/// connection holds none. Text must be UTF-8 (a protocol error otherwise).
pub struct InflatingCodec {
    codec: Codec,
    max_frame_bytes: usize,
    /// permessage-deflate was agreed: RSV1 marks a compressed message.
    agreed: bool,
    /// The frame at the front of the input had RSV1 set, cleared for the codec.
    compressed_next: bool,
}

impl InflatingCodec {
    /// Reads a client's (masked) frames, on a connection that `agreed` the extension or not.
    pub fn server(max_frame_bytes: usize, agreed: bool) -> Self {
        Self { codec: Codec::new().max_size(max_frame_bytes), max_frame_bytes, agreed, compressed_next: false }
    }

    /// Reads a server's (unmasked) frames, once the server agreed the extension.
    pub fn client(max_frame_bytes: usize) -> Self {
        Self { codec: Codec::new().max_size(max_frame_bytes).client_mode(), ..Self::server(max_frame_bytes, true) }
    }

    /// Whether the connection agreed permessage-deflate.
    pub fn agreed(&self) -> bool {
        self.agreed
    }
}

impl Decoder for InflatingCodec {
    type Item = Message;
    type Error = ProtocolError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        if self.agreed && !self.compressed_next && buf.first().is_some_and(|b| b & RSV1 != 0) {
            buf[0] &= !RSV1;
            self.compressed_next = true;
        }
        let Some(frame) = self.codec.decode(buf)? else { return Ok(None) };
        let frame = match std::mem::take(&mut self.compressed_next) {
            true => inflated(frame, self.max_frame_bytes)?,
            false => frame,
        };
        message_of(frame).map(Some)
    }
}

/// A compressed frame as the plain one it holds: a whole text or binary message inflated under
/// `max` (a bomb is refused as too large without inflating the rest).
fn inflated(frame: Frame, max: usize) -> Result<Frame, ProtocolError> {
    let inflated = |payload: &[u8]| match inflate(payload, max) {
        Ok(message) => Ok(Bytes::from(message)),
        Err(InflateError::TooBig) => Err(ProtocolError::Overflow),
        Err(InflateError::Corrupt) => Err(invalid("not a deflate stream")),
    };
    match frame {
        Frame::Text(payload) => Ok(Frame::Text(inflated(&payload)?)),
        Frame::Binary(payload) => Ok(Frame::Binary(inflated(&payload)?)),
        Frame::Continuation(_) => Err(invalid("a compressed message must come in one frame")),
        _ => Err(invalid("a control frame cannot be compressed")),
    }
}

/// A decoded frame as a message; text must be UTF-8.
fn message_of(frame: Frame) -> Result<Message, ProtocolError> {
    Ok(match frame {
        Frame::Text(bytes) => Message::Text(ByteString::try_from(bytes).map_err(|e| invalid(e.to_string()))?),
        Frame::Binary(bytes) => Message::Binary(bytes),
        Frame::Continuation(item) => Message::Continuation(item),
        Frame::Ping(payload) => Message::Ping(payload),
        Frame::Pong(payload) => Message::Pong(payload),
        Frame::Close(reason) => Message::Close(reason),
    })
}

/// The server's frames as a client reads them, with each compressed message rewritten as the
/// plain frame it holds: for a client whose WebSocket library does not speak the extension
/// (`danmu-broker listen` on tokio-tungstenite), placed between the socket and the library.
/// Each frame is read by [`InflatingCodec`] in client mode and written again, unmasked as a
/// server's frames are, by actix-http's codec.
pub struct ServerFrames {
    buf: BytesMut,
    frames: InflatingCodec,
    /// Server mode: writes frames unmasked.
    plain: Codec,
}

impl ServerFrames {
    /// Frames and messages over `max` bytes are refused ([`ProtocolError::Overflow`]).
    pub fn new(max: usize) -> Self {
        Self { buf: BytesMut::new(), frames: InflatingCodec::client(max), plain: Codec::new().max_size(max) }
    }

    /// Bytes read from the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, plain; `None` until one is complete.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let Some(message) = self.frames.decode(&mut self.buf)? else { return Ok(None) };
        let mut out = BytesMut::new();
        self.plain.encode(message, &mut out)?;
        Ok(Some(out.freeze()))
    }
}

fn invalid(why: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ProtocolError {
    ProtocolError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browsers_offer_is_answered_with_no_context_takeover_both_ways() {
        let agreed = negotiate("permessage-deflate; client_max_window_bits", 15).unwrap();
        assert_eq!(agreed.client_max_window_bits, Some(15));
        assert_eq!(
            agreed.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15"
        );
        let plain = negotiate("permessage-deflate", 15).unwrap();
        assert_eq!(plain.client_max_window_bits, None);
    }

    #[test]
    fn the_clients_window_is_bounded_and_an_unbounded_client_is_declined_under_a_smaller_bound() {
        assert_eq!(
            negotiate("permessage-deflate; client_max_window_bits=15", 10).unwrap().client_max_window_bits,
            Some(10)
        );
        assert_eq!(
            negotiate("permessage-deflate; client_max_window_bits=9", 12).unwrap().client_max_window_bits,
            Some(9)
        );
        assert_eq!(negotiate("permessage-deflate", 12), None, "it would compress with 2^15");
    }

    #[test]
    fn offers_we_cannot_honour_are_skipped_for_the_next_one() {
        assert_eq!(negotiate("x-webkit-deflate-frame", 15), None);
        assert_eq!(negotiate("permessage-deflate; server_max_window_bits=10", 15), None);
        assert_eq!(negotiate("permessage-deflate; unknown_param", 15), None);
        let second = negotiate("permessage-deflate; server_max_window_bits=10, permessage-deflate", 15);
        assert_eq!(second, Some(Agreed { client_max_window_bits: None }));
    }

    #[test]
    fn a_message_survives_deflate_and_inflate_and_shrinks_when_it_repeats() {
        let json = r#"{"action":"send_topic_msg","content":"你好你好你好","nickname":"viewer"}"#.repeat(20);
        let compressed = deflate(json.as_bytes());
        assert!(!compressed.ends_with(&TAIL), "the tail is left off");
        assert!(compressed.len() * 4 < json.len(), "{} of {}", compressed.len(), json.len());
        assert_eq!(inflate(&compressed, 1 << 20).unwrap(), json.as_bytes());
    }

    #[test]
    fn a_compression_bomb_stops_at_the_bound() {
        let bomb = deflate(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 200 << 10, "10 MiB of one byte is about a hundredth of it: {}", bomb.len());
        assert_eq!(inflate(&bomb, 64 << 10), Err(InflateError::TooBig));
        assert_eq!(inflate(b"\xff\xff\xff not deflate", 1024), Err(InflateError::Corrupt));
    }

    /// A masked client frame: `first` (FIN, RSV1, opcode) and `payload`.
    fn client_frame(first: u8, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        Parser::write_message(&mut out, payload, OpCode::from(first & 0x0f), first & 0x80 != 0, true);
        out[0] |= first & RSV1;
        out
    }

    #[test]
    fn the_inflating_codec_inflates_compressed_frames_and_passes_plain_ones() {
        let json = r#"{"uri":"dataReception","data":"{\"seqid\":\"1\"}"}"#.repeat(10);
        let mut codec = InflatingCodec::server(4096, true);
        let mut input = client_frame(0xC1, &deflate(json.as_bytes()));
        input.extend_from_slice(&client_frame(0x81, b"plain"));
        // The compressed frame arrives in two reads: RSV1 is cleared once and remembered.
        let mut first = input.split_to(5);
        assert!(codec.decode(&mut first).unwrap().is_none());
        first.unsplit(input);
        let mut input = first;
        assert!(matches!(codec.decode(&mut input).unwrap(), Some(Message::Text(t)) if t == json.as_str()));
        assert!(matches!(codec.decode(&mut input).unwrap(), Some(Message::Text(t)) if t == "plain"));
        assert!(codec.decode(&mut input).unwrap().is_none());
    }

    #[test]
    fn the_inflating_codec_refuses_a_bomb_as_too_big_and_garbage_or_fragments_as_protocol_errors() {
        let mut codec = InflatingCodec::server(64 << 10, true);
        let bomb = deflate(&vec![b'a'; 1 << 20]);
        assert!(matches!(codec.decode(&mut client_frame(0xC1, &bomb)), Err(ProtocolError::Overflow)));
        let refused = |frame: &[u8]| {
            let mut input = BytesMut::from(frame);
            matches!(InflatingCodec::server(1024, true).decode(&mut input), Err(ProtocolError::Io(_)))
        };
        assert!(refused(&client_frame(0xC1, b"\xff\xff not deflate")));
        assert!(refused(&client_frame(0x41, &deflate(b"first half"))), "fragmented");
        assert!(refused(&client_frame(0xC9, b"")), "a compressed ping");
        assert!(refused(&client_frame(0x81, b"\xff not utf-8")));
    }

    #[test]
    fn without_the_extension_rsv1_is_refused() {
        let mut input = client_frame(0xC1, &deflate(b"compressed"));
        assert!(matches!(InflatingCodec::server(1024, false).decode(&mut input), Err(ProtocolError::Io(_))));
    }

    #[test]
    fn a_client_reads_a_compressed_server_frame_as_the_plain_frame_it_holds() {
        let json = r#"{"action":"send_topic_msg","content":"弹幕"}"#.repeat(30);
        let compressed = compressed_text_frame(&deflate(json.as_bytes()));
        let plain = crate::room::text_frame(b"{\"action\":\"pong\"}");
        let mut frames = ServerFrames::new(1 << 20);
        frames.feed(&compressed[..3]);
        assert_eq!(frames.next_frame().unwrap(), None);
        frames.feed(&compressed[3..]);
        frames.feed(&plain);
        assert_eq!(frames.next_frame().unwrap(), Some(crate::room::text_frame(json.as_bytes())));
        assert_eq!(frames.next_frame().unwrap(), Some(plain), "a plain frame passes unchanged");
        assert_eq!(frames.next_frame().unwrap(), None);
        let mut bounded = ServerFrames::new(1024);
        bounded.feed(&compressed_text_frame(&deflate(&[b'a'; 4096])));
        assert!(matches!(bounded.next_frame(), Err(ProtocolError::Overflow)));
    }

    #[test]
    fn a_compressed_frame_sets_rsv1_and_carries_the_length() {
        let frame = compressed_text_frame(&[7u8; 300]);
        assert_eq!(&frame[..4], &[0xC1, 126, 1, 44]);
        assert_eq!(frame.len(), 304);
        assert_eq!(compressed_text_frame(b"ab")[..2], [0xC1, 2]);
    }
}
