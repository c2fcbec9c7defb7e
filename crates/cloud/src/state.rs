//! Shared state of one cloud process. Everything durable lives in the store; what is here is
//! either configuration or per-process coordination.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use store::Store;
use tenant::clock::Clock;

use crate::config::Config;
use crate::metrics::Metrics;

/// The metrics middleware and `/metrics` take only the counters, not the whole state.
impl axum::extract::FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// Bounds the password checks running at once: each Argon2id check holds 19 MiB, so without
    /// this a burst of sign-ins could exhaust memory.
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// Agents connected to `/api/v1/agent/ws` in this process, by agent id.
    pub pushes: Arc<Mutex<HashMap<String, PushChannel>>>,
    /// This process's side of password writeback: its instance id, the dispatcher's wake-up and
    /// the waiting requests' wake-up.
    pub writeback: Arc<crate::writeback::hub::Hub>,
    /// Per source address limits on sign-in and reset starts (see [`crate::limits`]).
    pub address_limits: Arc<crate::limits::buckets::AddressLimits>,
    /// The key of known-device cookies, read from the database once.
    pub device_key: Arc<tokio::sync::OnceCell<String>>,
    /// The key that seals the OIDC signing keys, read from its file once.
    pub oidc_kek: Arc<tokio::sync::OnceCell<zeroize::Zeroizing<Vec<u8>>>>,
    /// What this process last saw of the SMS and voice gateways.
    pub sms_health: Arc<crate::sms::Health>,
}

/// One connected agent's push socket: its tenant, a connection number (so a stale socket's
/// cleanup does not remove a newer one) and the queue its socket task sends from.
#[derive(Clone, Debug)]
pub struct PushChannel {
    pub tenant_id: String,
    pub connection: u64,
    pub sender: tokio::sync::mpsc::Sender<proto::sync::AgentPush>,
}

impl AppState {
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Config) -> Self {
        AppState {
            store,
            clock,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            password_checks: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map(|n| n.get() * 2)
                    .unwrap_or(4),
            )),
            pushes: Arc::new(Mutex::new(HashMap::new())),
            writeback: Arc::new(crate::writeback::hub::Hub::new()),
            address_limits: Arc::new(crate::limits::buckets::AddressLimits::default()),
            device_key: Arc::new(tokio::sync::OnceCell::new()),
            oidc_kek: Arc::new(tokio::sync::OnceCell::new()),
            sms_health: Arc::new(crate::sms::Health::default()),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}
