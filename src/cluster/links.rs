//! `LinkFeed`: a live room's `/game` link (docs/protocol.md 3.3) reaches every node's routing, not
//! only the routing of the node that took the call, so that BIGO's pushes for a linked
//! `game_sess` go to the room's channel whichever node they arrive at.
//!
//! The live layer tells the feed each new link ([`LinkGameSess`]); the feed hands it to this
//! node's registry and publishes it on the channel `{prefix}{rooms}:links`, to which every node's
//! feed is subscribed. Pub/sub may lose a message while a node is cut off from Redis, so the
//! feed also reloads every stored link every [`RELOAD`] (one `HGETALL`; an unchanged link is a
//! no-op in the registry).

use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, WrapFuture};
use actors::registry::{LinkGameSess, Registry};
use log::{debug, warn};
use serde::{Deserialize, Serialize};

use super::bus::{Bus, BusMessage, Subscribe};
use crate::store::conn::RedisConn;
use crate::store::Store;

/// How often every stored link is read again (links missed on the channel).
pub const RELOAD: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
struct Link {
    g: String,
    c: String,
}

pub struct LinkFeed {
    channel: String,
    conn: RedisConn,
    bus: Addr<Bus>,
    store: Store,
    registry: Addr<Registry>,
}

impl LinkFeed {
    pub fn new(prefix: &str, conn: RedisConn, bus: Addr<Bus>, store: Store, registry: Addr<Registry>) -> Self {
        Self { channel: format!("{prefix}{{rooms}}:links"), conn, bus, store, registry }
    }
}

impl Actor for LinkFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let ask =
            self.bus.send(Subscribe { channel: self.channel.clone(), to: ctx.address().recipient(), lossless: false });
        ctx.spawn(
            async move {
                if !matches!(ask.await, Ok(Ok(()))) {
                    warn!("links: not subscribed to other nodes' links yet; the reload catches up");
                }
            }
            .into_actor(self),
        );
        ctx.run_interval(RELOAD, |feed, ctx| {
            let (store, registry) = (feed.store.clone(), feed.registry.clone());
            ctx.spawn(
                async move {
                    match store.game_links().await {
                        Ok(links) => {
                            for (game_sess, room_id) in links {
                                registry.do_send(LinkGameSess { game_sess, channel_name: room_id.to_string() });
                            }
                        }
                        Err(e) => debug!("links: reload failed: {e}"),
                    }
                }
                .into_actor(feed),
            );
        });
    }
}

impl Handler<LinkGameSess> for LinkFeed {
    type Result = ();

    fn handle(&mut self, msg: LinkGameSess, ctx: &mut Self::Context) {
        let payload =
            serde_json::to_string(&Link { g: msg.game_sess.clone(), c: msg.channel_name.clone() }).unwrap_or_default();
        self.registry.do_send(msg);
        let (mut conn, channel) = (self.conn.clone(), self.channel.clone());
        ctx.spawn(
            async move {
                if let Err(e) = conn.publish(&channel, &payload).await {
                    warn!("links: a link did not reach the other nodes yet ({e}); their reload catches up");
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<BusMessage> for LinkFeed {
    type Result = ();

    fn handle(&mut self, msg: BusMessage, _ctx: &mut Self::Context) {
        if msg.resubscribed {
            return; // a link missed meanwhile comes with the next reload
        }
        match serde_json::from_str::<Link>(&msg.payload) {
            Ok(link) => self.registry.do_send(LinkGameSess { game_sess: link.g, channel_name: link.c }),
            Err(e) => warn!("links: unreadable message: {e}"),
        }
    }
}
