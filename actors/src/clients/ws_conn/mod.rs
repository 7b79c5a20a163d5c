//! `WsConn`: the WebSocket transport of one app client connection, driven from inside its
//! session actor (`ClientSession`), with no buffer held while the connection is idle.
//!
//! Why not actix-web-actors here: it keeps the WebSocket on actix-http's HTTP/1 dispatcher,
//! whose 8 KiB read and 8 KiB write buffers live as long as the connection, and a client that
//! stops reading stalls the whole session (its timers too). A broker's memory goes on idle
//! viewers, so the listener (`src/listener.rs`) takes the socket out of the dispatcher after
//! the 101 and hands it over here ([`Handover`], through the [`TakeOver`] response extension).
//!
//! - **Reading**: only when the socket is readable, into a per-thread scratch buffer; frames
//!   are decoded from it with actix-http's `ws::Codec` and handed to the actor at once. Only
//!   what is left over (a partial frame) is copied into a buffer of the connection's own,
//!   freed when consumed.
//! - **While the actor awaits a room's answer** (`ctx.wait`, so that the answer goes out
//!   before anything that follows it), actix polls nothing else of the actor, this driver
//!   included. The awaited future is wrapped in [`WhileReading`], which reads on meanwhile:
//!   every frame counts as life at once (docs/protocol.md 2.3: any frame, whatever the session
//!   waits for) and is held, with when it arrived, for the actor to take in order once the
//!   answer is handled (the rate limit counts it at its arrival). At most [`HOLD_MAX`] bytes
//!   are held; past that the socket is left unread until the answer came.
//! - **Writing**: frames queue as `Bytes`, most of them shared by every member of a room (the
//!   room builds each event's frame once, `room::RoomEvent::frame`), and leave by vectored
//!   writes straight from those bytes. The queue is freed when it empties.
//! - **Slow readers**: the session pulls room events only while fewer than [`REFILL_BELOW`]
//!   bytes are queued, so what waits here for a stalled client is bounded and the rest of a
//!   burst stays in the room's fan-out, shared. A connection that takes no bytes for
//!   `client.write_timeout_ms` while frames wait, or that falls too far behind its room, is
//!   closed by its session with [`WsConn::close_abandoning`]: what waits unsent is dropped and
//!   the close frame (1013) goes out as soon as the socket takes it.
//!
//! The [`Driver`] (`driver.rs`) is the one actor future that moves bytes; the actor
//! implements [`Driven`] to receive frames and refill the queue. Bytes become frames in
//! `inbound.rs` (codec, continuation frames, permessage-deflate); this file holds the
//! connection's state and its output queue.

mod driver;
mod inbound;

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use actix_http::ws::{CloseReason, OpCode, Parser};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

pub use self::driver::{Driven, Driver, WhileReading};
pub use self::inbound::Incoming;
use self::inbound::{ends_input, held_size, Inbound};
use crate::protocol::deflate::Agreed;

/// A stream a client connection runs on: plain TCP or TLS.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + 'static> ClientIo for T {}

/// What the listener hands over once the upgrade answer is decided.
pub struct Handover {
    pub io: Box<dyn ClientIo>,
    /// Bytes the client sent after its request head (frames already), usually none.
    pub read_ahead: BytesMut,
    /// The 101 answer, written before any frame.
    pub response_head: Bytes,
}

/// The response extension by which an upgrade handler asks the listener for the connection:
/// the listener writes the 101 it answered and calls this with the socket.
pub struct TakeOver(Box<dyn FnOnce(Handover)>);

impl TakeOver {
    pub fn new(start: impl FnOnce(Handover) + 'static) -> Self {
        Self(Box::new(start))
    }

    pub fn start(self, handover: Handover) {
        (self.0)(handover)
    }
}

/// The session pulls more room events only while fewer bytes than this are queued.
pub const REFILL_BELOW: usize = 256 << 10;
/// How long a closed connection waits for its close frame to leave, and then for the client's
/// side to end, before it is dropped.
pub const LINGER: Duration = Duration::from_secs(2);
/// Size of the per-thread read buffer.
const SCRATCH_LEN: usize = 16 << 10;
/// Reads per wake-up before the driver lets other connections of the thread run.
const READS_PER_POLL: usize = 16;
/// Slices per vectored write.
const SLICES: usize = 64;
/// Bytes of frames held while the actor waits, beyond which reading pauses until it is done.
pub const HOLD_MAX: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// A close frame is queued: flushing, then shutting the socket down (then [`linger`]).
    Closing,
    /// Ending without flushing (stalled client, broken socket).
    Dropped,
}

pub struct WsConn {
    io: Box<dyn ClientIo>,
    /// Bytes into frames: the codec, continuation frames, permessage-deflate.
    inbound: Inbound,
    /// A partial frame, or bytes read but not decoded yet; `None` when idle.
    inbox: Option<BytesMut>,
    /// Frames read while the actor waited for an answer, each with when it arrived, for the
    /// actor to take in order once the answer is handled ([`WhileReading`]).
    held: VecDeque<(Incoming, Instant)>,
    /// Payload bytes in `held`.
    held_bytes: usize,
    /// The socket ended or failed while the actor waited: said once the held frames are taken.
    lost: Option<&'static str>,
    queue: VecDeque<Bytes>,
    queued: usize,
    /// The front of `queue` is partly written: it must be finished before anything else.
    front_started: bool,
    /// Bytes were written to a stream that may buffer them (TLS): flush before idling.
    needs_flush: bool,
    /// Last time bytes left, or the queue went from empty to not.
    last_write_progress: Instant,
    state: State,
    closed_at: Option<Instant>,
    /// The actor's task, woken when a frame is queued from outside the driver.
    waker: Option<Waker>,
    /// The driver is running: it writes what is queued before it returns, no wake-up needed
    /// (waking our own task would poll it a second time for nothing).
    driving: bool,
}

impl WsConn {
    pub fn new(handover: Handover, max_frame_bytes: usize, deflate: Option<Agreed>) -> Self {
        let Handover { io, read_ahead, response_head } = handover;
        let now = Instant::now();
        let mut conn = Self {
            io,
            inbound: Inbound::new(max_frame_bytes, deflate),
            inbox: (!read_ahead.is_empty()).then(|| BytesMut::from(&read_ahead[..])),
            held: VecDeque::new(),
            held_bytes: 0,
            lost: None,
            queue: VecDeque::new(),
            queued: 0,
            front_started: false,
            needs_flush: false,
            last_write_progress: now,
            state: State::Open,
            closed_at: None,
            waker: None,
            driving: false,
        };
        if !response_head.is_empty() {
            conn.push(response_head);
        }
        conn
    }

    /// Whether the client accepted permessage-deflate.
    pub fn deflates(&self) -> bool {
        self.inbound.deflates()
    }

    /// Still reading frames and taking new ones to send.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Room for more room events (the session's refill stops above [`REFILL_BELOW`]).
    pub fn wants_more(&self) -> bool {
        self.is_open() && self.queued < REFILL_BELOW
    }

    /// When the client last sent a frame (any frame counts as life).
    pub fn last_input(&self) -> Instant {
        self.inbound.last_input
    }

    /// How long frames have waited without a byte leaving; zero when nothing waits.
    pub fn write_stalled_for(&self) -> Duration {
        if self.queue.is_empty() && !self.needs_flush {
            return Duration::ZERO;
        }
        self.last_write_progress.elapsed()
    }

    /// Closed longer ago than `wait` (and than [`LINGER`]): time to drop it whatever the
    /// client does.
    pub fn closed_longer_than(&self, wait: Duration) -> bool {
        self.closed_at.is_some_and(|t| t.elapsed() >= wait.max(LINGER))
    }

    /// Queues an encoded frame (nothing once closing). What is queued is bounded by the
    /// session: room events only below [`REFILL_BELOW`], its own answers by the rate limit.
    pub fn send(&mut self, frame: Bytes) {
        if self.is_open() {
            self.push(frame);
        }
    }

    /// Queues one text frame.
    pub fn text(&mut self, text: &[u8]) {
        self.send(encode(text, OpCode::Text))
    }

    pub fn pong(&mut self, payload: &[u8]) {
        self.send(encode(payload, OpCode::Pong))
    }

    /// Closes a client too slow to keep: drops every queued frame not yet begun (a frame
    /// partly written is finished, or the stream would break) and queues the close frame
    /// after it, to leave as soon as the socket takes bytes; [`LINGER`] bounds the wait.
    pub fn close_abandoning(&mut self, reason: Option<CloseReason>) {
        if !self.is_open() {
            return;
        }
        self.queue.truncate(usize::from(self.front_started));
        self.queued = self.queue.iter().map(Bytes::len).sum();
        self.close(reason);
    }

    /// Queues a close frame; the driver flushes it, shuts the socket down and stops the actor.
    pub fn close(&mut self, reason: Option<CloseReason>) {
        if !self.is_open() {
            return;
        }
        let mut out = BytesMut::new();
        Parser::write_close(&mut out, reason, false);
        self.push(out.freeze());
        self.state = State::Closing;
        self.closed_at = Some(Instant::now());
    }

    /// Ends without writing anything more (the client stopped reading).
    pub fn drop_now(&mut self) {
        self.state = State::Dropped;
        self.queue = VecDeque::new();
        self.queued = 0;
        self.front_started = false;
        self.inbox = None;
        self.held = VecDeque::new();
        self.held_bytes = 0;
    }

    /// The oldest frame held while the actor waited, with when it arrived.
    fn take_held(&mut self) -> Option<(Incoming, Instant)> {
        let (incoming, arrived) = self.held.pop_front()?;
        self.held_bytes -= held_size(&incoming);
        if self.held.is_empty() {
            self.held = VecDeque::new();
        }
        Some((incoming, arrived))
    }

    /// Reads on while the actor waits (see [`WhileReading`]): holds every complete frame with
    /// when it arrived, until the socket would block, [`HOLD_MAX`] bytes are held, or the
    /// input ended (a close frame, a protocol error, the socket's end).
    fn hold_input(&mut self, cx: &mut TaskContext<'_>) {
        if !self.is_open() || self.lost.is_some() {
            return;
        }
        let mut inbox = self.inbox.take().unwrap_or_default();
        let mut reads = 0;
        loop {
            while let Some(incoming) = self.decode(&mut inbox) {
                self.held_bytes += held_size(&incoming);
                let ends = ends_input(&incoming);
                self.held.push_back((incoming, Instant::now()));
                if ends {
                    break;
                }
            }
            let ended = self.held.back().is_some_and(|(incoming, _)| ends_input(incoming));
            if ended || self.held_bytes >= HOLD_MAX {
                break;
            }
            if reads == READS_PER_POLL {
                // More may wait: come back after the thread's other connections.
                cx.waker().wake_by_ref();
                break;
            }
            inbox.reserve(SCRATCH_LEN);
            match poll_read_buf(Pin::new(&mut self.io), cx, &mut inbox) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => self.lost = Some("read failed"),
                Poll::Ready(Ok(0)) => self.lost = Some("connection lost"),
                Poll::Ready(Ok(_)) => {}
            }
            if self.lost.is_some() {
                break;
            }
            reads += 1;
        }
        if !inbox.is_empty() {
            self.inbox = Some(inbox);
        }
    }

    /// The next complete frame in `buf`, if one is (see [`Inbound::decode`]).
    fn decode(&mut self, buf: &mut BytesMut) -> Option<Incoming> {
        self.inbound.decode(buf)
    }

    fn push(&mut self, frame: Bytes) {
        if self.queue.is_empty() && !self.needs_flush {
            self.last_write_progress = Instant::now();
            if let (false, Some(waker)) = (self.driving, &self.waker) {
                waker.wake_by_ref();
            }
        }
        self.queued += frame.len();
        self.queue.push_back(frame);
    }

    /// Writes what is queued until the socket would block; answers whether bytes left.
    fn poll_output(&mut self, cx: &mut TaskContext<'_>) -> io::Result<bool> {
        let mut progress = false;
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); SLICES];
            let n = self.queue.iter().take(SLICES).zip(slices.iter_mut()).map(|(b, s)| *s = IoSlice::new(b)).count();
            let mut written = match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(written)) => written,
            };
            progress = true;
            self.needs_flush = true;
            self.last_write_progress = Instant::now();
            self.queued -= written;
            while written > 0 {
                let Some(front) = self.queue.front_mut() else { break };
                if front.len() <= written {
                    written -= front.len();
                    self.queue.pop_front();
                    self.front_started = false;
                } else {
                    front.advance(written);
                    self.front_started = true;
                    written = 0;
                }
            }
        }
        if self.queue.is_empty() {
            // No idle buffers: the next burst allocates its own.
            if self.queue.capacity() > 0 {
                self.queue = VecDeque::new();
            }
            if self.needs_flush {
                match Pin::new(&mut self.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => {}
                }
            }
        }
        Ok(progress)
    }
}

/// One unmasked, final frame of `op` (actix-http's frame writer).
pub fn encode(payload: &[u8], op: OpCode) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    Parser::write_message(&mut out, payload, op, true, false);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use actix_http::ws;

    use super::*;
    use crate::ws_frames::Frame;

    fn conn() -> WsConn {
        let (ours, _theirs) = tokio::io::duplex(64);
        let handover = Handover {
            io: Box::new(ours),
            read_ahead: BytesMut::new(),
            response_head: Bytes::from_static(b"HTTP/1.1 101\r\n\r\n"),
        };
        WsConn::new(handover, 1024, None)
    }

    #[test]
    fn room_events_are_pulled_only_while_little_is_queued() {
        let mut conn = conn();
        let frame = encode(&[b'x'; 60_000], OpCode::Text);
        while conn.wants_more() {
            conn.send(frame.clone());
        }
        assert!(conn.queued < REFILL_BELOW + frame.len());
    }

    #[test]
    fn a_slow_client_is_closed_after_the_frame_it_is_reading_and_nothing_else() {
        let mut conn = conn();
        let frame = encode(&[b'x'; 1000], OpCode::Text);
        conn.send(frame.clone());
        conn.send(frame.clone());
        // The 101 answer is partly written.
        conn.queue[0].advance(3);
        conn.front_started = true;
        conn.close_abandoning(Some(CloseReason { code: ws::CloseCode::Again, description: None }));
        assert_eq!(conn.queue.len(), 2, "the partly written frame, then the close frame");
        assert_eq!(conn.queue[1][0], 0x88, "a close frame");
        assert_eq!(conn.queued, conn.queue.iter().map(Bytes::len).sum::<usize>());
        assert!(!conn.is_open());
    }

    /// A masked client text frame.
    fn masked_text(payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![0x81, 0x80 | payload.len() as u8];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn frames_that_arrive_while_the_actor_waits_count_as_life_and_are_held_in_order() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let handover = Handover { io: Box::new(ours), read_ahead: BytesMut::new(), response_head: Bytes::new() };
        let mut conn = WsConn::new(handover, 1024, None);
        let mut cx = TaskContext::from_waker(Waker::noop());
        let before = conn.last_input();
        std::thread::sleep(Duration::from_millis(5));
        let mut bytes = masked_text(b"one");
        bytes.extend(masked_text(b"two"));
        bytes.extend(&masked_text(b"three")[..4]);
        let written = Pin::new(&mut theirs).poll_write(&mut cx, &bytes);
        assert!(matches!(written, Poll::Ready(Ok(n)) if n == bytes.len()));

        conn.hold_input(&mut cx);
        assert!(conn.last_input() > before, "they count as life at once");
        let held: Vec<String> = std::iter::from_fn(|| conn.take_held())
            .map(|(incoming, _)| match incoming {
                Incoming::Frame(Frame::Text(text)) => text.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(held, ["one", "two"], "in order");
        assert!(conn.inbox.is_some(), "the third, still partial, waits");
        assert_eq!(conn.held_bytes, 0);
    }

    #[test]
    fn nothing_waits_for_an_idle_client_and_a_closed_one_takes_nothing_more() {
        let mut conn = conn();
        assert_eq!(conn.queued, "HTTP/1.1 101\r\n\r\n".len(), "the 101 answer");
        conn.drop_now();
        assert_eq!((conn.queue.capacity(), conn.inbox.is_none()), (0, true));
        let mut conn = self::tests::conn();
        conn.close(None);
        assert!(!conn.is_open());
        let before = conn.queued;
        conn.text(b"late");
        assert_eq!(conn.queued, before, "nothing is queued after the close frame");
    }
}
