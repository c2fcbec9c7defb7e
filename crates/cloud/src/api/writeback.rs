//! Password writeback over HTTP (see docs/writeback.md): the agents' signed claim, result and
//! enablement endpoints under `/api/v1/agent/writeback`, the Global Administrator's
//! `PUT /api/v1/agents/{id}/writeback` and `GET /api/v1/writeback`, and the admin unlock of a
//! synced user. The queue and the dispatcher live in [`crate::writeback`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use proto::writeback::{
    person_message, AgentWriteback, ClaimAnswer, ClaimRequest, EnableRequest, Outcome,
    WritebackResult, WritebackStatus,
};
use proto::ErrorCode;
use serde_json::{json, Value};
use store::{AgentWritebackRecord, WritebackState};
use tenant::roles::Operation as Op;

use crate::agent_auth::AgentCaller;
use crate::app::caller::Caller;
use crate::audit::audited;
use crate::error::{ApiResult, AppError};
use crate::extract::ApiJson;
use crate::openapi::Operation;
use crate::state::AppState;
use crate::writeback::{agent_view, has_premium, now_ms, premium_refusal};

/// Longest `adminDetail` kept from an agent's result.
const MAX_ADMIN_DETAIL: usize = 4096;
/// Most checked roots an enable request may list.
const MAX_ROOTS: usize = 1000;

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

fn check_tracking_id(id: &str) -> ApiResult<()> {
    if proto::writeback::is_header_id(id) {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "trackingId: must be 1 to 256 characters with no control characters",
        ))
    }
}

/// `POST /api/v1/agent/writeback/claim` (signed).
pub async fn claim(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<ClaimAnswer>> {
    let req: ClaimRequest = agent.json()?;
    check_tracking_id(&req.tracking_id)?;
    let now = now_ms();
    if state
        .store
        .claim_writeback(&req.tracking_id, &agent.agent.id, now)
        .await?
    {
        tracing::info!(tracking_id = %req.tracking_id, agent = %agent.agent.id, "writeback request claimed");
        return Ok(Json(ClaimAnswer {
            proceed: true,
            reason: None,
        }));
    }
    let row = state.store.get_writeback_request(&req.tracking_id).await?;
    let reason = match row {
        Some(r) if r.tenant_id == agent.tenant.id => match r.state {
            WritebackState::Done | WritebackState::Expired => "the request has already ended",
            _ if r.deadline_ms <= now => "the request's deadline has passed",
            WritebackState::Claimed if r.agent_id.as_deref() == Some(&agent.agent.id) => {
                "this agent already claimed the request"
            }
            _ => "the request was handed to another agent",
        },
        _ => "no such request",
    };
    tracing::info!(tracking_id = %req.tracking_id, agent = %agent.agent.id, reason, "writeback claim refused");
    Ok(Json(ClaimAnswer {
        proceed: false,
        reason: Some(reason.into()),
    }))
}

/// `POST /api/v1/agent/writeback/results` (signed): accepted only from the agent whose claim
/// was accepted, while the request is open.
pub async fn report_result(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<StatusCode> {
    let mut result: WritebackResult = agent.json()?;
    check_tracking_id(&result.tracking_id)?;
    if matches!(
        result.outcome,
        Outcome::AgentUnavailable | Outcome::OutcomeUnknown
    ) {
        return Err(AppError::bad_request(
            "outcome: agentUnavailable and outcomeUnknown are decided by the cloud, not reported by an agent",
        ));
    }
    let row = state
        .store
        .get_writeback_request(&result.tracking_id)
        .await?
        .filter(|r| r.tenant_id == agent.tenant.id)
        .ok_or_else(|| AppError::not_found("No writeback request has this tracking id."))?;
    // The person's words are always the cloud's, never server text relayed by an agent.
    result.message = person_message(result.outcome, result.policy_reason, &row.kind);
    if result.outcome != Outcome::PolicyRefused {
        result.policy_reason = None;
    }
    result.agent_id = Some(agent.agent.id.clone());
    result.admin_detail = result
        .admin_detail
        .map(|d| d.chars().take(MAX_ADMIN_DETAIL).collect());
    if !state
        .store
        .complete_writeback(&result.tracking_id, &agent.agent.id, &result, now_ms())
        .await?
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "This agent does not hold the claim of this request, or the request has already ended: results are accepted only from the agent whose claim was accepted, before the deadline.",
        ));
    }
    state.writeback.results_arrived();
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/agent/writeback` (signed): the calling agent's writeback state.
pub async fn own(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<AgentWriteback>> {
    let e = state.store.get_agent_writeback(&agent.agent.id).await?;
    Ok(Json(agent_view(&state, &agent.agent, e.as_ref()).await?))
}

/// `DELETE /api/v1/agent/writeback` (signed): the agent stops taking requests.
pub async fn disable_own(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<AgentWriteback>> {
    let was_on = state
        .store
        .disable_agent_writeback(&agent.agent.id, state.now())
        .await?;
    crate::audit::record(
        &state,
        &agent.tenant.id,
        &format!("agent:{}", agent.agent.name),
        "writeback.disable",
        Some(agent.agent.id.clone()),
        proto::AuditResult::Success,
        Some(if was_on {
            "writeback disabled by the agent".into()
        } else {
            "writeback was not enabled".into()
        }),
    )
    .await;
    let e = state.store.get_agent_writeback(&agent.agent.id).await?;
    Ok(Json(agent_view(&state, &agent.agent, e.as_ref()).await?))
}

/// `PUT /api/v1/agents/{id}/writeback` (Global Administrator).
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EnableRequest>,
) -> ApiResult<Json<AgentWriteback>> {
    let result = async {
        caller.authorize(Op::ManageTenant)?;
        let agent = state
            .store
            .get_agent(&id)
            .await?
            .filter(|a| a.tenant_id == caller.tenant.id)
            .ok_or_else(|| {
                AppError::not_found(format!(
                    "No agent with id '{id}' in this tenant (dirbridge agents list shows them)."
                ))
            })?;
        if agent.revoked_at.is_some() {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "This agent was revoked; register it again (dirbridge agent register) before enabling writeback.",
            ));
        }
        if !has_premium(&state, &caller.tenant.id).await? {
            return Err(premium_refusal());
        }
        tenant::writeback::parse_public_key(&req.sealing_public_key)?;
        let connector = tenant::validate::optional_report("connector", Some(&req.connector), 256)?
            .ok_or_else(|| AppError::bad_request("connector: is required"))?;
        if req.checked_roots.len() > MAX_ROOTS {
            return Err(AppError::bad_request(format!(
                "checkedRoots: at most {MAX_ROOTS} entries"
            )));
        }
        let mut roots = Vec::new();
        for r in &req.checked_roots {
            if let Some(r) = tenant::validate::optional_report("checkedRoots", Some(r), 2048)? {
                roots.push(r);
            }
        }
        let now = state.now();
        let rec = AgentWritebackRecord {
            agent_id: agent.id.clone(),
            tenant_id: caller.tenant.id.clone(),
            enabled: true,
            connector: Some(connector),
            directory_kind: Some(req.directory_kind),
            checked_roots: roots,
            enabled_at: Some(now),
            disabled_at: None,
            key_created_at: Some(now),
        };
        state
            .store
            .enable_agent_writeback(&rec, req.sealing_public_key.trim())
            .await?;
        let agent = state
            .store
            .get_agent(&id)
            .await?
            .ok_or_else(AppError::internal)?;
        agent_view(&state, &agent, Some(&rec)).await
    }
    .await;
    Ok(Json(
        audited(&state, &caller, "writeback.enable", Some(id), result).await?,
    ))
}

/// `GET /api/v1/writeback` (Global Administrator).
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<WritebackStatus>> {
    caller.authorize(Op::ManageTenant)?;
    Ok(Json(
        crate::writeback::status(&state, &caller.tenant.id).await?,
    ))
}
