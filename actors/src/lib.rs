//! The actor system of danmu-broker and its wire types, in the order a danmu travels:
//!
//! - [`protocol`]: serde types of every frame, the typed statuses, the md5 signature formulas,
//!   the clock's checks, and the peers' sides of the protocols (`protocol::bigo_client` and
//!   `protocol::app_client`, for the simulator, `listen`, the bench and the tests).
//! - [`ingress`]: BIGO in: one actor per BIGO WebSocket, pull compensation, and how pushes
//!   reach their room (docs/protocol.md 1).
//! - [`registry`]: finds or starts rooms, routes `game_sess` to channels, knows the BIGO
//!   sessions, owns the pullers.
//! - [`room`]: one per channel: the pure [`room::RoomCore`] (dedup, reorder, `seq` and epoch,
//!   history, members, seats, the danmu mapping), and the [`room::RoomFront`]: the member side
//!   over an engine that numbers the room's inputs (this node's core, or Redis).
//! - [`clients`]: app clients out: one actor per app WebSocket, its transport, and the index
//!   of this node's sessions (docs/protocol.md 2).
//! - [`config`]: the config sections the actors read (bigo, client, room); the whole `Config`
//!   is the binary's. [`metrics`]: the Prometheus metrics. [`rate`], [`ws_frames`]: small
//!   helpers of the sessions.
//!
//! Messages flow one way: BIGO sessions and pullers -> (registry, once per route) -> rooms ->
//! (each room's fan-out) -> client sessions. Modules depend downwards only: `ingress` and
//! `clients` on `room` and `registry`, the registry on `room`; a room and a puller tell
//! whoever started them that they stopped through a recipient.

pub mod clients;
pub mod config;
pub mod ingress;
pub mod metrics;
pub mod protocol;
pub mod rate;
pub mod registry;
pub mod room;
pub mod ws_frames;
