//! Operator endpoints: `/healthz` (200 serving, 503 draining) and `/metrics` (Prometheus text).

use actix_web::{web, HttpResponse};

use super::AppState;

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_draining() {
        HttpResponse::ServiceUnavailable().body("draining\n")
    } else {
        HttpResponse::Ok().body("ok\n")
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
