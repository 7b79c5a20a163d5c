//! The `SessionIndex` actor: this node's client sessions and their users.
//!
//! It indexes sessions by (user_id, sid), so that a second connection replaces the first
//! (docs/protocol.md 2.2, [`KickReason::Replaced`]); knows which room each user is in, for
//! `/iapi/user/info` (2.5) and for the rule that a user is in one room at a time (entering a
//! room moves the user's connections in other rooms out, [`MoveOut`]); counts the sessions
//! for `end_point`; and kicks them all at shutdown.
//!
//! Who talks to it: every `ClientSession` (opened, closed, entered/left a room) and the HTTP
//! layer (user info, client count, shutdown).

use std::collections::HashMap;

use actix::prelude::*;
use log::info;

use crate::protocol::client::KickReason;
use crate::room::SessionId;

/// Tells a client session to go away (`{"action":"kicked","reason":..}` and a close frame),
/// with `retry_after_ms` when the client is told when to come back (docs/protocol.md 4).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Kick {
    pub reason: KickReason,
    pub retry_after_ms: Option<u64>,
}

impl Kick {
    /// A kick that tells the client nothing about when to come back.
    pub fn now(reason: KickReason) -> Self {
        Self { reason, retry_after_ms: None }
    }
}

/// Another connection of the same user entered `channel_name`: leave any other room.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct MoveOut {
    pub channel_name: String,
}

/// A client session opened; a previous session of the same (user_id, sid) is kicked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionOpened {
    pub user_id: String,
    pub sid: String,
    pub session: SessionId,
    pub kick: Recipient<Kick>,
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

/// The channel `user_id` is in, `""` when none (docs/protocol.md 2.5 `current_room_id`).
#[derive(Message)]
#[rtype(result = "String")]
pub struct CurrentRoom {
    pub user_id: String,
}

/// Open client sessions on this node.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ClientCount;

/// What the session index tells a directory shared by several nodes (docs/protocol.md 7), so that
/// the rules above hold across nodes: a connection opened, closed, or changed rooms.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum SessionChange {
    Opened { user_id: String, sid: String, session: SessionId },
    Closed { user_id: String, sid: String, session: SessionId },
    Room { user_id: String, sid: String, session: SessionId, channel_name: Option<String> },
}

/// From another node, through the directory: the session `session` of this node must go.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Remote {
    /// A newer connection of its (user_id, sid) opened on another node.
    Replaced { session: SessionId },
    /// Its user entered `channel_name` on another node.
    MoveOut { session: SessionId, channel_name: String },
}

/// Kicks every client session with `reason` (shutdown). With `spread_ms`, each session is
/// told its own `retry_after_ms`, drawn uniformly from `0..=spread_ms`, so that the clients of
/// a node that stops do not all reconnect in the same instant (docs/protocol.md 4).
#[derive(Message)]
#[rtype(result = "()")]
pub struct KickAll {
    pub reason: KickReason,
    pub spread_ms: Option<u64>,
}

struct SessionEntry {
    session: SessionId,
    kick: Recipient<Kick>,
    move_out: Recipient<MoveOut>,
}

#[derive(Default)]
pub struct SessionIndex {
    sessions: HashMap<(String, String), SessionEntry>,
    /// user_id -> the channel each of their sessions is in (one channel once moves settle).
    user_rooms: HashMap<String, HashMap<SessionId, String>>,
    /// With several nodes: where every change is told as well.
    directory: Option<Recipient<SessionChange>>,
}

impl SessionIndex {
    /// Tells `directory` of every change, so that other nodes can apply the rules too.
    pub fn with_directory(mut self, directory: Recipient<SessionChange>) -> Self {
        self.directory = Some(directory);
        self
    }

    fn tell(&self, change: SessionChange) {
        if let Some(directory) = &self.directory {
            directory.do_send(change);
        }
    }

    fn sid_of(&self, user_id: &str, session: SessionId) -> Option<String> {
        self.sessions.iter().find(|((u, _), e)| u == user_id && e.session == session).map(|((_, sid), _)| sid.clone())
    }

    fn forget_room_of(&mut self, user_id: &str, session: SessionId) {
        if let Some(rooms) = self.user_rooms.get_mut(user_id) {
            rooms.remove(&session);
            if rooms.is_empty() {
                self.user_rooms.remove(user_id);
            }
        }
    }
}

impl Actor for SessionIndex {
    type Context = Context<Self>;
}

impl Handler<SessionOpened> for SessionIndex {
    type Result = ();

    fn handle(&mut self, msg: SessionOpened, _ctx: &mut Self::Context) {
        let entry = SessionEntry { session: msg.session, kick: msg.kick, move_out: msg.move_out };
        self.tell(SessionChange::Opened { user_id: msg.user_id.clone(), sid: msg.sid.clone(), session: msg.session });
        if let Some(old) = self.sessions.insert((msg.user_id.clone(), msg.sid.clone()), entry) {
            info!("sessions: user_id {} sid {} connected again, replacing the older connection", msg.user_id, msg.sid);
            old.kick.do_send(Kick::now(KickReason::Replaced));
        }
    }
}

impl Handler<SessionClosed> for SessionIndex {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, _ctx: &mut Self::Context) {
        self.tell(SessionChange::Closed { user_id: msg.user_id.clone(), sid: msg.sid.clone(), session: msg.session });
        let key = (msg.user_id.clone(), msg.sid);
        if self.sessions.get(&key).is_some_and(|e| e.session == msg.session) {
            self.sessions.remove(&key);
        }
        self.forget_room_of(&msg.user_id, msg.session);
    }
}

impl Handler<SetCurrentRoom> for SessionIndex {
    type Result = ();

    fn handle(&mut self, msg: SetCurrentRoom, _ctx: &mut Self::Context) {
        if let Some(sid) = self.sid_of(&msg.user_id, msg.session) {
            let (user_id, session, channel_name) = (msg.user_id.clone(), msg.session, msg.channel_name.clone());
            self.tell(SessionChange::Room { user_id, sid, session, channel_name });
        }
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
        info!("sessions: user_id {} entered {channel}, moving their other connections out", msg.user_id);
        let others =
            self.sessions.iter().filter(|((user_id, _), e)| *user_id == msg.user_id && elsewhere.contains(&e.session));
        for (_, entry) in others {
            entry.move_out.do_send(MoveOut { channel_name: channel.clone() });
        }
    }
}

impl Handler<CurrentRoom> for SessionIndex {
    type Result = String;

    fn handle(&mut self, msg: CurrentRoom, _ctx: &mut Self::Context) -> String {
        // Entering a room moves the user's other sessions out, so all entries name one channel.
        self.user_rooms.get(&msg.user_id).and_then(|rooms| rooms.values().next().cloned()).unwrap_or_default()
    }
}

impl Handler<ClientCount> for SessionIndex {
    type Result = usize;

    fn handle(&mut self, _: ClientCount, _ctx: &mut Self::Context) -> usize {
        self.sessions.len()
    }
}

impl Handler<KickAll> for SessionIndex {
    type Result = ();

    fn handle(&mut self, msg: KickAll, _ctx: &mut Self::Context) {
        for entry in self.sessions.values() {
            let retry_after_ms = msg.spread_ms.map(|spread| rand::random_range(0..=spread));
            entry.kick.do_send(Kick { reason: msg.reason, retry_after_ms });
        }
    }
}

impl Handler<Remote> for SessionIndex {
    type Result = ();

    fn handle(&mut self, msg: Remote, _ctx: &mut Self::Context) {
        match msg {
            Remote::Replaced { session } => {
                let key = self.sessions.iter().find(|(_, e)| e.session == session).map(|(k, _)| k.clone());
                if let Some(entry) = key.and_then(|k| self.sessions.remove(&k)) {
                    info!("sessions: session {session} replaced by a connection on another node");
                    entry.kick.do_send(Kick::now(KickReason::Replaced));
                }
            }
            Remote::MoveOut { session, channel_name } => {
                if let Some(entry) = self.sessions.values().find(|e| e.session == session) {
                    entry.move_out.do_send(MoveOut { channel_name });
                }
            }
        }
    }
}
