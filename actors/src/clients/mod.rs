//! App clients (docs/protocol.md 2): one actor per WebSocket, and the index of them all.
//!
//! - [`client_session`]: one app client WebSocket: signed frames and actions, its room's
//!   events written as the socket takes them.
//! - [`ws_conn`]: its transport: the socket the listener handed over after the upgrade, read
//!   and written from inside the session actor with no idle buffers.
//! - [`sessions`]: the client sessions and users of this node (replacement, one room per user,
//!   `current_room_id`, counts, shutdown kicks).

pub mod client_session;
pub mod sessions;
pub mod ws_conn;
