//! The demo page (docs/protocol.md 6): its files are compiled into the binary and served from
//! `/demo`; `POST /demo/token` mints client JWTs so the page can log in. Both exist only with
//! `demo.enabled: true` (anyone can mint tokens then: on a non-loopback `server.host` the
//! broker refuses to start with it unless `demo.public: true`, `crate::exposure`).
//!
//! The page speaks the protocol through the client SDK: `demo/danmu-client.js` is the browser
//! bundle of `clients/js` (generated there by `npm run bundle`, committed so that the broker
//! builds without npm; `npm run check-bundle` fails when it is stale).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::auth;
use actors::protocol::client::ErrorCode;

const INDEX_HTML: &str = include_str!("demo/index.html");
const APP_JS: &str = include_str!("demo/app.js");
const STYLE_CSS: &str = include_str!("demo/style.css");
const SDK_JS: &str = include_str!("demo/danmu-client.js");

/// How long a demo token lives.
const DEMO_TOKEN_TTL_S: u64 = 24 * 3600;

pub fn routes(cfg: &mut web::ServiceConfig, enabled: bool) {
    if !enabled {
        return;
    }
    let page = |path: &'static str, body: &'static str, content_type: &'static str| {
        web::resource(path).route(web::get().to(move || file(body, content_type)))
    };
    cfg.service(page("/demo", INDEX_HTML, "text/html; charset=utf-8"))
        .service(page("/demo/", INDEX_HTML, "text/html; charset=utf-8"))
        .service(page("/demo/app.js", APP_JS, "text/javascript; charset=utf-8"))
        .service(page("/demo/danmu-client.js", SDK_JS, "text/javascript; charset=utf-8"))
        .service(page("/demo/style.css", STYLE_CSS, "text/css; charset=utf-8"))
        .service(web::resource("/demo/token").route(web::post().to(token)));
}

async fn file(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).body(body)
}

/// Who the demo page logs in as.
#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// 1 to 64 characters, something besides spaces and line breaks (those around it are
    /// dropped).
    #[schema(min_length = 1, max_length = 64, pattern = "[^ \t\n\r]")]
    user_id: String,
    #[serde(default)]
    nickname: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenAnswer {
    /// A client JWT for the user, valid for 24 hours.
    token: String,
}

/// Demo: a client token
///
/// Only with `demo.enabled` (404 otherwise): anyone can mint tokens with it.
#[utoipa::path(
    post,
    path = "/demo/token",
    operation_id = "demo_token",
    tag = "demo",
    request_body(content = TokenRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The token", body = TokenAnswer),
        (status = 400, description = "A bad user_id (1001)", body = ErrorBody),
    )
)]
pub async fn token(state: web::Data<AppState>, body: web::Json<TokenRequest>) -> Result<HttpResponse, ApiError> {
    let user_id = body.user_id.trim_matches([' ', '\t', '\n', '\r']);
    if user_id.is_empty() || user_id.chars().count() > 64 {
        return Err(ApiError::bad_request(ErrorCode::BadParameters, "user_id must be 1 to 64 characters"));
    }
    let nickname = body.nickname.clone().filter(|n| !n.trim().is_empty());
    let claims = auth::claims_for(user_id, nickname, DEMO_TOKEN_TTL_S);
    Ok(HttpResponse::Ok().json(TokenAnswer { token: auth::issue(&state.config.auth.jwt_secret, &claims) }))
}
