//! Operator calls under `/iapi/admin` (PROTOCOL.md 3): `ban` and `notice`. Each needs the
//! header `X-Admin-Key: <admin.key>`; a missing or wrong key answers 403 with error 2006.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actors::protocol::sign;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::string_or_number;
use super::rooms::{codes, json_body, room_answer, room_id, RoomView, Success};
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
    params(("room_id" = u64, Path, description = "The room")),
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
    #[serde(default)]
    content: String,
    /// When the notice stops showing (Unix time, as the app reads it); a string or a number.
    #[serde(default, deserialize_with = "actors::protocol::lenient::opt_i64")]
    #[schema(schema_with = string_or_number)]
    expire_time: Option<i64>,
    #[serde(default)]
    client_url: String,
}

/// Operator: notice to the room
#[utoipa::path(
    post,
    path = "/iapi/admin/rooms/{room_id}/notice",
    tag = "admin",
    params(("room_id" = u64, Path, description = "The room")),
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
