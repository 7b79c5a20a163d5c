//! `POST /callback/stream`: the cloud's stream event callback (docs/protocol.md 3).
//!
//! Body `{"t","sign","event_type","stream_id","channel_id","app","appname","event_time"}`;
//! authentic when `sign == md5(callback_key + t)` and `t` (Unix seconds, the callback's expiry)
//! is not in the past. `event_type` 1 (push began) takes a `new` room live, 0 (push ended)
//! closes a `live` room. Answers `{"code":0}` once handled, including an event that changes
//! nothing (not our stream, a status the move does not apply to): the cloud retries anything
//! else, and retrying would not help. Refusals answer `{"code":N,"message":..}` with the
//! client codes of section 2.7: 1001 bad body, 1002 bad sign, 1010 `t` expired; 2005 (store
//! unavailable, HTTP 503) asks the cloud to try again later.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use actors::protocol::client::ErrorCode;
use actors::protocol::lenient;
use actors::protocol::sign;
use log::{info, warn};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::live_rooms::codes;
use super::schemas;
use super::AppState;
use crate::live::{now_s, StreamEventOutcome};

/// The cloud's stream event; `channel_id`, `app`, `appname` and `event_time` may come too and
/// are not read.
#[derive(Deserialize, ToSchema)]
pub struct StreamEvent {
    /// The callback's expiry, Unix seconds (string or number).
    #[serde(default)]
    #[schema(required = true, schema_with = schemas::text_or_number)]
    t: Value,
    /// `md5(callback_key + t)`
    #[serde(default)]
    #[schema(required = true)]
    sign: String,
    /// 1 push began, 0 push ended (string or number).
    #[serde(default)]
    #[schema(required = true, schema_with = schemas::string_or_number)]
    event_type: Value,
    /// `{bizid}_{room_id}`
    #[serde(default, deserialize_with = "lenient::string")]
    #[schema(schema_with = schemas::string_or_number)]
    stream_id: String,
}

/// What the cloud is answered: `{"code":0}` once handled.
#[derive(Serialize, ToSchema)]
pub struct Answer<'a> {
    /// 0 handled; 1001 bad body, 1002 bad sign, 1010 `t` expired, 2005 try again later.
    code: u16,
    /// Why, when `code` is not 0.
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

fn answer(status: StatusCode, code: u16, message: &str) -> HttpResponse {
    if code != 0 {
        warn!("stream callback refused with {code}: {message}");
    }
    HttpResponse::build(status).json(Answer { code, message })
}

/// The cloud's stream event callback
///
/// `event_type` 1 takes a `new` room live, 0 closes a `live` one; an event that changes
/// nothing is answered `{"code":0}` too, so that the cloud does not retry it.
#[utoipa::path(
    post,
    path = "/callback/stream",
    operation_id = "stream_callback",
    tag = "callback",
    request_body(content = StreamEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Handled (code 0)", body = Answer),
        (status = 400, description = "A bad body (1001)", body = Answer),
        (status = 403, description = "A bad sign (1002) or an expired t (1010)", body = Answer),
        (status = 503, description = "The store cannot be reached (2005): retry", body = Answer),
    )
)]
pub async fn stream(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let bad = |message: &str| answer(StatusCode::BAD_REQUEST, ErrorCode::BadParameters.code(), message);
    let event: StreamEvent = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(e) => return bad(&format!("body: {e}")),
    };
    let t = lenient::text_of(&event.t).unwrap_or_default();
    if t.is_empty() {
        return bad("t is required");
    }
    let expected = sign::stream_callback(&state.config.live.callback_key, &t);
    if !sign::matches(&event.sign, &expected) {
        return answer(StatusCode::FORBIDDEN, ErrorCode::BadSign.code(), "sign is error");
    }
    let Ok(expiry) = t.trim().parse::<u64>() else {
        return bad("t must be Unix seconds");
    };
    if expiry < now_s() {
        return answer(StatusCode::FORBIDDEN, ErrorCode::TimestampOutOfWindow.code(), "t expired");
    }
    let Some(event_type) = lenient::as_i64(&event.event_type) else {
        return bad("event_type must be a number");
    };
    match state.live.stream_event(&event.stream_id, event_type).await {
        Ok(StreamEventOutcome::Applied(status)) => {
            info!("stream callback: stream {} event_type {event_type}: room now {status}", event.stream_id);
            answer(StatusCode::OK, 0, "")
        }
        Ok(StreamEventOutcome::Ignored(why)) => {
            info!("stream callback: stream {} event_type {event_type}: nothing to do ({why})", event.stream_id);
            answer(StatusCode::OK, 0, "")
        }
        Err(e) => answer(StatusCode::SERVICE_UNAVAILABLE, codes::STORE_UNAVAILABLE, &e.to_string()),
    }
}
