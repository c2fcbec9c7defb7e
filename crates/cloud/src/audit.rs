//! Writing the audit log: every admin change and sign-in, with the request's tracking id.

use proto::{AuditRecord, AuditResult};

use crate::app::caller::Caller;
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
        actor: clean(actor),
        action: action.to_string(),
        target: target.as_deref().map(clean),
        result,
        tracking_id: tracking_id(),
        details: details.as_deref().map(clean),
    };
    if let Err(e) = state.store.insert_audit(&rec).await {
        tracing::error!(tracking_id = %rec.tracking_id, action, error = %e, "could not write the audit record");
    }
}

/// What a caller sent can hold anything: control characters become `?` and the text is cut to
/// 256 characters, so writing the record can never fail because of its input.
fn clean(s: &str) -> String {
    s.chars()
        .take(256)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
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

#[cfg(test)]
mod tests {
    #[test]
    fn audit_text_is_cleaned_and_bounded() {
        assert_eq!(super::clean("a\0b\nc"), "a?b?c");
        assert_eq!(super::clean(&"x".repeat(1000)).len(), 256);
    }
}
