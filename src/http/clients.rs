//! App client entry points (PROTOCOL.md 2.1, 2.2, 2.5): finding a node, the WebSocket
//! upgrade, and `user/info`. All check the "common parameters" the same way: `user_id`, `sid`,
//! `timestamp` (within `client.max_skew_ms`) and the JWT `token` naming that user.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use actors::client_session::{ClientHello, ClientSession};
use actors::protocol::client::ErrorCode;
use actors::protocol::now_ms;
use actors::registry::CurrentRoom;
use log::{info, warn};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::auth::{self, Claims};

#[derive(Deserialize)]
pub struct CommonParams {
    user_id: Option<String>,
    sid: Option<String>,
    timestamp: Option<String>,
    token: Option<String>,
    batch: Option<String>,
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
        if (now_ms() - ts).abs() > state.client.max_skew_ms {
            return Err(ApiError::bad_request(ErrorCode::TimestampOutOfWindow, "timestamp out of window"));
        }
    }
    let token = p.token.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| missing("token"))?;
    auth::verify(&state.config.auth.jwt_secret, token, Some(user_id)).map_err(|e| ApiError::unauthorized(e.to_string()))
}

#[derive(Serialize)]
struct EndPoint<'a> {
    error_code: u16,
    error_reason: &'a str,
    end_point: &'a str,
    ping_interval: u64,
}

pub async fn end_point(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CommonParams>,
) -> Result<HttpResponse, ApiError> {
    check(&state, &q, true)?;
    let end_point = format!("{}{}", state.public_url.for_request(&req), state.client.path);
    Ok(HttpResponse::Ok().json(EndPoint {
        error_code: 0,
        error_reason: "",
        end_point: &end_point,
        ping_interval: state.client.ping_interval_s,
    }))
}

pub async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    q: web::Query<CommonParams>,
) -> actix_web::Result<HttpResponse> {
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    if state.is_draining() {
        info!("client {peer}: refused, draining");
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
    let hello = ClientHello {
        profile: claims.profile(),
        sid: q.sid.clone().unwrap_or_default(),
        batch: q.batch.as_deref() == Some("1"),
        peer,
    };
    let session = ClientSession::new(hello, state.client.clone(), state.registry.clone(), state.metrics.clone());
    ws::WsResponseBuilder::new(session, &req, stream).frame_size(state.client.max_frame_bytes).start()
}

#[derive(Serialize)]
struct UserInfo<'a> {
    error_code: u16,
    error_reason: &'a str,
    user_id: &'a str,
    current_room_id: String,
}

pub async fn user_info(state: web::Data<AppState>, q: web::Query<CommonParams>) -> Result<HttpResponse, ApiError> {
    let claims = check(&state, &q, false)?;
    let current_room_id = state.registry.send(CurrentRoom { user_id: claims.sub.clone() }).await.unwrap_or_default();
    Ok(HttpResponse::Ok().json(UserInfo { error_code: 0, error_reason: "", user_id: &claims.sub, current_room_id }))
}
