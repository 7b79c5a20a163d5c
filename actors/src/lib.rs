//! The actor system of danmu-broker and its wire types.
//!
//! - [`bigo_session`]: one BIGO WebSocket: login, heartbeat, `dataReception` (PROTOCOL.md 1).
//! - [`client_session`]: one app client WebSocket: signed frames and actions (PROTOCOL.md 2).
//! - [`room`]: `RoomActor`, one per channel: dedup, reorder, `seq`, seats, history, fan-out;
//!   its pure parts in `room::{dedup, reorder, history, seats}`.
//! - [`registry`]: finds or starts rooms, routes `game_sess` to channels, indexes sessions,
//!   owns the pullers.
//! - [`puller`]: pull compensation for one `game_sess` from BIGO's HTTP API (PROTOCOL.md 1.5).
//! - [`protocol`]: serde types of every frame, the md5 signature formulas, and the platform's
//!   side of the BIGO protocol (`protocol::bigo_client`, for the simulator, bench and tests).
//! - [`config`]: the config sections the actors read (bigo, client, room); the whole `Config`
//!   is the binary's. [`metrics`]: the Prometheus metrics.
//! - [`rate`], [`ws_frames`]: small helpers of the sessions.
//!
//! Messages flow one way: sessions -> registry -> rooms -> (broadcast ring) -> sessions.

pub mod bigo_session;
pub mod client_session;
pub mod config;
pub mod metrics;
pub mod protocol;
pub mod puller;
pub mod rate;
pub mod registry;
pub mod room;
pub mod ws_frames;
