//! The BIGO ingress upgrade: one [`BigoSession`] per platform WebSocket (docs/protocol.md 1), with
//! permessage-deflate when BIGO offers it and `bigo.compression` is on (docs/protocol.md 2.8).

use actix::AsyncContext;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use actors::ingress::bigo_session::BigoSession;
use actors::ingress::inflating_frames::InflatingFrames;
use actors::protocol::deflate;
use log::info;

use super::clients::{deflate_offers, handshake_refused, WsHandshake};
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
    let max_frame_bytes = state.bigo.max_frame_bytes;
    // The same terms as the client WebSocket's; BIGO's connections are few, so the window it
    // compresses with is not bounded below 2^15.
    let agreed = state.bigo.compression.then(|| deflate::negotiate(&deflate_offers(&req), 15)).flatten();
    let Some(agreed) = agreed else {
        return ws::WsResponseBuilder::new(session, &req, stream).frame_size(max_frame_bytes).start();
    };
    let mut answer = ws::handshake(&req).map_err(|e| handshake_refused(&e))?;
    answer.insert_header(("sec-websocket-extensions", agreed.response_header()));
    // The context's own reader gets no bytes (a stream that never yields); the request's bytes
    // are decoded, and compressed frames inflated, by `InflatingFrames`.
    let frames = InflatingFrames::new(stream, max_frame_bytes);
    let body = ws::WebsocketContext::with_factory(futures_util::stream::pending(), move |ctx| {
        ctx.add_stream(frames);
        session
    });
    Ok(answer.streaming(body))
}
