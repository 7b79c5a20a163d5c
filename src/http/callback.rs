//! `POST /callback/stream`: the cloud's stream event callback (PROTOCOL.md 3).
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

use super::rooms::codes;
use super::AppState;
use crate::live::{now_s, StreamEventOutcome};

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(default)]
    t: Value,
    #[serde(default)]
    sign: String,
    #[serde(default)]
    event_type: Value,
    #[serde(default, deserialize_with = "lenient::string")]
    stream_id: String,
}

#[derive(Serialize)]
struct Answer<'a> {
    code: u16,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

fn answer(status: StatusCode, code: u16, message: &str) -> HttpResponse {
    if code != 0 {
        warn!("stream callback refused with {code}: {message}");
    }
    HttpResponse::build(status).json(Answer { code, message })
}

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
