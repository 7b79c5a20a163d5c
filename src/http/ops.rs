//! Operator endpoints and probes (docs/protocol.md 4): `/healthz` (200 serving, 503 draining),
//! `/metrics` (Prometheus text), and the orchestrators' probes `/livez` (the process serves)
//! and `/readyz` (the node should be given new clients). [`readiness`] is the readiness rule,
//! apart from the I/O.

use actix_web::{web, HttpResponse};

use super::AppState;
use crate::cluster::presence::StoreReachable;

const TEXT: &str = "text/plain; charset=utf-8";

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
        return HttpResponse::ServiceUnavailable().content_type(TEXT).body("draining\n");
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
    HttpResponse::Ok().content_type(TEXT).body(format!("ok\nstore: {store}\n"))
}

/// Liveness probe
///
/// 200 while the process serves requests at all. A store outage or a drain never fails it:
/// restarting the node would mend neither.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "operations",
    responses(
        (status = 200, description = "The process serves requests", body = String, content_type = "text/plain", example = "ok\n"),
    )
)]
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().content_type(TEXT).body("ok\n")
}

/// Why a node should not be given new clients now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// Shutting down (SIGTERM): `/readyz` turns 503 before any client is kicked.
    Draining,
    /// The last presence renewal did not reach Redis.
    StoreUnreachable,
    /// Several nodes: no presence renewal has reached Redis yet, so `end_point` on the other
    /// nodes cannot name this one.
    PresenceNotWritten,
}

impl NotReady {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draining => "draining",
            Self::StoreUnreachable => "store unreachable",
            Self::PresenceNotWritten => "presence not written",
        }
    }
}

/// The readiness rule: `draining`, and with a Redis store (`presence` is `Some`) the state of
/// the last presence renewal (`Some(None)`: none has ended yet).
pub fn readiness(draining: bool, presence: Option<Option<bool>>) -> Result<(), NotReady> {
    if draining {
        return Err(NotReady::Draining);
    }
    match presence {
        None | Some(Some(true)) => Ok(()),
        Some(Some(false)) => Err(NotReady::StoreUnreachable),
        Some(None) => Err(NotReady::PresenceNotWritten),
    }
}

/// Readiness probe
///
/// 200 while the node should be given new clients; 503 while it drains (from SIGTERM on),
/// while the store (Redis) cannot be reached, and, with several nodes, until its presence
/// record is written. The body says which.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready for new clients", body = String, content_type = "text/plain", example = "ready\n"),
        (status = 503, description = "Not ready: `draining`, `store unreachable` or `presence not written`", body = String, content_type = "text/plain", example = "not ready: draining\n"),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let presence = match &state.presence {
        None => None,
        Some(presence) => Some(presence.send(StoreReachable).await.ok().flatten()),
    };
    match readiness(state.is_draining(), presence) {
        Ok(()) => HttpResponse::Ok().content_type(TEXT).body("ready\n"),
        Err(why) => {
            HttpResponse::ServiceUnavailable().content_type(TEXT).body(format!("not ready: {}\n", why.as_str()))
        }
    }
}

/// Metrics
///
/// The metrics of docs/protocol.md 4 in the Prometheus / OpenMetrics text format.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_node_is_ready_until_it_drains() {
        assert_eq!(readiness(false, None), Ok(()));
        assert_eq!(readiness(true, None), Err(NotReady::Draining));
    }

    #[test]
    fn a_redis_node_is_ready_once_its_presence_is_written_and_while_redis_answers() {
        assert_eq!(readiness(false, Some(None)), Err(NotReady::PresenceNotWritten));
        assert_eq!(readiness(false, Some(Some(true))), Ok(()));
        assert_eq!(readiness(false, Some(Some(false))), Err(NotReady::StoreUnreachable));
        assert_eq!(readiness(true, Some(Some(true))), Err(NotReady::Draining), "draining comes first");
    }
}
