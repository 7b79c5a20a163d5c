//! The ingest path: how BIGO's danmu reach their room, shared by the [`BigoSession`]s
//! (pushes) and the [`Puller`]s (pulled batches), so that neither imports the other.
//!
//! A `game_sess` routes to a channel (docs/protocol.md 2.6, Channels); the registry knows which and
//! answers [`RouteGameSess`] with the room's address. An ingester asks once and then sends
//! straight to the room ([`offer`]): one message per push, and a connection's pushes enter
//! the room's mailbox in the order they arrived (equal `ts` keep arrival order). The cached
//! address is dropped when the room turns out to be gone (it stopped while idle) or when the
//! registry says the route changed ([`RouteChanged`], a live room's `/game` link).
//!
//! [`BigoSession`]: crate::ingress::bigo_session::BigoSession
//! [`Puller`]: crate::ingress::puller::Puller

use std::collections::HashMap;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::room::{Ingest, IngestOutcome, Push, RoomHandle};

/// The room that the danmu of `game_sess` go to, started if needed.
#[derive(Message)]
#[rtype(result = "RoomHandle")]
pub struct RouteGameSess {
    pub game_sess: String,
}

/// The danmu of `game_sess` go elsewhere from now on: forget its cached room.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct RouteChanged {
    pub game_sess: String,
}

/// What became of a push offered to a room.
pub enum Offer {
    /// In the room's mailbox: the room answers on this receiver once it has taken the push
    /// (a dropped sender means the room stopped before reading it: no 200).
    Sent(oneshot::Receiver<IngestOutcome>),
    /// The room's mailbox is full: 503.
    Full,
    /// The room has stopped: route again.
    Gone(Push),
}

/// Puts `push` into `room`'s mailbox now, without waiting.
pub fn offer(room: &RoomHandle, push: Push) -> Offer {
    let (reply, answer) = oneshot::channel();
    match room.ingest.try_send(Ingest { push, reply }) {
        Ok(()) => Offer::Sent(answer),
        Err(SendError::Full(_)) => Offer::Full,
        Err(SendError::Closed(msg)) => Offer::Gone(msg.push),
    }
}

/// An ingester's known routes: `game_sess` -> its room.
pub struct Routes {
    registry: Recipient<RouteGameSess>,
    rooms: HashMap<String, RoomHandle>,
}

impl Routes {
    pub fn new(registry: Recipient<RouteGameSess>) -> Self {
        Self { registry, rooms: HashMap::new() }
    }

    /// The room of `game_sess` if known and still running.
    pub fn cached(&self, game_sess: &str) -> Option<RoomHandle> {
        self.rooms.get(game_sess).filter(|room| room.connected()).cloned()
    }

    pub fn remember(&mut self, game_sess: String, room: RoomHandle) {
        self.rooms.insert(game_sess, room);
    }

    pub fn forget(&mut self, game_sess: &str) {
        self.rooms.remove(game_sess);
    }

    /// Asks the registry for the room of `game_sess` (a future that owns what it needs).
    pub fn look_up(&self, game_sess: &str) -> impl std::future::Future<Output = Option<RoomHandle>> + 'static {
        let request = self.registry.send(RouteGameSess { game_sess: game_sess.to_string() });
        async move { request.await.ok() }
    }
}

/// Hands `push` to the room of `game_sess` (`room` when already known) and waits until it is
/// taken; answers the room used, to be remembered, and the outcome (`None`: no room could
/// take it). For pullers, whose batches need no order with respect to pushes.
pub async fn deliver(
    registry: Recipient<RouteGameSess>,
    room: Option<RoomHandle>,
    push: Push,
) -> (Option<RoomHandle>, Option<IngestOutcome>) {
    let mut push = push;
    let mut room = room.filter(|r| r.connected());
    // A room may stop (idle) between routing and sending: route again once.
    for _ in 0..2 {
        let target = match room.take() {
            Some(r) => r,
            None => match registry.send(RouteGameSess { game_sess: push.game_sess.clone() }).await {
                Ok(r) => r,
                Err(_) => return (None, None),
            },
        };
        match offer(&target, push) {
            Offer::Sent(answer) => return (Some(target), answer.await.ok()),
            Offer::Full => return (Some(target), Some(IngestOutcome::Full)),
            Offer::Gone(back) => push = back,
        }
    }
    (None, None)
}
