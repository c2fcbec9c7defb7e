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
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::api::Operation;
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

/// This module's operations in the OpenAPI document (checked against the router by a test).
pub const OPERATIONS: &[Operation] = &[
    (
        "get",
        "/api/v1/users/{user}/authentication-methods",
        "getAuthenticationMethods",
        "Which reset methods a user registered (email and phones masked, questions without answers)",
        None,
        200,
    ),
    (
        "put",
        "/api/v1/users/{user}/authentication-methods",
        "putAuthenticationMethods",
        "Register a user's reset methods (an administrator who may reset the user's password)",
        Some("AuthenticationMethods"),
        200,
    ),
    (
        "get",
        "/api/v1/me/authentication-methods",
        "getMyAuthenticationMethods",
        "The signed-in user's registered reset methods",
        None,
        200,
    ),
    (
        "put",
        "/api/v1/me/authentication-methods",
        "putMyAuthenticationMethods",
        "Register the signed-in user's own reset methods",
        Some("AuthenticationMethods"),
        200,
    ),
    (
        "post",
        "/api/v1/me/authentication-methods/authenticator-app",
        "beginMyAuthenticatorApp",
        "Begin registering an authenticator app (after a fresh verification): the secret and otpauth URI, shown once",
        Some("AuthenticatorBegin"),
        200,
    ),
    (
        "post",
        "/api/v1/me/authentication-methods/authenticator-app/confirm",
        "confirmMyAuthenticatorApp",
        "Confirm the authenticator app with its first code",
        Some("AuthenticatorConfirm"),
        200,
    ),
    (
        "post",
        "/api/v1/users/{user}/sspr-lockout/clear",
        "clearSsprLockout",
        "Clear a user's password-reset lockout (an administrator who may reset the user's password; audited, the user is mailed)",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/sspr/start",
        "ssprStart",
        "Start a reset session (anonymous; same answer whether or not the account exists)",
        Some("SsprStart"),
        200,
    ),
    (
        "get",
        "/api/v1/sspr/session",
        "ssprSession",
        "A reset session (its secret in the X-Dirbridge-Sspr-Session header, never in the URL): methods, questions to answer, progress",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/sspr/{method}/send",
        "ssprSendCode",
        "Send a one-time code for the session in X-Dirbridge-Sspr-Session: method email, mobilePhone (text message) or officePhone (voice call); 10 emails and, apart, 10 phone codes per 10 minutes; 503 for a minute after the SMS/voice gateway failed, for every account alike (nothing counted)",
        None,
        202,
    ),
    (
        "post",
        "/api/v1/sspr/verify",
        "ssprVerify",
        "Verify one method of the session in X-Dirbridge-Sspr-Session: an emailed code or the security questions",
        Some("SsprVerify"),
        200,
    ),
    (
        "post",
        "/api/v1/sspr/password",
        "ssprSetPassword",
        "Reset (or unlock) the session in X-Dirbridge-Sspr-Session once enough methods are verified; returns the writeback result",
        Some("SsprPassword"),
        200,
    ),
    (
        "get",
        "/api/v1/sspr/result",
        "ssprResult",
        "The last writeback result of the session in X-Dirbridge-Sspr-Session",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/sspr/change",
        "ssprChange",
        "Self-service change with the current password (anonymous, throttled per account)",
        Some("SsprChange"),
        200,
    ),
];

/// This module's request schemas in the OpenAPI document.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let object = |props: Value| json!({"type": "object", "properties": props});
    let pw = json!({"type": "string", "format": "password"});
    let verification = object(json!({
        "method": {"enum": ["password", "securityQuestions", "authenticatorApp"]},
        "password": pw,
        "code": pw,
        "answers": {"type": "array", "items": object(json!({"question": {"type": "string"}, "answer": pw}))},
    }));
    vec![
        (
            "AuthenticationMethods",
            object(json!({
                "email": {"type": ["string", "null"]},
                "mobilePhone": {"type": ["string", "null"]},
                "officePhone": {"type": ["string", "null"]},
                "securityQuestions": {"type": ["array", "null"], "items": object(json!({"question": {"type": "string"}, "answer": pw}))},
                "authenticatorApp": {"type": "null"},
                "verification": verification.clone(),
            })),
        ),
        (
            "AuthenticatorBegin",
            object(json!({"verification": verification})),
        ),
        ("AuthenticatorConfirm", object(json!({"code": pw}))),
        (
            "SsprStart",
            object(json!({"userPrincipalName": {"type": "string"}})),
        ),
        (
            "SsprVerify",
            object(json!({
                "method": {"enum": ["email", "mobilePhone", "officePhone", "securityQuestions", "authenticatorApp"]},
                "code": {"type": "string"},
                "answers": {"type": "array", "items": object(json!({"question": {"type": "string"}, "answer": pw}))},
            })),
        ),
        (
            "SsprPassword",
            object(json!({"newPassword": pw, "unlockOnly": {"type": "boolean"}})),
        ),
        (
            "SsprChange",
            object(
                json!({"userPrincipalName": {"type": "string"}, "currentPassword": pw, "newPassword": pw}),
            ),
        ),
    ]
}

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

pub async fn get_methods(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<MethodsView>> {
    Ok(Json(app::sspr::methods_of(&state, &caller, &key).await?))
}

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

pub async fn get_my_methods(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MethodsView>> {
    Ok(Json(app::sspr::my_methods(&state, &caller).await?))
}

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

pub async fn start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Json<StartAnswer>> {
    Ok(Json(
        app::sspr::start(&state, &Ctx::of(&state), body).await?,
    ))
}

pub async fn session_status(
    State(state): State<AppState>,
    SessionSecret(secret): SessionSecret,
) -> ApiResult<Json<ProgressView>> {
    Ok(Json(
        app::sspr::session_status(&state, &Ctx::of(&state), &secret).await?,
    ))
}

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

pub async fn verify(
    State(state): State<AppState>,
    SessionSecret(secret): SessionSecret,
    ApiJson(body): ApiJson<VerifyBody>,
) -> ApiResult<Json<ProgressView>> {
    Ok(Json(
        app::sspr::verify(&state, &Ctx::of(&state), &secret, body).await?,
    ))
}

pub async fn set_password(
    State(state): State<AppState>,
    SessionSecret(secret): SessionSecret,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Json<ResultView>, SsprError> {
    Ok(Json(
        app::sspr::set_password(&state, &Ctx::of(&state), &secret, body).await?,
    ))
}

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
