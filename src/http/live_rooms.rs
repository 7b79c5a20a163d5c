//! The live-room calls of app users (docs/protocol.md 3): create, live, close, game, like, list,
//! get one. Each authenticates the caller with the client JWT (`Authorization: Bearer` or
//! `token=`) and hands the work to `crate::live::LiveRooms`.
//!
//! Every answer is `{"error_code":0,"error_reason":"", ...}`; a room answer carries the room's
//! fields at the top level ([`RoomView`], `channel_name` included), the list carries `rooms`.
//! [`LiveError`]s become wire codes here, once (the table is docs/protocol.md 3.1):
//! 1001 bad parameters, 1003 token, 2001 no such room, 2002 not the owner, 2003 status does not
//! allow it, 2004 game_sess taken, 2005 store unavailable.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actors::protocol::client::ErrorCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::schemas;
use super::{ApiError, AppState};
use crate::auth::{self, Claims};
use crate::live::status::Move;
use crate::live::urls::{self, PlayUrls};
use crate::live::{now_s, By, CreateRoom, LiveError};
use crate::store::{LiveRoom, LiveStatus};

/// Error codes of the live-room calls (docs/protocol.md 3 leaves them to us; 1001/1003 are 2.7's).
pub mod codes {
    pub const ROOM_NOT_FOUND: u16 = 2001;
    pub const NOT_OWNER: u16 = 2002;
    pub const WRONG_STATUS: u16 = 2003;
    pub const GAME_SESS_TAKEN: u16 = 2004;
    pub const STORE_UNAVAILABLE: u16 = 2005;
    pub const ADMIN_KEY: u16 = 2006;
}

impl From<LiveError> for ApiError {
    fn from(e: LiveError) -> Self {
        let (status, code) = match &e {
            LiveError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadParameters.code()),
            LiveError::NotFound(_) => (StatusCode::NOT_FOUND, codes::ROOM_NOT_FOUND),
            LiveError::NotOwner(_) => (StatusCode::FORBIDDEN, codes::NOT_OWNER),
            LiveError::Illegal(_) | LiveError::WrongStatus { .. } | LiveError::Busy(_) => {
                (StatusCode::CONFLICT, codes::WRONG_STATUS)
            }
            LiveError::GameSessTaken { .. } => (StatusCode::CONFLICT, codes::GAME_SESS_TAKEN),
            LiveError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, codes::STORE_UNAVAILABLE),
        };
        if matches!(e, LiveError::Store(_)) {
            log::warn!("live rooms: {e}");
        }
        ApiError::new(status, code, e.to_string())
    }
}

/// A room as every answer shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    pub room_id: u64,
    /// The client channel of the room: its room_id as text.
    pub channel_name: String,
    /// `{bizid}_{room_id}`
    pub stream_id: String,
    pub owner_id: String,
    pub title: String,
    pub location: String,
    pub cover_url: String,
    /// `new`, `live`, `closed` or `banned`.
    #[schema(value_type = String, example = "live")]
    pub status: LiveStatus,
    /// Members now, counted from joins and leaves.
    pub viewers: i64,
    pub likes: i64,
    pub play_urls: PlayUrls,
    pub game_id: String,
    /// The linked BIGO game session, "" when none.
    pub game_sess: String,
    /// Unix seconds; 0 = not yet.
    pub created_at: i64,
    pub live_at: i64,
    pub ended_at: i64,
}

impl RoomView {
    pub fn new(state: &AppState, room: LiveRoom) -> Self {
        let play_urls = urls::play_urls(state.live.config(), &room.stream_id, now_s());
        Self {
            channel_name: room.channel_name(),
            room_id: room.room_id,
            stream_id: room.stream_id,
            owner_id: room.owner_id,
            title: room.title,
            location: room.location,
            cover_url: room.cover_url,
            status: room.status,
            viewers: room.viewers,
            likes: room.likes,
            play_urls,
            game_id: room.game_id,
            game_sess: room.game_sess,
            created_at: room.created_at,
            live_at: room.live_at,
            ended_at: room.ended_at,
        }
    }
}

/// A successful answer: `error_code` 0 and the body's fields beside it.
#[derive(Serialize, ToSchema)]
pub struct Success<T: Serialize> {
    /// 0
    error_code: u16,
    /// ""
    error_reason: &'static str,
    #[serde(flatten)]
    body: T,
}

pub fn ok<T: Serialize>(body: T) -> HttpResponse {
    HttpResponse::Ok().json(Success { error_code: 0, error_reason: "", body })
}

pub fn room_answer(state: &AppState, room: LiveRoom) -> HttpResponse {
    ok(RoomView::new(state, room))
}

/// The caller's verified JWT claims, from `Authorization: Bearer` or `token=`.
fn caller(req: &HttpRequest, state: &AppState) -> Result<Claims, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let token = header.or_else(|| {
        web::Query::<HashMap<String, String>>::from_query(req.query_string()).ok().and_then(|q| q.get("token").cloned())
    });
    let token = token.filter(|t| !t.is_empty()).ok_or_else(|| ApiError::unauthorized("missing token"))?;
    auth::verify(&state.config.auth.jwt_secret, &token, None).map_err(|e| ApiError::unauthorized(e.to_string()))
}

/// The largest room id and page number: 2^53 - 1, the largest integer a JSON number carries
/// exactly to every client (JavaScript's `Number.MAX_SAFE_INTEGER`). The OpenAPI document says
/// the same (`maximum`), and anything above is refused.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `{room_id}` from the path: a positive integer up to [`MAX_SAFE_INTEGER`].
pub fn room_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|id| (1..=MAX_SAFE_INTEGER).contains(id))
        .ok_or_else(|| ApiError::bad_request(ErrorCode::BadParameters, format!("room_id {raw:?} is not a room id")))
}

/// A JSON body (an empty body reads as `{}`), with a 1001 that says what is wrong.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(ErrorCode::BadParameters, format!("body: {e}")))
}

/// What an owner gives to create a room.
#[derive(Deserialize, ToSchema)]
pub struct CreateBody {
    /// Something besides spaces and line breaks, at most 100 characters.
    #[serde(default)]
    #[schema(required = true, min_length = 1, max_length = 100, pattern = "[^ \t\n\r]")]
    title: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    location: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    cover_url: String,
}

/// A new room and, for its owner only, the signed push URL.
#[derive(Serialize, ToSchema)]
pub struct Created {
    #[serde(flatten)]
    room: RoomView,
    /// `rtmp://{push_domain}/live/{stream_id}?bizid=..&txSecret=..&txTime=..`
    push_url: String,
}

/// Create a room
///
/// A room owned by the caller, status `new`.
#[utoipa::path(
    post,
    path = "/iapi/rooms",
    operation_id = "create_room",
    tag = "rooms",
    request_body(content = CreateBody, content_type = "application/json"),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "The room and its push URL", body = Success<Created>),
        (status = 400, description = "A bad body (1001)", body = ErrorBody),
        (status = 401, description = "No or a bad token (1003)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached (2005)", body = ErrorBody),
    )
)]
pub async fn create(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let claims = caller(&req, &state)?;
    let b: CreateBody = json_body(&body)?;
    let create = CreateRoom { title: b.title, location: b.location, cover_url: b.cover_url };
    let (room, push_url) = state.live.create(&claims.sub, create).await?;
    Ok(ok(Created { room: RoomView::new(&state, room), push_url }))
}

async fn owner_move(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: &str,
    mv: Move,
) -> Result<HttpResponse, ApiError> {
    let claims = caller(&req, &state)?;
    let room = state.live.change(room_id(path)?, mv, By::Owner(&claims.sub)).await?;
    Ok(room_answer(&state, room))
}

/// The owner goes live
///
/// `new` -> `live`: only then is the room listed.
#[utoipa::path(
    post,
    path = "/iapi/rooms/{room_id}/live",
    tag = "rooms",
    params(("room_id" = u64, Path, minimum = 1, maximum = 9007199254740991_i64, description = "The room")),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "The room after the call", body = Success<RoomView>),
        (status = 400, description = "room_id is not a room id (1001)", body = ErrorBody),
        (status = 401, description = "No or a bad token (1003)", body = ErrorBody),
        (status = 404, description = "No such room (2001)", body = ErrorBody),
        (status = 403, description = "Not the room's owner (2002)", body = ErrorBody),
        (status = 409, description = "The room's status does not allow it (2003)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached (2005)", body = ErrorBody),
    )
)]
pub async fn go_live(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    owner_move(req, state, &path, Move::GoLive).await
}

/// The owner ends the room
///
/// -> `closed`, off the list.
#[utoipa::path(
    post,
    path = "/iapi/rooms/{room_id}/close",
    operation_id = "close_room",
    tag = "rooms",
    params(("room_id" = u64, Path, minimum = 1, maximum = 9007199254740991_i64, description = "The room")),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "The room after the call", body = Success<RoomView>),
        (status = 400, description = "room_id is not a room id (1001)", body = ErrorBody),
        (status = 401, description = "No or a bad token (1003)", body = ErrorBody),
        (status = 404, description = "No such room (2001)", body = ErrorBody),
        (status = 403, description = "Not the room's owner (2002)", body = ErrorBody),
        (status = 409, description = "The room's status does not allow it (2003)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached (2005)", body = ErrorBody),
    )
)]
pub async fn close(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    owner_move(req, state, &path, Move::Close).await
}

/// The BIGO game session to link (string or number each, at most 128 characters).
#[derive(Deserialize, ToSchema)]
pub struct GameBody {
    #[serde(default, deserialize_with = "actors::protocol::lenient::string")]
    #[schema(schema_with = schemas::game_id)]
    game_id: String,
    #[serde(default, deserialize_with = "actors::protocol::lenient::string")]
    #[schema(required = true, schema_with = schemas::game_sess)]
    game_sess: String,
}

/// Link a BIGO game session
///
/// Its danmu go to this room's channel.
#[utoipa::path(
    post,
    path = "/iapi/rooms/{room_id}/game",
    operation_id = "link_game",
    tag = "rooms",
    params(("room_id" = u64, Path, minimum = 1, maximum = 9007199254740991_i64, description = "The room")),
    request_body(content = GameBody, content_type = "application/json"),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "The room after the call", body = Success<RoomView>),
        (status = 400, description = "room_id is not a room id (1001)", body = ErrorBody),
        (status = 401, description = "No or a bad token (1003)", body = ErrorBody),
        (status = 404, description = "No such room (2001)", body = ErrorBody),
        (status = 403, description = "Not the room's owner (2002)", body = ErrorBody),
        (status = 409, description = "The room's status does not allow it (2003), or the game_sess is linked to another open room (2004)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached (2005)", body = ErrorBody),
    )
)]

pub async fn game(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let claims = caller(&req, &state)?;
    let id = room_id(&path)?;
    let b: GameBody = json_body(&body)?;
    let room = state.live.link_game(id, &claims.sub, b.game_id, b.game_sess).await?;
    Ok(room_answer(&state, room))
}

/// Like the room
///
/// likes +1 (any signed-in user).
#[utoipa::path(
    post,
    path = "/iapi/rooms/{room_id}/like",
    operation_id = "like_room",
    tag = "rooms",
    params(("room_id" = u64, Path, minimum = 1, maximum = 9007199254740991_i64, description = "The room")),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "The room after the call", body = Success<RoomView>),
        (status = 400, description = "room_id is not a room id (1001)", body = ErrorBody),
        (status = 401, description = "No or a bad token (1003)", body = ErrorBody),
        (status = 404, description = "No such room (2001)", body = ErrorBody),
        (status = 409, description = "The room is not live (2003)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached (2005)", body = ErrorBody),
    )
)]
pub async fn like(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller(&req, &state)?;
    let room = state.live.like(room_id(&path)?).await?;
    Ok(room_answer(&state, room))
}

/// One page of the live rooms.
#[derive(Serialize, ToSchema)]
pub struct Listing {
    /// Newest first.
    rooms: Vec<RoomView>,
    page: u64,
    page_size: u64,
    /// Live rooms in all.
    total: u64,
}

/// Live rooms
///
/// The rooms that are `live`, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/iapi/rooms",
    operation_id = "list_rooms",
    tag = "rooms",
    params(
        ("page" = Option<u64>, Query, minimum = 1, maximum = 9007199254740991_i64, description = "From 1 (default 1)"),
        ("page_size" = Option<u64>, Query, minimum = 1, maximum = 100, description = "Rooms per page, at most 100 (default 20)"),
    ),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "A page of live rooms", body = Success<Listing>),
        (status = 400, description = "page or page_size not a number (1001)", body = ErrorBody),
        (status = 401, description = "No or a bad token (1003)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached (2005)", body = ErrorBody),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state)?;
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(ErrorCode::BadParameters, e.to_string()))?;
    let number = |name: &str, default: u64| -> Result<u64, ApiError> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::bad_request(ErrorCode::BadParameters, format!("{name} must be a number"))),
        }
    };
    let (page, page_size) = (number("page", 1)?, number("page_size", 20)?);
    if page > MAX_SAFE_INTEGER {
        return Err(ApiError::bad_request(ErrorCode::BadParameters, format!("page is at most {MAX_SAFE_INTEGER}")));
    }
    let found = state.live.list(page, page_size).await?;
    let rooms = found.rooms.into_iter().map(|room| RoomView::new(&state, room)).collect();
    Ok(ok(Listing { rooms, page, page_size, total: found.total }))
}

/// One room
#[utoipa::path(
    get,
    path = "/iapi/rooms/{room_id}",
    operation_id = "get_room",
    tag = "rooms",
    params(("room_id" = u64, Path, minimum = 1, maximum = 9007199254740991_i64, description = "The room")),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "The room after the call", body = Success<RoomView>),
        (status = 400, description = "room_id is not a room id (1001)", body = ErrorBody),
        (status = 401, description = "No or a bad token (1003)", body = ErrorBody),
        (status = 404, description = "No such room (2001)", body = ErrorBody),
        (status = 503, description = "The store cannot be reached (2005)", body = ErrorBody),
    )
)]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller(&req, &state)?;
    let room = state.live.get(room_id(&path)?).await?;
    Ok(room_answer(&state, room))
}
