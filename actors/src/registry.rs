//! The `Registry` actor: finds or starts the [`RoomActor`] of a channel, routes a BIGO
//! `game_sess` to its channel (PROTOCOL.md 2.6, Channels), and indexes client sessions by
//! (user_id, sid) so that a second connection replaces the first and `/iapi/user/info` can say
//! which room a user is in. A user is in one room at a time: when one of their connections
//! enters a room, their connections in other rooms are told to leave them ([`MoveOut`]).
//!
//! Rooms run on a small pool of arbiters (threads) so that hot rooms spread over the cores;
//! the registry itself does only map look-ups.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use log::{debug, info};

use crate::config::RoomConfig;
use crate::metrics::Metrics;
use crate::room::{RoomActor, SessionId};

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

/// Kicks every client session with `reason` and answers how many there were (shutdown).
#[derive(Message)]
#[rtype(result = "Vec<Addr<RoomActor>>")]
pub struct KickAll {
    pub reason: &'static str,
}

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
    /// user_id -> the channel each of their sessions is in (one channel once moves settle).
    user_rooms: HashMap<String, HashMap<SessionId, String>>,
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
            user_rooms: HashMap::new(),
        }
    }

    fn room(&mut self, channel_name: &str, ctx: &mut Context<Self>) -> Addr<RoomActor> {
        if let Some(addr) = self.rooms.get(channel_name).filter(|a| a.connected()) {
            return addr.clone();
        }
        let registry = ctx.address();
        let (config, queue, metrics, name) =
            (self.room_config.clone(), self.send_queue_len, self.metrics.clone(), channel_name.to_string());
        let make = move |_: &mut Context<RoomActor>| RoomActor::new(name, config, queue, metrics, registry);
        let addr = if self.arbiters.is_empty() {
            RoomActor::create(make)
        } else {
            let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
            self.next_arbiter += 1;
            RoomActor::start_in_arbiter(arbiter, make)
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
