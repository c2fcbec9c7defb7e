//! The per-process part of writeback that the process state holds: this instance's id and the
//! wake-ups of the dispatcher and of the requests waiting for a result.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// This process's writeback coordination.
pub struct Hub {
    /// Random per process: names this process in `agent_presence`.
    pub instance_id: String,
    pub(super) dispatch: Notify,
    pub(super) done: Notify,
    pub(super) waiters: AtomicUsize,
    pub(super) started: AtomicBool,
    pub(super) last_sweep_ms: AtomicI64,
    /// Set when the process shuts down ([`drain`]): the wall-clock millisecond by which the
    /// requests this process waits for are answered; 0 while serving.
    pub(super) drain_by_ms: AtomicI64,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Hub {
            instance_id: tenant::secrets::new_id(),
            dispatch: Notify::new(),
            done: Notify::new(),
            waiters: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            last_sweep_ms: AtomicI64::new(0),
            drain_by_ms: AtomicI64::new(0),
        }
    }

    /// The end of the shutdown grace period once draining, else `None`.
    pub(super) fn draining(&self) -> Option<i64> {
        Some(self.drain_by_ms.load(Ordering::SeqCst)).filter(|&t| t > 0)
    }

    /// Wakes this process's dispatcher (a request was queued, an agent connected).
    pub fn wake(&self) {
        self.dispatch.notify_one();
    }

    /// Wakes the requests waiting in this process (a result arrived).
    pub fn results_arrived(&self) {
        self.done.notify_waiters();
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("instance_id", &self.instance_id)
            .finish()
    }
}
