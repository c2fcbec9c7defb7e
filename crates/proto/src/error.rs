//! The error document every API failure returns: `{"error":{"code","message","trackingId"}}`.

use serde::{Deserialize, Serialize};

/// Stable error codes. `Request_BadRequest` is the incumbent's code for licence assignment
/// failures, kept because admins recognise it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub enum ErrorCode {
    #[serde(rename = "Request_BadRequest")]
    BadRequest,
    #[serde(rename = "invalidRequestBody")]
    InvalidBody,
    #[serde(rename = "validationFailed")]
    Validation,
    #[serde(rename = "unauthenticated")]
    Unauthenticated,
    #[serde(rename = "forbidden")]
    Forbidden,
    #[serde(rename = "notFound")]
    NotFound,
    #[serde(rename = "methodNotAllowed")]
    MethodNotAllowed,
    #[serde(rename = "conflict")]
    Conflict,
    #[serde(rename = "payloadTooLarge")]
    PayloadTooLarge,
    #[serde(rename = "tooManyRequests")]
    TooManyRequests,
    #[serde(rename = "licenseUnavailable")]
    LicenseUnavailable,
    #[serde(rename = "internalError")]
    Internal,
    /// Something the request needs is not reachable right now (no agent for a pass-through
    /// sign-in); try again.
    #[serde(rename = "serviceUnavailable")]
    ServiceUnavailable,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidBody
            | ErrorCode::Validation
            | ErrorCode::LicenseUnavailable => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Internal => 500,
            ErrorCode::ServiceUnavailable => 503,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub tracking_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ApiError,
}
