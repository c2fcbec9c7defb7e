//! What the cloud pushes to agents: `GET /api/v1/agent/ws` (signed WebSocket the agent dials
//! out to) and `POST /api/v1/sync/run` (an admin asks every connected agent to sync now).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use proto::sync::AgentPush;
use serde::{Deserialize, Serialize};

use crate::agent_auth::AgentCaller;
use crate::app::caller::Caller;
use crate::error::{ApiResult, AppError};
use crate::extract::ApiOptionalJson;
use crate::state::{AppState, PushChannel};

/// How often a connected agent gets a `Ping`.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// `GET /api/v1/agent/ws` (signed, empty body): upgrades to a WebSocket on which the cloud
/// pushes [`AgentPush`] messages. Unsigned, badly signed and revoked agents are refused before
/// the upgrade.
#[utoipa::path(
    get,
    path = "/api/v1/agent/ws",
    operation_id = "agentPushSocket",
    tag = "push",
    summary = "WebSocket on which the cloud pushes {\"type\":\"syncNow\",\"full\":bool} and {\"type\":\"ping\"} (signed agent request, empty body)",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "The request is not a WebSocket upgrade (`invalidRequestBody`; no `Connection: upgrade`, `Upgrade: websocket` or `Sec-WebSocket-Key`)"),
        (status = 401, description = "The agent signature is missing or not valid"),
    ),
)]
pub async fn connect(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    agent: AgentCaller,
) -> ApiResult<Response> {
    // axum's own refusal is plain text; the API answers with its error document.
    let ws = ws.map_err(|e| {
        AppError::new(
            proto::ErrorCode::InvalidBody,
            format!(
                "This endpoint is a WebSocket: send a WebSocket upgrade request ({}).",
                e.body_text()
            ),
        )
    })?;
    Ok(ws.on_upgrade(move |socket| serve(state, agent, socket)))
}

async fn serve(state: AppState, agent: AgentCaller, mut socket: WebSocket) {
    let agent_id = agent.agent.id.clone();
    let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<AgentPush>(16);
    if let Ok(mut map) = state.pushes.lock() {
        map.insert(
            agent_id.clone(),
            PushChannel {
                tenant_id: agent.tenant.id.clone(),
                connection,
                sender: tx,
            },
        );
    }
    tracing::info!(agent = %agent_id, "agent push socket connected");
    touch_presence(&state, &agent_id).await;
    state.writeback.wake();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        let push = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => p,
                None => break,
            },
            _ = ping.tick() => {
                touch_presence(&state, &agent_id).await;
                AgentPush::Ping
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
        };
        let text = match serde_json::to_string(&push) {
            Ok(t) => t,
            Err(_) => continue,
        };
        if socket.send(Message::Text(text.into())).await.is_err() {
            break;
        }
    }
    let ours = match state.pushes.lock() {
        Ok(mut map) => {
            let ours = map
                .get(&agent_id)
                .is_some_and(|c| c.connection == connection);
            if ours {
                map.remove(&agent_id);
            }
            ours
        }
        Err(_) => false,
    };
    // A newer socket of the same agent on this process keeps the presence row.
    if ours {
        if let Err(e) = state
            .store
            .remove_agent_presence(&agent_id, &state.writeback.instance_id)
            .await
        {
            tracing::warn!(agent = %agent_id, error = %e, "could not remove the agent's presence row");
        }
    }
    tracing::info!(agent = %agent_id, "agent push socket disconnected");
}

/// Records that this process holds the agent's push socket now (for writeback dispatch by
/// every cloud process on the database).
async fn touch_presence(state: &AppState, agent_id: &str) {
    if let Err(e) = state
        .store
        .touch_agent_presence(
            agent_id,
            &state.writeback.instance_id,
            crate::writeback::now_ms(),
        )
        .await
    {
        tracing::warn!(agent = %agent_id, error = %e, "could not record the agent's presence");
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRunRequest {
    #[serde(default)]
    pub full: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncRunAnswer {
    pub agents: usize,
}

/// Asks every agent of `tenant_id` connected to any cloud instance on the database to run a
/// sync cycle now ([`crate::pushes`]); returns how many were asked (0, logged, when the
/// database could not be asked).
pub async fn sync_now(state: &AppState, tenant_id: &str, full: bool) -> usize {
    match crate::pushes::to_tenant(state, tenant_id, &AgentPush::SyncNow { full }).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e.message, "could not ask the agents to sync");
            0
        }
    }
}

/// `POST /api/v1/sync/run` (Global Administrator), body `{"full": bool}` (optional): asks every
/// agent of the tenant connected to any cloud instance to run a sync cycle now.
#[utoipa::path(
    post,
    path = "/api/v1/sync/run",
    operation_id = "runSyncNow",
    tag = "push",
    summary = "Ask every connected agent to sync now, body {\"full\": bool} optional; 409 when none is connected (Global Administrator)",
    request_body(content = Option<SyncRunRequest>, description = "Optional: no body is the defaults"),
    responses((status = 200, description = "Success", body = SyncRunAnswer)),
)]
pub async fn sync_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiOptionalJson(req): ApiOptionalJson<SyncRunRequest>,
) -> ApiResult<Json<SyncRunAnswer>> {
    let agents = crate::app::sync::run_now(&state, &caller, req.full).await?;
    Ok(Json(SyncRunAnswer { agents }))
}
