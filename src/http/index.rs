//! `GET /`: someone who opens the broker's address in a browser learns where to go. With the
//! demo on that is the demo page (a redirect); otherwise a short text page naming every
//! endpoint, from [`endpoints`], the same list as the README's "Endpoints" table.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use actors::config::Config;

use super::AppState;

/// One endpoint as the index page and the start-up log name it.
pub struct Endpoint {
    pub method: &'static str,
    pub path: String,
    pub what: &'static str,
}

/// Every endpoint of the broker, with the configured paths of the two WebSockets.
pub fn endpoints(config: &Config) -> Vec<Endpoint> {
    let e = |method, path: &str, what| Endpoint { method, path: path.to_string(), what };
    let mut list = vec![
        e("GET", "/", "this page (a redirect to /demo when the demo is on)"),
        e("GET", "/iapi/websocket/end_point", "find a node: the client WebSocket URL (PROTOCOL.md 2.1)"),
        e("GET", &config.client.path, "client WebSocket (PROTOCOL.md 2.2-2.6)"),
        e("GET", "/iapi/user/info", "the caller's current room (PROTOCOL.md 2.1 parameters)"),
        e("GET", &config.bigo.path, "BIGO ingress WebSocket (PROTOCOL.md 1)"),
        e("GET", "/iapi/rooms", "live rooms, newest first (PROTOCOL.md 3)"),
        e("POST", "/iapi/rooms", "create a room"),
        e("GET", "/iapi/rooms/{room_id}", "one room"),
        e("POST", "/iapi/rooms/{room_id}/live", "the owner goes live"),
        e("POST", "/iapi/rooms/{room_id}/close", "the owner closes the room"),
        e("POST", "/iapi/rooms/{room_id}/game", "link a BIGO game_sess to the room"),
        e("POST", "/iapi/rooms/{room_id}/like", "likes +1"),
        e("POST", "/iapi/admin/rooms/{room_id}/ban", "operator: ban the room (X-Admin-Key)"),
        e("POST", "/iapi/admin/rooms/{room_id}/notice", "operator: notice to the room (X-Admin-Key)"),
        e("POST", "/callback/stream", "the cloud's stream event callback"),
        e("GET", "/healthz", "200 serving, 503 draining (PROTOCOL.md 4)"),
        e("GET", "/metrics", "Prometheus / OpenMetrics text"),
    ];
    if config.demo.enabled {
        list.push(e("GET", "/demo", "the demo page (demo.enabled)"));
        list.push(e("POST", "/demo/token", "a client JWT for the demo page (demo.enabled)"));
    }
    list
}

pub async fn root(state: web::Data<AppState>) -> HttpResponse {
    if state.config.demo.enabled {
        return HttpResponse::Found().insert_header((header::LOCATION, "/demo")).finish();
    }
    let mut page = format!("danmu-broker {}: a real-time danmu broker. Endpoints:\n\n", env!("CARGO_PKG_VERSION"));
    for e in endpoints(&state.config) {
        page.push_str(&format!("{:<5} {:<38} {}\n", e.method, e.path, e.what));
    }
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(page)
}
