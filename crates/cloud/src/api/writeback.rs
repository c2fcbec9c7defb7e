//! Password writeback over HTTP (see docs/writeback.md): the agents' signed claim, result and
//! enablement endpoints under `/api/v1/agent/writeback`, the Global Administrator's
//! `PUT /api/v1/agents/{id}/writeback` and `GET /api/v1/writeback`, and the admin unlock of a
//! synced user. The handlers parse and render; [`app::writeback`] decides, and the queue and
//! the dispatcher live in [`crate::writeback`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use proto::writeback::{
    AgentWriteback, ClaimAnswer, ClaimRequest, EnableRequest, WritebackResult, WritebackStatus,
};

use crate::agent_auth::AgentCaller;
use crate::app::caller::Caller;
use crate::app::{self, Ctx};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

/// This module's routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent/writeback/claim", post(claim))
        .route("/agent/writeback/results", post(report_result))
        .route("/agent/writeback", get(own).delete(disable_own))
        .route("/agents/{id}/writeback", put(enable))
        .route("/writeback", get(status))
        .route("/users/{user}/unlock", post(super::users::unlock))
}

/// `POST /api/v1/agent/writeback/claim` (signed).
#[utoipa::path(
    post,
    path = "/api/v1/agent/writeback/claim",
    operation_id = "claimWriteback",
    tag = "writeback",
    summary = "Agent: claim a pushed writeback request before running it; proceed is true for exactly one claim",
    request_body = ClaimRequest,
    responses((status = 200, description = "Success", body = ClaimAnswer)),
)]
pub async fn claim(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<ClaimAnswer>> {
    let req: ClaimRequest = agent.json()?;
    Ok(Json(
        app::writeback::claim(&state, &agent.agent, &agent.tenant.id, req).await?,
    ))
}

/// `POST /api/v1/agent/writeback/results` (signed): accepted only from the agent whose claim
/// was accepted, while the request is open.
#[utoipa::path(
    post,
    path = "/api/v1/agent/writeback/results",
    operation_id = "reportWritebackResult",
    tag = "writeback",
    summary = "Agent: the result of a claimed writeback request (only from the claiming agent)",
    request_body = WritebackResult,
    responses((status = 204, description = "Success")),
)]
pub async fn report_result(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<StatusCode> {
    let result: WritebackResult = agent.json()?;
    app::writeback::report_result(&state, &agent.agent, &agent.tenant.id, result).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/agent/writeback` (signed): the calling agent's writeback state.
#[utoipa::path(
    get,
    path = "/api/v1/agent/writeback",
    operation_id = "getAgentWriteback",
    tag = "writeback",
    summary = "Agent: this agent's writeback state as the cloud sees it",
    responses((status = 200, description = "Success", body = AgentWriteback)),
)]
pub async fn own(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<AgentWriteback>> {
    Ok(Json(app::writeback::own(&state, &agent.agent).await?))
}

/// `DELETE /api/v1/agent/writeback` (signed): the agent stops taking requests.
#[utoipa::path(
    delete,
    path = "/api/v1/agent/writeback",
    operation_id = "disableAgentWriteback",
    tag = "writeback",
    summary = "Agent: stop taking writeback requests",
    responses((status = 200, description = "Success", body = AgentWriteback)),
)]
pub async fn disable_own(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<AgentWriteback>> {
    let ctx = Ctx::of(&state);
    Ok(Json(
        app::writeback::disable_own(&state, &ctx, &agent.agent, &agent.tenant.id).await?,
    ))
}

/// `PUT /api/v1/agents/{id}/writeback` (Global Administrator).
#[utoipa::path(
    put,
    path = "/api/v1/agents/{agentId}/writeback",
    operation_id = "enableAgentWriteback",
    tag = "writeback",
    summary = "Turn password writeback on for an agent with a new sealing key; needs the premium SKU (Global Administrator)",
    request_body = EnableRequest,
    responses((status = 200, description = "Success", body = AgentWriteback)),
)]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EnableRequest>,
) -> ApiResult<Json<AgentWriteback>> {
    let ctx = Ctx::of(&state);
    Ok(Json(
        app::writeback::enable(&state, &ctx, &caller, &id, req).await?,
    ))
}

/// `GET /api/v1/writeback` (Global Administrator).
#[utoipa::path(
    get,
    path = "/api/v1/writeback",
    operation_id = "writebackStatus",
    tag = "writeback",
    summary = "Whether password writeback works now, and every agent's writeback state (Global Administrator)",
    responses((status = 200, description = "Success", body = WritebackStatus)),
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<WritebackStatus>> {
    Ok(Json(app::writeback::status(&state, &caller).await?))
}
