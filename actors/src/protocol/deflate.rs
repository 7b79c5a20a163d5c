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
//! [`InflatingCodec`] reads a connection's frames with the extension agreed: actix-http's codec
//! with RSV1 cleared before it and the compressed message inflated after it. The BIGO ingress
//! decodes with it (`crate::ingress::inflating_frames`); the client transport does the same
//! inline (`crate::clients::ws_conn`).

use actix_http::ws::{Codec, Frame, ProtocolError};
use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio_util::codec::Decoder;

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
    out.put_u8(0x80 | 0x40 | 0x1);
    match compressed.len() {
        n if n < 126 => out.put_u8(n as u8),
        n if n <= u16::MAX as usize => {
            out.put_u8(126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(compressed);
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

/// actix-http's WebSocket decoder (server side) for a connection that agreed the extension:
/// a frame with RSV1 set is a compressed message, its bit cleared for the codec (which refuses
/// any RSV bit) and its payload inflated under the frame limit. A message that inflates past
/// the limit is [`ProtocolError::Overflow`], as a frame over it is (close 1009); one that is
/// not deflate, or that is fragmented (browsers and `ws` send one frame), or a compressed
/// control frame, is a protocol error (close 1002). No inflate state outlives a message.
pub struct InflatingCodec {
    codec: Codec,
    max_frame_bytes: usize,
    /// The frame at the front of the input had RSV1 set, cleared for the codec.
    compressed_next: bool,
}

impl InflatingCodec {
    pub fn new(max_frame_bytes: usize) -> Self {
        Self { codec: Codec::new().max_size(max_frame_bytes), max_frame_bytes, compressed_next: false }
    }
}

impl Decoder for InflatingCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if !self.compressed_next && buf.first().is_some_and(|b| b & 0x40 != 0) {
            buf[0] &= !0x40;
            self.compressed_next = true;
        }
        let Some(frame) = self.codec.decode(buf)? else { return Ok(None) };
        if !std::mem::take(&mut self.compressed_next) {
            return Ok(Some(frame));
        }
        let inflated = |payload: &[u8]| match inflate(payload, self.max_frame_bytes) {
            Ok(message) => Ok(Bytes::from(message)),
            Err(InflateError::TooBig) => Err(ProtocolError::Overflow),
            Err(InflateError::Corrupt) => Err(invalid("not a deflate stream")),
        };
        match frame {
            Frame::Text(payload) => Ok(Some(Frame::Text(inflated(&payload)?))),
            Frame::Binary(payload) => Ok(Some(Frame::Binary(inflated(&payload)?))),
            Frame::Continuation(_) => Err(invalid("a compressed message must come in one frame")),
            _ => Err(invalid("a control frame cannot be compressed")),
        }
    }
}

/// The server's frames as a client reads them, with each compressed message rewritten as the
/// plain frame it holds (RSV1 cleared, payload inflated under `max` bytes): for a client whose
/// WebSocket library does not speak the extension (`danmu-broker listen` on tokio-tungstenite),
/// placed between the socket and the library. Other frames pass unchanged.
pub struct ServerFrames {
    buf: BytesMut,
    max: usize,
}

impl ServerFrames {
    pub fn new(max: usize) -> Self {
        Self { buf: BytesMut::new(), max }
    }

    /// Bytes read from the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, rewritten if it was compressed; `None` until one is complete.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, InflateError> {
        let b = &self.buf[..];
        let (Some(&first), Some(&second)) = (b.first(), b.get(1)) else { return Ok(None) };
        let (len, header) = match second & 0x7f {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (u64::from_be_bytes([b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]]), 10),
            126 | 127 => return Ok(None),
            n => (u64::from(n), 2),
        };
        let header = header + if second & 0x80 != 0 { 4 } else { 0 };
        let len = usize::try_from(len).ok().filter(|&n| n <= self.max).ok_or(InflateError::TooBig)?;
        if b.len() < header + len {
            self.buf.reserve(header + len - b.len());
            return Ok(None);
        }
        let frame = self.buf.split_to(header + len).freeze();
        // Compressed: RSV1 on a final text or binary frame (a server's frames are not masked;
        // a masked one is passed on for the library to refuse).
        if first & 0x40 == 0 || second & 0x80 != 0 {
            return Ok(Some(frame));
        }
        if first & 0x80 == 0 || !matches!(first & 0x0f, 0x1 | 0x2) {
            return Err(InflateError::Corrupt);
        }
        let message = inflate(&frame[header..], self.max)?;
        let mut out = BytesMut::with_capacity(message.len() + 10);
        out.put_u8(first & !0x40);
        match message.len() {
            n if n < 126 => out.put_u8(n as u8),
            n if n <= u16::MAX as usize => {
                out.put_u8(126);
                out.put_u16(n as u16);
            }
            n => {
                out.put_u8(127);
                out.put_u64(n as u64);
            }
        }
        out.put_slice(&message);
        Ok(Some(out.freeze()))
    }
}

fn invalid(why: &'static str) -> ProtocolError {
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
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn the_inflating_codec_inflates_compressed_frames_and_passes_plain_ones() {
        let json = r#"{"uri":"dataReception","data":"{\"seqid\":\"1\"}"}"#.repeat(10);
        let mut codec = InflatingCodec::new(4096);
        let mut input = BytesMut::new();
        input.extend_from_slice(&client_frame(0xC1, &deflate(json.as_bytes())));
        input.extend_from_slice(&client_frame(0x81, b"plain"));
        // The compressed frame arrives in two reads: RSV1 is cleared once and remembered.
        let mut first = input.split_to(5);
        assert!(codec.decode(&mut first).unwrap().is_none());
        first.unsplit(input);
        let mut input = first;
        assert!(matches!(codec.decode(&mut input).unwrap(), Some(Frame::Text(t)) if t == json.as_bytes()));
        assert!(matches!(codec.decode(&mut input).unwrap(), Some(Frame::Text(t)) if &t[..] == b"plain"));
        assert!(codec.decode(&mut input).unwrap().is_none());
    }

    #[test]
    fn the_inflating_codec_refuses_a_bomb_as_too_big_and_garbage_or_fragments_as_protocol_errors() {
        let mut codec = InflatingCodec::new(64 << 10);
        let bomb = deflate(&vec![b'a'; 1 << 20]);
        let mut input = BytesMut::from(&client_frame(0xC1, &bomb)[..]);
        assert!(matches!(codec.decode(&mut input), Err(ProtocolError::Overflow)));
        let mut input = BytesMut::from(&client_frame(0xC1, b"\xff\xff not deflate")[..]);
        assert!(matches!(InflatingCodec::new(1024).decode(&mut input), Err(ProtocolError::Io(_))));
        let mut input = BytesMut::from(&client_frame(0x41, &deflate(b"first half"))[..]);
        assert!(matches!(InflatingCodec::new(1024).decode(&mut input), Err(ProtocolError::Io(_))));
        let mut input = BytesMut::from(&client_frame(0xC9, b"")[..]);
        assert!(matches!(InflatingCodec::new(1024).decode(&mut input), Err(ProtocolError::Io(_))));
    }

    #[test]
    fn a_client_reads_a_compressed_server_frame_as_the_plain_frame_it_holds() {
        let json = r#"{"action":"send_topic_msg","content":"弹幕"}"#.repeat(30);
        let compressed = compressed_text_frame(&deflate(json.as_bytes()));
        let plain = crate::room::text_frame(b"{\"action\":\"pong\"}");
        let mut frames = ServerFrames::new(1 << 20);
        frames.feed(&compressed[..3]);
        assert_eq!(frames.next_frame(), Ok(None));
        frames.feed(&compressed[3..]);
        frames.feed(&plain);
        assert_eq!(frames.next_frame(), Ok(Some(crate::room::text_frame(json.as_bytes()))));
        assert_eq!(frames.next_frame(), Ok(Some(plain)), "a plain frame passes unchanged");
        assert_eq!(frames.next_frame(), Ok(None));
        let mut bounded = ServerFrames::new(1024);
        bounded.feed(&compressed_text_frame(&deflate(&[b'a'; 4096])));
        assert_eq!(bounded.next_frame(), Err(InflateError::TooBig));
    }

    #[test]
    fn a_compressed_frame_sets_rsv1_and_carries_the_length() {
        let frame = compressed_text_frame(&[7u8; 300]);
        assert_eq!(&frame[..4], &[0xC1, 126, 1, 44]);
        assert_eq!(frame.len(), 304);
        assert_eq!(compressed_text_frame(b"ab")[..2], [0xC1, 2]);
    }
}
