//! `dirbridge agent run`: the service loop. Each round sends a heartbeat, reads the cloud's
//! settings, runs a delta cycle (a full one every full interval, and at start), then waits the
//! delta interval, until shut down, or until the cloud pushes `SyncNow` on the push socket
//! ([`crate::push`], kept open alongside the timers), which runs a cycle right away. Errors
//! become events and the loop goes on; only a revoked registration stops it.

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

/// Runs until `shutdown` completes (Ctrl-C in the CLI) or the agent is revoked. Returns the
/// number of cycles run.
pub async fn run(
    engine: &mut Engine,
    shutdown: impl Future<Output = ()>,
) -> Result<u64, AgentError> {
    tokio::pin!(shutdown);
    let events = engine.events().clone();
    events.info(
        "agent.started",
        "the agent started",
        json!({ "version": crate::identity::VERSION }),
    );
    let mut last_full: Option<i64> = None;
    let mut status = "starting".to_string();
    let mut cycles = 0u64;
    // The push socket lives in its own task; it ends when `pushes` is dropped (on return).
    let (push_tx, mut pushes) = tokio::sync::mpsc::channel::<AgentPush>(4);
    let listener = tokio::spawn(crate::push::listen(
        engine.link().clone(),
        events.clone(),
        push_tx,
    ));
    let _listener = AbortOnDrop(listener);
    // Set by a pushed `SyncNow { full: true }`: the next cycle is a full one.
    let mut force_full = false;
    loop {
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
            _ = &mut shutdown => {
                events.info("agent.stopped", "the agent stopped", json!({ "cycles": cycles }));
                return Ok(cycles);
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
