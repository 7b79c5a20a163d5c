//! Several nodes on one Redis (docs/protocol.md 7): what the nodes share, and only through Redis.
//!
//! - [`keys`]: every key and channel name, with the per-room hash tag.
//! - [`presence`]: this node's presence record and its view of the live nodes, for
//!   `end_point` (the live node with the fewest clients), and its judgement of which nodes
//!   are dead, on the [`evidence`] of its renewals; [`liveness`] shares what it last saw with
//!   the rooms, whose leases hold as long as their owner's record does.
//! - Rooms themselves on Redis are `crate::room_redis` (the Redis engine under each room's
//!   front).
//! - [`bus`]: the node's pub/sub connection (room channels, owner wake-ups, node inboxes).
//! - [`directory`]: the client-session rules across nodes (replacement, one room per user,
//!   `user/info`).
//! - [`links`]: a `/game` link made on one node reaches every node's routing.
//!
//! With `store.kind: memory` none of this runs.

pub mod bus;
pub mod directory;
pub mod evidence;
pub mod keys;
pub mod links;
pub mod liveness;
pub mod presence;

/// This node's id: `store.node_id`, or a fresh random one (8 hex digits) when empty.
pub fn node_id(configured: &str) -> String {
    if configured.is_empty() {
        format!("node-{}", &actors::protocol::sign::random_token()[..8])
    } else {
        configured.to_string()
    }
}
