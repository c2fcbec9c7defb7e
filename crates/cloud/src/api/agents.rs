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
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AgentRegistration>,
) -> ApiResult<(StatusCode, Json<AgentRegistered>)> {
    let registered = app::agents::register(&state, &Ctx::of(&state), req).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

/// `GET /api/v1/agents`
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Agent>>> {
    Ok(Json(
        app::agents::list(&state, &Ctx::of(&state), &caller).await?,
    ))
}

/// `DELETE /api/v1/agents/{id}` (Global Administrator)
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::agents::revoke(&state, &Ctx::of(&state), &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/agent/heartbeat` (signed)
pub async fn heartbeat(State(state): State<AppState>, agent: AgentCaller) -> ApiResult<StatusCode> {
    let hb: Heartbeat = agent.json()?;
    app::agents::heartbeat(&state, &Ctx::of(&state), &agent.agent, hb).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/agent/config` (signed)
pub async fn config(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<AgentSyncSettings>> {
    Ok(Json(
        app::agents::settings_of(&state, &agent.tenant.id).await?,
    ))
}
