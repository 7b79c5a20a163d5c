//! The `Registry` actor: finds or starts the [`RoomActor`] of a channel, routes a BIGO
//! `game_sess` to its channel (PROTOCOL.md 2.6, Channels), and indexes client sessions by
//! (user_id, sid) so that a second connection replaces the first and `/iapi/user/info` can say
//! which room a user is in. A user is in one room at a time: when one of their connections
//! enters a room, their connections in other rooms are told to leave them ([`MoveOut`]).
//!
//! It also remembers the live-room statuses that gate a channel (`closed`, `banned`: member
//! reports answer 1007) and hands them to a room it starts, so that a room which stopped while
//! idle comes back closed; and it passes its membership hook to every room (viewer counts).
//!
//! Rooms run on a small pool of arbiters (threads) so that hot rooms spread over the cores;
//! the registry itself does only map look-ups.
//!
//! With `bigo.pull.enabled` ([`Registry::with_pull`]) it also owns the [`Puller`] of every
//! active `game_sess` (PROTOCOL.md 1.5): started on the first [`GameSessSeen`], told of every
//! later one, forgotten when it stops.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use log::{debug, info};

use crate::config::{BigoConfig, RoomConfig};
use crate::metrics::Metrics;
use crate::puller::{GameSessSeen, Puller};
use crate::room::dedup::{Dedup, DedupWindow};
use crate::room::{MembershipChanged, RoomActor, SessionId, SetStatus};

/// Tells a client session to go away (`{"action":"kicked","reason":..}` and a close frame).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Kick {
    pub reason: &'static str,
}

/// Another connection of the same user entered `channel_name`: leave any other room.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct MoveOut {
    pub channel_name: String,
}

/// The room serving `channel_name`, started if needed.
#[derive(Message)]
#[rtype(result = "Addr<RoomActor>")]
pub struct RoomFor {
    pub channel_name: String,
}

/// The room that the danmu of `game_sess` go to.
#[derive(Message)]
#[rtype(result = "Addr<RoomActor>")]
pub struct RouteGameSess {
    pub game_sess: String,
}

/// From now on the danmu of `game_sess` go to `channel_name` (live room `/game`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkGameSess {
    pub game_sess: String,
    pub channel_name: String,
}

/// The live-room status of `channel_name` changed (PROTOCOL.md 3): the running room broadcasts
/// `room_status`; `closed`/`banned` are also remembered for a room started later.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRoomStatus {
    pub channel_name: String,
    pub status: String,
}

/// How many ended (`closed`/`banned`) channels the registry remembers. Older ones are
/// forgotten; the live-room layer re-applies a forgotten status when someone joins the channel.
const ENDED_MEMORY: usize = 100_000;

/// A room stopped (idle); forget it unless a newer one already took its place.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomStopped {
    pub channel_name: String,
    pub addr: Addr<RoomActor>,
}

/// A client session opened; a previous session of the same (user_id, sid) is kicked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionOpened {
    pub user_id: String,
    pub sid: String,
    pub session: SessionId,
    pub addr: Recipient<Kick>,
    pub move_out: Recipient<MoveOut>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionClosed {
    pub user_id: String,
    pub sid: String,
    pub session: SessionId,
}

/// The channel a session is in now (`None` once it left).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetCurrentRoom {
    pub user_id: String,
    pub session: SessionId,
    pub channel_name: Option<String>,
}

/// The channel `user_id` is in, `""` when none (section 2.5 `current_room_id`).
#[derive(Message)]
#[rtype(result = "String")]
pub struct CurrentRoom {
    pub user_id: String,
}

/// Open client sessions on this node.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ClientCount;

/// Kicks every client session with `reason` and answers every running room (shutdown).
#[derive(Message)]
#[rtype(result = "Vec<Addr<RoomActor>>")]
pub struct KickAll {
    pub reason: &'static str,
}

/// Every running room (shutdown flushes them).
#[derive(Message)]
#[rtype(result = "Vec<Addr<RoomActor>>")]
pub struct AllRooms;

/// A BIGO connection opened; shutdown closes it with [`KickAllBigo`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct BigoOpened {
    pub session: SessionId,
    pub addr: Recipient<Kick>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct BigoClosed {
    pub session: SessionId,
}

/// Closes every BIGO connection (shutdown: BIGO re-sends what it has not had a 200 for to
/// another node); answers how many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct KickAllBigo {
    pub reason: &'static str,
}

/// A puller stopped; forget it unless a newer one already took its place.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PullerStopped {
    pub game_sess: String,
    pub addr: Addr<Puller>,
}

/// How many game sessions closed by status 3 the registry remembers, so that a retried
/// status-3 push does not start a puller again.
const CLOSED_GAME_SESS_REMEMBERED: usize = 10_000;

struct SessionEntry {
    session: SessionId,
    addr: Recipient<Kick>,
    move_out: Recipient<MoveOut>,
}

pub struct Registry {
    room_config: RoomConfig,
    send_queue_len: usize,
    metrics: Arc<Metrics>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    rooms: HashMap<String, Addr<RoomActor>>,
    routes: HashMap<String, String>,
    sessions: HashMap<(String, String), SessionEntry>,
    bigo_sessions: HashMap<SessionId, Recipient<Kick>>,
    /// user_id -> the channel each of their sessions is in (one channel once moves settle).
    user_rooms: HashMap<String, HashMap<SessionId, String>>,
    /// Pull compensation settings; `None` = no pullers.
    pull: Option<Arc<BigoConfig>>,
    pullers: HashMap<String, Addr<Puller>>,
    closed_game_sess: DedupWindow,
    membership: Option<Recipient<MembershipChanged>>,
    /// channel -> `closed`/`banned`, oldest first in `ended_order` (bounded by ENDED_MEMORY).
    ended: HashMap<String, String>,
    ended_order: VecDeque<String>,
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
            sessions: HashMap::new(),
            bigo_sessions: HashMap::new(),
            user_rooms: HashMap::new(),
            pull: None,
            pullers: HashMap::new(),
            closed_game_sess: DedupWindow::new(CLOSED_GAME_SESS_REMEMBERED),
            membership: None,
            ended: HashMap::new(),
            ended_order: VecDeque::new(),
        }
    }

    /// Every room started from now on reports its joins and leaves to `hook`.
    pub fn with_membership_hook(mut self, hook: Recipient<MembershipChanged>) -> Self {
        self.membership = Some(hook);
        self
    }

    /// Turns pull compensation on when `bigo.pull.enabled` (PROTOCOL.md 1.5).
    pub fn with_pull(mut self, bigo: Arc<BigoConfig>) -> Self {
        self.pull = bigo.pull.enabled.then_some(bigo);
        self
    }

    fn next_arbiter(&mut self) -> Option<ArbiterHandle> {
        let arbiter = self.arbiters.get(self.next_arbiter % self.arbiters.len().max(1)).cloned();
        self.next_arbiter += 1;
        arbiter
    }

    fn room(&mut self, channel_name: &str, ctx: &mut Context<Self>) -> Addr<RoomActor> {
        if let Some(addr) = self.rooms.get(channel_name).filter(|a| a.connected()) {
            return addr.clone();
        }
        let registry = ctx.address();
        let (config, queue, metrics, name) =
            (self.room_config.clone(), self.send_queue_len, self.metrics.clone(), channel_name.to_string());
        let (hook, status) = (self.membership.clone(), self.ended.get(channel_name).cloned());
        let make = move |_: &mut Context<RoomActor>| {
            RoomActor::new(name, config, queue, metrics, registry).with_membership(hook).with_status(status)
        };
        let addr = match self.next_arbiter() {
            None => RoomActor::create(make),
            Some(arbiter) => RoomActor::start_in_arbiter(&arbiter, make),
        };
        debug!("registry: started room {channel_name}");
        self.rooms.insert(channel_name.to_string(), addr.clone());
        addr
    }
}

impl Registry {
    fn forget_room_of(&mut self, user_id: &str, session: SessionId) {
        if let Some(rooms) = self.user_rooms.get_mut(user_id) {
            rooms.remove(&session);
            if rooms.is_empty() {
                self.user_rooms.remove(user_id);
            }
        }
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
        self.routes.insert(msg.game_sess, msg.channel_name);
    }
}

impl Handler<SetRoomStatus> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SetRoomStatus, _ctx: &mut Self::Context) {
        if matches!(msg.status.as_str(), "closed" | "banned") {
            if self.ended.insert(msg.channel_name.clone(), msg.status.clone()).is_none() {
                self.ended_order.push_back(msg.channel_name.clone());
                if self.ended_order.len() > ENDED_MEMORY {
                    if let Some(oldest) = self.ended_order.pop_front() {
                        self.ended.remove(&oldest);
                    }
                }
            }
        } else if self.ended.remove(&msg.channel_name).is_some() {
            self.ended_order.retain(|c| c != &msg.channel_name);
        }
        // A room that is not running has no members to tell; it gets the status when it starts.
        if let Some(room) = self.rooms.get(&msg.channel_name).filter(|a| a.connected()) {
            room.do_send(SetStatus { status: msg.status });
        }
    }
}

impl Handler<RoomStopped> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RoomStopped, _ctx: &mut Self::Context) {
        if self.rooms.get(&msg.channel_name) == Some(&msg.addr) {
            self.rooms.remove(&msg.channel_name);
        }
    }
}

impl Handler<SessionOpened> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SessionOpened, _ctx: &mut Self::Context) {
        let entry = SessionEntry { session: msg.session, addr: msg.addr, move_out: msg.move_out };
        if let Some(old) = self.sessions.insert((msg.user_id.clone(), msg.sid.clone()), entry) {
            info!("registry: user_id {} sid {} connected again, replacing the older connection", msg.user_id, msg.sid);
            old.addr.do_send(Kick { reason: "replaced" });
        }
    }
}

impl Handler<SessionClosed> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, _ctx: &mut Self::Context) {
        let key = (msg.user_id.clone(), msg.sid);
        if self.sessions.get(&key).is_some_and(|e| e.session == msg.session) {
            self.sessions.remove(&key);
        }
        self.forget_room_of(&msg.user_id, msg.session);
    }
}

impl Handler<SetCurrentRoom> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SetCurrentRoom, _ctx: &mut Self::Context) {
        let Some(channel) = msg.channel_name else {
            return self.forget_room_of(&msg.user_id, msg.session);
        };
        let rooms = self.user_rooms.entry(msg.user_id.clone()).or_default();
        let elsewhere: Vec<SessionId> =
            rooms.iter().filter(|(s, c)| **s != msg.session && **c != channel).map(|(s, _)| *s).collect();
        for session in &elsewhere {
            rooms.remove(session);
        }
        rooms.insert(msg.session, channel.clone());
        if elsewhere.is_empty() {
            return;
        }
        info!("registry: user_id {} entered {channel}, moving their other connections out", msg.user_id);
        let others =
            self.sessions.iter().filter(|((user_id, _), e)| *user_id == msg.user_id && elsewhere.contains(&e.session));
        for (_, entry) in others {
            entry.move_out.do_send(MoveOut { channel_name: channel.clone() });
        }
    }
}

impl Handler<CurrentRoom> for Registry {
    type Result = String;

    fn handle(&mut self, msg: CurrentRoom, _ctx: &mut Self::Context) -> String {
        // Entering a room moves the user's other sessions out, so all entries name one channel.
        self.user_rooms.get(&msg.user_id).and_then(|rooms| rooms.values().next().cloned()).unwrap_or_default()
    }
}

impl Handler<ClientCount> for Registry {
    type Result = usize;

    fn handle(&mut self, _: ClientCount, _ctx: &mut Self::Context) -> usize {
        self.sessions.len()
    }
}

impl Handler<KickAll> for Registry {
    type Result = MessageResult<KickAll>;

    fn handle(&mut self, msg: KickAll, _ctx: &mut Self::Context) -> Self::Result {
        for entry in self.sessions.values() {
            entry.addr.do_send(Kick { reason: msg.reason });
        }
        MessageResult(self.rooms.values().cloned().collect())
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
        self.bigo_sessions.insert(msg.session, msg.addr);
    }
}

impl Handler<BigoClosed> for Registry {
    type Result = ();

    fn handle(&mut self, msg: BigoClosed, _ctx: &mut Self::Context) {
        self.bigo_sessions.remove(&msg.session);
    }
}

impl Handler<KickAllBigo> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: KickAllBigo, _ctx: &mut Self::Context) -> usize {
        for addr in self.bigo_sessions.values() {
            addr.do_send(Kick { reason: msg.reason });
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
        let (registry, metrics, game_sess) = (ctx.address(), self.metrics.clone(), msg.game_sess.clone());
        let make = move |_: &mut Context<Puller>| Puller::new(&msg, config, registry, metrics);
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
