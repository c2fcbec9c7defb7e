//! Extractors that turn every malformed request into our error document instead of axum's plain
//! text: bad JSON, wrong types, missing content type, oversize bodies, bad query strings.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::Json;
use proto::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// JSON body; rejections become 400 (or 413 for oversize bodies) with serde's explanation.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => AppError::new(
            ErrorCode::InvalidBody,
            format!(
                "The request body does not match the expected shape: {}",
                e.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                )
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => AppError::new(
            ErrorCode::InvalidBody,
            format!(
                "The request body is not valid JSON: {}",
                e.body_text()
                    .trim_start_matches("Failed to parse the request body as JSON: ")
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => AppError::new(
            ErrorCode::InvalidBody,
            "Send the body as JSON with the header Content-Type: application/json.",
        ),
        other if other.status().as_u16() == 413 => AppError::new(
            ErrorCode::PayloadTooLarge,
            "The request body is larger than this service accepts (max_body_bytes).",
        ),
        other => AppError::new(
            ErrorCode::InvalidBody,
            format!("The request body could not be read: {}", other.body_text()),
        ),
    }
}

/// Query string; rejections become 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(AppError::new(
                ErrorCode::Validation,
                format!(
                    "The query string is not valid: {}",
                    e.body_text()
                        .trim_start_matches("Failed to deserialize query string: ")
                ),
            )),
            Err(other) => Err(AppError::new(ErrorCode::Validation, other.body_text())),
        }
    }
}
