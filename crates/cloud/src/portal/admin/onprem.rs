//! `/admin/on-premises`: agents (version, heartbeat, health, revoke), registration tokens
//! (shown once), writeback per agent, sync runs and per-object errors, the sync settings
//! (deletion threshold, staging), allowing the deletes once and "sync now" — on
//! [`app::agents`], [`app::writeback`] and [`app::sync`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use proto::sync::{NewRegistrationToken, SyncSettingsPatch};
use serde::Deserialize;
use tenant::roles::Operation;

use super::users::wire;
use super::{enc, refused, status_for, when, Admin, Nav};
use crate::app::{self, Ctx};
use crate::error::{tracking_id, AppError};
use crate::portal::render;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/on-premises", get(show))
        .route("/admin/on-premises/tokens", post(create_token))
        .route("/admin/on-premises/agents/{id}/revoke", post(revoke))
        .route("/admin/on-premises/settings", post(settings))
        .route("/admin/on-premises/allow-deletes", post(allow_deletes))
        .route("/admin/on-premises/sync-now", post(sync_now))
}

struct AgentRow {
    id: String,
    revoke: String,
    name: String,
    version: String,
    heartbeat: String,
    health: String,
    status: String,
    writeback: String,
    revoked: bool,
}

struct RunRow {
    started: String,
    connector: String,
    kind: String,
    outcome: String,
    counts: String,
    message: String,
}

struct ErrorRow {
    object: String,
    code: String,
    message: String,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "admin_onprem.html")]
struct OnPremPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    agents: Vec<AgentRow>,
    writeback_available: bool,
    writeback_reason: String,
    runs: Vec<RunRow>,
    errors: Vec<ErrorRow>,
    threshold: u32,
    staging: bool,
    allow_deletes_once: bool,
    token: Option<(String, String)>,
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

/// `GET /admin/on-premises`
async fn show(State(state): State<AppState>, admin: Admin, Query(n): Query<Notice>) -> Response {
    let notice = match n.done.as_deref() {
        Some("revoked") => Some("The agent was revoked: it can no longer sign in to the cloud."),
        Some("settings") => {
            Some("The sync settings were saved; agents read them at their next run.")
        }
        Some("deletes") => {
            Some("The next run may export its deletes once, even above the threshold.")
        }
        Some("sync") => Some("The connected agents were asked to sync now."),
        _ => None,
    };
    page(&state, &admin, notice, None, None).await
}

async fn page(
    state: &AppState,
    admin: &Admin,
    notice: Option<&'static str>,
    error: Option<AppError>,
    token: Option<(String, String)>,
) -> Response {
    if let Some(r) = admin.refusal(Operation::ManageTenant) {
        return r;
    }
    let ctx = Ctx::of(state);
    let loaded = async {
        let agents = app::agents::list(state, &ctx, &admin.caller).await?;
        let writeback = app::writeback::status(state, &admin.caller).await?;
        let runs = app::sync::runs(state, &admin.caller, None).await?;
        let errors = app::sync::errors(state, &admin.caller).await?;
        let settings = app::sync::settings(state, &admin.caller).await?;
        Ok::<_, AppError>((agents, writeback, runs, errors, settings))
    }
    .await;
    let (agents, writeback, runs, errors, settings) = match loaded {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let page = OnPremPage {
        tracking_id: tracking_id(),
        csrf: &admin.csrf,
        name: admin.name(),
        nav: admin.nav(),
        agents: agents
            .iter()
            .map(|a| {
                let wb = writeback.agents.iter().find(|w| w.agent_id == a.id);
                AgentRow {
                    id: a.id.clone(),
                    revoke: format!("/admin/on-premises/agents/{}/revoke", enc(&a.id)),
                    name: a.name.clone(),
                    version: a.version.clone(),
                    heartbeat: a
                        .last_heartbeat_at
                        .map(when)
                        .unwrap_or_else(|| "never".into()),
                    health: wire(&a.health),
                    status: a.status.clone().unwrap_or_default(),
                    writeback: match wb {
                        Some(w) if w.enabled => format!(
                            "on{}{}",
                            w.connector
                                .as_deref()
                                .map(|c| format!(" ({c})"))
                                .unwrap_or_default(),
                            if w.connected {
                                ", connected"
                            } else {
                                ", not connected"
                            }
                        ),
                        _ => "off".into(),
                    },
                    revoked: a.revoked,
                }
            })
            .collect(),
        writeback_available: writeback.available,
        writeback_reason: writeback.reason.clone().unwrap_or_default(),
        runs: runs
            .iter()
            .map(|r| RunRow {
                started: when(r.run.started_at),
                connector: r.run.connector.clone(),
                kind: wire(&r.run.kind),
                outcome: wire(&r.run.outcome),
                counts: format!(
                    "{} added, {} updated, {} deleted, {} errors, {} deletes held",
                    r.run.added, r.run.updated, r.run.deleted, r.run.errors, r.run.pending_deletes
                ),
                message: r.run.message.clone().unwrap_or_default(),
            })
            .collect(),
        errors: errors
            .iter()
            .map(|e| ErrorRow {
                object: e
                    .distinguished_name
                    .clone()
                    .unwrap_or_else(|| e.anchor.clone()),
                code: e.code.clone(),
                message: e.message.clone(),
                last_seen: when(e.last_seen_at),
            })
            .collect(),
        threshold: settings.deletion_threshold,
        staging: settings.staging,
        allow_deletes_once: settings.allow_deletes_once,
        token,
        notice,
        error: error.as_ref().map(|e| e.message.clone()),
    };
    render(status_for(&error), &page)
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// `POST /admin/on-premises/tokens` — a one-time registration token, shown on this answer only.
async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let ctx = Ctx::of(&state);
    let req = NewRegistrationToken::default();
    match app::agents::create_token(&state, &ctx, &admin.caller, req).await {
        Ok(t) => {
            page(
                &state,
                &admin,
                None,
                None,
                Some((t.token.clone(), when(t.expires_at))),
            )
            .await
        }
        Err(e) => page(&state, &admin, None, Some(e), None).await,
    }
}

/// `POST /admin/on-premises/agents/{id}/revoke`
async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app::agents::revoke(&state, &Ctx::of(&state), &admin.caller, &id).await {
        Ok(()) => Redirect::to("/admin/on-premises?done=revoked").into_response(),
        Err(e) => page(&state, &admin, None, Some(e), None).await,
    }
}

#[derive(Deserialize)]
struct SettingsForm {
    csrf: String,
    deletion_threshold: String,
    staging: Option<String>,
}

/// `POST /admin/on-premises/settings` — deletion threshold and staging.
async fn settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let result = async {
        let threshold = form.deletion_threshold.trim().parse::<u32>().map_err(|_| {
            AppError::bad_request("deletionThreshold: must be a whole number, e.g. 500")
        })?;
        let patch = SyncSettingsPatch {
            deletion_threshold: Some(threshold),
            staging: Some(form.staging.is_some()),
            ..Default::default()
        };
        app::sync::update_settings(&state, &admin.caller, &patch).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/admin/on-premises?done=settings").into_response(),
        Err(e) => page(&state, &admin, None, Some(e), None).await,
    }
}

/// `POST /admin/on-premises/allow-deletes`
async fn allow_deletes(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app::sync::allow_deletes(&state, &admin.caller).await {
        Ok(_) => Redirect::to("/admin/on-premises?done=deletes").into_response(),
        Err(e) => page(&state, &admin, None, Some(e), None).await,
    }
}

/// `POST /admin/on-premises/sync-now`
async fn sync_now(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app::sync::run_now(&state, &admin.caller, false).await {
        Ok(_) => Redirect::to("/admin/on-premises?done=sync").into_response(),
        Err(e) => page(&state, &admin, None, Some(e), None).await,
    }
}
