//! The HTTP surface: every route of the broker, wired in [`routes`].
//!
//! - [`clients`]: `GET /iapi/websocket/end_point`, the client WebSocket upgrade,
//!   `GET /iapi/user/info` (PROTOCOL.md 2.1, 2.2, 2.5).
//! - [`bigo`]: the BIGO WebSocket upgrade (PROTOCOL.md 1).
//! - [`ops`]: `/healthz` and `/metrics` (PROTOCOL.md 4).
//! - [`demo`]: the `/demo` page and `/demo/token` (PROTOCOL.md 6), when enabled.

pub mod bigo;
pub mod clients;
pub mod demo;
pub mod error;
pub mod ops;

pub use error::ApiError;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Addr;
use actix_web::web;
use actors::config::{BigoConfig, ClientConfig, Config};
use actors::metrics::Metrics;
use actors::registry::Registry;

/// What every handler can reach. Shared read-only, except the draining flag.
pub struct AppState {
    pub config: Arc<Config>,
    pub bigo: Arc<BigoConfig>,
    pub client: Arc<ClientConfig>,
    pub registry: Addr<Registry>,
    pub metrics: Arc<Metrics>,
    /// The `end_point` URL clients are sent to.
    pub end_point: String,
    /// Set on shutdown: `/healthz` answers 503 and WebSocket upgrades are refused.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

pub fn routes(state: &AppState) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    let bigo_path = state.bigo.path.clone();
    let client_path = state.client.path.clone();
    let demo = state.config.demo.enabled;
    move |cfg: &mut web::ServiceConfig| {
        cfg.route("/healthz", web::get().to(ops::healthz))
            .route("/metrics", web::get().to(ops::metrics))
            .route(&bigo_path, web::get().to(bigo::upgrade))
            .route("/iapi/websocket/end_point", web::get().to(clients::end_point))
            .route(&client_path, web::get().to(clients::upgrade))
            .route("/iapi/user/info", web::get().to(clients::user_info));
        demo::routes(cfg, demo);
    }
}
