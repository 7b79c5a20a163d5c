//! Operator calls under `/iapi/admin` (PROTOCOL.md 3): `ban` and `notice`. Each needs the
//! header `X-Admin-Key: <admin.key>`; a missing or wrong key answers 403 with error 2006.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actors::protocol::sign;
use serde::Deserialize;

use super::rooms::{codes, json_body, room_answer, room_id};
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

pub async fn ban(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_admin(&req, &state)?;
    let room = state.live.change(room_id(&path)?, Move::Ban, By::Operator).await?;
    Ok(room_answer(&state, room))
}

#[derive(Deserialize)]
struct NoticeBody {
    #[serde(default)]
    content: String,
    #[serde(default, deserialize_with = "actors::protocol::lenient::opt_i64")]
    expire_time: Option<i64>,
    #[serde(default)]
    client_url: String,
}

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
