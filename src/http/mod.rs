//! The HTTP surface: every route of the broker, wired in [`routes`].
//!
//! - [`clients`]: `GET /iapi/websocket/end_point`, the client WebSocket upgrade,
//!   `GET /iapi/user/info` (docs/protocol.md 2.1, 2.2, 2.5).
//! - [`bigo`]: the BIGO WebSocket upgrade (docs/protocol.md 1).
//! - [`ops`]: `/healthz`, `/livez`, `/readyz` and `/metrics` (docs/protocol.md 4).
//! - [`openapi`]: `GET /iapi/openapi.json`, the OpenAPI document of all of these, and `GET /`
//!   read from it; [`schemas`]: the schemas of leniently read fields the handlers share.
//! - [`demo`]: the `/demo` page and `/demo/token` (docs/protocol.md 6), when enabled.
//! - [`live_rooms`], [`admin`], [`callback`]: the live-room list, its operator calls and the
//!   cloud's stream callback (docs/protocol.md 3).
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
pub mod live_rooms;
pub mod openapi;
pub mod ops;
pub mod public_url;
pub mod schemas;

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

/// What every handler can reach. Shared read-only, except the drain flags.
pub struct AppState {
    pub config: Arc<Config>,
    pub bigo: Arc<BigoConfig>,
    pub client: Arc<ClientConfig>,
    pub registry: Addr<Registry>,
    pub sessions: Addr<SessionIndex>,
    pub metrics: Arc<Metrics>,
    /// The live-room list service (docs/protocol.md 3).
    pub live: LiveRooms,
    /// Where `end_point` sends clients: `server.public_url`, or derived per request.
    pub public_url: public_url::PublicUrl,
    /// With several nodes: this node's presence, which names the node `end_point` picks.
    pub presence: Option<Addr<NodePresence>>,
    /// With shared rooms: the session rules across nodes (and `user/info` from any node).
    pub directory: Option<Addr<crate::cluster::directory::SessionDirectory>>,
    /// Set at once on shutdown: `/readyz` and `/healthz` answer 503.
    pub draining: Arc<AtomicBool>,
    /// Set `server.drain_delay_ms` later: WebSocket upgrades are refused (503).
    pub closing: Arc<AtomicBool>,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Past the drain delay: no new WebSocket connection is taken.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }
}

/// The routes of the public listener: every route, but the operator ones only while
/// `server.internal` is off (else they are the internal listener's, [`internal_routes`]).
/// Each path is one resource holding its methods, so that a known path asked with another
/// method answers 405 with `Allow` (actix-web's resource default) rather than 404.
pub fn routes(state: &AppState) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    let bigo_path = state.bigo.path.clone();
    let client_path = state.client.path.clone();
    let demo = state.config.demo.enabled;
    let operators_apart = state.config.server.internal.is_some();
    move |cfg: &mut web::ServiceConfig| {
        extractor_errors(cfg);
        cfg.service(web::resource("/").route(web::get().to(openapi::root)))
            .service(web::resource(bigo_path).route(web::get().to(bigo::upgrade)))
            .service(web::resource("/iapi/websocket/end_point").route(web::get().to(clients::end_point)))
            .service(web::resource(client_path).route(web::get().to(clients::upgrade)))
            .service(web::resource("/iapi/user/info").route(web::get().to(clients::user_info)))
            .service(
                web::resource("/iapi/rooms")
                    .route(web::get().to(live_rooms::list))
                    .route(web::post().to(live_rooms::create)),
            )
            .service(web::resource("/iapi/rooms/{room_id}").route(web::get().to(live_rooms::get)))
            .service(web::resource("/iapi/rooms/{room_id}/live").route(web::post().to(live_rooms::go_live)))
            .service(web::resource("/iapi/rooms/{room_id}/close").route(web::post().to(live_rooms::close)))
            .service(web::resource("/iapi/rooms/{room_id}/game").route(web::post().to(live_rooms::game)))
            .service(web::resource("/iapi/rooms/{room_id}/like").route(web::post().to(live_rooms::like)))
            .service(web::resource("/callback/stream").route(web::post().to(callback::stream)));
        probe_routes(cfg);
        if !operators_apart {
            operator_routes(cfg);
        }
        demo::routes(cfg, demo);
    }
}

/// The routes of the internal listener (`server.internal`): the operator endpoints and the
/// probes.
pub fn internal_routes(cfg: &mut web::ServiceConfig) {
    extractor_errors(cfg);
    probe_routes(cfg);
    operator_routes(cfg);
}

/// The orchestrators' probes, `/livez` and `/readyz` (docs/protocol.md 4): on the public listener
/// always, and on the internal one too. A kubelet or a load balancer probes the port that
/// carries the traffic (the internal one is often bound to loopback), and a probe answers a
/// status and a word, nothing that `server.internal` keeps from the public.
pub fn probe_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/livez").route(web::get().to(ops::livez)))
        .service(web::resource("/readyz").route(web::get().to(ops::readyz)));
}

/// The operator endpoints: health, metrics (docs/protocol.md 4), the OpenAPI document and the
/// admin API (docs/protocol.md 3). [`is_operator_path`] names the same paths.
pub fn operator_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(ops::healthz)))
        .service(web::resource("/metrics").route(web::get().to(ops::metrics)))
        .service(web::resource("/iapi/openapi.json").route(web::get().to(openapi::serve)))
        .service(web::resource("/iapi/admin/rooms/{room_id}/ban").route(web::post().to(admin::ban)))
        .service(web::resource("/iapi/admin/rooms/{room_id}/notice").route(web::post().to(admin::notice)));
}

/// Whether `path` (as the OpenAPI document writes it) is one of [`operator_routes`]: served
/// on the internal listener when `server.internal` is set, and not on the public one.
pub fn is_operator_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics" | "/iapi/openapi.json") || path.starts_with("/iapi/admin/")
}

/// Whether `path` is one of [`probe_routes`]: served on both listeners.
pub fn is_probe_path(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz")
}

/// A query, path or JSON body that cannot be read answers 400 with the JSON error body of
/// every `/iapi` refusal (1001), not actix's plain-text default: every answer has the
/// Content-Type the OpenAPI document gives it.
fn extractor_errors(cfg: &mut web::ServiceConfig) {
    let bad = |what: &str, e: &dyn std::fmt::Display| -> actix_web::Error {
        ApiError::bad_request(actors::protocol::client::ErrorCode::BadParameters, format!("{what}: {e}")).into()
    };
    cfg.app_data(web::QueryConfig::default().error_handler(move |e, _| bad("query", &e)))
        .app_data(web::PathConfig::default().error_handler(move |e, _| bad("path", &e)))
        .app_data(web::JsonConfig::default().error_handler(move |e, _| bad("body", &e)));
}
