//! Writing the audit log: every admin change and sign-in, with the request's tracking id.

use proto::{AuditRecord, AuditResult};

use crate::auth::Caller;
use crate::error::{tracking_id, ApiResult};
use crate::state::AppState;

/// Appends one audit record. A failure to write is logged, never hidden from operators, but does
/// not undo the change it describes.
pub async fn record(
    state: &AppState,
    tenant_id: &str,
    actor: &str,
    action: &str,
    target: Option<String>,
    result: AuditResult,
    details: Option<String>,
) {
    let rec = AuditRecord {
        id: tenant::secrets::ordered_id(),
        tenant_id: tenant_id.to_string(),
        time: state.now(),
        actor: actor.to_string(),
        action: action.to_string(),
        target,
        result,
        tracking_id: tracking_id(),
        details,
    };
    if let Err(e) = state.store.insert_audit(&rec).await {
        tracing::error!(tracking_id = %rec.tracking_id, action, error = %e, "could not write the audit record");
    }
}

/// Records the outcome of an admin operation (success, or failure with the error's message) and
/// passes the result through.
pub async fn audited<T>(
    state: &AppState,
    caller: &Caller,
    action: &str,
    target: Option<String>,
    result: ApiResult<T>,
) -> ApiResult<T> {
    let (res, details) = match &result {
        Ok(_) => (AuditResult::Success, None),
        Err(e) => (AuditResult::Failure, Some(e.message.clone())),
    };
    record(
        state,
        &caller.tenant.id,
        caller.upn(),
        action,
        target,
        res,
        details,
    )
    .await;
    result
}
