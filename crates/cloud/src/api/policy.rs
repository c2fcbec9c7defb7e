//! `/api/v1/policy`: the self-service password reset policy.

use axum::extract::State;
use axum::Json;
use proto::{PolicyView, SsprPolicy};
use tenant::policy;
use tenant::roles::Operation;

use crate::app::caller::Caller;
use crate::audit::audited;
use crate::error::ApiResult;
use crate::extract::ApiJson;
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

pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<PolicyView>> {
    caller.authorize(Operation::ReadPolicy)?;
    Ok(Json(view(&state, &caller.tenant.id).await?))
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<SsprPolicy>,
) -> ApiResult<Json<PolicyView>> {
    let result = async {
        caller.authorize(Operation::ManagePolicy)?;
        let group_found = match &p.group_id {
            Some(g) => state.store.get_group(&caller.tenant.id, g).await?.is_some(),
            None => false,
        };
        policy::validate(&p, |_| group_found)?;
        state.store.put_policy(&caller.tenant.id, &p).await?;
        view(&state, &caller.tenant.id).await
    }
    .await;
    Ok(Json(
        audited(&state, &caller, "policy.update", None, result).await?,
    ))
}

pub async fn questions(caller: Caller) -> ApiResult<Json<Vec<String>>> {
    caller.authorize(Operation::ReadPolicy)?;
    Ok(Json(
        policy::predefined_questions()
            .iter()
            .map(|q| q.to_string())
            .collect(),
    ))
}
