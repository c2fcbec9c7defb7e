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
use serde_json::{json, Value};

use crate::agent_auth::AgentCaller;
use crate::api::Operation;
use crate::app::caller::Caller;
use crate::app::{self, Ctx};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

/// This module's operations in the OpenAPI document (checked against the router by a test).
pub const OPERATIONS: &[Operation] = &[
    (
        "post",
        "/api/v1/agent/writeback/claim",
        "claimWriteback",
        "Agent: claim a pushed writeback request before running it; proceed is true for exactly one claim",
        Some("ClaimRequest"),
        200,
    ),
    (
        "post",
        "/api/v1/agent/writeback/results",
        "reportWritebackResult",
        "Agent: the result of a claimed writeback request (only from the claiming agent)",
        Some("WritebackResult"),
        204,
    ),
    (
        "get",
        "/api/v1/agent/writeback",
        "getAgentWriteback",
        "Agent: this agent's writeback state as the cloud sees it",
        None,
        200,
    ),
    (
        "delete",
        "/api/v1/agent/writeback",
        "disableAgentWriteback",
        "Agent: stop taking writeback requests",
        None,
        200,
    ),
    (
        "put",
        "/api/v1/agents/{id}/writeback",
        "enableAgentWriteback",
        "Turn password writeback on for an agent with a new sealing key; needs the premium SKU (Global Administrator)",
        Some("EnableRequest"),
        200,
    ),
    (
        "get",
        "/api/v1/writeback",
        "writebackStatus",
        "Whether password writeback works now, and every agent's writeback state (Global Administrator)",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/users/{user}/unlock",
        "unlockUser",
        "Unlock a synced user's on-premises account through writeback; returns the WritebackResult",
        None,
        200,
    ),
];

/// This module's request schemas in the OpenAPI document.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let object = |props: Value| json!({"type": "object", "properties": props});
    vec![
        (
            "ClaimRequest",
            object(json!({"trackingId": {"type": "string"}})),
        ),
        (
            "WritebackResult",
            object(json!({
                "trackingId": {"type": "string"},
                "outcome": {"enum": ["succeeded", "policyRefused", "wrongCurrentPassword", "accountDisabled", "accountLockedOut", "protectedAccount", "accessDenied", "userNotFound", "ambiguousUser", "directoryUnreachable", "configurationError", "directoryError", "requestRefused", "agentUnavailable", "outcomeUnknown", "wrongPassword", "passwordExpired", "mustChangePassword", "accountExpired", "logonRestricted"]},
                "policyReason": {"enum": ["tooShort", "complexity", "history", "tooRecent", "other"]},
                "message": {"type": "string"},
                "eventId": {"type": "integer"},
                "agentId": {"type": "string"},
                "adminDetail": {"type": "string"}
            })),
        ),
        (
            "EnableRequest",
            object(json!({
                "sealingPublicKey": {"type": "string", "contentEncoding": "base64"},
                "connector": {"type": "string"},
                "directoryKind": {"enum": ["activeDirectory", "openLdap"]},
                "checkedRoots": {"type": "array", "items": {"type": "string"}}
            })),
        ),
        (
            "AdminResetBody",
            object(json!({
                "password": {"type": "string", "format": "password"},
                "mustChange": {"type": "boolean"},
                "unlock": {"type": "boolean"}
            })),
        ),
    ]
}

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
pub async fn report_result(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<StatusCode> {
    let result: WritebackResult = agent.json()?;
    app::writeback::report_result(&state, &agent.agent, &agent.tenant.id, result).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/agent/writeback` (signed): the calling agent's writeback state.
pub async fn own(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<AgentWriteback>> {
    Ok(Json(app::writeback::own(&state, &agent.agent).await?))
}

/// `DELETE /api/v1/agent/writeback` (signed): the agent stops taking requests.
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
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<WritebackStatus>> {
    Ok(Json(app::writeback::status(&state, &caller).await?))
}
