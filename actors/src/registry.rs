//! The `Registry` actor: the rooms of this node and the ingest side around them. It finds or
//! starts the room of a channel (a [`RoomFront`](crate::room::RoomFront) over its engine), routes a BIGO `game_sess` to its channel
//! (docs/protocol.md 2.6, Channels), forwards live-room statuses to running rooms, knows the BIGO
//! sessions (route changes, shutdown) and owns the pullers (docs/protocol.md 1.5).
//!
//! It is off the hot path: an ingester asks it once per `game_sess` and then talks to the room
//! directly (`crate::ingress::ingest`); when a route changes it tells every ingester ([`RouteChanged`]).
//! It keeps no room status of its own: a starting room asks the live-room layer, whose store
//! is the truth ([`StatusOf`](crate::room::StatusOf)).
//!
//! Rooms run on a small pool of arbiters (threads) so that hot rooms spread over the cores;
//! the registry itself does only map look-ups. Client sessions and users are the
//! [`SessionIndex`](crate::clients::sessions::SessionIndex)'s concern.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use log::{debug, info};

use crate::config::{BigoConfig, RoomConfig};
use crate::ingress::ingest::{RouteChanged, RouteGameSess};
use crate::ingress::puller::{GameSessSeen, Puller, PullerLinks, PullerStopped};
use crate::metrics::Metrics;
use crate::protocol::status::LiveStatus;
use crate::room::dedup::DedupWindow;
use crate::room::events::SessionId;
use crate::room::{LocalEngine, MembershipChanged, RoomHandle, RoomLinks, RoomStopped, SetStatus, StatusOf};

/// Closes a BIGO connection (shutdown: BIGO re-sends what it has no 200 for to another node).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct CloseBigo;

/// The room serving `channel_name`, started if needed.
#[derive(Message)]
#[rtype(result = "RoomHandle")]
pub struct RoomFor {
    pub channel_name: String,
}

/// From now on the danmu of `game_sess` go to `channel_name` (live room `/game`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkGameSess {
    pub game_sess: String,
    pub channel_name: String,
}

/// The live-room status of `channel_name` changed (docs/protocol.md 3): the running room, if any,
/// broadcasts `room_status`. A room not running learns it from the store when it starts.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetLiveStatus {
    pub channel_name: String,
    pub status: LiveStatus,
}

/// Every running room (shutdown flushes them).
#[derive(Message)]
#[rtype(result = "Vec<RoomHandle>")]
pub struct AllRooms;

/// A BIGO connection opened: it hears of route changes, and of shutdown.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BigoOpened {
    pub session: SessionId,
    pub close: Recipient<CloseBigo>,
    pub route_changed: Recipient<RouteChanged>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct BigoClosed {
    pub session: SessionId,
}

/// Closes every BIGO connection; answers how many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAllBigo;

/// How many game sessions closed by status 3 the registry remembers, so that a retried
/// status-3 push does not start a puller again.
const CLOSED_GAME_SESS_REMEMBERED: usize = 10_000;

/// Starts the room of a channel where the shell wants it (several nodes: a room whose state
/// is shared), given the channel, its links and the arbiter it should run on.
pub type RoomFactory = Box<dyn Fn(String, RoomLinks, Option<ArbiterHandle>) -> RoomHandle>;

struct BigoEntry {
    close: Recipient<CloseBigo>,
    route_changed: Recipient<RouteChanged>,
}

pub struct Registry {
    room_config: RoomConfig,
    send_queue_len: usize,
    metrics: Arc<Metrics>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    rooms: HashMap<String, RoomHandle>,
    /// game_sess -> channel, for linked sessions; any other game_sess is its own channel.
    routes: HashMap<String, String>,
    bigo_sessions: HashMap<SessionId, BigoEntry>,
    /// Pull compensation settings; `None` = no pullers.
    pull: Option<Arc<BigoConfig>>,
    pullers: HashMap<String, Addr<Puller>>,
    closed_game_sess: DedupWindow,
    membership: Option<Recipient<MembershipChanged>>,
    status_of: Option<Recipient<StatusOf>>,
    /// `None`: every room runs on this node's own engine ([`LocalEngine`]).
    factory: Option<RoomFactory>,
}

impl Registry {
    /// `arbiters` run the rooms (round robin); empty means the registry's own arbiter.
    pub fn new(
        room_config: RoomConfig,
        send_queue_len: usize,
        metrics: Arc<Metrics>,
        arbiters: Vec<ArbiterHandle>,
    ) -> Self {
        Self {
            room_config,
            send_queue_len,
            metrics,
            arbiters,
            next_arbiter: 0,
            rooms: HashMap::new(),
            routes: HashMap::new(),
            bigo_sessions: HashMap::new(),
            pull: None,
            pullers: HashMap::new(),
            closed_game_sess: DedupWindow::new(CLOSED_GAME_SESS_REMEMBERED),
            membership: None,
            status_of: None,
            factory: None,
        }
    }

    /// Every room started from now on is made by `factory` (another engine) instead.
    pub fn with_room_factory(mut self, factory: RoomFactory) -> Self {
        self.factory = Some(factory);
        self
    }

    /// Every room started from now on reports its joins and leaves to `hook`.
    pub fn with_membership_hook(mut self, hook: Recipient<MembershipChanged>) -> Self {
        self.membership = Some(hook);
        self
    }

    /// Every room started from now on asks `source` for its live-room status first.
    pub fn with_status_source(mut self, source: Recipient<StatusOf>) -> Self {
        self.status_of = Some(source);
        self
    }

    /// Turns pull compensation on when `bigo.pull.enabled` (docs/protocol.md 1.5).
    pub fn with_pull(mut self, bigo: Arc<BigoConfig>) -> Self {
        self.pull = bigo.pull.enabled.then_some(bigo);
        self
    }

    fn next_arbiter(&mut self) -> Option<ArbiterHandle> {
        let arbiter = self.arbiters.get(self.next_arbiter % self.arbiters.len().max(1)).cloned();
        self.next_arbiter += 1;
        arbiter
    }

    fn room(&mut self, channel_name: &str, ctx: &mut Context<Self>) -> RoomHandle {
        if let Some(room) = self.rooms.get(channel_name).filter(|r| r.connected()) {
            return room.clone();
        }
        let links = RoomLinks {
            stopped: ctx.address().recipient(),
            membership: self.membership.clone(),
            status_of: self.status_of.clone(),
        };
        let arbiter = self.next_arbiter();
        let room = match &self.factory {
            Some(make) => make(channel_name.to_string(), links, arbiter),
            None => LocalEngine::start(
                channel_name.to_string(),
                self.room_config.clone(),
                self.send_queue_len,
                self.metrics.clone(),
                links,
                arbiter,
            ),
        };
        debug!("registry: started room {channel_name}");
        self.rooms.insert(channel_name.to_string(), room.clone());
        room
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<RoomFor> for Registry {
    type Result = MessageResult<RoomFor>;

    fn handle(&mut self, msg: RoomFor, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.room(&msg.channel_name, ctx))
    }
}

impl Handler<RouteGameSess> for Registry {
    type Result = MessageResult<RouteGameSess>;

    fn handle(&mut self, msg: RouteGameSess, ctx: &mut Self::Context) -> Self::Result {
        let channel = self.routes.get(&msg.game_sess).cloned().unwrap_or(msg.game_sess);
        MessageResult(self.room(&channel, ctx))
    }
}

impl Handler<LinkGameSess> for Registry {
    type Result = ();

    fn handle(&mut self, msg: LinkGameSess, _ctx: &mut Self::Context) {
        info!("registry: game_sess {} now routes to channel_name {}", msg.game_sess, msg.channel_name);
        let changed = self.routes.insert(msg.game_sess.clone(), msg.channel_name.clone()) != Some(msg.channel_name);
        if changed {
            let news = RouteChanged { game_sess: msg.game_sess.clone() };
            for entry in self.bigo_sessions.values() {
                entry.route_changed.do_send(news.clone());
            }
            if let Some(puller) = self.pullers.get(&msg.game_sess) {
                puller.do_send(news);
            }
        }
    }
}

impl Handler<SetLiveStatus> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SetLiveStatus, ctx: &mut Self::Context) {
        // A room of this node that is not running learns its status from the store when it
        // starts; a room made by a factory may run on other nodes too (shared rooms), so it is
        // started here to hand the change on (it stops again when idle).
        let room = match &self.factory {
            Some(_) => Some(self.room(&msg.channel_name, ctx)),
            None => self.rooms.get(&msg.channel_name).filter(|a| a.connected()).cloned(),
        };
        if let Some(room) = room {
            room.set_status.do_send(SetStatus { status: msg.status });
        }
    }
}

impl Handler<RoomStopped> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RoomStopped, _ctx: &mut Self::Context) {
        if self.rooms.get(&msg.channel_name).is_some_and(|r| r.same_room(&msg.room)) {
            self.rooms.remove(&msg.channel_name);
        }
    }
}

impl Handler<AllRooms> for Registry {
    type Result = MessageResult<AllRooms>;

    fn handle(&mut self, _: AllRooms, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.rooms.values().cloned().collect())
    }
}

impl Handler<BigoOpened> for Registry {
    type Result = ();

    fn handle(&mut self, msg: BigoOpened, _ctx: &mut Self::Context) {
        self.bigo_sessions.insert(msg.session, BigoEntry { close: msg.close, route_changed: msg.route_changed });
    }
}

impl Handler<BigoClosed> for Registry {
    type Result = ();

    fn handle(&mut self, msg: BigoClosed, _ctx: &mut Self::Context) {
        self.bigo_sessions.remove(&msg.session);
    }
}

impl Handler<CloseAllBigo> for Registry {
    type Result = usize;

    fn handle(&mut self, _: CloseAllBigo, _ctx: &mut Self::Context) -> usize {
        for entry in self.bigo_sessions.values() {
            entry.close.do_send(CloseBigo);
        }
        self.bigo_sessions.len()
    }
}

impl Handler<GameSessSeen> for Registry {
    type Result = ();

    fn handle(&mut self, msg: GameSessSeen, ctx: &mut Self::Context) {
        let Some(config) = self.pull.clone() else { return };
        if self.closed_game_sess.contains(&msg.game_sess) {
            return;
        }
        if msg.closed {
            self.closed_game_sess.first_time(&msg.game_sess);
        }
        if let Some(puller) = self.pullers.get(&msg.game_sess).filter(|p| p.connected()) {
            puller.do_send(msg);
            return;
        }
        let links = PullerLinks { route: ctx.address().recipient(), stopped: ctx.address().recipient() };
        let (metrics, game_sess) = (self.metrics.clone(), msg.game_sess.clone());
        let make = move |_: &mut Context<Puller>| Puller::new(&msg, config, links, metrics);
        let addr = match self.next_arbiter() {
            None => Puller::create(make),
            Some(arbiter) => Puller::start_in_arbiter(&arbiter, make),
        };
        self.pullers.insert(game_sess, addr);
    }
}

impl Handler<PullerStopped> for Registry {
    type Result = ();

    fn handle(&mut self, msg: PullerStopped, _ctx: &mut Self::Context) {
        if self.pullers.get(&msg.game_sess) == Some(&msg.addr) {
            self.pullers.remove(&msg.game_sess);
        }
    }
}
