//! `dirbridge agent run`: the service loop. Each round sends a heartbeat, reads the cloud's
//! settings, runs a delta cycle (a full one every full interval, and at start), then waits the
//! delta interval, until shut down, or until the cloud pushes `SyncNow` on the push socket
//! ([`crate::push`], kept open alongside the timers), which runs a cycle right away. Errors
//! become events and the loop goes on; only a revoked registration stops it.
//!
//! Change notification ([`crate::sync::notify`], on by default) watches every connector's
//! directory from the start: a signal wakes the loop, which waits [`ServiceOptions::debounce`]
//! so a burst of changes becomes one cycle (and at least [`ServiceOptions::min_gap`] since the
//! last cycle ended, so constant churn costs one cycle a second) and then runs the normal delta
//! cycle. Cycles never
//! overlap (one loop runs them); a signal during a cycle runs one more cycle after it. The
//! schedule stays as the backstop, and is all there is for a directory that does not support
//! notification.
//!
//! Pushed writeback requests do not wait for the loop: a router task takes every push as it
//! arrives and runs each writeback request in its own task ([`crate::writeback::handle`]),
//! while a sync cycle may be running.

use std::future::Future;
use std::time::Duration;

use proto::sync::{AgentPush, Heartbeat, RunOutcome, SyncRun};
use serde_json::json;

use crate::link::LinkError;
use crate::sync::Engine;
use crate::AgentError;

/// Words for admins on what the last cycle did.
pub fn status_of(runs: &[SyncRun]) -> String {
    if runs
        .iter()
        .any(|r| r.outcome == RunOutcome::StoppedDeletionThreshold)
    {
        return "stopped: deletion threshold".into();
    }
    if runs.iter().any(|r| r.outcome == RunOutcome::Failed) {
        return "sync failed".into();
    }
    if runs.iter().any(|r| r.outcome == RunOutcome::Staged) {
        return "staging".into();
    }
    "idle".into()
}

/// How `agent run` behaves beyond the cloud's settings.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Watch the directories for changes (see [`crate::sync::notify`]).
    pub change_notification: bool,
    /// How long a change signal waits for more before the cycle starts.
    pub debounce: Duration,
    /// The least time from the end of one cycle to the start of a cycle woken by a change
    /// signal: a directory that changes all the time (logon timestamps, a bulk import, every
    /// password written back) gets at most one cycle per gap instead of cycles back to back.
    pub min_gap: Duration,
    /// Roots every watcher watches instead of its connector's own (tests: a root the server
    /// refuses).
    pub notify_roots: crate::sync::notify::RootsOverride,
    /// How often a synced root that no longer exists is read again (default: the watcher's,
    /// 30 s doubling to 15 minutes; tests shorten it).
    pub notify_missing_backoff: Option<ldap::notify::Backoff>,
}

impl Default for ServiceOptions {
    fn default() -> ServiceOptions {
        ServiceOptions {
            change_notification: true,
            debounce: Duration::from_millis(200),
            min_gap: Duration::from_secs(1),
            notify_roots: None,
            notify_missing_backoff: None,
        }
    }
}

/// Runs until `shutdown` completes (Ctrl-C in the CLI) or the agent is revoked, with change
/// notification as `agent.toml` / `DIRBRIDGE_AGENT_CHANGE_NOTIFICATION` say (default on).
/// Returns the number of cycles run.
pub async fn run(
    engine: &mut Engine,
    shutdown: impl Future<Output = ()>,
) -> Result<u64, AgentError> {
    let events = engine.events().clone();
    let change_notification = match crate::sync::notify::enabled(events.data_dir()) {
        Ok(on) => on,
        Err(e) => {
            events.warn(
                "agent.config.invalid",
                format!("{e}; change notification stays on"),
                json!({}),
            );
            true
        }
    };
    let options = ServiceOptions {
        change_notification,
        ..ServiceOptions::default()
    };
    run_with(engine, shutdown, options).await
}

/// [`run`] with explicit options.
pub async fn run_with(
    engine: &mut Engine,
    shutdown: impl Future<Output = ()>,
    options: ServiceOptions,
) -> Result<u64, AgentError> {
    tokio::pin!(shutdown);
    let events = engine.events().clone();
    events.info(
        "agent.started",
        "the agent started",
        json!({ "version": crate::identity::VERSION }),
    );
    // Change signals: a full channel already holds a wake-up, so bursts coalesce.
    let (wake_tx, mut wakes) = tokio::sync::mpsc::channel::<()>(1);
    let _watchers: Vec<AbortOnDrop> = if options.change_notification {
        crate::sync::notify::start(
            events.data_dir(),
            &events,
            wake_tx,
            options.notify_roots.clone(),
            options.notify_missing_backoff,
        )
        .await
        .into_iter()
        .map(AbortOnDrop)
        .collect()
    } else {
        events.record(
            crate::events::Level::Info,
            "sync.notify.off",
            Some(crate::events::ids::NOTIFY_OFF),
            None,
            format!(
                "change notification is off ({} or {} in agent.toml): deltas run on the schedule only",
                crate::sync::notify::ENV,
                crate::sync::notify::SETTING
            ),
            json!({}),
        );
        Vec::new()
    };
    let mut last_full: Option<i64> = None;
    let mut status = "starting".to_string();
    let mut cycles = 0u64;
    // The push socket lives in its own task; it ends when `pushes` is dropped (on return).
    let (push_tx, raw_pushes) = tokio::sync::mpsc::channel::<AgentPush>(16);
    let (sync_tx, mut pushes) = tokio::sync::mpsc::channel::<AgentPush>(4);
    let listener = tokio::spawn(crate::push::listen(
        engine.link().clone(),
        events.clone(),
        push_tx,
    ));
    let _listener = AbortOnDrop(listener);
    let writeback_on = crate::writeback::load_settings(events.data_dir())
        .ok()
        .flatten();
    if let Some(wb) = &writeback_on {
        events.record(
            crate::events::Level::Info,
            "writeback.service.started",
            Some(proto::writeback::events::SERVICE_STARTED),
            None,
            format!("password writeback is on (connector {})", wb.connector),
            json!({ "connector": wb.connector }),
        );
    }
    let router = tokio::spawn(route(
        raw_pushes,
        sync_tx,
        engine.link().clone(),
        engine.space().clone(),
        events.clone(),
    ));
    let _router = AbortOnDrop(router);
    // Set by a pushed `SyncNow { full: true }`: the next cycle is a full one.
    let mut force_full = false;
    loop {
        // An administrator's OpenLDAP reset that changed the password but not yet set
        // "must change at next sign-in" (the agent stopped, or the flag was refused) is
        // completed here, every cycle until it succeeds.
        crate::writeback::must_change::repair(events.data_dir(), &events).await;
        let hb = Heartbeat {
            version: crate::identity::VERSION.to_string(),
            status: Some(status.clone()),
        };
        let mut wait = Duration::from_secs(60);
        let mut revoked = matches!(engine.link().heartbeat(&hb).await, Err(LinkError::Revoked));
        if !revoked {
            match engine.link().config().await {
                Ok(settings) => {
                    wait = Duration::from_secs(u64::from(settings.delta_interval_secs.max(5)));
                    let now = crate::now();
                    let full = std::mem::take(&mut force_full)
                        || last_full
                            .is_none_or(|t| now - t >= i64::from(settings.full_interval_secs));
                    match engine.run_cycle(full).await {
                        Ok(runs) => {
                            cycles += 1;
                            if full {
                                last_full = Some(now);
                            }
                            status = status_of(&runs);
                        }
                        Err(AgentError::Cloud(LinkError::Revoked)) => revoked = true,
                        Err(e) => {
                            status = "sync failed".into();
                            events.error(
                                "agent.cycle.failed",
                                format!("sync cycle failed: {e}"),
                                json!({}),
                            );
                        }
                    }
                }
                Err(LinkError::Revoked) => revoked = true,
                Err(e) => {
                    events.warn(
                        "agent.cloud.unreachable",
                        format!("reading the sync settings failed: {e}"),
                        json!({}),
                    );
                }
            }
        }
        let cycle_ended = tenant::clock::monotonic();
        if revoked {
            events.error(
                "agent.revoked",
                "the cloud says this agent was revoked; stopping",
                json!({}),
            );
            return Err(LinkError::Revoked.into());
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Some(push) = pushes.recv() => {
                // Requests queued meanwhile are served by this one cycle.
                for p in std::iter::once(push).chain(std::iter::from_fn(|| pushes.try_recv().ok())) {
                    if let AgentPush::SyncNow { full } = p {
                        tracing::info!(full, "the cloud asked for a sync now");
                        force_full |= full;
                    }
                }
            }
            Some(()) = wakes.recv() => {
                // Let a burst settle, then one cycle covers it; and keep the gap since the
                // last cycle.
                let gap = options.min_gap.saturating_sub(cycle_ended.elapsed());
                tokio::time::sleep(options.debounce.max(gap)).await;
                while wakes.try_recv().is_ok() {}
                tracing::debug!("a directory reported a change: running a delta cycle");
            }
            _ = &mut shutdown => {
                if writeback_on.is_some() {
                    events.record(
                        crate::events::Level::Info,
                        "writeback.service.stopped",
                        Some(proto::writeback::events::SERVICE_STOPPED),
                        None,
                        "password writeback stopped with the agent",
                        json!({}),
                    );
                }
                events.info("agent.stopped", "the agent stopped", json!({ "cycles": cycles }));
                return Ok(cycles);
            }
        }
    }
}

/// Takes every push as it arrives: writeback requests each run in their own task at once,
/// the rest go to the service loop (which may be busy with a sync cycle).
async fn route(
    mut pushes: tokio::sync::mpsc::Receiver<AgentPush>,
    to_loop: tokio::sync::mpsc::Sender<AgentPush>,
    link: crate::link::Link,
    space: crate::space::Space,
    events: crate::events::EventLog,
) {
    while let Some(push) = pushes.recv().await {
        match push {
            AgentPush::Writeback { request } => {
                let (link, space, events) = (link.clone(), space.clone(), events.clone());
                tokio::spawn(async move {
                    let dir = events.data_dir().to_path_buf();
                    crate::writeback::handle(
                        &dir,
                        &link,
                        &space,
                        &events,
                        &request,
                        crate::writeback::ExecPolicy::default(),
                    )
                    .await;
                });
            }
            other => {
                // A full queue already holds a request to sync: this one adds nothing.
                let _ = to_loop.try_send(other);
            }
        }
    }
}

/// Aborts the push listener when the service loop returns, however it returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_writeback_push_runs_while_the_loop_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let events = crate::events::EventLog::open(dir.path());
        let space = crate::space::Space::open(dir.path()).await.unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let link = crate::link::Link::new("http://127.0.0.1:9", "agent-1", key).unwrap();
        let (raw_tx, raw_rx) = tokio::sync::mpsc::channel(4);
        // The loop's queue is full and nobody reads it: a sync cycle is running.
        let (sync_tx, _sync_rx) = tokio::sync::mpsc::channel(1);
        sync_tx
            .try_send(AgentPush::SyncNow { full: false })
            .unwrap();
        let _router = AbortOnDrop(tokio::spawn(route(
            raw_rx,
            sync_tx,
            link,
            space,
            events.clone(),
        )));
        raw_tx
            .send(AgentPush::SyncNow { full: true })
            .await
            .unwrap();
        let request = proto::writeback::SealedRequest {
            version: 1,
            tenant_id: "tenant-1".into(),
            agent_id: "agent-1".into(),
            tracking_id: "trk-busy".into(),
            expires_at: crate::now() + 60,
            encapsulated_key: String::new(),
            ciphertext: String::new(),
        };
        raw_tx.send(AgentPush::Writeback { request }).await.unwrap();
        // This data directory has no keys: the request is handled at once and refused (32004).
        let deadline = tenant::clock::monotonic() + Duration::from_secs(20);
        let handled = loop {
            let found = events.query(None, Some("trk-busy")).unwrap();
            if !found.is_empty() {
                break found;
            }
            assert!(
                tenant::clock::monotonic() < deadline,
                "the writeback request was not handled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            handled[0].event_id,
            Some(proto::writeback::events::DECRYPTION_ERROR)
        );
    }
}
