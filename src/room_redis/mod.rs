//! The Redis engine of a room (docs/protocol.md 7): several nodes serve one room in one order,
//! through Redis alone. Each node that uses a room runs its `RoomFront` over a
//! [`RedisEngine`]; one node at a time owns the room and numbers its inputs.
//!
//! - [`engine`]: [`RedisEngine`], every node's side: inputs into the room's stream, the room's
//!   channel read back in order for this node's members, history from the events stream.
//! - [`owner`]: the owner's side: the room's core on the stream's inputs, members of dead
//!   nodes removed; its commits (one entry each, fenced by the lease's term) in [`commit`], and
//!   their checkpoints in [`checkpoint`]; a room moves to the node its pushes arrive on
//!   ([`handoff`]).
//! - [`state`]: what one node knows of one room (the engine's and the owner's fields).
//! - [`lease`]: the lease as a typed state, with its transitions. A lease holds while its
//!   holder's presence record does ([`Liveness`]): nothing is renewed per room.
//! - [`scripts`]: the Lua scripts (each atomic on the room's one hash slot); [`wire`]: what
//!   travels through Redis.
//!
//! With `store.kind: memory`, or `store.shared_rooms: false`, rooms use the in-process engine
//! (`actors::room::LocalEngine`) instead.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Recipient};
use actors::config::RoomConfig;
use actors::metrics::Metrics;
use actors::room::{FrontConfig, RoomFront, RoomHandle};

use crate::cluster::bus::Bus;
use crate::cluster::keys::Keys;
use crate::cluster::liveness::Liveness;
use crate::cluster::presence::DeadNodes;
use crate::store::conn::RedisConn;

mod checkpoint;
mod commit;
pub mod engine;
mod handoff;
pub mod lease;
pub mod owner;
mod pushing;
mod scripts;
pub mod state;
mod wire;

pub use state::RedisEngine;

/// Everything a room's Redis engine needs that is the same for every room of a node.
#[derive(Clone)]
pub struct SharedRooms {
    pub node_id: String,
    pub keys: Keys,
    pub conn: RedisConn,
    pub bus: Addr<Bus>,
    /// This node's presence, the judge of which nodes are dead.
    pub presence: Recipient<DeadNodes>,
    /// What its renewals saw: whose leases still hold, and whether this node may own rooms.
    pub liveness: Liveness,
    pub config: RoomConfig,
    pub send_queue_len: usize,
    pub metrics: Arc<Metrics>,
}

/// The registry's room factory for rooms on Redis: a `RoomFront` over a [`RedisEngine`] on
/// the given arbiter.
pub fn factory(shared: SharedRooms) -> actors::registry::RoomFactory {
    Box::new(move |channel_name, links, arbiter| {
        let shared = shared.clone();
        let make = move |_: &mut Context<RoomFront<RedisEngine>>| {
            let front = FrontConfig {
                channel_name: channel_name.clone(),
                metrics: shared.metrics.clone(),
                stopped: links.stopped.clone(),
                queue_len: shared.config.queue_len,
                idle_stop: Duration::from_millis(shared.config.idle_stop_ms),
                send_queue_len: shared.send_queue_len,
            };
            RoomFront::new(front, RedisEngine::new(channel_name, shared, links))
        };
        let addr = match arbiter {
            None => RoomFront::create(make),
            Some(arbiter) => RoomFront::start_in_arbiter(&arbiter, make),
        };
        RoomHandle::of(&addr)
    })
}
