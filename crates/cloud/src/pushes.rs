//! What the cloud sends agents over their push sockets (`syncNow`), through the database, so a
//! message reaches the agent whichever cloud instance holds its socket: the sender queues one
//! row per connected agent of the tenant (connected anywhere: `agent_presence`), and the
//! writeback dispatcher of the instance holding the socket takes the row and sends it — the
//! same polled table and loop as writeback dispatch (`writeback::dispatch_once`). One
//! process on SQLite goes the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

use proto::sync::AgentPush;

use crate::error::{ApiResult, AppError};
use crate::state::{AppState, PushChannel};

/// A queued message its agent has not taken within this is deleted (the agent left).
pub const PUSH_TTL_MS: i64 = 60_000;

/// When this process last deleted untaken messages.
static LAST_FORGET_MS: AtomicI64 = AtomicI64::new(0);

/// Queues `push` for every agent of `tenant_id` connected to any cloud instance on the
/// database; returns how many agents it is for.
pub async fn to_tenant(state: &AppState, tenant_id: &str, push: &AgentPush) -> ApiResult<usize> {
    let now = crate::presence::now_ms();
    let agents = state
        .store
        .present_agents(tenant_id, now - crate::presence::PRESENCE_FRESH_MS)
        .await?;
    if agents.is_empty() {
        return Ok(0);
    }
    let json = serde_json::to_string(push).map_err(|_| AppError::internal())?;
    let to: Vec<(String, String)> = agents
        .iter()
        .map(|a| (tenant::secrets::new_id(), a.clone()))
        .collect();
    state.store.queue_agent_pushes(&to, &json, now).await?;
    // This process may hold some of the sockets: send at once rather than at the next poll.
    state.writeback.wake();
    Ok(agents.len())
}

/// Sends the queued messages of the agents whose sockets this process holds (`local`), and now
/// and then deletes the ones nobody took. Called by the writeback dispatcher on each pass.
pub async fn deliver(state: &AppState, local: &HashMap<String, PushChannel>) -> ApiResult<()> {
    let now = crate::presence::now_ms();
    let last = LAST_FORGET_MS.load(Ordering::Relaxed);
    if now - last >= PUSH_TTL_MS
        && LAST_FORGET_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        state.store.forget_agent_pushes(now - PUSH_TTL_MS).await?;
    }
    if local.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = local.keys().cloned().collect();
    for (agent, json) in state.store.take_agent_pushes(&ids).await? {
        let (Some(channel), Ok(push)) =
            (local.get(&agent), serde_json::from_str::<AgentPush>(&json))
        else {
            continue;
        };
        if channel.sender.try_send(push).is_err() {
            tracing::warn!(agent = %agent, "an agent's push queue is full or closed; a push was dropped");
        } else {
            tracing::debug!(agent = %agent, "push sent to the agent");
        }
    }
    Ok(())
}
