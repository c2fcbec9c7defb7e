//! Reading the audit log (writing it is [`crate::audit`]'s).

use proto::{AuditFilter, AuditRecord, Page, PageRequest};
use tenant::roles::Operation;

use super::caller::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

/// A page of the tenant's audit records matching `filter`, newest first.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    filter: &AuditFilter,
    page: &PageRequest,
) -> ApiResult<Page<AuditRecord>> {
    caller.authorize(Operation::ReadAudit)?;
    Ok(state
        .store
        .list_audit(&caller.tenant.id, filter, page)
        .await?)
}
