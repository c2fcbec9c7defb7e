//! Finding the user or group a request names, for every use case that acts on one.

use proto::{Group, User};

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// The group `id` of the tenant, or `notFound`.
pub async fn group(state: &AppState, tenant_id: &str, id: &str) -> ApiResult<Group> {
    state
        .store
        .get_group(tenant_id, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("No group with id '{id}' in this tenant.")))
}

/// Finds a user by id or, when the key holds an `@`, by UPN.
pub async fn user(state: &AppState, tenant_id: &str, key: &str) -> ApiResult<User> {
    let found = if key.contains('@') {
        state.store.get_user_by_upn(tenant_id, key).await?
    } else {
        state.store.get_user(tenant_id, key).await?
    };
    found.ok_or_else(|| {
        AppError::not_found(format!("No user with id or UPN '{key}' in this tenant."))
    })
}

/// A page of the tenant's groups whose names start with `name_prefix`.
pub async fn groups(
    state: &AppState,
    caller: &super::caller::Caller,
    name_prefix: Option<&str>,
    page: &proto::PageRequest,
) -> ApiResult<proto::Page<Group>> {
    caller.authorize(tenant::roles::Operation::ReadDirectory)?;
    Ok(state
        .store
        .list_groups(&caller.tenant.id, name_prefix, page)
        .await?)
}
