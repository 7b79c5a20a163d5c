//! The BIGO ingress upgrade: one [`BigoSession`] per platform WebSocket (docs/protocol.md 1).

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use actors::ingress::bigo_session::BigoSession;
use log::info;

use super::clients::{handshake_refused, WsHandshake};
use super::error::ErrorBody;
use super::AppState;

/// BIGO ingress WebSocket
///
/// The platform's WebSocket: `platformLogin`, heartbeats, `dataReception` (docs/protocol.md 1).
/// The path is `bigo.path`.
#[utoipa::path(
    get,
    path = "/bigo/ws",
    operation_id = "bigo_upgrade",
    tag = "bigo",
    params(WsHandshake),
    responses(
        (status = 101, description = "Switching Protocols: the BIGO WebSocket"),
        (status = 400, description = "Not a WebSocket handshake (1001)", body = ErrorBody),
        (status = 503, description = "Shutting down: connect elsewhere"),
    )
)]
pub async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    if state.is_closing() {
        info!("bigo {peer}: refused, shutting down");
        return Ok(HttpResponse::ServiceUnavailable().finish());
    }
    if let Err(e) = ws::handshake(&req) {
        return Err(handshake_refused(&e).into());
    }
    let session = BigoSession::new(state.bigo.clone(), state.registry.clone(), state.metrics.clone(), peer);
    ws::WsResponseBuilder::new(session, &req, stream).frame_size(state.bigo.max_frame_bytes).start()
}
