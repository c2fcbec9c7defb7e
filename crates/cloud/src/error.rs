//! The one error type of the HTTP surface. Every failure leaves as
//! `{"error":{"code","message","trackingId"}}`; internal details go to the log with the tracking id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use proto::{ApiError, ErrorBody, ErrorCode};
use store::StoreError;
use tenant::refusal::Refusal;

tokio::task_local! {
    /// The tracking id of the request being served (set by the tracking middleware).
    pub static TRACKING_ID: String;
}

/// The current request's tracking id, or a fresh one outside a request.
pub fn tracking_id() -> String {
    TRACKING_ID
        .try_with(|t| t.clone())
        .unwrap_or_else(|_| tenant::secrets::tracking_id())
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn internal() -> Self {
        Self::new(
            ErrorCode::Internal,
            "The service hit an internal error. Nothing was changed by the failed step; quote the tracking id to your operator.",
        )
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Refusal> for AppError {
    fn from(r: Refusal) -> Self {
        AppError {
            code: r.code,
            message: r.message,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => AppError::new(ErrorCode::Conflict, what),
            StoreError::NotFound => AppError::not_found("The object no longer exists."),
            StoreError::Invalid(what) => {
                AppError::bad_request(format!("The request is not valid: {what}"))
            }
            other => {
                tracing::error!(tracking_id = %tracking_id(), error = %other, "store failure");
                AppError::internal()
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ApiError {
                code: self.code,
                message: self.message,
                tracking_id: tracking_id(),
            },
        };
        (status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, AppError>;
