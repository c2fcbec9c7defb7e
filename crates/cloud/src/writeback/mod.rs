//! Password writeback, cloud side: [`submit`] queues a sealed operation and waits for its result;
//! the dispatcher of every cloud process hands queued requests to the agents connected to it.
//! See docs/writeback.md for the states and the guarantees (at most once, one result per
//! request, a deadline).
//!
//! The queue's timers (`*_ms` columns: dispatch time, deadline, presence) are wall-clock Unix
//! milliseconds shared by every process on the database and measured against the waits of this
//! process; the envelope expiry and the audit times use the tenant clock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proto::writeback::{
    person_message, AgentWriteback, Outcome, WritebackOperation, WritebackResult, WritebackStatus,
};
use proto::{AuditResult, ErrorCode, Source, User};
use rand::seq::SliceRandom;
use store::{AgentRecord, AgentWritebackRecord, WritebackRequestRecord, WritebackState};
use zeroize::Zeroize;

use crate::error::{ApiResult, AppError, TRACKING_ID};
use crate::state::{AppState, PushChannel};

pub mod hub;
pub use hub::Hub;

/// A dispatched request not claimed within this goes back to `pending`, that agent excluded.
pub const UNCLAIMED_MS: i64 = 3_000;
/// The dispatcher looks at the queue this often when nothing wakes it.
const DISPATCH_POLL: Duration = Duration::from_millis(100);
/// A waiting request re-reads its row this often when no local result wakes it.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// Rows one dispatcher pass looks at.
const BATCH: i64 = 200;
/// Overdue and lapsed requests are looked for at most this often (milliseconds).
const SWEEP_EVERY_MS: i64 = 500;

pub use crate::presence::{now_ms, PRESENCE_FRESH_MS};

// ---------------------------------------------------------------- availability

/// Whether writeback can work for a tenant, and the enabled agents if so.
#[derive(Debug, Clone)]
pub struct Availability {
    /// Why not, with the next step; `None` when available.
    pub refusal: Option<AppError>,
    /// Enabled agents that are not revoked, with their sealing keys.
    pub agents: Vec<AgentRecord>,
    pub enablements: Vec<AgentWritebackRecord>,
}

impl Availability {
    pub fn available(&self) -> bool {
        self.refusal.is_none()
    }
}

/// True when the tenant has a usable (enabled or warning) subscription of the premium SKU.
pub async fn has_premium(state: &AppState, tenant_id: &str) -> ApiResult<bool> {
    let subs = state.store.list_subscriptions(tenant_id).await?;
    Ok(tenant::licensing::available_units(tenant::licensing::PREMIUM_SKU, &subs, state.now()) > 0)
}

/// The refusal when the premium SKU is missing ([`tenant::writeback::premium_refusal`]).
pub fn premium_refusal() -> AppError {
    tenant::writeback::premium_refusal().into()
}

/// Loads what [`tenant::writeback::availability`] decides on (subscriptions, the policy switch,
/// the enabled agents that are not revoked) and returns its decision with those agents.
pub async fn availability(state: &AppState, tenant_id: &str) -> ApiResult<Availability> {
    let enablements = state.store.list_agent_writeback(tenant_id).await?;
    let mut agents = Vec::new();
    for e in enablements.iter().filter(|e| e.enabled) {
        if let Some(a) = state.store.get_agent(&e.agent_id).await? {
            if a.revoked_at.is_none() && a.tenant_id == tenant_id {
                agents.push(a);
            }
        }
    }
    let policy_on = state
        .store
        .get_policy(tenant_id)
        .await?
        .map(|p| p.writeback_enabled)
        .unwrap_or(false);
    let subs = state.store.list_subscriptions(tenant_id).await?;
    let refusal = tenant::writeback::availability(&subs, policy_on, agents.len(), state.now())
        .err()
        .map(AppError::from);
    Ok(Availability {
        refusal,
        agents,
        enablements,
    })
}

/// The agents that can serve a pass-through sign-in: every agent of the tenant that is not
/// revoked and has a sealing key (each registers one). Writeback's gates — the premium SKU, the
/// policy switch, `agent writeback enable` — do not apply: checking a password writes nothing.
pub async fn sign_in_agents(state: &AppState, tenant_id: &str) -> ApiResult<Vec<AgentRecord>> {
    Ok(state
        .store
        .list_agents(tenant_id)
        .await?
        .into_iter()
        .filter(|a| {
            a.revoked_at.is_none() && a.tenant_id == tenant_id && !a.sealing_public_key.is_empty()
        })
        .collect())
}

/// Checks `password` for a user synced from on-premises by a bind as the user on an agent
/// (pass-through sign-in), through the same queue, dispatch, claim and deadline as writeback,
/// under the current request's tracking id. Every ending is a [`WritebackResult`] (kind
/// `signIn`): `agentUnavailable` at once when no agent of the tenant is connected. Writes no
/// audit record (the sign-in does). The password is wiped before this returns.
pub async fn pass_through(
    state: &AppState,
    tenant_id: &str,
    user: &User,
    password: String,
) -> ApiResult<WritebackResult> {
    let anchor = user
        .on_premises
        .as_ref()
        .map(|o| o.immutable_id.clone())
        .unwrap_or_default();
    let mut op = WritebackOperation::Verify { anchor, password };
    let tracking = crate::error::tracking_id();
    let result = run(state, tenant_id, user, &mut op, &tracking).await;
    wipe(&mut op);
    result
}

/// One agent's writeback view.
pub async fn agent_view(
    state: &AppState,
    agent: &AgentRecord,
    enablement: Option<&AgentWritebackRecord>,
) -> ApiResult<AgentWriteback> {
    let present = state
        .store
        .present_agents(&agent.tenant_id, now_ms() - PRESENCE_FRESH_MS)
        .await?;
    Ok(AgentWriteback {
        agent_id: agent.id.clone(),
        agent_name: agent.name.clone(),
        enabled: enablement.is_some_and(|e| e.enabled) && agent.revoked_at.is_none(),
        connector: enablement.and_then(|e| e.connector.clone()),
        directory_kind: enablement.and_then(|e| e.directory_kind),
        enabled_at: enablement.and_then(|e| e.enabled_at),
        key_created_at: enablement.and_then(|e| e.key_created_at),
        connected: present.contains(&agent.id),
    })
}

/// `GET /api/v1/writeback`: whether writeback works and every agent's state.
pub async fn status(state: &AppState, tenant_id: &str) -> ApiResult<WritebackStatus> {
    let av = availability(state, tenant_id).await?;
    let by_agent: HashMap<&str, &AgentWritebackRecord> = av
        .enablements
        .iter()
        .map(|e| (e.agent_id.as_str(), e))
        .collect();
    let mut agents = Vec::new();
    for a in state.store.list_agents(tenant_id).await? {
        if a.revoked_at.is_some() && !by_agent.contains_key(a.id.as_str()) {
            continue;
        }
        agents.push(agent_view(state, &a, by_agent.get(a.id.as_str()).copied()).await?);
    }
    Ok(WritebackStatus {
        available: av.available(),
        reason: av.refusal.map(|r| r.message),
        agents,
    })
}

// ---------------------------------------------------------------- submit

/// The result without `adminDetail`: what a person (not an administrator) may see.
pub fn person_view(mut r: WritebackResult) -> WritebackResult {
    r.admin_detail = None;
    r
}

fn cloud_result(
    tracking_id: &str,
    outcome: Outcome,
    kind: &str,
    agent_id: Option<String>,
    admin_detail: String,
) -> WritebackResult {
    WritebackResult {
        tracking_id: tracking_id.to_string(),
        outcome,
        policy_reason: None,
        message: person_message(outcome, None, kind),
        event_id: None,
        agent_id,
        admin_detail: Some(admin_detail),
    }
}

/// The results a request ends with when this cloud process shuts down before its result came:
/// (if claimed, if not claimed).
fn drain_results(row: &WritebackRequestRecord) -> (WritebackResult, WritebackResult) {
    let t = &row.tracking_id;
    let agent = row.agent_id.clone().unwrap_or_else(|| "?".into());
    let claimed = cloud_result(
        t,
        Outcome::OutcomeUnknown,
        &row.kind,
        row.agent_id.clone(),
        format!(
            "The cloud process shut down while agent {agent} was running the request, before its result came; it ran at most once and {}. Look for tracking id {t} in that agent's event log (dirbridge agent events --tracking-id {t}).",
            if is_sign_in(&row.kind) { "may have tried the password once" } else { "may have changed the password" }
        ),
    );
    let unclaimed = cloud_result(
        t,
        Outcome::AgentUnavailable,
        &row.kind,
        None,
        "The cloud process shut down before an agent took the request: nothing was changed. Try again.".into(),
    );
    (claimed, unclaimed)
}

/// Shuts this process's writeback down (SIGTERM, Ctrl-C): no new request is taken or
/// dispatched, requests not yet with an agent are answered at once, and those an agent holds
/// get `shutdown_grace_secs` to finish before they are answered anyway (`outcomeUnknown`).
/// Returns once every request this process waited for has its answer, or the grace period
/// ended (plus a moment for the answers to be written).
pub async fn drain(state: &AppState) {
    let hub = &state.writeback;
    let grace_ms = state.config.shutdown_grace_secs.min(60) as i64 * 1000;
    let by = now_ms() + grace_ms;
    hub.drain_by_ms.store(by.max(1), Ordering::SeqCst);
    hub.results_arrived();
    tracing::info!(
        waiting = hub.waiters.load(Ordering::Relaxed),
        grace_secs = state.config.shutdown_grace_secs,
        "shutting down: no new writeback requests; waiting for those in flight"
    );
    let give_up = tokio::time::Instant::from_std(tenant::clock::monotonic())
        + Duration::from_millis(grace_ms as u64 + 1_000);
    while hub.waiters.load(Ordering::SeqCst) > 0
        && tokio::time::Instant::from_std(tenant::clock::monotonic()) < give_up
    {
        let notified = hub.done.notified();
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(WAIT_POLL) => {}
        }
    }
    // Connected agents: their push sockets close (they reconnect elsewhere or later).
    if let Ok(mut m) = state.pushes.lock() {
        m.clear();
    }
}

/// The results a request ends with at its deadline: (if claimed, if not claimed).
fn deadline_results(row: &WritebackRequestRecord, secs: u64) -> (WritebackResult, WritebackResult) {
    let t = &row.tracking_id;
    let agent = row.agent_id.clone().unwrap_or_else(|| "?".into());
    let claimed = cloud_result(
        t,
        Outcome::OutcomeUnknown,
        &row.kind,
        row.agent_id.clone(),
        format!(
            "Agent {agent} claimed the request but sent no result before the deadline ({secs} s); it ran at most once and {}. Look for tracking id {t} in that agent's event log (dirbridge agent events --tracking-id {t}).",
            if is_sign_in(&row.kind) { "may have tried the password once" } else { "may have changed the password" }
        ),
    );
    let mut lapsed: Vec<String> = row.excluded.clone();
    if let Some(a) = &row.agent_id {
        lapsed.push(a.clone());
    }
    let unclaimed = cloud_result(
        t,
        Outcome::AgentUnavailable,
        &row.kind,
        None,
        if lapsed.is_empty() {
            format!("No writeback agent connected to the cloud took the request before the deadline ({secs} s). Check that the agents run (dirbridge agents list).")
        } else {
            format!("No writeback agent claimed the request before the deadline ({secs} s); it was sent to {} without a claim. Check those agents (dirbridge agents list, dirbridge agent events).", lapsed.join(", "))
        },
    );
    (claimed, unclaimed)
}

/// Whether a queue row's `kind` is a pass-through sign-in.
fn is_sign_in(kind: &str) -> bool {
    proto::writeback::OperationKind::parse(kind) == Some(proto::writeback::OperationKind::SignIn)
}

/// Wipes the passwords of an operation in place.
fn wipe(op: &mut WritebackOperation) {
    match op {
        WritebackOperation::Reset { new_password, .. }
        | WritebackOperation::AdminReset { new_password, .. } => new_password.zeroize(),
        WritebackOperation::Change {
            old_password,
            new_password,
            ..
        } => {
            old_password.zeroize();
            new_password.zeroize();
        }
        WritebackOperation::Verify { password, .. } => password.zeroize(),
        WritebackOperation::Unlock { .. } => {}
    }
}

/// Decrements the waiter count when a waiting request ends, however it ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs one writeback operation for `user` and waits for its result (at most the configured
/// deadline). Refuses (an error) when writeback is not available for the tenant or the user is
/// not synced from on-premises; otherwise every ending is a [`WritebackResult`] — including
/// `agentUnavailable` at once when no writeback agent is connected anywhere, and
/// `outcomeUnknown` when the claiming agent did not answer in time. Writes the audit record
/// `writeback.<kind>` with the request's tracking id. The result carries `adminDetail`: strip it
/// with [`person_view`] before showing it to a non-administrator.
pub async fn submit(
    state: &AppState,
    tenant_id: &str,
    user: &User,
    mut op: WritebackOperation,
    actor: &str,
) -> Result<WritebackResult, AppError> {
    let kind = op.kind();
    let sets_password = matches!(
        op,
        WritebackOperation::Reset { .. }
            | WritebackOperation::Change { .. }
            | WritebackOperation::AdminReset { .. }
    );
    let tracking = crate::error::tracking_id();
    let outcome = run(state, tenant_id, user, &mut op, &tracking).await;
    wipe(&mut op);
    let succeeded = outcome
        .as_ref()
        .is_ok_and(|r| r.outcome == Outcome::Succeeded);
    if succeeded && sets_password {
        // A new password ends the sessions apps hold for the user (their refresh tokens).
        crate::oidc::password_changed(state, tenant_id, &user.id).await;
    }
    if succeeded && matches!(kind, "reset" | "adminReset" | "unlock") {
        crate::app::lockout::unlock_sign_in(state, &user.user_principal_name).await;
    }
    let (tracking, audit_result, details) = match &outcome {
        Ok(r) => (
            r.tracking_id.clone(),
            AuditResult::of_writeback(r.outcome),
            Some(match &r.admin_detail {
                Some(d) => format!("{}: {d}", enum_text(r.outcome)),
                None => enum_text(r.outcome),
            }),
        ),
        Err(e) => (tracking, AuditResult::Failure, Some(e.message.clone())),
    };
    TRACKING_ID
        .scope(
            tracking,
            crate::audit::record(
                state,
                tenant_id,
                actor,
                &format!("writeback.{kind}"),
                Some(user.user_principal_name.clone()),
                audit_result,
                details,
            ),
        )
        .await;
    outcome
}

/// The wire name of a serde enum value (e.g. an `Outcome` as `policyRefused`).
pub(crate) fn enum_text<T: serde::Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

async fn run(
    state: &AppState,
    tenant_id: &str,
    user: &User,
    op: &mut WritebackOperation,
    tracking: &str,
) -> ApiResult<WritebackResult> {
    let kind = op.kind();
    let anchor = user
        .on_premises
        .as_ref()
        .map(|o| o.immutable_id.as_str())
        .filter(|a| !a.is_empty());
    let anchor = match anchor {
        Some(a) if user.source == Source::OnPremises && user.tenant_id == tenant_id => a,
        _ => {
            return Err(AppError::bad_request(format!(
                "{} is a cloud-only user: there is no on-premises account to write a password to. Password writeback applies to users synced from the on-premises directory.",
                user.user_principal_name
            )))
        }
    };
    if op.anchor() != anchor {
        tracing::error!(tracking_id = %tracking, "writeback operation names another anchor than its user");
        return Err(AppError::internal());
    }
    let verify = op.is_verify();
    if state.writeback.draining().is_some() {
        return Ok(cloud_result(
            tracking,
            Outcome::AgentUnavailable,
            kind,
            None,
            "This cloud process is shutting down and takes no new requests; nothing was sent to an agent. Try again: another cloud instance, or this one once restarted, takes it.".into(),
        ));
    }
    let candidates = if verify {
        sign_in_agents(state, tenant_id).await?
    } else {
        let av = availability(state, tenant_id).await?;
        if let Some(refusal) = av.refusal {
            return Err(refusal);
        }
        av.agents
    };
    let enabled: HashSet<&str> = candidates.iter().map(|a| a.id.as_str()).collect();
    let start = now_ms();
    let present: Vec<String> = state
        .store
        .present_agents(tenant_id, start - PRESENCE_FRESH_MS)
        .await?
        .into_iter()
        .filter(|a| enabled.contains(a.as_str()))
        .collect();
    if present.is_empty() {
        return Ok(cloud_result(
            tracking,
            Outcome::AgentUnavailable,
            kind,
            None,
            if verify {
                "No agent of the tenant is connected to the cloud, so the password of a synced user cannot be checked. Start `dirbridge agent run` on an agent host; `dirbridge agents list` shows their health.".into()
            } else {
                "No agent with password writeback enabled is connected to the cloud. Start `dirbridge agent run` on an agent host with writeback enabled; `dirbridge agents list` shows their health.".into()
            },
        ));
    }

    let deadline_secs = state.config.writeback_deadline_secs.clamp(1, 600);
    let deadline_ms = start + deadline_secs as i64 * 1000;
    let expires_at = state.now() + deadline_secs as i64;

    let mut tracking = tracking.to_string();
    for attempt in 0..2 {
        let mut envelopes = BTreeMap::new();
        for a in &candidates {
            match tenant::writeback::seal_request(
                &a.sealing_public_key,
                tenant_id,
                &a.id,
                &tracking,
                expires_at,
                op,
            ) {
                Ok(sealed) => {
                    envelopes.insert(a.id.clone(), sealed);
                }
                Err(e) => {
                    tracing::warn!(tracking_id = %tracking, agent = %a.id, error = %e.message, "cannot seal a writeback request to this agent's key");
                }
            }
        }
        if envelopes.is_empty() {
            return Err(AppError::new(
                ErrorCode::Conflict,
                if verify {
                    "No connected agent has a usable sealing key, so the password of a synced user cannot be checked. Register the agent again (dirbridge agent register)."
                } else {
                    "No writeback agent has a usable sealing key. Enable writeback again on the agent host (dirbridge agent writeback enable --data-dir DIR), which sends a new key."
                },
            ));
        }
        let row = WritebackRequestRecord {
            tracking_id: tracking.clone(),
            tenant_id: tenant_id.to_string(),
            user_id: user.id.clone(),
            kind: kind.to_string(),
            state: WritebackState::Pending,
            agent_id: None,
            excluded: Vec::new(),
            attempt: 0,
            envelopes,
            result: None,
            created_at: state.now(),
            dispatched_ms: None,
            deadline_ms,
        };
        match state.store.insert_writeback_request(&row).await {
            Ok(()) => break,
            // The request's tracking id was used by an earlier writeback of the same request.
            Err(store::StoreError::Conflict(_)) if attempt == 0 => {
                tracking = tenant::secrets::tracking_id();
            }
            Err(e) => return Err(e.into()),
        }
    }
    wipe(op);
    state.writeback.wake();
    wait(state, &tracking).await
}

/// Waits for the request to end: its result, or the deadline's.
async fn wait(state: &AppState, tracking: &str) -> ApiResult<WritebackResult> {
    let hub = &state.writeback;
    hub.waiters.fetch_add(1, Ordering::Relaxed);
    let _waiting = Waiting(&hub.waiters);
    loop {
        let notified = hub.done.notified();
        let row = state
            .store
            .get_writeback_request(tracking)
            .await?
            .ok_or_else(AppError::internal)?;
        match row.state {
            WritebackState::Done | WritebackState::Expired => {
                return row.result.ok_or_else(AppError::internal);
            }
            _ => {}
        }
        let now = now_ms();
        if now >= row.deadline_ms {
            let (claimed, unclaimed) = deadline_results(&row, state.config.writeback_deadline_secs);
            state
                .store
                .expire_writeback(tracking, now, &claimed, &unclaimed)
                .await?;
            continue;
        }
        // Shutting down: nothing is dispatched any more, so a request not yet handed to an
        // agent ends now; one an agent holds gets the grace period to finish.
        let drain_by = hub.draining();
        if let Some(by) = drain_by {
            if row.state == WritebackState::Pending || now >= by {
                let (claimed, unclaimed) = drain_results(&row);
                state
                    .store
                    .end_writeback_early(tracking, now, &claimed, &unclaimed)
                    .await?;
                continue;
            }
        }
        let until = drain_by.map_or(row.deadline_ms, |by| by.min(row.deadline_ms));
        let left = Duration::from_millis((until - now).max(1) as u64);
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(WAIT_POLL.min(left)) => {}
        }
    }
}

// ---------------------------------------------------------------- dispatcher

/// Starts this process's dispatcher (once per [`AppState`]; later calls do nothing). Needs a
/// Tokio runtime; without one (a router built outside any runtime) nothing starts.
pub fn start(state: &AppState) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if state.writeback.started.swap(true, Ordering::SeqCst) {
        return;
    }
    let state = state.clone();
    handle.spawn(async move {
        tracing::debug!(instance = %state.writeback.instance_id, "writeback dispatcher started");
        loop {
            tokio::select! {
                _ = state.writeback.dispatch.notified() => {}
                _ = tokio::time::sleep(DISPATCH_POLL) => {}
            }
            if let Err(e) = dispatch_once(&state).await {
                tracing::warn!(error = %e.message, "writeback dispatcher pass failed; retrying");
            }
        }
    });
}

/// One pass: end overdue requests, take back lapsed dispatches, hand pending requests to the
/// agents connected to this process. Does nothing (no database access) when this process has
/// neither a connected agent nor a waiting request.
pub async fn dispatch_once(state: &AppState) -> ApiResult<()> {
    let local: HashMap<String, PushChannel> =
        state.pushes.lock().map(|m| m.clone()).unwrap_or_default();
    if local.is_empty() && state.writeback.waiters.load(Ordering::Relaxed) == 0 {
        return Ok(());
    }
    let now = now_ms();
    let last = state.writeback.last_sweep_ms.load(Ordering::Relaxed);
    if now - last >= SWEEP_EVERY_MS {
        state.writeback.last_sweep_ms.store(now, Ordering::Relaxed);
        sweep(state, now).await?;
    }
    // Shutting down: hand out nothing new (waiting requests end themselves).
    if local.is_empty() || state.writeback.draining().is_some() {
        return Ok(());
    }
    if let Err(e) = crate::pushes::deliver(state, &local).await {
        tracing::warn!(error = %e.message, "could not deliver the queued pushes; retrying");
    }
    let pending = state
        .store
        .writeback_requests_in(WritebackState::Pending, BATCH)
        .await?;
    let mut enabled_by_tenant: HashMap<String, HashSet<String>> = HashMap::new();
    for row in pending {
        if row.deadline_ms <= now {
            continue;
        }
        if !enabled_by_tenant.contains_key(&row.tenant_id) {
            let set = state
                .store
                .list_agent_writeback(&row.tenant_id)
                .await?
                .into_iter()
                .filter(|e| e.enabled)
                .map(|e| e.agent_id)
                .collect();
            enabled_by_tenant.insert(row.tenant_id.clone(), set);
        }
        let enabled = &enabled_by_tenant[&row.tenant_id];
        // A sign-in check goes to any agent it was sealed to; writeback only to enabled ones.
        let sign_in = is_sign_in(&row.kind);
        let mut candidates: Vec<&String> = local
            .iter()
            .filter(|(id, c)| {
                c.tenant_id == row.tenant_id
                    && (sign_in || enabled.contains(*id))
                    && row.envelopes.contains_key(*id)
                    && !row.excluded.contains(id)
            })
            .map(|(id, _)| id)
            .collect();
        candidates.shuffle(&mut rand::thread_rng());
        let Some(agent) = candidates.first() else {
            continue;
        };
        if !state
            .store
            .dispatch_writeback(&row.tracking_id, agent, now)
            .await?
        {
            continue;
        }
        let push = proto::sync::AgentPush::Writeback {
            request: row.envelopes[*agent].clone(),
        };
        let sent = local[*agent].sender.try_send(push).is_ok();
        tracing::info!(tracking_id = %row.tracking_id, agent = %agent, sent, "writeback request dispatched");
        if !sent {
            let mut excluded = row.excluded.clone();
            excluded.push((*agent).clone());
            state
                .store
                .repend_writeback(&row.tracking_id, agent, row.attempt + 1, &excluded)
                .await?;
        }
    }
    Ok(())
}

/// Ends overdue requests and takes back dispatches not claimed in time (any process may).
async fn sweep(state: &AppState, now: i64) -> ApiResult<()> {
    for row in state.store.overdue_writeback_requests(now, BATCH).await? {
        let (claimed, unclaimed) = deadline_results(&row, state.config.writeback_deadline_secs);
        if state
            .store
            .expire_writeback(&row.tracking_id, now, &claimed, &unclaimed)
            .await?
        {
            state.writeback.results_arrived();
        }
    }
    for row in state
        .store
        .writeback_requests_in(WritebackState::Dispatched, BATCH)
        .await?
    {
        let (Some(agent), Some(at)) = (&row.agent_id, row.dispatched_ms) else {
            continue;
        };
        if at + UNCLAIMED_MS <= now {
            let mut excluded = row.excluded.clone();
            excluded.push(agent.clone());
            if state
                .store
                .repend_writeback(&row.tracking_id, agent, row.attempt, &excluded)
                .await?
            {
                tracing::info!(tracking_id = %row.tracking_id, agent = %agent, "writeback request not claimed in time: offered to another agent");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &str = "Marker-Pa55word-7f3c";

    #[test]
    fn wipe_clears_every_password() {
        let mut ops = [
            WritebackOperation::Reset {
                anchor: "a".into(),
                new_password: MARKER.into(),
            },
            WritebackOperation::Change {
                anchor: "a".into(),
                old_password: MARKER.into(),
                new_password: MARKER.into(),
            },
            WritebackOperation::AdminReset {
                anchor: "a".into(),
                new_password: MARKER.into(),
                must_change: true,
            },
            WritebackOperation::Verify {
                anchor: "a".into(),
                password: MARKER.into(),
            },
        ];
        for op in ops.iter_mut() {
            wipe(op);
            let json = serde_json::to_string(op).unwrap();
            assert!(!json.contains(MARKER), "{json}");
            assert_eq!(op.anchor(), "a");
        }
    }

    fn row(state: WritebackState, agent: Option<&str>) -> WritebackRequestRecord {
        WritebackRequestRecord {
            tracking_id: "trk-1".into(),
            tenant_id: "t".into(),
            user_id: "u".into(),
            kind: "adminReset".into(),
            state,
            agent_id: agent.map(String::from),
            excluded: vec!["agent-0".into()],
            attempt: 2,
            envelopes: BTreeMap::new(),
            result: None,
            created_at: 0,
            dispatched_ms: None,
            deadline_ms: 20_000,
        }
    }

    #[test]
    fn the_deadline_ends_a_claim_as_unknown_and_anything_else_as_unavailable() {
        let (claimed, unclaimed) =
            deadline_results(&row(WritebackState::Claimed, Some("agent-1")), 20);
        assert_eq!(claimed.outcome, Outcome::OutcomeUnknown);
        assert_eq!(claimed.agent_id.as_deref(), Some("agent-1"));
        assert_eq!(claimed.tracking_id, "trk-1");
        let detail = claimed.admin_detail.unwrap();
        assert!(
            detail.contains("at most once") && detail.contains("trk-1"),
            "{detail}"
        );
        assert_eq!(
            claimed.message,
            person_message(Outcome::OutcomeUnknown, None, "adminReset")
        );
        assert_eq!(unclaimed.outcome, Outcome::AgentUnavailable);
        assert_eq!(unclaimed.agent_id, None);
        let detail = unclaimed.admin_detail.unwrap();
        assert!(detail.contains("agent-0, agent-1"), "{detail}");
    }

    #[test]
    fn a_person_never_sees_the_admin_detail() {
        let (claimed, _) = deadline_results(&row(WritebackState::Claimed, Some("a")), 20);
        assert!(person_view(claimed).admin_detail.is_none());
    }
}
