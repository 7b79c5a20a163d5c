//! The OpenAPI 3.1 document of the HTTP API, served at `GET /iapi/openapi.json`.
//!
//! utoipa generates it from the handlers' own types: every request and answer type derives
//! `ToSchema` (the common parameters `IntoParams`) and every handler carries a
//! `#[utoipa::path]` naming its method, path, parameters and answers, so the document changes
//! with the code. [`ApiDoc`] lists the handlers; [`document`] adapts it to one broker's
//! config (the two WebSocket paths are settings; `/demo/token` exists only with the demo on).
//! `GET /` ([`root`]) is read from it too: with the demo on a redirect to the demo page,
//! otherwise a short text page naming every endpoint, so that it cannot fall behind the routes
//! (with `server.internal` set, only the public listener's).
//! `tests/openapi.rs` checks that every route of `routes` in `mod.rs` is in it, and
//! `.ci/openapi` validates it with an OpenAPI validator.

use crate::config::Config;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, bigo, callback, clients, demo, live_rooms, ops, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "danmu-broker",
        description = "Real-time danmu broker: BIGO push ingress, rooms, app client WebSockets, live-room list. \
                       The wire contract is docs/protocol.md; WebSocket frames are not described here."
    ),
    paths(
        root,
        clients::end_point,
        clients::upgrade,
        clients::user_info,
        bigo::upgrade,
        live_rooms::list,
        live_rooms::create,
        live_rooms::get,
        live_rooms::go_live,
        live_rooms::close,
        live_rooms::game,
        live_rooms::like,
        admin::ban,
        admin::notice,
        callback::stream,
        ops::healthz,
        ops::livez,
        ops::readyz,
        ops::metrics,
        serve,
        demo::token,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "clients", description = "App clients (docs/protocol.md 2)"),
        (name = "bigo", description = "The BIGO platform's push ingress (docs/protocol.md 1)"),
        (name = "rooms", description = "The live-room list (docs/protocol.md 3)"),
        (name = "admin", description = "Operator calls, X-Admin-Key (docs/protocol.md 3)"),
        (name = "callback", description = "The cloud's stream callback (docs/protocol.md 3)"),
        (name = "operations", description = "Health, probes, metrics, this document (docs/protocol.md 4)"),
        (name = "demo", description = "The demo page's token call, only with demo.enabled (docs/protocol.md 6)"),
    )
)]
pub struct ApiDoc;

/// The ways a caller proves who it is: the client JWT as `Authorization: Bearer` or as
/// `token=`, and the operator's `X-Admin-Key`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme("token", SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("token"))));
        components
            .add_security_scheme("admin_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Admin-Key"))));
    }
}

/// The document as this broker serves it: the WebSocket paths as configured, `/demo/token`
/// only when the demo is on, and with `server.internal` a word on where the operator
/// endpoints are.
pub fn document(config: &Config) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    if config.server.internal.is_some() {
        let description = doc.info.description.get_or_insert_with(String::new);
        description.push_str(
            " This broker serves the operator endpoints (/healthz, /metrics, this document, /iapi/admin) on its \
             internal listener (server.internal) only; its public listener answers 404 for them.",
        );
    }
    let defaults = Config::default();
    let renamed = [(defaults.bigo.path, &config.bigo.path), (defaults.client.path, &config.client.path)];
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .filter(|(path, _)| config.demo.enabled || path != "/demo/token")
        .map(|(path, item)| match renamed.iter().find(|(default, _)| *default == path) {
            Some((_, configured)) => (configured.to_string(), item),
            None => (path, item),
        })
        .collect();
    doc
}

/// This document
///
/// The OpenAPI 3.1 document of this broker's HTTP API.
#[utoipa::path(
    get,
    path = "/iapi/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"))
)]
pub async fn serve(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&state.config))
}

/// The endpoints
///
/// A text page naming every endpoint; with `demo.enabled`, a redirect to the demo page.
#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    responses(
        (status = 200, description = "The endpoints, one a line", body = String, content_type = "text/plain"),
        (status = 302, description = "With demo.enabled: to /demo", headers(("location" = String, description = "/demo"))),
    )
)]
pub async fn root(state: web::Data<AppState>) -> HttpResponse {
    if state.config.demo.enabled {
        return HttpResponse::Found().insert_header((header::LOCATION, "/demo")).finish();
    }
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(page(&state.config))
}

/// The text of the page: a line per operation, method, path and summary.
pub fn page(config: &Config) -> String {
    let operators_apart = config.server.internal.is_some();
    let served_at =
        if operators_apart { "on the internal listener, server.internal" } else { "GET /iapi/openapi.json" };
    let mut page = format!(
        "danmu-broker {}: a real-time danmu broker. Endpoints (the OpenAPI document is {served_at}):\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for (path, item) in document(config).paths.paths {
        if operators_apart && super::is_operator_path(&path) {
            continue;
        }
        for (method, operation) in [("GET", &item.get), ("POST", &item.post)] {
            if let Some(operation) = operation {
                let summary = operation.summary.as_deref().unwrap_or_default();
                page.push_str(&format!("{method:<5} {path:<38} {summary}\n"));
            }
        }
    }
    page
}
