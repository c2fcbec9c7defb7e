//! `/api/v1/agents` (admins: registration tokens, the agent list, revocation), the agent's own
//! enrolment `POST /api/v1/agents/register`, and its signed `heartbeat` and `config`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use proto::sync::{
    Agent, AgentRegistered, AgentRegistration, AgentSyncSettings, Heartbeat, NewRegistrationToken,
    RegistrationToken,
};
use proto::AuditResult;
use store::{AgentRecord, Redemption};
use tenant::roles::Operation;
use tenant::{secrets, validate};

use crate::agent_auth::AgentCaller;
use crate::app::caller::Caller;
use crate::audit::{audited, record};
use crate::error::{ApiResult, AppError};
use crate::extract::{ApiJson, ApiOptionalJson};
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

/// `POST /api/v1/agents/tokens` (Global Administrator): a one-time registration token.
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    // The body is optional: no body means the default lifetime.
    ApiOptionalJson(req): ApiOptionalJson<NewRegistrationToken>,
) -> ApiResult<(StatusCode, Json<RegistrationToken>)> {
    let result = async {
        caller.authorize(Operation::ManageTenant)?;
        let lifetime = tenant::sync::token_lifetime(req.lifetime_secs)?;
        let (token, hash) = secrets::new_token();
        let now = state.now();
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
    let token = audited(&state, &caller, "agent.token.create", None, result).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// `POST /api/v1/agents/register`: no bearer; the registration token is the credential.
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AgentRegistration>,
) -> ApiResult<(StatusCode, Json<AgentRegistered>)> {
    let name = validate::display_name(&req.name)
        .map_err(|r| AppError::bad_request(r.message.replacen("displayName", "name", 1)))?;
    let version = validate::optional_report("version", Some(&req.version), 64)?
        .ok_or_else(|| AppError::bad_request("version: is required (the agent's version)"))?;
    let signing = tenant::sync::public_key("signingPublicKey", &req.signing_public_key)?;
    ed25519_dalek::VerifyingKey::from_bytes(&signing).map_err(|_| {
        AppError::bad_request("signingPublicKey: is not a valid Ed25519 public key")
    })?;
    tenant::sync::public_key("sealingPublicKey", &req.sealing_public_key)?;

    let now = state.now();
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
        &state,
        &tenant.id,
        &format!("agent:{}", agent.name),
        "agent.register",
        Some(agent.id.clone()),
        AuditResult::Success,
        Some(format!("version {}", agent.version)),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(AgentRegistered {
            agent_id: agent.id,
            tenant_id: tenant.id,
            tenant_domains: tenant.domains,
        }),
    ))
}

/// `GET /api/v1/agents`
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Agent>>> {
    caller.authorize(Operation::ReadDirectory)?;
    let now = state.now();
    let agents = state.store.list_agents(&caller.tenant.id).await?;
    Ok(Json(agents.iter().map(|a| agent_view(a, now)).collect()))
}

/// `DELETE /api/v1/agents/{id}` (Global Administrator)
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let result = async {
        caller.authorize(Operation::ManageTenant)?;
        if state
            .store
            .revoke_agent(&caller.tenant.id, &id, state.now())
            .await?
        {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(AppError::not_found(format!(
                "No agent with id '{id}' in this tenant (dirbridge agents list)."
            )))
        }
    }
    .await;
    audited(&state, &caller, "agent.revoke", Some(id), result).await
}

/// `POST /api/v1/agent/heartbeat` (signed)
pub async fn heartbeat(State(state): State<AppState>, agent: AgentCaller) -> ApiResult<StatusCode> {
    let hb: Heartbeat = agent.json()?;
    let version = validate::optional_report("version", Some(&hb.version), 64)?
        .unwrap_or_else(|| agent.agent.version.clone());
    let status = validate::optional_report("status", hb.status.as_deref(), 256)?;
    state
        .store
        .record_heartbeat(&agent.agent.id, state.now(), &version, status.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's sync settings, defaults when an admin never changed them.
pub async fn settings_of(state: &AppState, tenant_id: &str) -> ApiResult<AgentSyncSettings> {
    Ok(state
        .store
        .get_sync_settings(tenant_id)
        .await?
        .unwrap_or_else(tenant::sync::default_settings))
}

/// `GET /api/v1/agent/config` (signed)
pub async fn config(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<AgentSyncSettings>> {
    Ok(Json(settings_of(&state, &agent.tenant.id).await?))
}
