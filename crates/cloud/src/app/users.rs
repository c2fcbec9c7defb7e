//! Users: create, change, delete, reset passwords and sign-in sessions, for administrators.

use proto::User;

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// Finds a user by id or, when the key holds an `@`, by UPN.
pub async fn resolve(state: &AppState, tenant_id: &str, key: &str) -> ApiResult<User> {
    let found = if key.contains('@') {
        state.store.get_user_by_upn(tenant_id, key).await?
    } else {
        state.store.get_user(tenant_id, key).await?
    };
    found.ok_or_else(|| {
        AppError::not_found(format!("No user with id or UPN '{key}' in this tenant."))
    })
}
