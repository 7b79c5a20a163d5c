//! A room's fan-out: its events held once for all of this node's members, and each member's
//! [`Feed`], which takes from them as fast as that member's socket takes bytes (docs/protocol.md
//! 2.3, the outgoing queue).
//!
//! The room publishes the events an input released ([`Fanout::publish`]) into one
//! `tokio::sync::broadcast` ring of [`Bundle`]s. The ring keeps a bundle only until every
//! member has taken it, and members share its bytes (a session queues clones of the bundle's
//! `Bytes`, never a copy): a burst costs memory once per room, not once per member.
//!
//! - **Bounded bundles.** What one input releases can be thousands of events (a gift storm
//!   released in one tick). It is cut into bundles of at most [`BUNDLE_BYTES`] of JSON (and at
//!   least one event each), so that a session takes a burst a little at a time, as its socket
//!   drains, and a `batch=1` array stays a reasonable frame.
//! - **The bound counts events.** A member falls behind by the events published since its feed
//!   began that it has not taken yet ([`Feed::behind`]); past `client.send_queue_len` it is too
//!   slow (close code 1013). The ring holds `send_queue_len` bundles, each of one event or
//!   more, so a member the ring laps is always past the bound too ([`Taken::Lagged`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::events::{Bundle, RoomEvent};

/// The most JSON one bundle carries (unless a single event is larger).
pub const BUNDLE_BYTES: usize = 64 << 10;

/// The room's side: publishes its events to every feed.
pub struct Fanout {
    ring: broadcast::Sender<Arc<Bundle>>,
    /// Events published so far (every feed counts from where it began).
    published: Arc<AtomicU64>,
    bound: u64,
}

impl Fanout {
    /// A fan-out whose members may fall `send_queue_len` events behind.
    pub fn new(send_queue_len: usize) -> Self {
        let (ring, _) = broadcast::channel(send_queue_len.max(1));
        Self { ring, published: Arc::new(AtomicU64::new(0)), bound: send_queue_len.max(1) as u64 }
    }

    /// Publishes `events` (in `seq` order) to every feed, in bundles of at most
    /// [`BUNDLE_BYTES`].
    pub fn publish(&self, events: Vec<RoomEvent>) {
        for bundle in bundles(events) {
            let n = bundle.events.len() as u64;
            // An error only means nobody is listening right now.
            let _ = self.ring.send(Arc::new(bundle));
            self.published.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A feed of every event published from now on. Take it before the input whose effects
    /// the member must not miss is applied (a join's own answer comes first).
    pub fn feed(&self) -> Feed {
        Feed {
            ring: BroadcastStream::new(self.ring.subscribe()),
            published: self.published.clone(),
            taken: self.published.load(Ordering::Relaxed),
            bound: self.bound,
        }
    }

    /// Feeds reading now.
    pub fn feeds(&self) -> usize {
        self.ring.receiver_count()
    }
}

/// `events` cut into bundles of at most [`BUNDLE_BYTES`] of JSON, each with one event or more.
fn bundles(events: Vec<RoomEvent>) -> Vec<Bundle> {
    let mut out = Vec::new();
    let mut current: Vec<RoomEvent> = Vec::new();
    let mut bytes = 0;
    for event in events {
        if !current.is_empty() && bytes + event.json.len() > BUNDLE_BYTES {
            out.push(Bundle::new(std::mem::take(&mut current)));
            bytes = 0;
        }
        bytes += event.json.len();
        current.push(event);
    }
    if !current.is_empty() {
        out.push(Bundle::new(current));
    }
    out
}

/// One member's view of the fan-out.
pub struct Feed {
    ring: BroadcastStream<Arc<Bundle>>,
    published: Arc<AtomicU64>,
    /// Events published up to the last bundle this feed took (or to its start).
    taken: u64,
    bound: u64,
}

/// What [`Feed::poll_take`] found.
#[derive(Debug)]
pub enum Taken {
    Bundle(Arc<Bundle>),
    /// The member fell more than `client.send_queue_len` events behind.
    Lagged,
    /// The room stopped: nothing more will come.
    Ended,
}

impl Feed {
    /// The next bundle, when one is there (else `cx` is woken when one is).
    pub fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Taken> {
        if self.is_too_far_behind() {
            return Poll::Ready(Taken::Lagged);
        }
        match Pin::new(&mut self.ring).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bundle))) => {
                self.taken += bundle.events.len() as u64;
                Poll::Ready(Taken::Bundle(bundle))
            }
            Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => Poll::Ready(Taken::Lagged),
            Poll::Ready(None) => Poll::Ready(Taken::Ended),
        }
    }

    /// Events published that this feed has not taken yet.
    pub fn behind(&self) -> u64 {
        self.published.load(Ordering::Relaxed).saturating_sub(self.taken)
    }

    /// Further behind than `client.send_queue_len` events: the member is too slow.
    pub fn is_too_far_behind(&self) -> bool {
        self.behind() > self.bound
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::protocol::client::EventBody;
    use crate::protocol::status::ChannelStatus;

    fn events(n: u64, json_bytes: usize) -> Vec<RoomEvent> {
        let name = "x".repeat(json_bytes.saturating_sub(60));
        let body = EventBody::RoomStatus { channel_name: name, status: ChannelStatus::Live };
        (1..=n).map(|seq| RoomEvent::new(&body, Some(seq), 0, None)).collect()
    }

    fn take(feed: &mut Feed) -> Poll<Taken> {
        feed.poll_take(&mut Context::from_waker(Waker::noop()))
    }

    fn seqs(taken: Poll<Taken>) -> Vec<u64> {
        match taken {
            Poll::Ready(Taken::Bundle(b)) => b.events.iter().filter_map(|e| e.seq).collect(),
            other => panic!("no bundle: {other:?}"),
        }
    }

    #[test]
    fn a_burst_is_cut_into_bundles_of_bounded_size_in_order() {
        let fanout = Fanout::new(4096);
        let mut feed = fanout.feed();
        fanout.publish(events(3800, 1200));
        let mut all = Vec::new();
        while let Poll::Ready(Taken::Bundle(bundle)) = take(&mut feed) {
            assert!(bundle.array_len() <= BUNDLE_BYTES + 64, "a bundle of {} bytes", bundle.array_len());
            all.extend(bundle.events.iter().filter_map(|e| e.seq));
        }
        assert_eq!(all, (1..=3800).collect::<Vec<_>>());
        assert_eq!(feed.behind(), 0);
    }

    #[test]
    fn an_event_larger_than_a_bundle_travels_alone() {
        let fanout = Fanout::new(16);
        let mut feed = fanout.feed();
        fanout.publish(events(2, BUNDLE_BYTES + 10));
        assert_eq!(seqs(take(&mut feed)), [1]);
        assert_eq!(seqs(take(&mut feed)), [2]);
    }

    #[test]
    fn a_member_is_too_slow_past_the_bound_in_events_not_bundles() {
        let fanout = Fanout::new(100);
        let mut slow = fanout.feed();
        let mut fast = fanout.feed();
        // 100 events in few bundles: at the bound, not past it.
        fanout.publish(events(100, 200));
        assert_eq!((slow.behind(), slow.is_too_far_behind()), (100, false));
        while let Poll::Ready(Taken::Bundle(_)) = take(&mut fast) {}
        fanout.publish(events(1, 200));
        assert!(slow.is_too_far_behind());
        assert!(matches!(take(&mut slow), Poll::Ready(Taken::Lagged)));
        assert_eq!(seqs(take(&mut fast)), [1], "the others never wait for it");
    }

    #[test]
    fn a_feed_sees_only_what_was_published_after_it_began_and_ends_with_the_room() {
        let fanout = Fanout::new(8);
        fanout.publish(events(3, 100));
        let mut feed = fanout.feed();
        assert!(take(&mut feed).is_pending());
        assert_eq!(feed.behind(), 0);
        fanout.publish(events(1, 100));
        assert_eq!(seqs(take(&mut feed)), [1]);
        drop(fanout);
        assert!(matches!(take(&mut feed), Poll::Ready(Taken::Ended)));
    }
}
