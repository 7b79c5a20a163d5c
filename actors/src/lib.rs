//! The actor system of danmu-broker and its wire types.
//!
//! - [`bigo_session`]: one BIGO WebSocket: login, heartbeat, `dataReception` (PROTOCOL.md 1).
//! - [`client_session`]: one app client WebSocket: signed frames and actions (PROTOCOL.md 2).
//! - [`ws_conn`]: the transport of a client session: the socket the listener handed over after
//!   the upgrade, read and written from inside the session actor with no idle buffers.
//! - [`room`]: one per channel: the pure [`room::RoomCore`] (dedup, reorder, `seq` and epoch,
//!   history, members, seats, the danmu mapping), and the [`room::RoomFront`]: the member side
//!   over an engine that numbers the room's inputs (this node's core, or Redis).
//! - [`ingest`]: how pushes and pulled batches reach their room (shared by BIGO sessions and
//!   pullers): routed once, then straight into the room's mailbox, in arrival order.
//! - [`registry`]: finds or starts rooms, routes `game_sess` to channels, knows the BIGO
//!   sessions, owns the pullers.
//! - [`sessions`]: the client sessions and users of this node (replacement, one room per
//!   user, `current_room_id`, counts, shutdown kicks).
//! - [`puller`]: pull compensation for one `game_sess` from BIGO's HTTP API (PROTOCOL.md 1.5).
//! - [`protocol`]: serde types of every frame, the typed statuses, the md5 signature formulas,
//!   and the platform's side of the BIGO protocol (`protocol::bigo_client`, for the simulator,
//!   bench and tests).
//! - [`config`]: the config sections the actors read (bigo, client, room); the whole `Config`
//!   is the binary's. [`metrics`]: the Prometheus metrics.
//! - [`rate`], [`ws_frames`]: small helpers of the sessions.
//!
//! Messages flow one way: sessions -> (registry, once per route) -> rooms -> (broadcast ring)
//! -> sessions. Modules depend downwards only: sessions and the puller on `ingest` and
//! `room`, the registry on `room` and `puller`; a room and a puller tell whoever started them
//! that they stopped through a recipient.

pub mod bigo_session;
pub mod client_session;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod protocol;
pub mod puller;
pub mod rate;
pub mod registry;
pub mod room;
pub mod sessions;
pub mod ws_conn;
pub mod ws_frames;
