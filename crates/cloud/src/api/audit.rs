//! `/api/v1/audit`: the audit log, newest first.

use axum::extract::State;
use axum::Json;
use proto::{AuditFilter, AuditRecord, Page};
use serde::Deserialize;

use crate::app::{self, caller::Caller};
use crate::error::ApiResult;
use crate::extract::ApiQuery;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Query {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    tracking_id: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "listAudit",
    tag = "audit",
    summary = "The audit log, newest first",
    responses((status = 200, description = "Success", body = Page<AuditRecord>)),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<Query>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        target: q.target,
        since: q.since,
        until: q.until,
        tracking_id: q.tracking_id,
    };
    let page = store::page(q.after, q.limit);
    Ok(Json(
        app::audit::list(&state, &caller, &filter, &page).await?,
    ))
}
