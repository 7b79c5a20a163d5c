//! The HTTP surface: every route of the broker, wired in [`routes`].
//!
//! - [`clients`]: `GET /iapi/websocket/end_point`, the client WebSocket upgrade,
//!   `GET /iapi/user/info` (PROTOCOL.md 2.1, 2.2, 2.5).
//! - [`bigo`]: the BIGO WebSocket upgrade (PROTOCOL.md 1).
//! - [`ops`]: `/healthz` and `/metrics` (PROTOCOL.md 4); [`index`]: `GET /`;
//!   [`openapi`]: `GET /iapi/openapi.json`, the OpenAPI document of all of these.
//! - [`demo`]: the `/demo` page and `/demo/token` (PROTOCOL.md 6), when enabled.
//! - [`rooms`], [`admin`], [`callback`]: the live-room list, its operator calls and the
//!   cloud's stream callback (PROTOCOL.md 3).
//!
//! The operator endpoints ([`operator_routes`]: `/healthz`, `/metrics`, the OpenAPI document,
//! `/iapi/admin`) are served beside the rest, or, with `server.internal` set, on the internal
//! listener only: the public listener then answers 404 for them (`docs/security.md`).

pub mod admin;
pub mod bigo;
pub mod callback;
pub mod clients;
pub mod demo;
pub mod error;
pub mod index;
pub mod openapi;
pub mod ops;
pub mod public_url;
pub mod rooms;

pub use error::ApiError;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Addr;
use actix_web::web;
use actors::clients::sessions::SessionIndex;
use actors::metrics::Metrics;
use actors::registry::Registry;

use crate::cluster::presence::NodePresence;
use crate::config::{BigoConfig, ClientConfig, Config};
use crate::live::LiveRooms;

/// What every handler can reach. Shared read-only, except the draining flag.
pub struct AppState {
    pub config: Arc<Config>,
    pub bigo: Arc<BigoConfig>,
    pub client: Arc<ClientConfig>,
    pub registry: Addr<Registry>,
    pub sessions: Addr<SessionIndex>,
    pub metrics: Arc<Metrics>,
    /// The live-room list service (PROTOCOL.md 3).
    pub live: LiveRooms,
    /// Where `end_point` sends clients: `server.public_url`, or derived per request.
    pub public_url: public_url::PublicUrl,
    /// With several nodes: this node's presence, which names the node `end_point` picks.
    pub presence: Option<Addr<NodePresence>>,
    /// With shared rooms: the session rules across nodes (and `user/info` from any node).
    pub directory: Option<Addr<crate::cluster::directory::SessionDirectory>>,
    /// Set on shutdown: `/healthz` answers 503 and WebSocket upgrades are refused.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// The routes of the public listener: every route, but the operator ones only while
/// `server.internal` is off (else they are the internal listener's, [`operator_routes`]).
pub fn routes(state: &AppState) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    let bigo_path = state.bigo.path.clone();
    let client_path = state.client.path.clone();
    let demo = state.config.demo.enabled;
    let operators_apart = state.config.server.internal.is_some();
    move |cfg: &mut web::ServiceConfig| {
        cfg.route("/", web::get().to(index::root))
            .route(&bigo_path, web::get().to(bigo::upgrade))
            .route("/iapi/websocket/end_point", web::get().to(clients::end_point))
            .route(&client_path, web::get().to(clients::upgrade))
            .route("/iapi/user/info", web::get().to(clients::user_info))
            .route("/iapi/rooms", web::get().to(rooms::list))
            .route("/iapi/rooms", web::post().to(rooms::create))
            .route("/iapi/rooms/{room_id}", web::get().to(rooms::get))
            .route("/iapi/rooms/{room_id}/live", web::post().to(rooms::go_live))
            .route("/iapi/rooms/{room_id}/close", web::post().to(rooms::close))
            .route("/iapi/rooms/{room_id}/game", web::post().to(rooms::game))
            .route("/iapi/rooms/{room_id}/like", web::post().to(rooms::like))
            .route("/callback/stream", web::post().to(callback::stream));
        if !operators_apart {
            operator_routes(cfg);
        }
        demo::routes(cfg, demo);
    }
}

/// The operator endpoints: health, metrics (PROTOCOL.md 4), the OpenAPI document and the
/// admin API (PROTOCOL.md 3). [`is_operator_path`] names the same paths.
pub fn operator_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/iapi/openapi.json", web::get().to(openapi::serve))
        .route("/iapi/admin/rooms/{room_id}/ban", web::post().to(admin::ban))
        .route("/iapi/admin/rooms/{room_id}/notice", web::post().to(admin::notice));
}

/// Whether `path` (as the OpenAPI document writes it) is one of [`operator_routes`]: served
/// on the internal listener when `server.internal` is set, and not on the public one.
pub fn is_operator_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics" | "/iapi/openapi.json") || path.starts_with("/iapi/admin/")
}
