//! `GET /`: someone who opens the broker's address in a browser learns where to go. With the
//! demo on that is the demo page (a redirect); otherwise a short text page naming every
//! endpoint, read from the OpenAPI document ([`super::openapi`]) so that it cannot fall
//! behind the routes.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::{openapi, AppState};

/// The endpoints
///
/// A text page naming every endpoint; with `demo.enabled`, a redirect to the demo page.
#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    responses(
        (status = 200, description = "The endpoints, one a line", body = String, content_type = "text/plain"),
        (status = 302, description = "With demo.enabled: to /demo", headers(("location" = String, description = "/demo"))),
    )
)]
pub async fn root(state: web::Data<AppState>) -> HttpResponse {
    if state.config.demo.enabled {
        return HttpResponse::Found().insert_header((header::LOCATION, "/demo")).finish();
    }
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(page(&state.config))
}

/// The text of the page: a line per operation, method, path and summary.
pub fn page(config: &crate::config::Config) -> String {
    let mut page = format!(
        "danmu-broker {}: a real-time danmu broker. Endpoints (the OpenAPI document is GET /iapi/openapi.json):\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for (path, item) in openapi::document(config).paths.paths {
        for (method, operation) in [("GET", &item.get), ("POST", &item.post)] {
            if let Some(operation) = operation {
                let summary = operation.summary.as_deref().unwrap_or_default();
                page.push_str(&format!("{method:<5} {path:<38} {summary}\n"));
            }
        }
    }
    page
}
