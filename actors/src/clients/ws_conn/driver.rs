//! The driver: the one actor future that moves a connection's bytes (read, hand over, refill,
//! write, close), and [`WhileReading`], which goes on reading while the actor awaits an answer.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use actix::fut::ActorFuture;
use actix::{Actor, ActorContext, AsyncContext, Context};
use bytes::BytesMut;
use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

use super::{ClientIo, Incoming, State, WsConn, LINGER, READS_PER_POLL, SCRATCH_LEN};

thread_local! {
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// An actor whose connection a [`Driver`] moves.
pub trait Driven: Actor<Context = Context<Self>> {
    fn conn(&mut self) -> &mut WsConn;
    /// A complete frame arrived (at `arrived`: earlier than now when it was held while the
    /// actor waited), or input that ends the connection.
    fn on_incoming(&mut self, incoming: Incoming, arrived: Instant, ctx: &mut Context<Self>);
    /// The queue has room ([`WsConn::wants_more`]): queue more if there is any, registering
    /// `cx` to be woken when there will be; answer whether something was queued.
    fn refill(&mut self, cx: &mut TaskContext<'_>, ctx: &mut Context<Self>) -> bool;
    /// The socket ended or failed (not after our own close).
    fn on_lost(&mut self, why: &'static str, ctx: &mut Context<Self>);
}

/// The actor future that reads, refills and writes; spawn one per connection.
pub struct Driver;

/// An answer the actor waits for (`ctx.wait(WhileReading::new(..))`), while its connection
/// goes on reading: frames that arrive meanwhile count as life at once and are held for the
/// actor, in order, until the answer is handled; what was queued to send before still leaves.
/// (actix polls no other future of an actor that waits, the [`Driver`] included.)
pub struct WhileReading<F>(Pin<Box<F>>);

impl<F> WhileReading<F> {
    pub fn new(answer: F) -> Self {
        Self(Box::pin(answer))
    }
}

impl<A: Driven, F: ActorFuture<A>> ActorFuture<A> for WhileReading<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, act: &mut A, ctx: &mut Context<A>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        if let Poll::Ready(answer) = self.0.as_mut().poll(act, ctx, cx) {
            return Poll::Ready(answer);
        }
        let conn = act.conn();
        conn.hold_input(cx);
        // A write that fails is met again by the driver, once the answer is handled.
        let _ = conn.poll_output(cx);
        Poll::Pending
    }
}

impl<A: Driven> ActorFuture<A> for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, act: &mut A, ctx: &mut Context<A>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if act.conn().waker.is_none() {
            act.conn().waker = Some(cx.waker().clone());
        }
        act.conn().driving = true;
        let done = drive(act, ctx, cx);
        act.conn().driving = false;
        done
    }
}

/// One wake-up of the driver: read, refill, write until nothing moves.
fn drive<A: Driven>(act: &mut A, ctx: &mut Context<A>, cx: &mut TaskContext<'_>) -> Poll<()> {
    loop {
        let mut progress = false;
        match act.conn().state {
            State::Dropped => {
                ctx.stop();
                return Poll::Ready(());
            }
            State::Open => match read_frames(act, ctx, cx) {
                Ok(read) => progress |= read,
                Err(why) => {
                    act.on_lost(why, ctx);
                    ctx.stop();
                    return Poll::Ready(());
                }
            },
            State::Closing => {}
        }
        // Not while the actor awaits an answer (a room's): the answer goes out before the
        // room events that follow it, as the client expects.
        if !ctx.waiting() && act.conn().wants_more() && act.refill(cx, ctx) {
            progress = true;
        }
        match act.conn().poll_output(cx) {
            Ok(wrote) => progress |= wrote,
            Err(_) => {
                if act.conn().is_open() {
                    act.on_lost("write failed", ctx);
                }
                ctx.stop();
                return Poll::Ready(());
            }
        }
        let conn = act.conn();
        if conn.state == State::Closing && conn.queue.is_empty() && !conn.needs_flush {
            match Pin::new(&mut conn.io).poll_shutdown(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {
                    // The session ends now (its room is left, its log line written); the
                    // socket lingers on its own for what the client still sends.
                    let io = std::mem::replace(&mut conn.io, Box::new(tokio::io::empty()));
                    actix::spawn(linger(io));
                    ctx.stop();
                    return Poll::Ready(());
                }
                Poll::Ready(Err(_)) => {
                    ctx.stop();
                    return Poll::Ready(());
                }
            }
        }
        if !progress {
            return Poll::Pending;
        }
    }
}

/// Reads and hands over frames until the socket would block, the actor waits for an answer
/// (a room's), or the connection closes; answers whether anything was read.
fn read_frames<A: Driven>(act: &mut A, ctx: &mut Context<A>, cx: &mut TaskContext<'_>) -> Result<bool, &'static str> {
    let mut progress = false;
    // Frames held while the actor waited, in the order they came, before anything newer.
    while !ctx.waiting() && act.conn().is_open() {
        let Some((incoming, arrived)) = act.conn().take_held() else { break };
        act.on_incoming(incoming, arrived, ctx);
        progress = true;
    }
    if !act.conn().held.is_empty() {
        return Ok(progress);
    }
    if let Some(why) = act.conn().lost.take() {
        return Err(why);
    }
    // Bytes an earlier read left: a partial frame, or frames the actor did not take yet.
    if let Some(mut inbox) = act.conn().inbox.take() {
        progress |= deliver(act, ctx, &mut inbox);
        if !inbox.is_empty() {
            act.conn().inbox = Some(inbox);
        }
    }
    for _ in 0..READS_PER_POLL {
        if ctx.waiting() || !act.conn().is_open() {
            return Ok(progress);
        }
        let read = SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            scratch.clear();
            scratch.reserve(SCRATCH_LEN);
            match poll_read_buf(Pin::new(&mut act.conn().io), cx, &mut *scratch) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Err(_)) => return Err("read failed"),
                Poll::Ready(Ok(0)) => return Err("connection lost"),
                Poll::Ready(Ok(_)) => {}
            }
            match act.conn().inbox.take() {
                // A partial frame waits: this read continues it.
                Some(mut inbox) => {
                    inbox.extend_from_slice(&scratch);
                    scratch.clear();
                    deliver(act, ctx, &mut inbox);
                    if !inbox.is_empty() {
                        act.conn().inbox = Some(inbox);
                    }
                }
                None => {
                    deliver(act, ctx, &mut scratch);
                    if !scratch.is_empty() {
                        act.conn().inbox = Some(BytesMut::from(&scratch[..]));
                        scratch.clear();
                    }
                }
            }
            Ok(true)
        })?;
        if !read {
            return Ok(progress);
        }
        progress = true;
    }
    // A client with more to say: let the thread's other connections run first.
    cx.waker().wake_by_ref();
    Ok(progress)
}

/// Decodes complete frames from `buf` and hands them to the actor, stopping when it waits or
/// closes; answers whether a frame was handed over.
fn deliver<A: Driven>(act: &mut A, ctx: &mut Context<A>, buf: &mut BytesMut) -> bool {
    let mut any = false;
    while !ctx.waiting() && act.conn().is_open() {
        let Some(incoming) = act.conn().decode(buf) else { break };
        any = true;
        act.on_incoming(incoming, Instant::now(), ctx);
    }
    any
}

/// After our close frame and shutdown: reads and drops what the client still sends (its close
/// frame answering ours, frames in flight) until its side ends or [`LINGER`] passes, so that
/// closing a socket with unread bytes does not reset the connection and lose our close frame.
async fn linger(mut io: Box<dyn ClientIo>) {
    let drain = std::future::poll_fn(|cx| loop {
        let mut buf = BytesMut::with_capacity(1024);
        match poll_read_buf(Pin::new(&mut io), cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(_)) => {}
        }
    });
    let _ = tokio::time::timeout(LINGER, drain).await;
}
