//! Known-device cookies: a browser that signed in to an account gets one, and its later
//! password checks for that account pass the per-address limit (see [`crate::limits`]).

use axum::http::{header, HeaderMap, HeaderValue};

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// The known-device cookie's name. `__Host-`: the browser only keeps it when it is `Secure`,
/// for the whole host (`Path=/`) and set by this host itself (no `Domain`).
pub const DEVICE_COOKIE: &str = "__Host-dirbridge-device";

/// The key known-device cookies are signed with: created once, kept in the database (every
/// instance signs and checks with the same one), read once per process.
pub(crate) async fn device_key(state: &AppState) -> ApiResult<&String> {
    state
        .device_key
        .get_or_try_init(|| async {
            let (candidate, _) = tenant::sspr::new_session_secret();
            state.store.sspr_key("device", &candidate).await
        })
        .await
        .map_err(AppError::from)
}

/// The `Set-Cookie` value that makes the caller's browser a known device for `upn` (sent with
/// a successful sign-in; clients without cookies, such as the CLI, ignore it).
pub async fn device_cookie(state: &AppState, upn: &str) -> ApiResult<HeaderValue> {
    let key = device_key(state).await?;
    let max_age = tenant::secrets::DEVICE_SECS;
    let token = tenant::secrets::device_token(key.as_bytes(), upn, state.now() + max_age);
    HeaderValue::from_str(&format!(
        "{DEVICE_COOKIE}={token}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .map_err(|_| AppError::internal())
}

/// The known-device cookie the request carries, if any.
pub(crate) fn device_cookie_sent(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == DEVICE_COOKIE)
        .map(|(_, value)| value.to_string())
}
