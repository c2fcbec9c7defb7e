//! `/api/v1/policy`: the self-service password reset policy, the HTTP side of [`app::policy`].

use axum::extract::State;
use axum::Json;
use proto::{PolicyView, SsprPolicy};

use crate::app::{self, caller::Caller};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<PolicyView>> {
    Ok(Json(app::policy::get(&state, &caller).await?))
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<SsprPolicy>,
) -> ApiResult<Json<PolicyView>> {
    Ok(Json(app::policy::put(&state, &caller, &p).await?))
}

pub async fn questions(caller: Caller) -> ApiResult<Json<Vec<String>>> {
    Ok(Json(app::policy::questions(&caller)?))
}
