//! Directory sync: the agent's signed batches and run reports (`/api/v1/agent/sync/…`), and the
//! admins' view and control (`/api/v1/sync/…`: errors, runs, settings, allow-deletes).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use proto::sync::{
    AgentSyncSettings, BatchResult, SyncBatch, SyncErrorRecord, SyncRun, SyncSettingsPatch,
    BULK_BATCH_OBJECTS, MAX_BATCH_OBJECTS,
};
use serde::Deserialize;
use store::{SyncErrorWrite, SyncWrite};

use crate::agent_auth::AgentCaller;
use crate::app;
use crate::app::agents::settings_of;
use crate::app::caller::Caller;
use crate::error::{ApiResult, AppError};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// Most characters in a run id or anchor.
const MAX_ID_LEN: usize = 256;

/// `POST /api/v1/agent/sync/batches` (signed): applies a batch in one transaction, or answers a
/// replay with the first answer. Every answer tells the agent it may send batches of up to
/// [`BULK_BATCH_OBJECTS`].
#[utoipa::path(
    post,
    path = "/api/v1/agent/sync/batches",
    operation_id = "applySyncBatch",
    tag = "sync",
    summary = "Apply a batch of synced objects, idempotent by (agent, runId, seq) (signed agent request)",
    request_body = SyncBatch,
    responses((status = 200, description = "Success", body = BatchResult)),
)]
pub async fn apply_batch(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<Json<BatchResult>> {
    let mut answer = apply(&state, &agent).await?;
    answer.max_batch_objects = Some(BULK_BATCH_OBJECTS as u32);
    Ok(Json(answer))
}

async fn apply(state: &AppState, agent: &AgentCaller) -> ApiResult<BatchResult> {
    let batch: SyncBatch = agent.json()?;
    let total = batch.upserts.len() + batch.deletes.len();
    if total > BULK_BATCH_OBJECTS {
        return Err(AppError::bad_request(format!(
            "The batch holds {total} objects; at most {BULK_BATCH_OBJECTS} (upserts and deletes together) are accepted. Split it."
        )));
    }
    if batch.run_id.trim().is_empty() || batch.run_id.len() > MAX_ID_LEN {
        return Err(AppError::bad_request(format!(
            "runId: is required, at most {MAX_ID_LEN} characters"
        )));
    }
    let anchors = batch
        .upserts
        .iter()
        .map(|o| &o.anchor)
        .chain(batch.deletes.iter())
        .chain(batch.upserts.iter().flat_map(|o| o.members.iter()));
    for a in anchors {
        if a.is_empty() || a.len() > MAX_ID_LEN {
            return Err(AppError::bad_request(format!(
                "Every anchor must be 1 to {MAX_ID_LEN} characters (base64 of objectGUID / entryUUID)."
            )));
        }
    }
    let agent_id = agent.agent.id.clone();
    if let Some(first) = state
        .store
        .batch_result(&agent_id, &batch.run_id, batch.seq)
        .await?
    {
        return Ok(first);
    }
    let tenant = &agent.tenant;
    let (anchors, upns, mails) = tenant::sync::lookups(tenant, &batch);
    let snap = state
        .store
        .sync_snapshot(&tenant.id, &anchors, &upns, &mails)
        .await?;
    let now = state.now();
    let plan = tenant::sync::plan(
        tenant,
        &batch,
        &snap.users,
        &snap.groups,
        &snap.memberships,
        now,
    );
    let touched_directory = plan.result.added + plan.result.updated + plan.result.deleted > 0;
    let inserted = plan.insert_users.len() + plan.insert_groups.len();
    let write = SyncWrite {
        tenant_id: tenant.id.clone(),
        agent_id,
        run_id: batch.run_id.clone(),
        seq: batch.seq,
        now,
        result: plan.result.clone(),
        delete_users: plan.delete_users,
        delete_groups: plan.delete_groups,
        insert_users: plan.insert_users,
        update_users: plan.update_users,
        insert_groups: plan.insert_groups,
        update_groups: plan.update_groups,
        set_members: plan.set_members,
        errors: plan
            .errors
            .into_iter()
            .map(|e| SyncErrorWrite {
                anchor: e.error.anchor,
                distinguished_name: e.distinguished_name,
                code: e.error.code,
                message: e.error.message,
            })
            .collect(),
        cleared: plan.cleared,
        forget_batches_before: now - tenant::sync::BATCH_REPLAY_WINDOW_SECS,
    };
    let licensing_scope = if touched_directory {
        Some(crate::app::group_licensing::sync_scope(state, &tenant.id, &write).await?)
    } else {
        None
    };
    if let Some(first) = state.store.apply_sync_batch(&write).await? {
        // Another request applied the same batch meanwhile.
        return Ok(first);
    }
    if let Some(before) = licensing_scope {
        crate::app::group_licensing::reconcile_sync(state, tenant, &write, before).await?;
    }
    if refresh_statistics_after(batch.seq, inserted) {
        // The planner's statistics were taken when the directory was small (at `cloud init`):
        // with them the batch lookups scan the users table instead of using its indexes.
        if state.store.backend_name() == "postgres" {
            // PostgreSQL's ANALYZE runs beside the next batches (it takes a few hundred ms of
            // sampling at 100,000 users): the batch is answered without waiting for it.
            let store = state.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.refresh_statistics().await {
                    tracing::warn!(error = %e, "refreshing the planner's statistics failed");
                }
            });
        } else {
            // SQLite's runs on the batch connection, which the next batch waits for anyway.
            state.store.refresh_statistics().await?;
        }
    }
    Ok(plan.result)
}

/// Whether to refresh the planner's statistics after batch `seq` of a run that inserted
/// `inserted` objects: during bulk loads only (a first full sync), at batches 0, 1, 3, 7, 15, …
/// so a load of n batches pays for log2(n) refreshes. (SQLite's `PRAGMA optimize` analyzes
/// only tables that grew 25-fold since; PostgreSQL's `ANALYZE` samples.)
fn refresh_statistics_after(seq: u32, inserted: usize) -> bool {
    inserted >= MAX_BATCH_OBJECTS / 5 && (seq.wrapping_add(1)).is_power_of_two()
}

/// `POST /api/v1/agent/sync/runs` (signed): the agent reports a run.
#[utoipa::path(
    post,
    path = "/api/v1/agent/sync/runs",
    operation_id = "reportSyncRun",
    tag = "sync",
    summary = "Report a sync run (signed agent request)",
    request_body = SyncRun,
    responses((status = 204, description = "Success")),
)]
pub async fn report_run(
    State(state): State<AppState>,
    agent: AgentCaller,
) -> ApiResult<StatusCode> {
    let mut run: SyncRun = agent.json()?;
    if run.run_id.trim().is_empty() || run.run_id.len() > MAX_ID_LEN {
        return Err(AppError::bad_request(format!(
            "runId: is required, at most {MAX_ID_LEN} characters"
        )));
    }
    run.agent_id = agent.agent.id.clone();
    run.connector = tenant::validate::optional_report("connector", Some(&run.connector), 256)?
        .unwrap_or_default();
    run.message = tenant::validate::optional_report("message", run.message.as_deref(), 1024)?;
    state.store.record_sync_run(&agent.tenant.id, &run).await?;
    if tenant::sync::run_consumes_allow_deletes(run.outcome, run.deleted) {
        let mut s = settings_of(&state, &agent.tenant.id).await?;
        if s.allow_deletes_once {
            s.allow_deletes_once = false;
            state.store.put_sync_settings(&agent.tenant.id, &s).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/sync/errors`
#[utoipa::path(
    get,
    path = "/api/v1/sync/errors",
    operation_id = "listSyncErrors",
    tag = "sync",
    summary = "Objects the last sync could not apply, and why",
    responses((status = 200, description = "Success", body = Vec<SyncErrorRecord>)),
)]
pub async fn errors(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SyncErrorRecord>>> {
    Ok(Json(app::sync::errors(&state, &caller).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunsQuery {
    limit: Option<u32>,
}

/// `GET /api/v1/sync/runs?limit=` (newest first)
#[utoipa::path(
    get,
    path = "/api/v1/sync/runs",
    operation_id = "listSyncRuns",
    tag = "sync",
    summary = "Sync run history, newest first (?limit=)",
    responses((status = 200, description = "Success", body = Vec<proto::sync::SyncRunRow>)),
)]
pub async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> ApiResult<Json<Vec<proto::sync::SyncRunRow>>> {
    Ok(Json(app::sync::runs(&state, &caller, q.limit).await?))
}

/// `GET /api/v1/sync/settings`
#[utoipa::path(
    get,
    path = "/api/v1/sync/settings",
    operation_id = "getSyncSettings",
    tag = "sync",
    summary = "Deletion threshold, staging mode and intervals",
    responses((status = 200, description = "Success", body = AgentSyncSettings)),
)]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AgentSyncSettings>> {
    Ok(Json(app::sync::settings(&state, &caller).await?))
}

/// `PATCH /api/v1/sync/settings` (Global Administrator)
#[utoipa::path(
    patch,
    path = "/api/v1/sync/settings",
    operation_id = "updateSyncSettings",
    tag = "sync",
    summary = "Change sync settings (Global Administrator)",
    request_body = SyncSettingsPatch,
    responses((status = 200, description = "Success", body = AgentSyncSettings)),
)]
pub async fn update_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<SyncSettingsPatch>,
) -> ApiResult<Json<AgentSyncSettings>> {
    Ok(Json(
        app::sync::update_settings(&state, &caller, &patch).await?,
    ))
}

/// `POST /api/v1/sync/allow-deletes` (Global Administrator): the next run may export its
/// deletes even above the threshold, once.
#[utoipa::path(
    post,
    path = "/api/v1/sync/allow-deletes",
    operation_id = "allowSyncDeletes",
    tag = "sync",
    summary = "Let the next run export its deletes above the threshold, once (Global Administrator)",
    responses((status = 200, description = "Success", body = AgentSyncSettings)),
)]
pub async fn allow_deletes(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AgentSyncSettings>> {
    Ok(Json(app::sync::allow_deletes(&state, &caller).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_refreshed_at_doubling_batches_of_bulk_loads_only() {
        let at: Vec<u32> = (0..300)
            .filter(|&s| refresh_statistics_after(s, MAX_BATCH_OBJECTS))
            .collect();
        assert_eq!(at, vec![0, 1, 3, 7, 15, 31, 63, 127, 255]);
        assert!(!refresh_statistics_after(0, 1), "a delta adding one user");
        assert!(!refresh_statistics_after(u32::MAX, MAX_BATCH_OBJECTS));
    }
}
