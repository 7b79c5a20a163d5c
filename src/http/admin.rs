//! Operator calls under `/iapi/admin` (docs/protocol.md 3): `ban` and `notice`. Each needs the
//! header `X-Admin-Key: <admin.key>`; a missing or wrong key answers 403 with error 2006.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actors::protocol::sign;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::live_rooms::{codes, json_body, room_answer, room_id, RoomView, Success};
use super::schemas;
use super::{ApiError, AppState};
use crate::live::status::Move;
use crate::live::{By, RoomNotice};

/// The key is compared in constant time ([`sign::matches`]): answer times tell nothing about
/// how much of a guess was right.
fn check_admin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let given = req.headers().get("X-Admin-Key").map(|v| v.as_bytes()).unwrap_or_default();
    if given.is_empty() || !sign::matches(given, &state.config.admin.key) {
        log::warn!("admin call {} refused: X-Admin-Key missing or wrong", req.path());
        return Err(ApiError::new(StatusCode::FORBIDDEN, codes::ADMIN_KEY, "X-Admin-Key missing or wrong"));
    }
    Ok(())
}

/// Operator: ban the room
///
/// -> `banned`, off the list; members get `room_status`, the push is cut through
/// `live.forbid_api`.
#[utoipa::path(
    post,
    path = "/iapi/admin/rooms/{room_id}/ban",
    tag = "admin",
    params(("room_id" = u64, Path, minimum = 1, maximum = 9007199254740991_i64, description = "The room")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The banned room", body = Success<RoomView>),
        (status = 400, description = "room_id is not a room id, or a bad body (1001)", body = ErrorBody),
        (status = 403, description = "X-Admin-Key missing or wrong (2006)", body = ErrorBody),
        (status = 409, description = "The room is already closed or banned (2003)", body = ErrorBody),
        (status = 404, description = "No such room (2001)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached (2005)", body = ErrorBody),
    )
)]
pub async fn ban(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_admin(&req, &state)?;
    let room = state.live.change(room_id(&path)?, Move::Ban, By::Operator).await?;
    Ok(room_answer(&state, room))
}

/// A notice to every member of a room (`room_notice`).
#[derive(Deserialize, ToSchema)]
pub struct NoticeBody {
    /// 1 to 1000 characters.
    #[serde(default)]
    #[schema(required = true, min_length = 1, max_length = 1000)]
    content: String,
    /// When the notice stops showing (Unix time, as the app reads it): not negative, a string
    /// of digits or a number.
    #[serde(default, deserialize_with = "unix_time")]
    #[schema(schema_with = schemas::unix_time)]
    expire_time: Option<i64>,
    #[serde(default)]
    #[schema(max_length = 1000)]
    client_url: String,
}

/// `expire_time` as the document describes it ([`schemas::unix_time`]): a string of 1 to 18
/// digits, or a JSON number not below 0 (a fraction is cut). Anything else is refused (1001),
/// so that the document is exact both ways.
fn unix_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let refused = || D::Error::custom("expire_time must be Unix time: a string of digits or a number not below 0");
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if f >= 0.0 => Ok(Some(n.as_i64().unwrap_or(f as i64))),
            _ => Err(refused()),
        },
        serde_json::Value::String(s) if (1..=18).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| refused())
        }
        _ => Err(refused()),
    }
}

/// Operator: notice to the room
#[utoipa::path(
    post,
    path = "/iapi/admin/rooms/{room_id}/notice",
    tag = "admin",
    params(("room_id" = u64, Path, minimum = 1, maximum = 9007199254740991_i64, description = "The room")),
    request_body(content = NoticeBody, content_type = "application/json"),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The room the notice went to", body = Success<RoomView>),
        (status = 400, description = "room_id is not a room id, or a bad body (1001)", body = ErrorBody),
        (status = 403, description = "X-Admin-Key missing or wrong (2006)", body = ErrorBody),
        (status = 404, description = "No such room (2001)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached (2005)", body = ErrorBody),
    )
)]
pub async fn notice(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    check_admin(&req, &state)?;
    let id = room_id(&path)?;
    let b: NoticeBody = json_body(&body)?;
    let notice = RoomNotice { content: b.content, expire_time: b.expire_time.unwrap_or(0), client_url: b.client_url };
    let room = state.live.notice(id, notice).await?;
    Ok(room_answer(&state, room))
}
