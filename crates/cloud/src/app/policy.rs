//! The self-service password reset policy: read it (with the fixed administrator policy and
//! whether writeback can work), change it (every rule is [`tenant::policy::validate`]'s), and
//! the predefined questions bank.

use proto::{PolicyView, SsprPolicy};
use tenant::policy;
use tenant::roles::Operation;

use super::caller::Caller;
use crate::audit::audited;
use crate::error::ApiResult;
use crate::state::AppState;

async fn view(state: &AppState, tenant_id: &str) -> ApiResult<PolicyView> {
    let policy = state
        .store
        .get_policy(tenant_id)
        .await?
        .unwrap_or_else(policy::default_policy);
    // The premium SKU, the policy switch and an agent with writeback enabled.
    let writeback_available = crate::writeback::availability(state, tenant_id)
        .await?
        .available();
    Ok(PolicyView {
        policy,
        admin_policy: policy::admin_policy(),
        writeback_available,
    })
}

/// The tenant's policy.
pub async fn get(state: &AppState, caller: &Caller) -> ApiResult<PolicyView> {
    caller.authorize(Operation::ReadPolicy)?;
    view(state, &caller.tenant.id).await
}

/// Replaces the tenant's policy (Global Administrator). Audited.
pub async fn put(state: &AppState, caller: &Caller, p: &SsprPolicy) -> ApiResult<PolicyView> {
    let result = async {
        caller.authorize(Operation::ManagePolicy)?;
        let group_found = match &p.group_id {
            Some(g) => state.store.get_group(&caller.tenant.id, g).await?.is_some(),
            None => false,
        };
        policy::validate(p, |_| group_found)?;
        state.store.put_policy(&caller.tenant.id, p).await?;
        view(state, &caller.tenant.id).await
    }
    .await;
    audited(state, caller, "policy.update", None, result).await
}

/// The predefined security questions an administrator can pick from.
pub fn questions(caller: &Caller) -> ApiResult<Vec<String>> {
    caller.authorize(Operation::ReadPolicy)?;
    Ok(policy::predefined_questions()
        .iter()
        .map(|q| q.to_string())
        .collect())
}
