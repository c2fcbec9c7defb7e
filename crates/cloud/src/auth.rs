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
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    operation_id = "signIn",
    tag = "auth",
    summary = "Sign in with UPN and password; returns an expiring bearer token. A user synced from on-premises is checked by pass-through (an agent binds to the directory as the user): 401 for a wrong password or an on-prem refusal (disabled, locked out, password expired or must change, account expired, logon hours) with what to do next, 429 when the account's sign-in throttle is exhausted (nothing reaches the directory then), 503 when no agent could check the password",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "Signed in", body = proto::TokenResponse, headers(
            ("Set-Cookie" = String, description = "The known-device cookie `__Host-dirbridge-device` (Secure, HttpOnly, SameSite=Strict, 90 days): a browser sending it back signs in to this account without the per-address limit (never without the per-account one). Clients may ignore it"),
        )),
        (status = 401, description = "The user name or password is incorrect; or, for a user synced from on-premises, the directory refused the sign-in and the message says what to do next (disabled, locked out, password expired or must be changed: change it at /api/v1/sspr/change, account expired, logon hours)"),
        (status = 429, description = "Too many failed sign-ins for this account in the window (for a synced user nothing more is sent to the directory until the window ends), or too many failed sign-ins from the caller's network address (`[limits] sign_in_per_minute`; the Retry-After header says when to come back)"),
        (status = 503, description = "A synced user's password could not be checked: no agent is connected, the directory is unreachable, or no answer came before the writeback deadline. Try again; an administrator can check `dirbridge agents list`"),
    ),
)]
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<Response> {
    let token = app::sign_in::password(&state, &Ctx::of(&state), req).await?;
    let cookie = crate::limits::device::device_cookie(&state, &token.user_principal_name).await?;
    Ok(([(axum::http::header::SET_COOKIE, cookie)], Json(token)).into_response())
}

/// `DELETE /api/v1/auth/token` — sign out: revoke the calling token.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/token",
    operation_id = "signOut",
    tag = "auth",
    summary = "Revoke the calling token",
    responses((status = 204, description = "Success")),
)]
pub async fn sign_out(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    app::sign_in::sign_out(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/auth/tokens/{id}` — revoke one token: your own, or any as Global Administrator.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/tokens/{tokenId}",
    operation_id = "revokeToken",
    tag = "auth",
    summary = "Revoke a token (own, or any as Global Administrator)",
    responses((status = 204, description = "Success")),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::sign_in::revoke_token(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/me`
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "auth",
    summary = "The signed-in user",
    responses((status = 200, description = "Success", body = User)),
)]
pub async fn me(caller: Caller) -> Json<User> {
    Json(caller.user)
}
