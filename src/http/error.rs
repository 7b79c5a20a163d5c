//! The HTTP layer's one error type: an HTTP status plus the `{error_code, error_reason}` body
//! that every `/iapi` answer carries (docs/protocol.md 2.1, 2.7, 3). Handlers return
//! `Result<HttpResponse, ApiError>` and actix renders the error.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use actors::protocol::client::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
#[error("{status} error_code {code}: {reason}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u16,
    pub reason: String,
}

/// Every refusal: HTTP 4xx/5xx with this body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// Not 0: a code of docs/protocol.md 2.7 (1001 bad parameters, 1003 token, ...) or of the
    /// live-room calls (2001 no such room ... 2006 admin key).
    error_code: u16,
    /// What was wrong, in words.
    error_reason: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u16, reason: impl Into<String>) -> Self {
        Self { status, code, reason: reason.into() }
    }

    /// 400 with a client error code (1001 bad parameters, 1010 timestamp, ...).
    pub fn bad_request(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code.code(), reason)
    }

    /// 401, error 1003.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::TokenInvalid.code(), reason)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody { error_code: self.code, error_reason: &self.reason })
    }
}
