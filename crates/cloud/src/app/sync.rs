//! The administrators' view and control of directory sync: per-object errors, runs, settings
//! (deletion threshold, staging, intervals), allowing the deletes once, and "sync now". The
//! rules of the settings are [`tenant::sync`]'s.

use proto::sync::{AgentPush, AgentSyncSettings, SyncErrorRecord, SyncRunRow, SyncSettingsPatch};
use proto::ErrorCode;
use tenant::roles::Operation;

use super::agents::settings_of;
use super::caller::Caller;
use crate::audit::audited;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// Objects the last runs could not sync.
pub async fn errors(state: &AppState, caller: &Caller) -> ApiResult<Vec<SyncErrorRecord>> {
    caller.authorize(Operation::ReadDirectory)?;
    Ok(state.store.list_sync_errors(&caller.tenant.id).await?)
}

/// The latest runs, newest first (`limit`: 20 when none is asked for).
pub async fn runs(
    state: &AppState,
    caller: &Caller,
    limit: Option<u32>,
) -> ApiResult<Vec<SyncRunRow>> {
    caller.authorize(Operation::ReadDirectory)?;
    let limit = store::page_size(limit, 20);
    Ok(state.store.list_sync_runs(&caller.tenant.id, limit).await?)
}

/// The tenant's sync settings.
pub async fn settings(state: &AppState, caller: &Caller) -> ApiResult<AgentSyncSettings> {
    caller.authorize(Operation::ReadDirectory)?;
    settings_of(state, &caller.tenant.id).await
}

/// Changes the fields `patch` names (Global Administrator). Audited.
pub async fn update_settings(
    state: &AppState,
    caller: &Caller,
    patch: &SyncSettingsPatch,
) -> ApiResult<AgentSyncSettings> {
    let result = async {
        caller.authorize(Operation::ManageTenant)?;
        let current = settings_of(state, &caller.tenant.id).await?;
        let next = tenant::sync::patch_settings(&current, patch)?;
        state
            .store
            .put_sync_settings(&caller.tenant.id, &next)
            .await?;
        Ok(next)
    }
    .await;
    audited(state, caller, "sync.settings.update", None, result).await
}

/// The next run may export its deletes even above the threshold, once (Global
/// Administrator). Audited.
pub async fn allow_deletes(state: &AppState, caller: &Caller) -> ApiResult<AgentSyncSettings> {
    let result = async {
        caller.authorize(Operation::ManageTenant)?;
        let mut s = settings_of(state, &caller.tenant.id).await?;
        s.allow_deletes_once = true;
        state.store.put_sync_settings(&caller.tenant.id, &s).await?;
        Ok(s)
    }
    .await;
    audited(state, caller, "sync.allowDeletes", None, result).await
}

/// Asks every agent of the tenant connected to any cloud instance to run a sync cycle now
/// (Global Administrator); how many were asked, or a conflict when none is connected. Audited.
pub async fn run_now(state: &AppState, caller: &Caller, full: bool) -> ApiResult<usize> {
    let result = async {
        caller.authorize(Operation::ManageTenant)?;
        let push = AgentPush::SyncNow { full };
        let agents = crate::pushes::to_tenant(state, &caller.tenant.id, &push).await?;
        if agents == 0 {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "No agent is connected: start `dirbridge agent run` on the agent host; `dirbridge agents list` shows their health.",
            ));
        }
        Ok(agents)
    }
    .await;
    audited(state, caller, "sync.run", None, result).await
}
