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

use crate::store::conn::RedisConn;
use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture};
use actors::clients::sessions::{Remote, SessionChange, SessionIndex};
use actors::room::SessionId;
use log::{debug, warn};
use serde::{Deserialize, Serialize};

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
}

impl SessionDirectory {
    pub fn new(node_id: String, keys: Keys, conn: RedisConn, bus: Addr<Bus>, sessions: Addr<SessionIndex>) -> Self {
        let scripts = Scripts {
            open: redis::Script::new(OPEN),
            set_room: redis::Script::new(SET_ROOM),
            close: redis::Script::new(CLOSE),
        };
        Self { node_id, keys, conn, bus, sessions, scripts: std::sync::Arc::new(scripts) }
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
        let ask =
            self.bus.send(Subscribe { channel: self.keys.node_channel(&self.node_id), to: ctx.address().recipient() });
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

impl Handler<SessionChange> for SessionDirectory {
    type Result = ();

    fn handle(&mut self, change: SessionChange, ctx: &mut Self::Context) {
        let mut conn = self.conn.clone();
        let scripts = self.scripts.clone();
        let me = self.node_id.clone();
        match change {
            SessionChange::Opened { user_id, sid, session } => {
                let key = self.keys.user(&user_id);
                let write = async move {
                    let old: Option<String> = scripts
                        .open
                        .key(&key)
                        .arg(&sid)
                        .arg(Entry::text(&me, session, ""))
                        .invoke_async(&mut conn)
                        .await?;
                    Ok::<_, redis::RedisError>(old.as_deref().and_then(Entry::parse))
                };
                ctx.spawn(write.into_actor(self).map(|old, dir, ctx| match old {
                    Ok(Some(old)) if old.node != dir.node_id => {
                        debug!("directory: replacing session {} on node {}", old.session, old.node);
                        dir.tell(&old.node, &Inbox::Replaced { s: old.session }, ctx);
                    }
                    Ok(_) => {}
                    Err(e) => warn!("directory: a connection could not be recorded: {e}"),
                }));
            }
            SessionChange::Closed { user_id, sid, session } => {
                let key = self.keys.user(&user_id);
                let remove = async move {
                    let removed: redis::RedisResult<i64> =
                        scripts.close.key(&key).arg(&sid).arg(Entry::owner(&me, session)).invoke_async(&mut conn).await;
                    if let Err(e) = removed {
                        warn!("directory: a closed connection's entry was not removed: {e}");
                    }
                };
                ctx.spawn(remove.into_actor(self));
            }
            SessionChange::Room { user_id, sid, session, channel_name } => {
                let key = self.keys.user(&user_id);
                let channel = channel_name.clone().unwrap_or_default();
                let write = async move {
                    let all: Option<Vec<String>> = scripts
                        .set_room
                        .key(&key)
                        .arg(&sid)
                        .arg(Entry::owner(&me, session))
                        .arg(Entry::text(&me, session, &channel))
                        .invoke_async(&mut conn)
                        .await?;
                    Ok::<_, redis::RedisError>(all)
                };
                ctx.spawn(write.into_actor(self).map(move |all, dir, ctx| {
                    let all = match all {
                        Ok(Some(all)) => all,
                        // A newer connection of this sid holds the entry: this one is on its way out.
                        Ok(None) => return debug!("directory: session {session} was replaced, its room not recorded"),
                        Err(e) => return warn!("directory: a room change could not be recorded: {e}"),
                    };
                    let Some(channel) = channel_name else { return };
                    // The user's connections on other nodes, in another room: out of it.
                    for entry in all.chunks(2).filter_map(|pair| pair.get(1)).filter_map(|v| Entry::parse(v)) {
                        if entry.node != dir.node_id && !entry.channel.is_empty() && entry.channel != channel {
                            dir.tell(&entry.node, &Inbox::MoveOut { s: entry.session, c: channel.clone() }, ctx);
                        }
                    }
                }));
            }
        }
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

    fn handle(&mut self, msg: RoomOfUser, _ctx: &mut Self::Context) -> Self::Result {
        let (mut conn, key) = (self.conn.clone(), self.keys.user(&msg.user_id));
        Box::pin(async move {
            let all: std::collections::HashMap<String, String> =
                redis::cmd("HGETALL").arg(key).query_async(&mut conn).await.unwrap_or_default();
            all.values().filter_map(|v| Entry::parse(v)).map(|e| e.channel).find(|c| !c.is_empty()).unwrap_or_default()
        })
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
