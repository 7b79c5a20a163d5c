//! A minimal WebSocket client over a tokio `TcpStream`, just enough for load generation.
//!
//! Why not tokio-tungstenite: it allocates a `Message` per frame and validates UTF-8, which at
//! millions of frames per second would measure the generator rather than the broker. Here the
//! reader keeps one growing buffer per connection and hands out borrowed payload slices; the
//! writer masks client frames as RFC 6455 requires. Server frames arrive unmasked and, from
//! actix, unfragmented; continuation frames are joined anyway so a change there does not
//! corrupt the counts.
//!
//! App clients may offer permessage-deflate (RFC 7692, docs/protocol.md 2.8), as browsers do: a
//! message whose first frame has RSV1 set is raw deflate without its trailing `00 00 ff ff`,
//! inflated here with flate2 into the reader's own buffer before it is handed out. The CPU time
//! spent inflating is kept apart ([`FrameReader::take_inflate_time`]), so that a run can report
//! the generator's own cost of the extension beside the broker's. A reader told not to inflate
//! ([`FrameReader::skip_compressed`]) drops compressed messages unread: a client that only
//! counts its bytes.

use std::cell::RefCell;
use std::io;
use std::time::Duration;

use flate2::{Decompress, FlushDecompress, Status};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The extension offer, as Chromium and Node's `ws` make it.
const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Opens `GET path_and_query` on `addr` and performs the upgrade. Answers the stream and any
/// bytes that followed the response headers (the start of the first frame).
pub async fn connect(addr: &str, path_and_query: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    let (stream, rest, _) = upgrade(addr, path_and_query, None, false).await?;
    Ok((stream, rest))
}

/// [`connect`] as an app client: offering permessage-deflate when `deflate`, and with the
/// socket's receive buffer (`SO_RCVBUF`) set before connecting, when given: a small one makes
/// a client that stops reading stall the broker's writes at once (W7's members that read
/// nothing), instead of after the megabytes a loopback socket takes. Answers the stream and its
/// reader, which inflates compressed messages when the broker accepted the offer.
pub async fn connect_with(
    addr: &str,
    path_and_query: &str,
    recv_buffer: Option<u32>,
    deflate: bool,
) -> io::Result<(TcpStream, FrameReader)> {
    let (stream, rest, accepted) = upgrade(addr, path_and_query, recv_buffer, deflate).await?;
    if deflate && !accepted {
        return Err(io::Error::other("the broker did not accept permessage-deflate (client.compression off?)"));
    }
    let mut reader = FrameReader::new(rest);
    reader.deflate = accepted;
    Ok((stream, reader))
}

/// The upgrade itself; answers the stream, the bytes after the response head, and whether
/// the answer accepted permessage-deflate.
async fn upgrade(
    addr: &str,
    path_and_query: &str,
    recv_buffer: Option<u32>,
    deflate: bool,
) -> io::Result<(TcpStream, Vec<u8>, bool)> {
    let mut stream = match recv_buffer {
        None => TcpStream::connect(addr).await?,
        Some(size) => {
            let to = tokio::net::lookup_host(addr)
                .await?
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address")))?;
            let socket = if to.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            socket.set_recv_buffer_size(size)?;
            socket.connect(to).await?
        }
    };
    stream.set_nodelay(true)?;
    let offer = if deflate { format!("Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n") } else { String::new() };
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: ZGFubXUtYmVuY2gtMTIzNA==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(4096);
    loop {
        if buf.len() > 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "upgrade response too long"));
        }
        let n = stream.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during upgrade"));
        }
        if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            let head = &buf[..end];
            if !head.starts_with(b"HTTP/1.1 101") {
                let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
                return Err(io::Error::other(format!("upgrade refused: {}", String::from_utf8_lossy(line))));
            }
            let accepted = String::from_utf8_lossy(head).lines().any(|line| {
                let line = line.to_ascii_lowercase();
                line.starts_with("sec-websocket-extensions:") && line.contains("permessage-deflate")
            });
            let rest = buf[end + 4..].to_vec();
            return Ok((stream, rest, accepted));
        }
    }
}

/// Appends one masked client frame to `out`. The mask key need not be secret on loopback;
/// it varies with a cheap counter so that it is not constant.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask_seed: &mut u32) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    *mask_seed = mask_seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    let key = mask_seed.to_be_bytes();
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
}

/// One decoded server frame, borrowed from the reader's buffer.
pub struct Frame<'a> {
    pub opcode: u8,
    pub fin: bool,
    pub payload: &'a [u8],
}

/// Reads frames out of a byte buffer that the caller fills from the socket.
#[derive(Default)]
pub struct FrameReader {
    pub buf: Vec<u8>,
    pos: usize,
    /// A fragmented message being joined (opcode of the first fragment, bytes so far, whether
    /// it is compressed).
    partial: Option<(u8, Vec<u8>, bool)>,
    /// permessage-deflate was agreed: RSV1 marks a compressed message.
    deflate: bool,
    /// The last compressed message, inflated (reused from message to message).
    inflated: Vec<u8>,
    /// CPU time spent inflating since [`FrameReader::take_inflate_time`] last took it.
    inflate_time: Duration,
    /// Compressed messages are dropped, not inflated.
    skip_compressed: bool,
}

thread_local! {
    /// One inflater per client thread, reset for every message (`client_no_context_takeover`
    /// and `server_no_context_takeover`: no state carries over): 2,000 connections do not
    /// each hold one.
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The tail a sync flush ends with, left off on the wire (RFC 7692 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// `compressed` (a message's payload as sent) inflated into `out` (cleared first), at most
/// `max` bytes.
pub fn inflate_into(compressed: &[u8], out: &mut Vec<u8>, max: usize) -> io::Result<()> {
    out.clear();
    INFLATER.with(|cell| {
        let mut inflater = cell.borrow_mut();
        inflater.reset(false);
        for (input, flush) in [(compressed, FlushDecompress::None), (&TAIL[..], FlushDecompress::Sync)] {
            let start = inflater.total_in();
            loop {
                if out.capacity() - out.len() < 4096 {
                    out.reserve(out.capacity().max(16 << 10));
                }
                let read = (inflater.total_in() - start) as usize;
                let before = (inflater.total_in(), inflater.total_out());
                let status = inflater
                    .decompress_vec(&input[read..], out, flush)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("inflate: {e}")))?;
                if out.len() > max {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "inflated message too large"));
                }
                let done = (inflater.total_in() - start) as usize == input.len();
                let stuck = (inflater.total_in(), inflater.total_out()) == before;
                if status == Status::StreamEnd || (done && out.len() < out.capacity()) {
                    break;
                }
                if stuck && out.len() < out.capacity() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "inflate: truncated stream"));
                }
            }
        }
        Ok(())
    })
}

/// Largest message the reader accepts (a batch frame of many events stays far below).
const MAX_MESSAGE: usize = 16 << 20;

impl FrameReader {
    pub fn new(initial: Vec<u8>) -> Self {
        let mut buf = initial;
        buf.reserve(64 * 1024);
        Self { buf, pos: 0, ..Self::default() }
    }

    /// Whether compressed messages are expected (permessage-deflate was agreed).
    pub fn deflates(&self) -> bool {
        self.deflate
    }

    /// CPU time spent inflating since the last call.
    pub fn take_inflate_time(&mut self) -> Duration {
        std::mem::take(&mut self.inflate_time)
    }

    /// Drop compressed messages instead of inflating them (a client that counts bytes only).
    pub fn skip_compressed(&mut self) {
        self.skip_compressed = true;
    }

    /// Reads more bytes from the socket; `Ok(0)` is end of stream.
    pub async fn fill(&mut self, stream: &mut (impl AsyncReadExt + Unpin)) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        stream.read_buf(&mut self.buf).await
    }

    /// Calls `on_message(opcode, payload)` for every complete message in the buffer
    /// (fragments joined, compressed messages inflated). Stops early when `on_message` answers
    /// false.
    pub fn drain(&mut self, mut on_message: impl FnMut(u8, &[u8]) -> bool) -> io::Result<()> {
        loop {
            let Some((frame_len, header_len, opcode, fin, mask)) = parse_header(&self.buf[self.pos..])? else {
                return Ok(());
            };
            let rsv1 = self.buf[self.pos] & 0x40 != 0;
            if rsv1 && !self.deflate {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "RSV1 set without permessage-deflate"));
            }
            let start = self.pos + header_len;
            let end = self.pos + frame_len;
            if let Some(key) = mask {
                // Servers must not mask; tolerate it anyway.
                for (i, b) in self.buf[start..end].iter_mut().enumerate() {
                    *b ^= key[i & 3];
                }
            }
            self.pos = end;
            let keep_going = match (opcode, fin, self.partial.as_mut()) {
                (OP_CONT, fin, Some((_, joined, _))) => {
                    if joined.len() + (end - start) > MAX_MESSAGE {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "message too large"));
                    }
                    joined.extend_from_slice(&self.buf[start..end]);
                    if fin {
                        let (op, joined, compressed) = self.partial.take().unwrap_or_default();
                        self.message(op, &joined, compressed, &mut on_message)?
                    } else {
                        true
                    }
                }
                (OP_CONT, _, None) => true,
                (op, false, _) if op == OP_TEXT || op == OP_BINARY => {
                    self.partial = Some((op, self.buf[start..end].to_vec(), rsv1));
                    true
                }
                (op, _, _) if rsv1 => {
                    let payload = std::mem::take(&mut self.buf);
                    let keep_going = self.message(op, &payload[start..end], true, &mut on_message);
                    self.buf = payload;
                    keep_going?
                }
                (op, _, _) => on_message(op, &self.buf[start..end]),
            };
            if !keep_going {
                return Ok(());
            }
        }
    }

    /// Hands one whole message to `on_message`, inflated first when `compressed`.
    fn message(
        &mut self,
        opcode: u8,
        payload: &[u8],
        compressed: bool,
        on_message: &mut impl FnMut(u8, &[u8]) -> bool,
    ) -> io::Result<bool> {
        if !compressed {
            return Ok(on_message(opcode, payload));
        }
        if self.skip_compressed {
            return Ok(true);
        }
        // CPU time, not wall time: on a busy machine the thread may wait for a core meanwhile.
        let started = thread_cpu_time();
        let mut inflated = std::mem::take(&mut self.inflated);
        let result = inflate_into(payload, &mut inflated, MAX_MESSAGE);
        self.inflate_time += thread_cpu_time().saturating_sub(started);
        let keep_going = result.map(|()| on_message(opcode, &inflated));
        self.inflated = inflated;
        keep_going
    }
}

type Header = (usize, usize, u8, bool, Option<[u8; 4]>);

/// Answers (whole frame length, header length, opcode, fin, mask) when the frame is complete.
fn parse_header(b: &[u8]) -> io::Result<Option<Header>> {
    if b.len() < 2 {
        return Ok(None);
    }
    let fin = b[0] & 0x80 != 0;
    let opcode = b[0] & 0x0F;
    let masked = b[1] & 0x80 != 0;
    let (len, mut header) = match b[1] & 0x7F {
        126 => {
            if b.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([b[2], b[3]]) as usize, 4)
        }
        127 => {
            if b.len() < 10 {
                return Ok(None);
            }
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&b[2..10]);
            (u64::from_be_bytes(raw) as usize, 10)
        }
        n => (n as usize, 2),
    };
    if len > MAX_MESSAGE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too large"));
    }
    let mask = if masked {
        if b.len() < header + 4 {
            return Ok(None);
        }
        let key = [b[header], b[header + 1], b[header + 2], b[header + 3]];
        header += 4;
        Some(key)
    } else {
        None
    };
    if b.len() < header + len {
        return Ok(None);
    }
    Ok(Some((header + len, header, opcode, fin, mask)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        if payload.len() < 126 {
            out.push(payload.len() as u8);
        } else {
            out.push(126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frames_split_across_reads_come_out_whole_and_in_order() {
        let mut bytes = server_frame(OP_TEXT, true, b"first");
        bytes.extend(server_frame(OP_TEXT, true, &[b'x'; 300]));
        let mut reader = FrameReader::new(bytes[..4].to_vec());
        let mut seen = Vec::new();
        reader
            .drain(|_, p| {
                seen.push(p.len());
                true
            })
            .unwrap();
        assert!(seen.is_empty());
        reader.buf.extend_from_slice(&bytes[4..]);
        reader
            .drain(|_, p| {
                seen.push(p.len());
                true
            })
            .unwrap();
        assert_eq!(seen, vec![5, 300]);
    }

    #[test]
    fn fragments_are_joined_into_one_message() {
        let mut bytes = server_frame(OP_TEXT, false, b"ab");
        bytes.extend(server_frame(OP_CONT, true, b"cd"));
        let mut reader = FrameReader::new(bytes);
        let mut seen = Vec::new();
        reader
            .drain(|op, p| {
                seen.push((op, p.to_vec()));
                true
            })
            .unwrap();
        assert_eq!(seen, vec![(OP_TEXT, b"abcd".to_vec())]);
    }

    #[test]
    fn encoded_client_frames_unmask_to_the_payload() {
        let mut out = Vec::new();
        let mut seed = 7;
        encode_frame(&mut out, OP_TEXT, b"hello", &mut seed);
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x80 | 5);
        let key = [out[2], out[3], out[4], out[5]];
        let plain: Vec<u8> = out[6..].iter().enumerate().map(|(i, b)| b ^ key[i & 3]).collect();
        assert_eq!(plain, b"hello");
    }
}
