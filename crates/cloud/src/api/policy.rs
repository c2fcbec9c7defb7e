//! `/api/v1/policy`: the self-service password reset policy, the HTTP side of [`app::policy`].

use axum::extract::State;
use axum::Json;
use proto::{PolicyView, SsprPolicy};

use crate::app::{self, caller::Caller};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/api/v1/policy",
    operation_id = "getPolicy",
    tag = "policy",
    summary = "The password reset policy",
    responses((status = 200, description = "Success", body = PolicyView)),
)]
pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<PolicyView>> {
    Ok(Json(app::policy::get(&state, &caller).await?))
}

#[utoipa::path(
    put,
    path = "/api/v1/policy",
    operation_id = "putPolicy",
    tag = "policy",
    summary = "Replace the password reset policy (validated)",
    request_body = SsprPolicy,
    responses((status = 200, description = "Success", body = PolicyView)),
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<SsprPolicy>,
) -> ApiResult<Json<PolicyView>> {
    Ok(Json(app::policy::put(&state, &caller, &p).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/policy/questions",
    operation_id = "predefinedQuestions",
    tag = "policy",
    summary = "Predefined security questions",
    responses((status = 200, description = "Success", body = Vec<String>)),
)]
pub async fn questions(caller: Caller) -> ApiResult<Json<Vec<String>>> {
    Ok(Json(app::policy::questions(&caller)?))
}
