//! The OpenAPI 3.1 document of the HTTP API, served at `GET /iapi/openapi.json`.
//!
//! utoipa generates it from the handlers' own types: every request and answer type derives
//! `ToSchema` (the common parameters `IntoParams`) and every handler carries a
//! `#[utoipa::path]` naming its method, path, parameters and answers, so the document changes
//! with the code. [`ApiDoc`] lists the handlers; [`document`] adapts it to one broker's
//! config (the two WebSocket paths are settings; `/demo/token` exists only with the demo on).
//! `tests/openapi.rs` checks that every route of `routes` in `mod.rs` is in it, and
//! `.ci/openapi` validates it with an OpenAPI validator.

use crate::config::Config;
use crate::live::MAX_GAME_CHARS;
use actix_web::{web, HttpResponse};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, bigo, callback, clients, demo, index, ops, rooms, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "danmu-broker",
        description = "Real-time danmu broker: BIGO push ingress, rooms, app client WebSockets, live-room list. \
                       The wire contract is PROTOCOL.md; WebSocket frames are not described here."
    ),
    paths(
        index::root,
        clients::end_point,
        clients::upgrade,
        clients::user_info,
        bigo::upgrade,
        rooms::list,
        rooms::create,
        rooms::get,
        rooms::go_live,
        rooms::close,
        rooms::game,
        rooms::like,
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
        (name = "clients", description = "App clients (PROTOCOL.md 2)"),
        (name = "bigo", description = "The BIGO platform's push ingress (PROTOCOL.md 1)"),
        (name = "rooms", description = "The live-room list (PROTOCOL.md 3)"),
        (name = "admin", description = "Operator calls, X-Admin-Key (PROTOCOL.md 3)"),
        (name = "callback", description = "The cloud's stream callback (PROTOCOL.md 3)"),
        (name = "operations", description = "Health, probes, metrics, this document (PROTOCOL.md 4)"),
        (name = "demo", description = "The demo page's token call, only with demo.enabled (PROTOCOL.md 6)"),
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

/// The schema of a field read leniently (`actors::protocol::lenient`): a string or a number.
pub fn string_or_number() -> Schema {
    string_of(None, None)
}

/// A string-or-number field whose text must not be empty (a number always has some).
pub fn text_or_number() -> Schema {
    string_of(Some(1), None)
}

/// `game_sess` of `/game`: not empty, at most `MAX_GAME_CHARS` characters, or a number.
pub fn game_sess() -> Schema {
    string_of(Some(1), Some(MAX_GAME_CHARS))
}

/// `game_id` of `/game`: at most `MAX_GAME_CHARS` characters, or a number.
pub fn game_id() -> Schema {
    string_of(None, Some(MAX_GAME_CHARS))
}

/// A string of `min..=max` characters, or a number (whose text is short).
fn string_of(min: Option<usize>, max: Option<usize>) -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).min_length(min).max_length(max))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .build()
        .into()
}

/// A Unix time read leniently: a string of digits, or a number not below 0.
pub fn unix_time() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[0-9]{1,18}$")))
        .item(ObjectBuilder::new().schema_type(Type::Number).minimum(Some(0)))
        .build()
        .into()
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
