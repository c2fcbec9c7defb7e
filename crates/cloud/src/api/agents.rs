//! `/api/v1/agents` (admins: registration tokens, the agent list, revocation), the agent's own
//! enrolment `POST /api/v1/agents/register`, and its signed `heartbeat` and `config`: the HTTP
//! side of [`app::agents`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use proto::sync::{
    Agent, AgentRegistered, AgentRegistration, AgentSyncSettings, Heartbeat, NewRegistrationToken,
    RegistrationToken,
};

use crate::agent_auth::AgentCaller;
use crate::app::caller::Caller;
use crate::app::{self, Ctx};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiOptionalJson};
use crate::state::AppState;

/// `POST /api/v1/agents/tokens` (Global Administrator): a one-time registration token.
#[utoipa::path(
    post,
    path = "/api/v1/agents/tokens",
    operation_id = "createAgentToken",
    tag = "agents",
    summary = "A one-time agent registration token (Global Administrator)",
    request_body(content = Option<NewRegistrationToken>, description = "Optional: no body is the defaults"),
    responses((status = 201, description = "Success", body = RegistrationToken)),
)]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    // The body is optional: no body means the default lifetime.
    ApiOptionalJson(req): ApiOptionalJson<NewRegistrationToken>,
) -> ApiResult<(StatusCode, Json<RegistrationToken>)> {
    let token = app::agents::create_token(&state, &Ctx::of(&state), &caller, req).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// `POST /api/v1/agents/register`: no bearer; the registration token is the credential.
#[utoipa::path(
    post,
    path = "/api/v1/agents/register",
    operation_id = "registerAgent",
    tag = "agents",
    summary = "Register an agent with a registration token (no bearer)",
    request_body = AgentRegistration,
    responses((status = 201, description = "Success", body = AgentRegistered)),
)]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AgentRegistration>,
) -> ApiResult<(StatusCode, Json<AgentRegistered>)> {
    let registered = app::agents::register(&state, &Ctx::of(&state), req).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

/// `GET /api/v1/agents`
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    operation_id = "listAgents",
    tag = "agents",
    summary = "Registered sync agents with their health",
    responses((status = 200, description = "Success", body = Vec<Agent>)),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Agent>>> {
    Ok(Json(
        app::agents::list(&state, &Ctx::of(&state), &caller).await?,
    ))
}

/// `DELETE /api/v1/agents/{id}` (Global Administrator)
#[utoipa::path(
    delete,
    path = "/api/v1/agents/{agentId}",
    operation_id = "revokeAgent",
    tag = "agents",
    summary = "Revoke an agent (Global Administrator)",
    responses((status = 204, description = "Success")),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::agents::revoke(&state, &Ctx::of(&state), &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/agent/heartbeat` (signed)
#[utoipa::path(
    post,
    path = "/api/v1/agent/heartbeat",
    operation_id = "agentHeartbeat",
    tag = "agents",
    summary = "Agent heartbeat (signed agent request)",
    request_body = Heartbeat,
    responses((status = 204, description = "Success")),
)]
pub async fn heartbeat(State(state): State<AppState>, agent: AgentCaller) -> ApiResult<StatusCode> {
    let hb: Heartbeat = agent.json()?;
    app::agents::heartbeat(&state, &Ctx::of(&state), &agent.agent, hb).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/agent/config` (signed)
#[utoipa::path(
    get,
    path = "/api/v1/agent/config",
    operation_id = "agentConfig",
    tag = "agents",
    summary = "The agent's sync settings (signed agent request)",
    responses((status = 200, description = "Success", body = AgentSyncSettings)),
)]
pub async fn config(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<AgentSyncSettings>> {
    Ok(Json(
        app::agents::settings_of(&state, &agent.tenant.id).await?,
    ))
}
