//! Extractors that turn every malformed request into our error document instead of axum's plain
//! text: bad JSON, wrong types, a JSON array where an object is expected, missing content type,
//! oversize bodies, bad query strings.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::Json;
use proto::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// JSON body (`Content-Type: application/json`, a JSON object); rejections become 400 (or 413
/// for oversize bodies) with serde's explanation.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(AppError::new(
                ErrorCode::InvalidBody,
                "Send the body as JSON with the header Content-Type: application/json.",
            ));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        json_object(&body).map(ApiJson)
    }
}

/// An optional JSON object body: none (or only whitespace) is `T::default()`.
pub struct ApiOptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiOptionalJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiOptionalJson(T::default()));
        }
        json_object(&body).map(ApiOptionalJson)
    }
}

/// A request body as `T`, which every endpoint documents as a JSON object: an array (which serde
/// would read as the object's fields in order) is refused like any other wrong shape.
pub fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(AppError::new(
            ErrorCode::InvalidBody,
            "The request body must be a JSON object ({…}), not an array; see /openapi.json.",
        ));
    }
    Json::<T>::from_bytes(body)
        .map(|Json(v)| v)
        .map_err(json_rejection)
}

/// `application/json` or an `application/…+json` type, as axum's `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn bytes_rejection(rejection: BytesRejection) -> AppError {
    if rejection.status().as_u16() == 413 {
        too_large()
    } else {
        AppError::new(
            ErrorCode::InvalidBody,
            format!(
                "The request body could not be read: {}",
                rejection.body_text()
            ),
        )
    }
}

/// The answer to a body over `max_body_bytes`.
pub fn too_large() -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        "The request body is larger than this service accepts (max_body_bytes).",
    )
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
        other if other.status().as_u16() == 413 => too_large(),
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
