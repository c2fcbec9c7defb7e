//! Agents: registration tokens, enrolment, the agent list, revocation, heartbeats and the
//! sync settings an agent runs with. Health is [`tenant::sync::health`]'s decision.

use proto::sync::{
    Agent, AgentRegistered, AgentRegistration, AgentSyncSettings, Heartbeat, NewRegistrationToken,
    RegistrationToken,
};
use proto::AuditResult;
use store::{AgentRecord, Redemption};
use tenant::roles::Operation;
use tenant::{secrets, validate};

use super::caller::Caller;
use super::Ctx;
use crate::audit::{audited, record};
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn agent_view(a: &AgentRecord, now: i64) -> Agent {
    let health = tenant::sync::health(
        now,
        a.revoked_at.is_some(),
        a.registered_at,
        a.last_heartbeat_at,
        a.last_run_outcome,
    );
    let status = match (&a.last_run_outcome, &a.last_run_message) {
        (Some(o), msg)
            if matches!(
                o,
                proto::sync::RunOutcome::Failed | proto::sync::RunOutcome::StoppedDeletionThreshold
            ) =>
        {
            let words = match o {
                proto::sync::RunOutcome::Failed => "last run failed",
                _ => "last run stopped: deletion threshold (dirbridge sync allow-deletes)",
            };
            Some(match msg {
                Some(m) => format!("{words}: {m}"),
                None => words.to_string(),
            })
        }
        _ => a.status.clone(),
    };
    Agent {
        id: a.id.clone(),
        tenant_id: a.tenant_id.clone(),
        name: a.name.clone(),
        version: a.version.clone(),
        registered_at: a.registered_at,
        last_heartbeat_at: a.last_heartbeat_at,
        revoked: a.revoked_at.is_some(),
        health,
        status,
    }
}

/// A one-time registration token (Global Administrator). Audited.
pub async fn create_token(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    req: NewRegistrationToken,
) -> ApiResult<RegistrationToken> {
    let result = async {
        caller.authorize(Operation::ManageTenant)?;
        let lifetime = tenant::sync::token_lifetime(req.lifetime_secs)?;
        let (token, hash) = secrets::new_token();
        let now = ctx.now;
        state
            .store
            .insert_registration_token(&hash, &caller.tenant.id, caller.upn(), now, now + lifetime)
            .await?;
        Ok(RegistrationToken {
            token,
            expires_at: now + lifetime,
        })
    }
    .await;
    audited(state, caller, "agent.token.create", None, result).await
}

/// Enrols an agent: the registration token is the credential (redeemed once, unexpired).
pub async fn register(
    state: &AppState,
    ctx: &Ctx,
    req: AgentRegistration,
) -> ApiResult<AgentRegistered> {
    let name = validate::display_name(&req.name)
        .map_err(|r| AppError::bad_request(r.message.replacen("displayName", "name", 1)))?;
    let version = validate::optional_report("version", Some(&req.version), 64)?
        .ok_or_else(|| AppError::bad_request("version: is required (the agent's version)"))?;
    let signing = tenant::sync::public_key("signingPublicKey", &req.signing_public_key)?;
    ed25519_dalek::VerifyingKey::from_bytes(&signing).map_err(|_| {
        AppError::bad_request("signingPublicKey: is not a valid Ed25519 public key")
    })?;
    tenant::sync::public_key("sealingPublicKey", &req.sealing_public_key)?;

    let now = ctx.now;
    let hash = secrets::token_hash(req.registration_token.trim());
    let tenant_id = match state.store.redeem_registration_token(&hash, now).await? {
        Redemption::Redeemed { tenant_id } => tenant_id,
        Redemption::Unknown => {
            return Err(AppError::unauthenticated(
                "The registration token is not valid. Ask an administrator for a new one (dirbridge agents token create).",
            ))
        }
        Redemption::Expired => {
            return Err(AppError::unauthenticated(
                "The registration token has expired. Ask an administrator for a new one (dirbridge agents token create).",
            ))
        }
        Redemption::AlreadyUsed => {
            return Err(AppError::unauthenticated(
                "The registration token was already used: each token registers one agent. Ask an administrator for a new one (dirbridge agents token create).",
            ))
        }
    };
    let tenant =
        state.store.get_tenant(&tenant_id).await?.ok_or_else(|| {
            AppError::unauthenticated("The tenant of this token no longer exists.")
        })?;
    let agent = AgentRecord {
        id: secrets::new_id(),
        tenant_id: tenant.id.clone(),
        name,
        version,
        signing_public_key: req.signing_public_key.trim().to_string(),
        sealing_public_key: req.sealing_public_key.trim().to_string(),
        registered_at: now,
        revoked_at: None,
        last_heartbeat_at: None,
        status: None,
        last_run_outcome: None,
        last_run_message: None,
    };
    state.store.insert_agent(&agent).await?;
    record(
        state,
        &tenant.id,
        &format!("agent:{}", agent.name),
        "agent.register",
        Some(agent.id.clone()),
        AuditResult::Success,
        Some(format!("version {}", agent.version)),
    )
    .await;
    Ok(AgentRegistered {
        agent_id: agent.id,
        tenant_id: tenant.id,
        tenant_domains: tenant.domains,
    })
}

/// The tenant's agents with their health at `now`.
pub async fn list(state: &AppState, ctx: &Ctx, caller: &Caller) -> ApiResult<Vec<Agent>> {
    caller.authorize(Operation::ReadDirectory)?;
    let agents = state.store.list_agents(&caller.tenant.id).await?;
    Ok(agents.iter().map(|a| agent_view(a, ctx.now)).collect())
}

/// Revokes the agent `id` (Global Administrator). Audited.
pub async fn revoke(state: &AppState, ctx: &Ctx, caller: &Caller, id: &str) -> ApiResult<()> {
    let result = async {
        caller.authorize(Operation::ManageTenant)?;
        if state
            .store
            .revoke_agent(&caller.tenant.id, id, ctx.now)
            .await?
        {
            Ok(())
        } else {
            Err(AppError::not_found(format!(
                "No agent with id '{id}' in this tenant (dirbridge agents list)."
            )))
        }
    }
    .await;
    audited(state, caller, "agent.revoke", Some(id.to_string()), result).await
}

/// Records an agent's heartbeat (its version and status, as reported).
pub async fn heartbeat(
    state: &AppState,
    ctx: &Ctx,
    agent: &AgentRecord,
    hb: Heartbeat,
) -> ApiResult<()> {
    let version = validate::optional_report("version", Some(&hb.version), 64)?
        .unwrap_or_else(|| agent.version.clone());
    let status = validate::optional_report("status", hb.status.as_deref(), 256)?;
    state
        .store
        .record_heartbeat(&agent.id, ctx.now, &version, status.as_deref())
        .await?;
    Ok(())
}

/// The tenant's sync settings, defaults when an admin never changed them.
pub async fn settings_of(state: &AppState, tenant_id: &str) -> ApiResult<AgentSyncSettings> {
    Ok(state
        .store
        .get_sync_settings(tenant_id)
        .await?
        .unwrap_or_else(tenant::sync::default_settings))
}
