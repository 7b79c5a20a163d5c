//! danmu-simulator: a stand-in for the BIGO platform (docs/protocol.md 1 and 6), behind
//! `danmu-broker simulate`, for demos and for trying a broker by hand. A crate of its own: it is
//! a client of the broker, not part of the server library, and needs none of the server's code.
//!
//! It connects to a broker's BIGO ingress the way the platform does: `platformLogin` with the
//! first `bigo.accounts` entry of the configuration, a WebSocket ping every 5 s, then signed
//! `dataReception` pushes (`data` as a JSON string) for one `game_sess` at a steady rate,
//! reading every `dataReceptionResp`. The pushes carry a mix of `msg`, `heart` and `gift` items
//! from many viewers, Chinese and emoji included.
//!
//! Knobs mimic what the real platform does to a broker: `--shuffle-ms` sends pushes out of
//! `ts` order, `--retry-pct` re-sends acknowledged pushes (same `seqid`, as when an ack is
//! lost), `--drop-pct` loses pushes on the way, `--close` ends with status 3. Pushes answered
//! 503 are retried, and a lost connection is re-opened (new login) with every unacknowledged
//! push sent again, as section 1.4 asks of the platform.
//!
//! - [`options`]: the command-line [`Options`] and their checks.
//! - [`generator`]: the danmu [`Generator`] (pure, unit-tested): the `data` of each push; its
//!   [`Item`] and [`PushData`] types also serve `danmu-broker push`, which sends one by hand.
//! - [`link`]: one logged-in connection to the ingress ([`Target::open`]), shared with `push`.
//! - [`run_loop`]: [`run`], the one async loop that owns the connection, the send queue and
//!   the counters. It runs on any tokio runtime (the binary uses actix_rt's).
//! - [`summary`]: the [`Summary`] of a run, as text or JSON.
//!
//! The frames and their signatures come from `actors::protocol::bigo_client`, the platform's
//! side written once for the simulator, the load generator and the tests.

pub mod generator;
pub mod link;
pub mod options;
pub mod run_loop;
pub mod summary;

pub use generator::{AnchorBatch, Generator, Item, ItemCounts, Push, PushData, Sender};
pub use link::{Link, Target};
pub use options::{Lang, Options};
pub use run_loop::run;
pub use summary::Summary;

/// Why a run could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    BadOption(String),
    #[error("config: bigo.accounts is empty, nothing to log in with")]
    NoAccount,
    #[error("cannot connect to {url}: {reason} (is the broker running? see --url)")]
    Connect { url: String, reason: String },
    #[error("platformLogin refused: {0}")]
    LoginRefused(String),
    #[error("platformLogin: {0}")]
    LoginFailed(String),
}
