//! Wire types: every frame of PROTOCOL.md as a serde type, and the signature formulas.
//!
//! - [`bigo`]: the BIGO ingress envelope, `platformLogin` and `dataReception` (section 1).
//! - [`bigo_client`]: the platform's side of section 1: its signed requests, reading answers.
//! - [`client`]: app client frames in both directions (section 2).
//! - [`pull`]: the pull compensation call to BIGO's HTTP API (section 1.5).
//! - [`sign`]: the md5 formulas.
//! - [`status`]: a live room's status and the `room_status` word, typed.
//! - [`lenient`]: serde helpers for fields the platform sends as a string or a number.

pub mod bigo;
pub mod bigo_client;
pub mod client;
pub mod lenient;
pub mod pull;
pub mod sign;
pub mod status;

/// Milliseconds since the Unix epoch, the unit of every protocol timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
