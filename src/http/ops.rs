//! Operator endpoints: `/healthz` (200 serving, 503 draining) and `/metrics` (Prometheus text).

use actix_web::{web, HttpResponse};

use super::AppState;
use crate::cluster::presence::StoreReachable;

/// Health
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Serving; a second line says whether the shared store (Redis) answers", body = String, content_type = "text/plain", example = "ok\nstore: redis reachable\n"),
        (status = 503, description = "Draining for shutdown: take the node out", body = String, content_type = "text/plain", example = "draining\n"),
    )
)]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_draining() {
        return HttpResponse::ServiceUnavailable().body("draining\n");
    }
    // The node serves its open connections while Redis is away, so this stays 200; the
    // second line (and danmu_store_up) tells an operator what the store is doing.
    let store = match &state.presence {
        None => "memory",
        Some(presence) => match presence.send(StoreReachable).await.ok().flatten() {
            Some(true) => "redis reachable",
            Some(false) => "redis unreachable",
            None => "redis connecting",
        },
    };
    HttpResponse::Ok().body(format!("ok\nstore: {store}\n"))
}

/// Metrics
///
/// The metrics of PROTOCOL.md 4 in the Prometheus / OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    )
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
