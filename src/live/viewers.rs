//! `ViewerCounter`: counts each live room's viewers from the real joins and leaves of its
//! channel (PROTOCOL.md 3: not from a client-sent counter).
//!
//! Every `RoomActor` reports its joins and leaves as [`MembershipChanged`] (the registry hands
//! this actor's address to each room it starts). A channel named like a room (`room_id` as a
//! string) gets an atomic +1/-1 on that room's `viewers` in the store; other channels (raw
//! `game_sess` channels, `call:` channels) are ignored. Deltas, not absolute counts, so that
//! several nodes sharing one Redis add up.
//!
//! The store's answer also carries the room's status. When someone joins the channel of a
//! `closed`/`banned` room that this node does not remember as ended (after a restart, or
//! after the registry forgot it), the status is handed to the registry, which makes the room
//! answer member reports with 1007 again.

use actix::{Actor, Addr, AsyncContext, Context, Handler, WrapFuture};
use actors::registry::{Registry, SetRoomStatus};
use actors::room::MembershipChanged;
use log::warn;

use crate::store::Store;

pub struct ViewerCounter {
    store: Store,
    registry: Addr<Registry>,
}

impl ViewerCounter {
    pub fn new(store: Store, registry: Addr<Registry>) -> Self {
        Self { store, registry }
    }
}

impl Actor for ViewerCounter {
    type Context = Context<Self>;
}

/// The `room_id` a channel names: a decimal number without sign or leading zeros.
pub fn room_id_of(channel_name: &str) -> Option<u64> {
    let id: u64 = channel_name.parse().ok()?;
    (id > 0 && id.to_string() == channel_name).then_some(id)
}

impl Handler<MembershipChanged> for ViewerCounter {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, ctx: &mut Self::Context) {
        let Some(room_id) = room_id_of(&msg.channel_name) else {
            return;
        };
        let (store, registry) = (self.store.clone(), self.registry.clone());
        // Concurrent: the increments commute, so their order does not matter.
        ctx.spawn(
            async move {
                match store.add_viewers(room_id, msg.delta).await {
                    Ok(Some((_, status))) if msg.delta > 0 && status.is_ended() => {
                        registry.do_send(SetRoomStatus {
                            channel_name: msg.channel_name,
                            status: status.as_str().to_string(),
                        });
                    }
                    Ok(_) => {}
                    // The count of this room stays off by this delta; said loudly so that an
                    // operator can tell why.
                    Err(e) => warn!("viewers of room {room_id}: {:+} lost: {e}", msg.delta),
                }
            }
            .into_actor(self),
        );
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
