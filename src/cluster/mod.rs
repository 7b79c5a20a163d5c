//! Several nodes on one Redis (PROTOCOL.md 7): what the nodes share, and only through Redis.
//!
//! - [`keys`]: every key and channel name, with the per-room hash tag.
//! - [`presence`]: this node's presence record and its view of the live nodes, for
//!   `end_point` (the live node with the fewest clients).
//!
//! With `store.kind: memory` none of this runs.

pub mod keys;
pub mod presence;
