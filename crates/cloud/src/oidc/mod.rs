//! Every tenant as an OpenID Connect provider, at `/t/{tenant domain}` (docs/oidc.md).
//!
//! This module moves bytes: the rules (valid registrations, the authorization request, PKCE,
//! claims, keys and JWTs) are `tenant::oidc`'s, the rows are the store's. Sign-in goes through
//! [`crate::app::sign_in::password`] (pass-through to an agent for synced users) and leaves a
//! portal session, so a browser signed in to one app is signed in for the next.
//!
//! * [`apps`]: `/api/v1/apps`, the admin API of app registrations;
//! * [`provider`]: discovery, JWKS, authorize (with the sign-in and consent pages), token,
//!   userinfo, introspection, revocation and RP-initiated logout;
//! * [`keys`]: the tenant's signing keys, made on first use, sealed at rest under the
//!   key-encryption key (`[oidc] key_file`), rotated with the old key kept published.

pub mod apps;
pub mod keys;
pub mod provider;

use axum::http::HeaderMap;
use proto::Tenant;

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// The public routes of every tenant's provider (merged at `/`).
pub fn routes() -> axum::Router<AppState> {
    provider::routes()
}

/// The issuer of the tenant reached at `domain`: `{public_url}/t/{domain}`, the public URL
/// being `[oidc] public_url` or, unset, the request's `Host`.
pub fn issuer(state: &AppState, headers: &HeaderMap, domain: &str) -> String {
    format!("{}/t/{}", public_url(state, headers), domain.to_lowercase())
}

fn public_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.oidc.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or("localhost");
    let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = bare == "localhost" || bare.starts_with("127.") || bare == "[::1]";
    format!("{}://{host}", if loopback { "http" } else { "https" })
}

/// The tenant that owns `domain`, or a 404 that names no tenant.
pub(crate) async fn tenant_at(state: &AppState, domain: &str) -> ApiResult<Tenant> {
    state
        .store
        .get_tenant_by_domain(&domain.to_lowercase())
        .await?
        .ok_or_else(|| {
            AppError::not_found(
                "No organisation uses this domain. Check the issuer URL the app was configured with (https://HOST/t/DOMAIN).",
            )
        })
}

/// The user's app tokens are revoked after a password change or reset that happened outside
/// `Store::revoke_user_tokens` (a writeback to the on-premises directory). A failure is
/// logged: the password change itself stands.
pub async fn password_changed(state: &AppState, tenant_id: &str, user_id: &str) {
    if let Err(e) = state.store.revoke_user_app_tokens(tenant_id, user_id).await {
        tracing::error!(tracking_id = %crate::error::tracking_id(), error = %e, "could not revoke the app tokens of a user whose password changed");
    }
}
