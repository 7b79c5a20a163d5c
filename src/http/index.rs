//! `GET /`: someone who opens the broker's address in a browser learns where to go. With the
//! demo on that is the demo page (a redirect); otherwise a short text page naming every
//! endpoint, read from the OpenAPI document ([`super::openapi`]) so that it cannot fall
//! behind the routes. With `server.internal` set it names only the public listener's: the
//! operator endpoints are not this listener's to show.

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
    let operators_apart = config.server.internal.is_some();
    let document = if operators_apart { "on the internal listener, server.internal" } else { "GET /iapi/openapi.json" };
    let mut page = format!(
        "danmu-broker {}: a real-time danmu broker. Endpoints (the OpenAPI document is {document}):\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for (path, item) in openapi::document(config).paths.paths {
        if operators_apart && super::is_operator_path(&path) {
            continue;
        }
        for (method, operation) in [("GET", &item.get), ("POST", &item.post)] {
            if let Some(operation) = operation {
                let summary = operation.summary.as_deref().unwrap_or_default();
                page.push_str(&format!("{method:<5} {path:<38} {summary}\n"));
            }
        }
    }
    page
}
