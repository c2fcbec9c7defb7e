//! Who is calling: the signed-in account behind an API bearer token or a portal session, and
//! what its roles allow (every check goes through [`tenant::roles`]).

use proto::{Role, Tenant, User};
use tenant::roles::{self, Operation};
use tenant::secrets;

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// How often a browser session's last use is written back (seconds).
const TOUCH_EVERY_SECS: i64 = 60;

/// The signed-in caller of a request.
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
    pub fn roles(&self) -> &[Role] {
        &self.user.roles
    }

    /// The caller holding `token` (an API bearer token or a portal session), if it is valid,
    /// unexpired and unrevoked and its account is enabled.
    pub async fn from_token(state: &AppState, token: &str) -> ApiResult<Caller> {
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
        let now = state.now();
        if record.expires_at <= now {
            return Err(AppError::unauthenticated(
                "The token has expired. Sign in again (dirbridge login).",
            ));
        }
        if record.idle_timeout > 0 && now - record.last_used_at >= record.idle_timeout {
            return Err(AppError::unauthenticated(format!(
                "The session ended after {} minutes without use. Sign in again.",
                record.idle_timeout / 60
            )));
        }
        // Kept to the minute: one write a minute per active session at most.
        if record.idle_timeout > 0 && now - record.last_used_at >= TOUCH_EVERY_SECS {
            state.store.touch_token(&record.id, now).await?;
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
