//! `Bus`: this node's one Redis pub/sub connection (RESP3 pushes on a [`RedisConn`] that
//! resubscribes by itself after a reconnect; sharded channels on a cluster). Shared rooms
//! subscribe to their channels through it while they need them, and get each message as a
//! [`BusMessage`].
//!
//! Pub/sub may lose messages while the connection is down; what travels on it is numbered
//! (room events carry `seq`) or retried (answers time out), so a subscriber can tell and
//! fetch what it missed from the streams.

use std::collections::HashMap;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseActFuture, StreamHandler,
    WrapFuture,
};
use log::{debug, warn};
use redis::{PushInfo, PushKind, Value};

use crate::store::conn::{RedisConn, RedisTarget};

/// A message that arrived on a subscribed channel.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BusMessage {
    pub channel: String,
    pub payload: String,
}

/// Subscribes `to` to `channel` (answers once Redis confirmed the subscription).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Subscribe {
    pub channel: String,
    pub to: Recipient<BusMessage>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub channel: String,
}

pub struct Bus {
    conn: RedisConn,
    pushes: Option<tokio::sync::mpsc::UnboundedReceiver<PushInfo>>,
    subscribers: HashMap<String, Recipient<BusMessage>>,
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
    }
}

impl StreamHandler<PushInfo> for Bus {
    fn handle(&mut self, push: PushInfo, _ctx: &mut Self::Context) {
        if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
            debug!("bus: {:?}", push.kind);
            return;
        }
        let text = |v: &Value| match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        let (Some(channel), Some(payload)) = (push.data.first().and_then(text), push.data.get(1).and_then(text)) else {
            return;
        };
        if let Some(to) = self.subscribers.get(&channel) {
            if to.try_send(BusMessage { channel, payload }).is_err() {
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
        let fresh = self.subscribers.insert(msg.channel.clone(), msg.to).is_none();
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
