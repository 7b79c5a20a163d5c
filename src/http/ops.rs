//! Operator endpoints: `/healthz` (200 serving, 503 draining) and `/metrics` (Prometheus text).

use actix_web::{web, HttpResponse};

use super::AppState;

/// Health
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Serving", body = String, content_type = "text/plain", example = "ok\n"),
        (status = 503, description = "Draining for shutdown: take the node out", body = String, content_type = "text/plain", example = "draining\n"),
    )
)]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_draining() {
        HttpResponse::ServiceUnavailable().body("draining\n")
    } else {
        HttpResponse::Ok().body("ok\n")
    }
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
