//! App client entry points (docs/protocol.md 2.1, 2.2, 2.5): finding a node, the WebSocket
//! upgrade, and `user/info`. All check the "common parameters" the same way: `user_id`, `sid`,
//! `timestamp` (within `client.max_skew_ms`) and the JWT `token` naming that user.

use actix::Actor;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use actors::clients::client_session::{ClientHello, ClientSession};
use actors::clients::sessions::CurrentRoom;
use actors::clients::ws_conn::TakeOver;
use actors::protocol::client::ErrorCode;
use actors::protocol::deflate;
use actors::protocol::{clock, now_ms};
use log::{info, warn};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::auth::{self, Claims};
use crate::cluster::directory::RoomOfUser;
use crate::cluster::presence::PickNode;

/// The "common parameters" (docs/protocol.md 2.1). `user_id` and `token` are required everywhere,
/// `sid` and `timestamp` by `end_point` and the upgrade; missing ones answer 400 with 1001.
#[derive(Deserialize)]
pub struct CommonParams {
    /// The app's user id; the token's `sub` must name it.
    user_id: Option<String>,
    /// Device session id: one connection per (user_id, sid).
    sid: Option<String>,
    /// Unix milliseconds, within `client.max_skew_ms` of the server's clock (else 1010).
    timestamp: Option<String>,
    /// The client JWT (HS256, `auth.jwt_secret`).
    token: Option<String>,
    /// Upgrade only: `1` sends room events as JSON arrays (docs/protocol.md 2.4).
    batch: Option<String>,
}

/// The common parameters as `end_point` and the upgrade require them: the OpenAPI
/// document's view of [`CommonParams`] (which reads them all as optional, so that a missing
/// one answers 1001 naming it).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ConnectParams {
    /// The app's user id; the token's `sub` must name it.
    #[param(min_length = 1)]
    user_id: String,
    /// Device session id: one connection per (user_id, sid).
    #[param(min_length = 1)]
    sid: String,
    /// Unix milliseconds, within `client.max_skew_ms` of the server's clock (else 400, 1010).
    #[param(pattern = "^[0-9]{1,15}$")]
    timestamp: String,
    /// The client JWT (HS256, `auth.jwt_secret`).
    #[param(min_length = 1)]
    token: String,
    /// Upgrade only: `1` sends room events as JSON arrays (docs/protocol.md 2.4).
    batch: Option<String>,
}

/// `user/info`'s parameters: the user and its token.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UserParams {
    /// The app's user id; the token's `sub` must name it.
    #[param(min_length = 1)]
    user_id: String,
    /// The client JWT (HS256, `auth.jwt_secret`).
    #[param(min_length = 1)]
    token: String,
}

/// The headers of a WebSocket opening handshake (RFC 6455 4.1), which both upgrades need.
#[derive(IntoParams, Deserialize)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct WsHandshake {
    #[serde(rename = "Upgrade")]
    #[param(pattern = "^websocket$")]
    upgrade: String,
    #[serde(rename = "Connection")]
    #[param(pattern = "^Upgrade$")]
    connection: String,
    #[serde(rename = "Sec-WebSocket-Version")]
    #[param(pattern = "^13$")]
    version: String,
    /// 16 random bytes, base64.
    #[serde(rename = "Sec-WebSocket-Key")]
    #[param(pattern = "^[A-Za-z0-9+/]{22}==$")]
    key: String,
}

/// A request that is not a WebSocket opening handshake: 400 with the JSON error body (1001)
/// rather than actix's bare status, as the OpenAPI document says.
pub fn handshake_refused(e: &ws::HandshakeError) -> ApiError {
    ApiError::bad_request(ErrorCode::BadParameters, format!("not a WebSocket handshake: {e}"))
}

/// Every `Sec-WebSocket-Extensions` offer of an upgrade request, as one list.
pub fn deflate_offers(req: &HttpRequest) -> String {
    let offers: Vec<&str> = req.headers().get_all("sec-websocket-extensions").filter_map(|v| v.to_str().ok()).collect();
    offers.join(",")
}

/// The checks every client entry makes; answers the verified claims or the error response.
fn check(state: &AppState, p: &CommonParams, need_sid: bool) -> Result<Claims, ApiError> {
    let missing = |name: &str| ApiError::bad_request(ErrorCode::BadParameters, format!("missing {name}"));
    let user_id = p.user_id.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| missing("user_id"))?;
    if need_sid {
        p.sid.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| missing("sid"))?;
        let ts: i64 = p
            .timestamp
            .as_deref()
            .ok_or_else(|| missing("timestamp"))?
            .parse()
            .map_err(|_| ApiError::bad_request(ErrorCode::BadParameters, "timestamp must be Unix milliseconds"))?;
        if !clock::within(now_ms(), ts, state.client.max_skew_ms) {
            return Err(ApiError::bad_request(ErrorCode::TimestampOutOfWindow, "timestamp out of window"));
        }
    }
    let token = p.token.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| missing("token"))?;
    auth::verify(&state.config.auth.jwt_secret, token, Some(user_id)).map_err(|e| ApiError::unauthorized(e.to_string()))
}

/// The answer of `end_point`.
#[derive(Serialize, ToSchema)]
pub struct EndPoint<'a> {
    /// 0
    error_code: u16,
    /// ""
    error_reason: &'a str,
    /// The client WebSocket URL to connect to, e.g. `ws://host:port/iapi/websocket`.
    end_point: &'a str,
    /// Seconds between the client's pings.
    ping_interval: u64,
}

/// Find a node: the client WebSocket URL
///
/// `end_point` is `server.public_url` + `client.path`, or, with `public_url` empty, derived
/// from the request's Host header and scheme (docs/protocol.md 2.1).
#[utoipa::path(
    get,
    path = "/iapi/websocket/end_point",
    tag = "clients",
    params(ConnectParams),
    responses(
        (status = 200, description = "The URL to connect to", body = EndPoint),
        (status = 400, description = "A parameter is missing (1001) or the timestamp is stale (1010)", body = ErrorBody),
        (status = 401, description = "The token is invalid, expired or not the user's (1003)", body = ErrorBody),
    )
)]
pub async fn end_point(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CommonParams>,
) -> Result<HttpResponse, ApiError> {
    check(&state, &q, true)?;
    // With several nodes, the live node with the fewest clients (docs/protocol.md 7); else us.
    let picked = match &state.presence {
        Some(presence) => presence.send(PickNode).await.ok().flatten(),
        None => None,
    };
    let base = picked.unwrap_or_else(|| state.public_url.for_request(&req));
    let end_point = format!("{base}{}", state.client.path);
    Ok(HttpResponse::Ok().json(EndPoint {
        error_code: 0,
        error_reason: "",
        end_point: &end_point,
        ping_interval: state.client.ping_interval_s,
    }))
}

/// Client WebSocket
///
/// Upgrades to the app client WebSocket after the checks of `end_point` (docs/protocol.md 2.2-2.6).
/// The path is `client.path`.
#[utoipa::path(
    get,
    path = "/iapi/websocket",
    operation_id = "client_upgrade",
    tag = "clients",
    params(ConnectParams, WsHandshake),
    responses(
        (status = 101, description = "Switching Protocols: the client WebSocket; the first frame is `connected`"),
        (status = 400, description = "A parameter is missing (1001), the timestamp is stale (1010), or not a WebSocket handshake (1001)", body = ErrorBody),
        (status = 401, description = "The token is invalid (1003)", body = ErrorBody),
        (status = 503, description = "Shutting down: connect elsewhere"),
    )
)]
pub async fn upgrade(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CommonParams>,
) -> actix_web::Result<HttpResponse> {
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    if state.is_closing() {
        info!("client {peer}: refused, shutting down");
        return Ok(HttpResponse::ServiceUnavailable().finish());
    }
    let claims = match check(&state, &q, true) {
        Ok(claims) => claims,
        Err(e) => {
            warn!("client {peer}: upgrade refused for user_id {:?}: {e}", q.user_id);
            state.metrics.rejected(actors::metrics::Kind::Client, "bad_upgrade");
            return Err(e.into());
        }
    };
    // permessage-deflate (docs/protocol.md 2.8), on the terms of `actors::protocol::deflate`.
    let deflate = match state.client.compression {
        true => deflate::negotiate(&deflate_offers(&req), state.client.inflate_window_bits),
        false => None,
    };
    let hello = ClientHello {
        profile: claims.profile(),
        sid: q.sid.clone().unwrap_or_default(),
        batch: q.batch.as_deref() == Some("1"),
        peer,
        deflate,
    };
    // The same handshake checks and answers as actix-web-actors' (it still serves BIGO); the
    // listener writes this 101 and hands the socket to the session (src/listener.rs).
    let mut answer = ws::handshake(&req).map_err(|e| handshake_refused(&e))?;
    if let Some(agreed) = deflate {
        answer.insert_header(("sec-websocket-extensions", agreed.response_header()));
    }
    let mut res = answer.finish();
    let (config, registry, sessions, metrics) =
        (state.client.clone(), state.registry.clone(), state.sessions.clone(), state.metrics.clone());
    res.extensions_mut().insert(TakeOver::new(move |handover| {
        ClientSession::new(hello, config, registry, sessions, metrics, handover).start();
    }));
    Ok(res)
}

/// The answer of `user/info`.
#[derive(Serialize, ToSchema)]
pub struct UserInfo<'a> {
    /// 0
    error_code: u16,
    /// ""
    error_reason: &'a str,
    user_id: &'a str,
    /// The channel_name of the room the user is in, "" when in none.
    current_room_id: String,
}

/// The caller's current room
#[utoipa::path(
    get,
    path = "/iapi/user/info",
    tag = "clients",
    params(UserParams),
    responses(
        (status = 200, description = "The user and the room they are in", body = UserInfo),
        (status = 400, description = "user_id or token missing (1001)", body = ErrorBody),
        (status = 401, description = "The token is invalid (1003)", body = ErrorBody),
    )
)]
pub async fn user_info(state: web::Data<AppState>, q: web::Query<CommonParams>) -> Result<HttpResponse, ApiError> {
    let claims = check(&state, &q, false)?;
    let mut current_room_id =
        state.sessions.send(CurrentRoom { user_id: claims.sub.clone() }).await.unwrap_or_default();
    if let (true, Some(directory)) = (current_room_id.is_empty(), &state.directory) {
        // Not in a room here: maybe on another node (docs/protocol.md 7).
        let ask = RoomOfUser { user_id: claims.sub.clone() };
        current_room_id = directory.send(ask).await.unwrap_or_default();
    }
    Ok(HttpResponse::Ok().json(UserInfo { error_code: 0, error_reason: "", user_id: &claims.sub, current_room_id }))
}
