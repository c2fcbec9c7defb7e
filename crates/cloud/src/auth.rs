//! `/api/v1/auth/…` and `/api/v1/me`: the HTTP side of sign-in. The bearer token extractor
//! turns `Authorization: Bearer …` into an [`app::caller::Caller`]; the handlers parse, call
//! [`app::sign_in`] and render. What sign-in decides (throttle, pass-through, tokens) is there.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use proto::{TokenRequest, User};

use crate::app::caller::Caller;
use crate::app::{self, Ctx};
use crate::error::{ApiResult, AppError};
use crate::extract::ApiJson;
use crate::state::AppState;

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                AppError::unauthenticated("Sign in first: send Authorization: Bearer <token> (dirbridge login --cloud URL --user UPN).")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::unauthenticated("The Authorization header must be 'Bearer <token>'.")
            })?;
        Caller::from_token(state, token).await
    }
}

/// `POST /api/v1/auth/token`. A success also makes the browser a known device of the account
/// (a cookie, see [`crate::limits`]), exempt from the per-address limit for that account.
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<Response> {
    let token = app::sign_in::password(&state, &Ctx::of(&state), req).await?;
    let cookie = crate::limits::device::device_cookie(&state, &token.user_principal_name).await?;
    Ok(([(axum::http::header::SET_COOKIE, cookie)], Json(token)).into_response())
}

/// `DELETE /api/v1/auth/token` — sign out: revoke the calling token.
pub async fn sign_out(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    app::sign_in::sign_out(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/auth/tokens/{id}` — revoke one token: your own, or any as Global Administrator.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::sign_in::revoke_token(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/me`
pub async fn me(caller: Caller) -> Json<User> {
    Json(caller.user)
}
