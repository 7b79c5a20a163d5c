//! `RoomHooks`: the live-room layer's side of the rooms (PROTOCOL.md 3). Every room
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
use actors::protocol::status::RoomStatus;
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

/// The `room_id` a channel names: a decimal number without sign or leading zeros.
pub fn room_id_of(channel_name: &str) -> Option<u64> {
    let id: u64 = channel_name.parse().ok()?;
    (id > 0 && id.to_string() == channel_name).then_some(id)
}

impl Handler<MembershipChanged> for RoomHooks {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, ctx: &mut Self::Context) {
        let Some(room_id) = room_id_of(&msg.channel_name) else {
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
    type Result = ResponseFuture<Option<RoomStatus>>;

    fn handle(&mut self, msg: StatusOf, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move {
            let room_id = room_id_of(&msg.channel_name)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_positive_numbers_name_rooms() {
        assert_eq!(room_id_of("17"), Some(17));
        for other in ["017", "+17", "0", "-1", "game-1", "call:1:2", ""] {
            assert_eq!(room_id_of(other), None, "{other}");
        }
    }
}
