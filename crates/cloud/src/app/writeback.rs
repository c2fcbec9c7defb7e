//! Password writeback, the use cases around the queue (see docs/writeback.md): an agent's
//! claim and result, an agent turning writeback off, a Global Administrator enabling an agent,
//! and the tenant's writeback status. Whether writeback can work at all is
//! [`tenant::writeback::availability`]; the queue and the dispatcher live in
//! [`crate::writeback`].

use proto::writeback::{
    person_message, AgentWriteback, ClaimAnswer, ClaimRequest, EnableRequest, Outcome,
    WritebackResult, WritebackStatus,
};
use proto::ErrorCode;
use store::{AgentRecord, AgentWritebackRecord, WritebackState};
use tenant::roles::Operation as Op;

use super::caller::Caller;
use super::Ctx;
use crate::audit::audited;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;
use crate::writeback::{agent_view, has_premium, now_ms, premium_refusal};

/// Longest `adminDetail` kept from an agent's result.
const MAX_ADMIN_DETAIL: usize = 4096;
/// Most checked roots an enable request may list.
const MAX_ROOTS: usize = 1000;

fn check_tracking_id(id: &str) -> ApiResult<()> {
    if proto::writeback::is_header_id(id) {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "trackingId: must be 1 to 256 characters with no control characters",
        ))
    }
}

/// An agent of `tenant_id` claims a pushed request before running it: `proceed` is true for
/// exactly one claim; otherwise the reason.
pub async fn claim(
    state: &AppState,
    agent: &AgentRecord,
    tenant_id: &str,
    req: ClaimRequest,
) -> ApiResult<ClaimAnswer> {
    check_tracking_id(&req.tracking_id)?;
    let now = now_ms();
    if state
        .store
        .claim_writeback(&req.tracking_id, &agent.id, now)
        .await?
    {
        tracing::info!(tracking_id = %req.tracking_id, agent = %agent.id, "writeback request claimed");
        return Ok(ClaimAnswer {
            proceed: true,
            reason: None,
        });
    }
    let row = state.store.get_writeback_request(&req.tracking_id).await?;
    let reason = match row {
        Some(r) if r.tenant_id == tenant_id => match r.state {
            WritebackState::Done | WritebackState::Expired => "the request has already ended",
            _ if r.deadline_ms <= now => "the request's deadline has passed",
            WritebackState::Claimed if r.agent_id.as_deref() == Some(&agent.id) => {
                "this agent already claimed the request"
            }
            _ => "the request was handed to another agent",
        },
        _ => "no such request",
    };
    tracing::info!(tracking_id = %req.tracking_id, agent = %agent.id, reason, "writeback claim refused");
    Ok(ClaimAnswer {
        proceed: false,
        reason: Some(reason.into()),
    })
}

/// An agent's result, accepted only from the agent whose claim was accepted, while the request
/// is open. The person's words are always the cloud's ([`person_message`]).
pub async fn report_result(
    state: &AppState,
    agent: &AgentRecord,
    tenant_id: &str,
    mut result: WritebackResult,
) -> ApiResult<()> {
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
        .filter(|r| r.tenant_id == tenant_id)
        .ok_or_else(|| AppError::not_found("No writeback request has this tracking id."))?;
    // The person's words are always the cloud's, never server text relayed by an agent.
    result.message = person_message(result.outcome, result.policy_reason, &row.kind);
    if result.outcome != Outcome::PolicyRefused {
        result.policy_reason = None;
    }
    result.agent_id = Some(agent.id.clone());
    result.admin_detail = result
        .admin_detail
        .map(|d| d.chars().take(MAX_ADMIN_DETAIL).collect());
    if !state
        .store
        .complete_writeback(&result.tracking_id, &agent.id, &result, now_ms())
        .await?
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "This agent does not hold the claim of this request, or the request has already ended: results are accepted only from the agent whose claim was accepted, before the deadline.",
        ));
    }
    state.writeback.results_arrived();
    Ok(())
}

/// The calling agent's writeback state.
pub async fn own(state: &AppState, agent: &AgentRecord) -> ApiResult<AgentWriteback> {
    let e = state.store.get_agent_writeback(&agent.id).await?;
    agent_view(state, agent, e.as_ref()).await
}

/// The agent stops taking requests. Audited.
pub async fn disable_own(
    state: &AppState,
    ctx: &Ctx,
    agent: &AgentRecord,
    tenant_id: &str,
) -> ApiResult<AgentWriteback> {
    let was_on = state
        .store
        .disable_agent_writeback(&agent.id, ctx.now)
        .await?;
    crate::audit::record(
        state,
        tenant_id,
        &format!("agent:{}", agent.name),
        "writeback.disable",
        Some(agent.id.clone()),
        proto::AuditResult::Success,
        Some(if was_on {
            "writeback disabled by the agent".into()
        } else {
            "writeback was not enabled".into()
        }),
    )
    .await;
    own(state, agent).await
}

/// A Global Administrator enables writeback on the agent `id` (not revoked; the tenant holds
/// the premium SKU), with the agent's new sealing key. Audited.
pub async fn enable(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    req: EnableRequest,
) -> ApiResult<AgentWriteback> {
    let result = async {
        caller.authorize(Op::ManageTenant)?;
        let agent = state
            .store
            .get_agent(id)
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
        if !has_premium(state, &caller.tenant.id).await? {
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
        let now = ctx.now;
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
            .get_agent(id)
            .await?
            .ok_or_else(AppError::internal)?;
        agent_view(state, &agent, Some(&rec)).await
    }
    .await;
    audited(
        state,
        caller,
        "writeback.enable",
        Some(id.to_string()),
        result,
    )
    .await
}

/// Whether writeback works for the caller's tenant and every agent's state.
pub async fn status(state: &AppState, caller: &Caller) -> ApiResult<WritebackStatus> {
    caller.authorize(Op::ManageTenant)?;
    crate::writeback::status(state, &caller.tenant.id).await
}
