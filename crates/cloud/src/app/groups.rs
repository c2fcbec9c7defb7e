//! Groups: finding one by id for the use cases that act on it (licences, membership).

use proto::Group;

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// The group `id` of the tenant, or `notFound`.
pub async fn resolve(state: &AppState, tenant_id: &str, id: &str) -> ApiResult<Group> {
    state
        .store
        .get_group(tenant_id, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("No group with id '{id}' in this tenant.")))
}
