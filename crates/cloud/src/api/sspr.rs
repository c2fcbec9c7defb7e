//! `/api/v1/sspr/…` and `…/authentication-methods`: the HTTP side of self-service password
//! reset (docs/api.md, "Self-service password reset"). Each handler parses the request, calls
//! [`app::sspr`], where every decision is, and renders the answer.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use proto::{AuthMethod, ErrorCode};
use serde_json::json;
use zeroize::Zeroizing;

use crate::app::caller::Caller;
use crate::app::sspr::{
    AuthenticatorBegin, AuthenticatorConfirm, AuthenticatorSetup, ChangeBody, CodeSent,
    LockoutCleared, MethodsView, PasswordBody, ProgressView, RegistrationBody, ResultView,
    SsprError, StartAnswer, StartBody, VerifyBody,
};
use crate::app::{self, Ctx};
use crate::error::{tracking_id, ApiResult, AppError};
use crate::extract::ApiJson;
use crate::state::AppState;

/// This module's routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/users/{user}/authentication-methods",
            get(get_methods).put(put_methods),
        )
        .route("/users/{user}/sspr-lockout/clear", post(clear_lockout))
        .route(
            "/me/authentication-methods/authenticator-app",
            post(begin_authenticator),
        )
        .route(
            "/me/authentication-methods/authenticator-app/confirm",
            post(confirm_authenticator),
        )
        .route(
            "/me/authentication-methods",
            get(get_my_methods).put(put_my_methods),
        )
        .route("/sspr/start", post(start))
        .route("/sspr/change", post(change))
        .route("/sspr/session", get(session_status))
        .route("/sspr/{method}/send", post(send_code))
        .route("/sspr/verify", post(verify))
        .route("/sspr/password", post(set_password))
        .route("/sspr/result", get(result))
}

/// The request header that carries a reset session's secret (the `sessionId` of `start`): a
/// header, never the path, so the secret is in no URL — no proxy's access log, no browser
/// history, no `Referer` (issue 13, "Security of the pages"). Marked sensitive for every
/// request (the hygiene layer of `lib.rs`), as `Authorization` is.
pub const SESSION_HEADER: &str = "x-dirbridge-sspr-session";

/// The reset session's secret, from [`SESSION_HEADER`]. Missing: 401.
pub struct SessionSecret(Zeroizing<String>);

impl<S: Send + Sync> FromRequestParts<S> for SessionSecret {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| SessionSecret(Zeroizing::new(v.trim().to_string())))
            .ok_or_else(|| {
                AppError::unauthenticated(
                    "X-Dirbridge-Sspr-Session: send the sessionId that POST /api/v1/sspr/start returned in this request header (it is never part of the URL).",
                )
            })
    }
}

/// A refusal of one of the user-facing classes leaves as 403 with `error.class`.
impl IntoResponse for SsprError {
    fn into_response(self) -> Response {
        match self {
            SsprError::App(e) => e.into_response(),
            SsprError::Refused(class) => (
                StatusCode::FORBIDDEN,
                Json(json!({"error": {
                    "code": ErrorCode::Forbidden,
                    "message": class.message(),
                    "trackingId": tracking_id(),
                    "class": class,
                }})),
            )
                .into_response(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/authentication-methods",
    operation_id = "getAuthenticationMethods",
    tag = "sspr",
    summary = "Which reset methods a user registered (email and phones masked, questions without answers)",
    responses((status = 200, description = "Success", body = MethodsView)),
)]
pub async fn get_methods(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<MethodsView>> {
    Ok(Json(app::sspr::methods_of(&state, &caller, &key).await?))
}

#[utoipa::path(
    put,
    path = "/api/v1/users/{user}/authentication-methods",
    operation_id = "putAuthenticationMethods",
    tag = "sspr",
    summary = "Register a user's reset methods (an administrator who may reset the user's password)",
    request_body = RegistrationBody,
    responses((status = 200, description = "Success", body = MethodsView)),
)]
pub async fn put_methods(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<RegistrationBody>,
) -> ApiResult<Json<MethodsView>> {
    let ctx = Ctx::of(&state);
    Ok(Json(
        app::sspr::register_for(&state, &ctx, &caller, &key, body).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/sspr-lockout/clear",
    operation_id = "clearSsprLockout",
    tag = "sspr",
    summary = "Clear a user's password-reset lockout (an administrator who may reset the user's password; audited, the user is mailed)",
    responses((status = 200, description = "Success", body = LockoutCleared)),
)]
pub async fn clear_lockout(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<LockoutCleared>> {
    let ctx = Ctx::of(&state);
    Ok(Json(
        app::sspr::clear_lockout(&state, &ctx, &caller, &key).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/me/authentication-methods/authenticator-app",
    operation_id = "beginMyAuthenticatorApp",
    tag = "sspr",
    summary = "Begin registering an authenticator app (after a fresh verification): the secret and otpauth URI, shown once",
    request_body = AuthenticatorBegin,
    responses((status = 200, description = "Success", body = AuthenticatorSetup)),
)]
pub async fn begin_authenticator(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AuthenticatorBegin>,
) -> ApiResult<Json<AuthenticatorSetup>> {
    let ctx = Ctx::of(&state);
    Ok(Json(
        app::sspr::begin_authenticator(&state, &ctx, &caller, body).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/me/authentication-methods/authenticator-app/confirm",
    operation_id = "confirmMyAuthenticatorApp",
    tag = "sspr",
    summary = "Confirm the authenticator app with its first code",
    request_body = AuthenticatorConfirm,
    responses((status = 200, description = "Success", body = MethodsView)),
)]
pub async fn confirm_authenticator(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AuthenticatorConfirm>,
) -> ApiResult<Json<MethodsView>> {
    let ctx = Ctx::of(&state);
    Ok(Json(
        app::sspr::confirm_authenticator(&state, &ctx, &caller, body).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/me/authentication-methods",
    operation_id = "getMyAuthenticationMethods",
    tag = "sspr",
    summary = "The signed-in user's registered reset methods",
    responses((status = 200, description = "Success", body = MethodsView)),
)]
pub async fn get_my_methods(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MethodsView>> {
    Ok(Json(app::sspr::my_methods(&state, &caller).await?))
}

#[utoipa::path(
    put,
    path = "/api/v1/me/authentication-methods",
    operation_id = "putMyAuthenticationMethods",
    tag = "sspr",
    summary = "Register the signed-in user's own reset methods",
    request_body = RegistrationBody,
    responses((status = 200, description = "Success", body = MethodsView)),
)]
pub async fn put_my_methods(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegistrationBody>,
) -> ApiResult<Json<MethodsView>> {
    let ctx = Ctx::of(&state);
    Ok(Json(
        app::sspr::register_mine(&state, &ctx, &caller, body).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/sspr/start",
    operation_id = "ssprStart",
    tag = "sspr",
    summary = "Start a reset session (anonymous; same answer whether or not the account exists)",
    request_body = StartBody,
    responses(
        (status = 200, description = "A session (also for an account that does not exist or cannot reset)", body = StartAnswer),
        (status = 429, description = "Too many reset requests from the caller's network address (`[limits] sspr_start_per_minute`; the Retry-After header says when to come back)"),
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Json<StartAnswer>> {
    Ok(Json(
        app::sspr::start(&state, &Ctx::of(&state), body).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/sspr/session",
    operation_id = "ssprSession",
    tag = "sspr",
    summary = "A reset session: methods, questions to answer, progress",
    responses((status = 200, description = "Success", body = ProgressView)),
)]
pub async fn session_status(
    State(state): State<AppState>,
    SessionSecret(secret): SessionSecret,
) -> ApiResult<Json<ProgressView>> {
    Ok(Json(
        app::sspr::session_status(&state, &Ctx::of(&state), &secret).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/sspr/{method}/send",
    operation_id = "ssprSendCode",
    tag = "sspr",
    summary = "Send a one-time code: `email` to the registered address (10 per 10 minutes), `mobilePhone` by text message, `officePhone` by voice call (through the [sms] gateways; 10 per 10 minutes together)",
    params(("method" = String, Path, description = "email, mobilePhone or officePhone", pattern = "^(email|mobilePhone|officePhone)$")),
    responses(
        (status = 202, description = "Accepted: the code leaves in the background (the same answer whether or not the account has that method)", body = CodeSent),
        (status = 503, description = "That channel's gateway failed in the last minute: nothing was counted; try again later or another method"),
    ),
)]
pub async fn send_code(
    State(state): State<AppState>,
    SessionSecret(secret): SessionSecret,
    Path(method): Path<String>,
) -> ApiResult<(StatusCode, Json<CodeSent>)> {
    let method = match method.as_str() {
        "email" => AuthMethod::Email,
        "mobilePhone" => AuthMethod::MobilePhone,
        "officePhone" => AuthMethod::OfficePhone,
        _ => {
            return Err(AppError::not_found(
                "No such code method: use email, mobilePhone or officePhone.",
            ))
        }
    };
    let sent = app::sspr::send_code(&state, &Ctx::of(&state), &secret, method).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

#[utoipa::path(
    post,
    path = "/api/v1/sspr/verify",
    operation_id = "ssprVerify",
    tag = "sspr",
    summary = "Verify one method: a code sent by email, text or voice, an authenticator app code, or the security questions",
    request_body = VerifyBody,
    responses((status = 200, description = "Success", body = ProgressView)),
)]
pub async fn verify(
    State(state): State<AppState>,
    SessionSecret(secret): SessionSecret,
    ApiJson(body): ApiJson<VerifyBody>,
) -> ApiResult<Json<ProgressView>> {
    Ok(Json(
        app::sspr::verify(&state, &Ctx::of(&state), &secret, body).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/sspr/password",
    operation_id = "ssprSetPassword",
    tag = "sspr",
    summary = "Reset (or unlock) once enough methods are verified; returns the writeback result",
    request_body = PasswordBody,
    responses(
        (status = 200, description = "The writeback result (or the cloud reset's)", body = ResultView),
        (status = 403, description = "Refused for one of the user-facing classes; the error document carries `error.class`"),
    ),
)]
pub async fn set_password(
    State(state): State<AppState>,
    SessionSecret(secret): SessionSecret,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Json<ResultView>, SsprError> {
    Ok(Json(
        app::sspr::set_password(&state, &Ctx::of(&state), &secret, body).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/sspr/result",
    operation_id = "ssprResult",
    tag = "sspr",
    summary = "The last writeback result of the session",
    responses((status = 200, description = "Success", body = ResultView)),
)]
pub async fn result(
    State(state): State<AppState>,
    SessionSecret(secret): SessionSecret,
) -> ApiResult<Json<ResultView>> {
    Ok(Json(
        app::sspr::result(&state, &Ctx::of(&state), &secret).await?,
    ))
}

/// `POST /api/v1/sspr/change`: a refused current password is marked
/// [`crate::limits::RefusedPassword`] for the per-address limit, as the status is 200.
#[utoipa::path(
    post,
    path = "/api/v1/sspr/change",
    operation_id = "ssprChange",
    tag = "sspr",
    summary = "Self-service change with the current password (anonymous, throttled per account)",
    request_body = ChangeBody,
    responses(
        (status = 200, description = "The writeback result of the change", body = ResultView),
        (status = 403, description = "Refused for one of the user-facing classes; the error document carries `error.class`"),
        (status = 429, description = "Locked out: too many failed sign-ins (this check shares the per-account count of /api/v1/auth/token) or wrong current passwords for this account, or too many failed password checks from the caller's network address (`[limits] sign_in_per_minute`, shared with sign-in; the Retry-After header says when to come back)"),
    ),
)]
pub async fn change(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChangeBody>,
) -> Result<Response, SsprError> {
    let changed = app::sspr::change(&state, &Ctx::of(&state), body).await?;
    let mut resp = Json(changed.view).into_response();
    if changed.refused_password {
        resp.extensions_mut().insert(crate::limits::RefusedPassword);
    }
    Ok(resp)
}
