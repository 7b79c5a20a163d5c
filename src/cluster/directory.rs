//! `SessionDirectory`: this node's side of the client-session rules that must hold across
//! nodes (docs/protocol.md 7): a second connection of a user_id and sid replaces the first on any
//! node, a user is in one room at a time on every node, and `/iapi/user/info` answers from
//! any node.
//!
//! The local `SessionIndex` tells it every change ([`SessionChange`]); it keeps one hash per
//! user in Redis (`user:{<user_id>}`: sid -> `node|session|channel`) and tells the node of an
//! older connection, on that node's inbox channel, to kick it ([`Remote::Replaced`]) or move
//! it out of another room ([`Remote::MoveOut`]). Messages on this node's inbox come back here
//! (through the bus) and go to the local index.
//!
//! A new connection takes its sid's entry whoever held it (the newest connection wins); every
//! later change of that connection (a room, its close) touches the entry only while it still
//! names this node's session, checked and written in one script. A node that was frozen or cut
//! off while its client reconnected elsewhere thus cannot, once back, overwrite or delete the
//! newer connection's entry when it closes the old one (`user/info` would answer "" for a user
//! who is in a room).
//!
//! A user's steps (its connections' changes, and `user/info`'s reads) run one at a time in the
//! order they came ([`Step`]): a room left right after it was entered is never recorded as
//! entered, and `user/info` asked after an exit's ack never answers the room it left.

use std::collections::{HashMap, VecDeque};

use crate::store::conn::RedisConn;
use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture};
use actors::clients::sessions::{Remote, SessionChange, SessionIndex};
use actors::room::SessionId;
use log::{debug, warn};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::bus::{Bus, BusMessage, Subscribe};
use super::keys::Keys;

/// What one node asks of another about one of its sessions.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Inbox {
    Replaced { s: SessionId },
    MoveOut { s: SessionId, c: String },
}

/// One entry of a user's hash.
#[derive(Debug, PartialEq)]
struct Entry {
    node: String,
    session: SessionId,
    channel: String,
}

impl Entry {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '|');
        let node = parts.next()?.to_string();
        let session = parts.next()?.parse().ok()?;
        Some(Self { node, session, channel: parts.next().unwrap_or_default().to_string() })
    }

    fn text(node: &str, session: SessionId, channel: &str) -> String {
        format!("{}{channel}", Self::owner(node, session))
    }

    /// What every entry of `session` on `node` starts with, whatever its channel.
    fn owner(node: &str, session: SessionId) -> String {
        format!("{node}|{session}|")
    }
}

/// KEYS: user. ARGV: sid, entry. Takes the sid's entry for a new connection; answers the
/// entry it held before (`false` when none).
const OPEN: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
";

/// KEYS: user. ARGV: sid, `node|session|` of the connection, its entry now. Writes the entry
/// when the sid's entry is this connection's or there is none (a newer connection's is left
/// alone); answers the user's entries as they were, flat (sid, entry, ...), or `false` when
/// nothing was written.
const SET_ROOM: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and string.sub(cur, 1, #ARGV[2]) ~= ARGV[2] then return false end
local all = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return all
";

/// KEYS: user. ARGV: sid, `node|session|` of the connection. Deletes the sid's entry only if
/// it is still this connection's; 1 when deleted.
const CLOSE: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and string.sub(cur, 1, #ARGV[2]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
";

/// The scripts, hashed once.
struct Scripts {
    open: redis::Script,
    set_room: redis::Script,
    close: redis::Script,
}

/// The channel `user_id` is in on any node, `""` when none.
#[derive(Message)]
#[rtype(result = "String")]
pub struct RoomOfUser {
    pub user_id: String,
}

pub struct SessionDirectory {
    node_id: String,
    keys: Keys,
    conn: RedisConn,
    bus: Addr<Bus>,
    sessions: Addr<SessionIndex>,
    scripts: std::sync::Arc<Scripts>,
    /// The users whose hash a step is running on, each with the steps waiting for it.
    running: HashMap<String, VecDeque<Step>>,
}

impl SessionDirectory {
    pub fn new(node_id: String, keys: Keys, conn: RedisConn, bus: Addr<Bus>, sessions: Addr<SessionIndex>) -> Self {
        let scripts = Scripts {
            open: redis::Script::new(OPEN),
            set_room: redis::Script::new(SET_ROOM),
            close: redis::Script::new(CLOSE),
        };
        Self { node_id, keys, conn, bus, sessions, scripts: std::sync::Arc::new(scripts), running: HashMap::new() }
    }

    fn tell(&self, node: &str, message: &Inbox, ctx: &mut Context<Self>) {
        let (mut conn, channel) = (self.conn.clone(), self.keys.node_channel(node));
        let payload = serde_json::to_string(message).unwrap_or_default();
        ctx.spawn(
            async move {
                if let Err(e) = conn.publish(&channel, &payload).await {
                    warn!("directory: a message to another node was lost: {e}");
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for SessionDirectory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let ask = self.bus.send(Subscribe {
            channel: self.keys.node_channel(&self.node_id),
            to: ctx.address().recipient(),
            lossless: false,
        });
        ctx.spawn(
            async move {
                if !matches!(ask.await, Ok(Ok(()))) {
                    warn!("directory: not subscribed to this node's inbox; cross-node replacement is off");
                }
            }
            .into_actor(self),
        );
    }
}

/// One Redis step on a user's hash. A user's steps run one at a time, in the order they came,
/// so that a later change never lands before an earlier one (actix polls spawned futures in no
/// set order) and a read sees every change this node made before it.
enum Step {
    Change(SessionChange),
    /// `user/info`'s question: the channel the user is in on any node.
    Read(oneshot::Sender<String>),
}

/// What a step found that this node must act on.
enum Found {
    Nothing,
    /// A new connection took a sid whose entry was another node's session: that one goes.
    Replaced(Entry),
    /// The user entered `channel`; these are its connections on other nodes in other rooms.
    EnteredFrom {
        channel: String,
        others: Vec<Entry>,
    },
}

impl SessionDirectory {
    fn queue(&mut self, user_id: &str, step: Step, ctx: &mut Context<Self>) {
        let key = self.keys.user(user_id);
        if let Some(waiting) = self.running.get_mut(&key) {
            return waiting.push_back(step);
        }
        self.running.insert(key.clone(), VecDeque::new());
        self.run(key, step, ctx);
    }

    /// Runs `step` on the hash `key`, then the next step waiting for it.
    fn run(&mut self, key: String, step: Step, ctx: &mut Context<Self>) {
        let mut conn = self.conn.clone();
        let scripts = self.scripts.clone();
        let me = self.node_id.clone();
        let hash = key.clone();
        let work = async move {
            match step {
                Step::Change(SessionChange::Opened { sid, session, .. }) => {
                    let old: Option<String> = scripts
                        .open
                        .key(&hash)
                        .arg(&sid)
                        .arg(Entry::text(&me, session, ""))
                        .invoke_async(&mut conn)
                        .await
                        .map_err(|e| warn!("directory: a connection could not be recorded: {e}"))
                        .unwrap_or_default();
                    match old.as_deref().and_then(Entry::parse) {
                        Some(old) if old.node != me => Found::Replaced(old),
                        _ => Found::Nothing,
                    }
                }
                Step::Change(SessionChange::Closed { sid, session, .. }) => {
                    let removed: redis::RedisResult<i64> = scripts
                        .close
                        .key(&hash)
                        .arg(&sid)
                        .arg(Entry::owner(&me, session))
                        .invoke_async(&mut conn)
                        .await;
                    if let Err(e) = removed {
                        warn!("directory: a closed connection's entry was not removed: {e}");
                    }
                    Found::Nothing
                }
                Step::Change(SessionChange::Room { sid, session, channel_name, .. }) => {
                    let all: redis::RedisResult<Option<Vec<String>>> = scripts
                        .set_room
                        .key(&hash)
                        .arg(&sid)
                        .arg(Entry::owner(&me, session))
                        .arg(Entry::text(&me, session, channel_name.as_deref().unwrap_or_default()))
                        .invoke_async(&mut conn)
                        .await;
                    let all = match all {
                        Ok(Some(all)) => all,
                        // A newer connection of this sid holds the entry: this one is on its way out.
                        Ok(None) => {
                            debug!("directory: session {session} was replaced, its room not recorded");
                            return Found::Nothing;
                        }
                        Err(e) => {
                            warn!("directory: a room change could not be recorded: {e}");
                            return Found::Nothing;
                        }
                    };
                    let Some(channel) = channel_name else { return Found::Nothing };
                    let others = all.chunks(2).filter_map(|pair| pair.get(1)).filter_map(|v| Entry::parse(v));
                    let others = others.filter(|e| e.node != me && !e.channel.is_empty() && e.channel != channel);
                    Found::EnteredFrom { others: others.collect(), channel }
                }
                Step::Read(answer) => {
                    let all: std::collections::HashMap<String, String> =
                        redis::cmd("HGETALL").arg(&hash).query_async(&mut conn).await.unwrap_or_default();
                    let channel =
                        all.values().filter_map(|v| Entry::parse(v)).map(|e| e.channel).find(|c| !c.is_empty());
                    let _ = answer.send(channel.unwrap_or_default());
                    Found::Nothing
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(move |found, dir, ctx| {
            match found {
                Found::Nothing => {}
                Found::Replaced(old) => {
                    debug!("directory: replacing session {} on node {}", old.session, old.node);
                    dir.tell(&old.node, &Inbox::Replaced { s: old.session }, ctx);
                }
                // The user's connections on other nodes, in another room: out of it.
                Found::EnteredFrom { channel, others } => {
                    for entry in others {
                        dir.tell(&entry.node, &Inbox::MoveOut { s: entry.session, c: channel.clone() }, ctx);
                    }
                }
            }
            match dir.running.get_mut(&key).and_then(VecDeque::pop_front) {
                Some(next) => dir.run(key, next, ctx),
                None => {
                    dir.running.remove(&key);
                }
            }
        }));
    }
}

impl Handler<SessionChange> for SessionDirectory {
    type Result = ();

    fn handle(&mut self, change: SessionChange, ctx: &mut Self::Context) {
        let user_id = match &change {
            SessionChange::Opened { user_id, .. }
            | SessionChange::Closed { user_id, .. }
            | SessionChange::Room { user_id, .. } => user_id.clone(),
        };
        self.queue(&user_id, Step::Change(change), ctx);
    }
}

impl Handler<BusMessage> for SessionDirectory {
    type Result = ();

    fn handle(&mut self, msg: BusMessage, _ctx: &mut Self::Context) {
        if msg.resubscribed {
            return; // what was missed is a replaced or moved session, found at its next report
        }
        match serde_json::from_str::<Inbox>(&msg.payload) {
            Ok(Inbox::Replaced { s }) => self.sessions.do_send(Remote::Replaced { session: s }),
            Ok(Inbox::MoveOut { s, c }) => self.sessions.do_send(Remote::MoveOut { session: s, channel_name: c }),
            Err(e) => warn!("directory: unreadable inbox message: {e}"),
        }
    }
}

impl Handler<RoomOfUser> for SessionDirectory {
    type Result = ResponseFuture<String>;

    fn handle(&mut self, msg: RoomOfUser, ctx: &mut Self::Context) -> Self::Result {
        let (answer, answered) = oneshot::channel();
        self.queue(&msg.user_id, Step::Read(answer), ctx);
        Box::pin(async move { answered.await.unwrap_or_default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_what_they_write() {
        let text = Entry::text("node-a", 42, "call:a:b");
        assert_eq!(Entry::parse(&text), Some(Entry { node: "node-a".into(), session: 42, channel: "call:a:b".into() }));
        assert_eq!(Entry::parse("node-a|x|"), None);
    }
}
