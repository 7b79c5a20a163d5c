//! `SessionDirectory`: this node's side of the client-session rules that must hold across
//! nodes (PROTOCOL.md 7): a second connection of a user_id and sid replaces the first on any
//! node, a user is in one room at a time on every node, and `/iapi/user/info` answers from
//! any node.
//!
//! The local `SessionIndex` tells it every change ([`SessionChange`]); it keeps one hash per
//! user in Redis (`user:{<user_id>}`: sid -> `node|session|channel`) and tells the node of an
//! older connection, on that node's inbox channel, to kick it ([`Remote::Replaced`]) or move
//! it out of another room ([`Remote::MoveOut`]). Messages on this node's inbox come back here
//! (through the bus) and go to the local index.

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
        format!("{node}|{session}|{channel}")
    }
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
}

impl SessionDirectory {
    pub fn new(node_id: String, keys: Keys, conn: RedisConn, bus: Addr<Bus>, sessions: Addr<SessionIndex>) -> Self {
        Self { node_id, keys, conn, bus, sessions }
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
        let me = self.node_id.clone();
        match change {
            SessionChange::Opened { user_id, sid, session } => {
                let key = self.keys.user(&user_id);
                let write = async move {
                    let (old,): (Option<String>,) = redis::pipe()
                        .hget(&key, &sid)
                        .hset(&key, &sid, Entry::text(&me, session, ""))
                        .ignore()
                        .query_async(&mut conn)
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
                    let current: Option<String> = redis::cmd("HGET").arg(&key).arg(&sid).query_async(&mut conn).await?;
                    if current.as_deref().and_then(Entry::parse).is_some_and(|e| e.node == me && e.session == session) {
                        let _: () = redis::cmd("HDEL").arg(&key).arg(&sid).query_async(&mut conn).await?;
                    }
                    Ok::<_, redis::RedisError>(())
                };
                ctx.spawn(remove.into_actor(self).map(|_, _, _| ()));
            }
            SessionChange::Room { user_id, sid, session, channel_name } => {
                let key = self.keys.user(&user_id);
                let channel = channel_name.clone().unwrap_or_default();
                let write = async move {
                    let (all,): (std::collections::HashMap<String, String>,) = redis::pipe()
                        .hgetall(&key)
                        .hset(&key, &sid, Entry::text(&me, session, &channel))
                        .ignore()
                        .query_async(&mut conn)
                        .await?;
                    Ok::<_, redis::RedisError>(all)
                };
                ctx.spawn(write.into_actor(self).map(move |all, dir, ctx| {
                    let (Ok(all), Some(channel)) = (all, channel_name) else { return };
                    // The user's connections on other nodes, in another room: out of it.
                    for entry in all.values().filter_map(|v| Entry::parse(v)) {
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
