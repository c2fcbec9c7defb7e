//! Who is calling: bearer tokens (random, stored only as a SHA-256 hash, expiring, revocable),
//! sign-in with Argon2id-verified passwords, and a per-account throttle on failed sign-ins.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use proto::{AuditResult, Role, Tenant, TokenRequest, TokenResponse, User};
use store::TokenRecord;
use tenant::roles::{self, Operation};
use tenant::secrets;

use crate::audit::record;
use crate::error::{ApiResult, AppError};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Failed sign-ins allowed per account in one window before further attempts are refused.
pub const MAX_FAILED_SIGN_INS: u32 = 10;
pub const FAILED_SIGN_IN_WINDOW_SECS: i64 = 15 * 60;

/// The signed-in caller of an API request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Tenant,
    pub user: User,
    pub token_id: String,
}

impl Caller {
    pub fn authorize(&self, op: Operation) -> ApiResult<()> {
        roles::authorize(&self.user.roles, op).map_err(AppError::from)
    }
    pub fn authorize_on(&self, target: &User, op: Operation) -> ApiResult<()> {
        roles::authorize_on_target(&self.user.roles, &target.roles, op).map_err(AppError::from)
    }
    pub fn upn(&self) -> &str {
        &self.user.user_principal_name
    }
}

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
        let record = state
            .store
            .token_by_hash(&secrets::token_hash(token))
            .await?
            .ok_or_else(|| {
                AppError::unauthenticated(
                    "The token is not valid. Sign in again (dirbridge login).",
                )
            })?;
        if record.revoked {
            return Err(AppError::unauthenticated(
                "The token was revoked. Sign in again (dirbridge login).",
            ));
        }
        if record.expires_at <= state.now() {
            return Err(AppError::unauthenticated(
                "The token has expired. Sign in again (dirbridge login).",
            ));
        }
        let user = state
            .store
            .get_user(&record.tenant_id, &record.user_id)
            .await?
            .ok_or_else(|| {
                AppError::unauthenticated("The account behind this token no longer exists.")
            })?;
        if !user.account_enabled {
            return Err(AppError::unauthenticated(
                "The account is disabled; ask an administrator to enable it.",
            ));
        }
        let tenant = state
            .store
            .get_tenant(&record.tenant_id)
            .await?
            .ok_or_else(|| {
                AppError::unauthenticated("The tenant of this token no longer exists.")
            })?;
        Ok(Caller {
            tenant,
            user,
            token_id: record.id,
        })
    }
}

/// Verifies off the async runtime, at most `password_checks` at once (429 when the queue stays
/// full). With no stored hash it still spends the time of one check, so a wrong UPN and a wrong
/// password cannot be told apart by timing.
async fn verify(state: &AppState, password: String, phc: Option<String>) -> ApiResult<bool> {
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        state.password_checks.clone().acquire_owned(),
    )
    .await
    .map_err(|_| busy())?
    .map_err(|_| busy())?;
    let ok = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        secrets::verify_password_or_dummy(&password, phc.as_deref())
    })
    .await
    .unwrap_or(false);
    Ok(ok)
}

fn busy() -> AppError {
    AppError::new(
        proto::ErrorCode::TooManyRequests,
        "The service is busy checking other sign-ins. Try again in a few seconds.",
    )
}

/// `POST /api/v1/auth/token`
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let upn = req.user_principal_name.trim().to_string();
    let key = upn.to_lowercase();
    let now = state.now();
    let wrong = || AppError::unauthenticated("The user name or password is incorrect.");

    // No account can have a UPN of another shape: answer at once and keep no state for it.
    if upn.is_empty()
        || upn.chars().count() > 113
        || upn.chars().any(char::is_control)
        || !upn.contains('@')
    {
        return Err(wrong());
    }
    // The attempt is counted before the password is checked, so parallel guesses share the limit.
    if let Some(until) = reserve_attempt(&state, &key, now) {
        return Err(AppError::new(
            proto::ErrorCode::TooManyRequests,
            format!(
                "Too many failed sign-ins for this account. Try again after {} (UTC), or ask an administrator to reset the password.",
                tenant::clock::rfc3339(until)
            ),
        ));
    }

    let tenant = find_tenant_for_upn(&state, &key).await?;
    let user = match &tenant {
        Some(t) => state.store.get_user_by_upn(&t.id, &upn).await?,
        None => None,
    };
    let hash = match &user {
        Some(u) => state.store.password_hash(&u.tenant_id, &u.id).await?,
        None => None,
    };
    let has_hash = hash.is_some();
    let ok = verify(&state, req.password, hash).await? && has_hash;

    let (Some(tenant), Some(user)) = (tenant, user) else {
        return Err(wrong());
    };
    if !ok || !user.account_enabled {
        let why = if ok {
            "account disabled"
        } else {
            "wrong password"
        };
        record(
            &state,
            &tenant.id,
            &user.user_principal_name,
            "signIn",
            Some(user.user_principal_name.clone()),
            AuditResult::Failure,
            Some(why.into()),
        )
        .await;
        return Err(if ok {
            AppError::unauthenticated("The account is disabled; ask an administrator to enable it.")
        } else {
            wrong()
        });
    }
    clear_failures(&state, &key);

    let (token, hash) = secrets::new_token();
    let rec = TokenRecord {
        id: secrets::new_id(),
        tenant_id: tenant.id.clone(),
        user_id: user.id.clone(),
        hash,
        created_at: now,
        expires_at: now + state.config.token_lifetime_secs,
        revoked: false,
    };
    state.store.insert_token(&rec).await?;
    record(
        &state,
        &tenant.id,
        &user.user_principal_name,
        "signIn",
        Some(user.user_principal_name.clone()),
        AuditResult::Success,
        None,
    )
    .await;
    Ok(Json(TokenResponse {
        access_token: token,
        token_id: rec.id,
        expires_at: rec.expires_at,
        user_principal_name: user.user_principal_name,
        tenant_id: tenant.id,
        roles: user.roles,
    }))
}

async fn find_tenant_for_upn(state: &AppState, upn_lower: &str) -> ApiResult<Option<Tenant>> {
    let Some((_, domain)) = upn_lower.rsplit_once('@') else {
        return Ok(None);
    };
    Ok(state
        .store
        .list_tenants()
        .await?
        .into_iter()
        .find(|t| t.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))))
}

/// Most distinct accounts tracked at once; past it, expired windows are dropped first.
const MAX_TRACKED_ACCOUNTS: usize = 10_000;

/// Counts one attempt for `key`; returns when the window ends if the account is over the limit.
fn reserve_attempt(state: &AppState, key: &str, now: i64) -> Option<i64> {
    let mut map = state
        .sign_in_failures
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_TRACKED_ACCOUNTS && !map.contains_key(key) {
        map.retain(|_, (_, start)| now < *start + FAILED_SIGN_IN_WINDOW_SECS);
        if map.len() >= MAX_TRACKED_ACCOUNTS {
            return Some(now + FAILED_SIGN_IN_WINDOW_SECS);
        }
    }
    let e = map.entry(key.to_string()).or_insert((0, now));
    if now >= e.1 + FAILED_SIGN_IN_WINDOW_SECS {
        *e = (0, now);
    }
    if e.0 >= MAX_FAILED_SIGN_INS {
        return Some(e.1 + FAILED_SIGN_IN_WINDOW_SECS);
    }
    e.0 += 1;
    None
}

fn clear_failures(state: &AppState, key: &str) {
    state
        .sign_in_failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(key);
}

/// `DELETE /api/v1/auth/token` — sign out: revoke the calling token.
pub async fn sign_out(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    state
        .store
        .revoke_token(&caller.tenant.id, &caller.token_id)
        .await?;
    record(
        &state,
        &caller.tenant.id,
        caller.upn(),
        "signOut",
        None,
        AuditResult::Success,
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/auth/tokens/{id}` — revoke one token: your own, or any as Global Administrator.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let is_global = caller.user.roles.contains(&Role::GlobalAdministrator);
    if id != caller.token_id && !is_global {
        return Err(AppError::forbidden(
            "Only a Global Administrator can revoke another token. To sign out, revoke your own (dirbridge logout).",
        ));
    }
    let done = state.store.revoke_token(&caller.tenant.id, &id).await?;
    record(
        &state,
        &caller.tenant.id,
        caller.upn(),
        "token.revoke",
        Some(id.clone()),
        if done {
            AuditResult::Success
        } else {
            AuditResult::Failure
        },
        None,
    )
    .await;
    if done {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::not_found(format!(
            "No token with id {id} in this tenant."
        )))
    }
}

/// `GET /api/v1/me`
pub async fn me(caller: Caller) -> Json<User> {
    Json(caller.user)
}
