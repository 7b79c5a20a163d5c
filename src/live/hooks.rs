//! `RoomHooks`: the live-room layer's side of the rooms (docs/protocol.md 3). Every room
//! reaches it through the registry's hooks:
//!
//! - [`MembershipChanged`]: viewers are counted from the real joins and leaves of a room's
//!   channel, not from a client-sent counter. A channel named like a room (`room_id` as a
//!   string) gets an atomic +1/-1 on that room's `viewers` in the store; other channels (raw
//!   `game_sess` channels, `call:` channels) are ignored. Deltas, not absolute counts, so that
//!   several nodes sharing one Redis add up.
//! - [`StatusOf`]: a starting room asks for its live room's status. The store is the one
//!   truth for it, so a `closed`/`banned` room that stopped while idle (or lived on another
//!   node, or before a restart) starts again answering member reports with 1007.

use actix::{Actor, AsyncContext, Context, Handler, ResponseFuture, WrapFuture};
use actors::protocol::channel::ChannelKind;
use actors::protocol::status::LiveStatus;
use actors::room::{MembershipChanged, StatusOf};
use log::warn;

use crate::store::Store;

pub struct RoomHooks {
    store: Store,
}

impl RoomHooks {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Actor for RoomHooks {
    type Context = Context<Self>;
}

impl Handler<MembershipChanged> for RoomHooks {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, ctx: &mut Self::Context) {
        let Some(room_id) = ChannelKind::of(&msg.channel_name).live_room() else {
            return;
        };
        let store = self.store.clone();
        // Concurrent: the increments commute, so their order does not matter.
        ctx.spawn(
            async move {
                if let Err(e) = store.add_viewers(room_id, msg.delta).await {
                    // The count of this room stays off by this delta; said loudly so that an
                    // operator can tell why.
                    warn!("viewers of room {room_id}: {:+} lost: {e}", msg.delta);
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<StatusOf> for RoomHooks {
    type Result = ResponseFuture<Option<LiveStatus>>;

    fn handle(&mut self, msg: StatusOf, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move {
            let room_id = ChannelKind::of(&msg.channel_name).live_room()?;
            match store.room(room_id).await {
                Ok(room) => room.map(|r| r.status),
                Err(e) => {
                    warn!("room {room_id}: status unknown at start ({e})");
                    None
                }
            }
        })
    }
}
