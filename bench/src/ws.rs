//! A minimal WebSocket client over a tokio `TcpStream`, just enough for load generation.
//!
//! Why not tokio-tungstenite: it allocates a `Message` per frame and validates UTF-8, which at
//! millions of frames per second would measure the generator rather than the broker. Here the
//! reader keeps one growing buffer per connection and hands out borrowed payload slices; the
//! writer masks client frames as RFC 6455 requires. Server frames arrive unmasked and, from
//! actix, unfragmented; continuation frames are joined anyway so a change there does not
//! corrupt the counts.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Opens `GET path_and_query` on `addr` and performs the upgrade. Answers the stream and any
/// bytes that followed the response headers (the start of the first frame).
pub async fn connect(addr: &str, path_and_query: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    connect_with(addr, path_and_query, None).await
}

/// [`connect`] with the socket's receive buffer (`SO_RCVBUF`) set before connecting, when
/// given: a small one makes a client that stops reading stall the broker's writes at once
/// (W7's members that read nothing), instead of after the megabytes a loopback socket takes.
pub async fn connect_with(
    addr: &str,
    path_and_query: &str,
    recv_buffer: Option<u32>,
) -> io::Result<(TcpStream, Vec<u8>)> {
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
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: ZGFubXUtYmVuY2gtMTIzNA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
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
            let rest = buf[end + 4..].to_vec();
            return Ok((stream, rest));
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
    /// A fragmented message being joined (opcode of the first fragment, bytes so far).
    partial: Option<(u8, Vec<u8>)>,
}

/// Largest message the reader accepts (a batch frame of many events stays far below).
const MAX_MESSAGE: usize = 16 << 20;

impl FrameReader {
    pub fn new(initial: Vec<u8>) -> Self {
        let mut buf = initial;
        buf.reserve(64 * 1024);
        Self { buf, pos: 0, partial: None }
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
    /// (fragments joined). Stops early when `on_message` answers false.
    pub fn drain(&mut self, mut on_message: impl FnMut(u8, &[u8]) -> bool) -> io::Result<()> {
        loop {
            let Some((frame_len, header_len, opcode, fin, mask)) = parse_header(&self.buf[self.pos..])? else {
                return Ok(());
            };
            let start = self.pos + header_len;
            let end = self.pos + frame_len;
            if let Some(key) = mask {
                // Servers must not mask; tolerate it anyway.
                for (i, b) in self.buf[start..end].iter_mut().enumerate() {
                    *b ^= key[i & 3];
                }
            }
            self.pos = end;
            let frame = Frame { opcode, fin, payload: &self.buf[start..end] };
            let keep_going = match (frame.opcode, frame.fin, self.partial.as_mut()) {
                (OP_CONT, fin, Some((_, joined))) => {
                    if joined.len() + frame.payload.len() > MAX_MESSAGE {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "message too large"));
                    }
                    joined.extend_from_slice(frame.payload);
                    if fin {
                        let (op, joined) = self.partial.take().unwrap_or_default();
                        on_message(op, &joined)
                    } else {
                        true
                    }
                }
                (OP_CONT, _, None) => true,
                (op, false, _) if op == OP_TEXT || op == OP_BINARY => {
                    self.partial = Some((op, frame.payload.to_vec()));
                    true
                }
                (op, _, _) => on_message(op, frame.payload),
            };
            if !keep_going {
                return Ok(());
            }
        }
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
