//! Wire types: every frame of docs/protocol.md as a serde type, and the signature formulas.
//!
//! - [`bigo`]: the BIGO ingress envelope, `platformLogin` and `dataReception` (section 1).
//! - [`bigo_client`]: the platform's side of section 1: its signed requests, reading answers.
//! - [`client`]: app client frames in both directions (section 2).
//! - [`app_client`]: the app's side of section 2: common parameters, signed frames, reading
//!   the broker's frames.
//! - [`deflate`]: permessage-deflate (section 2.8): negotiation, compress once, bounded inflate.
//! - [`pull`]: the pull compensation call to BIGO's HTTP API (section 1.5).
//! - [`sign`]: the md5 formulas.
//! - [`clock`]: which values are times at all, and comparing times without overflow.
//! - [`channel`]: what a channel's name says it is (a live room's, a call's).
//! - [`status`]: a live room's status and the `room_status` word, typed.
//! - [`lenient`]: serde helpers for fields the platform sends as a string or a number.

pub mod app_client;
pub mod bigo;
pub mod bigo_client;
pub mod channel;
pub mod client;
pub mod clock;
pub mod deflate;
pub mod lenient;
pub mod pull;
pub mod sign;
pub mod status;

pub use clock::now_ms;
