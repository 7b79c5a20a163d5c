//! `Bus`: this node's one Redis pub/sub connection (RESP3 pushes on a [`RedisConn`] that
//! resubscribes by itself after a reconnect; sharded channels on a cluster). Shared rooms
//! subscribe to their channels through it while they need them, and get each message as a
//! [`BusMessage`].
//!
//! While it holds subscriptions, the bus pings Redis every second on that connection: a link
//! that stays open but carries nothing any more shows as timed-out pings, and the connection
//! replaces itself (and subscribes again) after a few (`store::conn::STALLED_AFTER`).
//!
//! Pub/sub may lose messages while the connection is down; what travels on it is numbered
//! (room events carry `seq`) or retried (answers time out), so a subscriber can tell and
//! fetch what it missed from the streams.

use std::collections::HashMap;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseActFuture, StreamHandler,
    WrapFuture,
};
use log::{debug, warn};
use redis::{PushInfo, PushKind, Value};

use crate::store::conn::{RedisConn, RedisTarget};

/// A message that arrived on a subscribed channel, or (`resubscribed`, empty payload) the
/// news that Redis confirmed the channel's subscription again after the connection was
/// replaced or reconnected: whatever was published meanwhile did not arrive.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BusMessage {
    pub channel: String,
    pub payload: String,
    pub resubscribed: bool,
}

/// Subscribes `to` to `channel` (answers once Redis confirmed the subscription).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Subscribe {
    pub channel: String,
    pub to: Recipient<BusMessage>,
    /// Messages are never dropped for a full mailbox (a room owner's wake-ups, which carry its
    /// inputs); else a subscriber that falls behind loses them and finds the gap itself.
    pub lossless: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub channel: String,
}

/// How often a bus with subscriptions pings Redis on its connection.
const HEARTBEAT: Duration = Duration::from_secs(1);

pub struct Bus {
    conn: RedisConn,
    pushes: Option<tokio::sync::mpsc::UnboundedReceiver<PushInfo>>,
    subscribers: HashMap<String, Subscriber>,
}

struct Subscriber {
    to: Recipient<BusMessage>,
    lossless: bool,
}

impl Bus {
    /// A bus on the store's Redis (connecting lazily, like the store).
    pub fn open(target: &RedisTarget) -> redis::RedisResult<Self> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let conn = RedisConn::open_pubsub(target, tx)?;
        Ok(Self { conn, pushes: Some(rx), subscribers: HashMap::new() })
    }
}

impl Actor for Bus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(rx) = self.pushes.take() {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
            ctx.add_stream(stream);
        }
        ctx.run_interval(HEARTBEAT, |bus, ctx| {
            if bus.subscribers.is_empty() {
                return;
            }
            let mut conn = bus.conn.clone();
            ctx.spawn(
                async move {
                    let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
                    if let Err(e) = pong {
                        debug!("bus: ping not answered: {e}");
                    }
                }
                .into_actor(bus),
            );
        });
    }
}

impl StreamHandler<PushInfo> for Bus {
    fn handle(&mut self, push: PushInfo, _ctx: &mut Self::Context) {
        let text = |v: &Value| match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        let message = match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let (Some(channel), Some(payload)) =
                    (push.data.first().and_then(text), push.data.get(1).and_then(text))
                else {
                    return;
                };
                BusMessage { channel, payload, resubscribed: false }
            }
            // Also the first confirmation, which a subscriber that has seen nothing yet ignores.
            PushKind::Subscribe | PushKind::SSubscribe => {
                let Some(channel) = push.data.first().and_then(text) else { return };
                BusMessage { channel, payload: String::new(), resubscribed: true }
            }
            kind => return debug!("bus: {kind:?}"),
        };
        if let Some(Subscriber { to, lossless }) = self.subscribers.get(&message.channel) {
            if *lossless {
                to.do_send(message);
            } else if to.try_send(message).is_err() {
                // A full or gone subscriber: it finds the gap by seq, or times out.
                debug!("bus: a message was not taken");
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<Subscribe> for Bus {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        let subscriber = Subscriber { to: msg.to, lossless: msg.lossless };
        let fresh = self.subscribers.insert(msg.channel.clone(), subscriber).is_none();
        let mut conn = self.conn.clone();
        let channel = msg.channel;
        Box::pin(
            async move {
                if fresh {
                    conn.subscribe(&channel).await.map_err(|e| (channel, e.to_string()))
                } else {
                    Ok(())
                }
            }
            .into_actor(self)
            .map(|answer, act, _ctx| {
                if let Err((channel, e)) = &answer {
                    warn!("bus: subscribe to {channel} failed: {e}");
                    act.subscribers.remove(channel);
                }
                answer.map_err(|(_, e)| e)
            }),
        )
    }
}

impl Handler<Unsubscribe> for Bus {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Self::Context) {
        if self.subscribers.remove(&msg.channel).is_some() {
            let mut conn = self.conn.clone();
            ctx.spawn(
                async move {
                    let _ = conn.unsubscribe(&msg.channel).await;
                }
                .into_actor(self),
            );
        }
    }
}
