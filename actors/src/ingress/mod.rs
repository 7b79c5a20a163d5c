//! BIGO in: how danmu enter the broker (docs/protocol.md 1).
//!
//! - [`bigo_session`]: one BIGO WebSocket: login, heartbeat, `dataReception`.
//! - [`inflating_frames`]: its frames when BIGO agreed permessage-deflate (docs/protocol.md 2.8).
//! - [`puller`]: pull compensation for one `game_sess` from BIGO's HTTP API (docs/protocol.md 1.5).
//! - [`ingest`]: how pushes and pulled batches reach their room (shared by both): routed once
//!   through the registry, then straight into the room's mailbox, in arrival order.

pub mod bigo_session;
pub mod inflating_frames;
pub mod ingest;
pub mod puller;
