//! Change notification for `agent run`: one [`ldap::notify::Watcher`] per connector (OpenLDAP
//! syncrepl refreshAndPersist per synced root, AD's notification control on the naming
//! context). A signal only wakes the service loop, which runs the normal delta cycle; the delta
//! engine stays the only source of what changed. When a directory does not support or refuses
//! notification, the connector is left to the schedule, with an event saying why and how to
//! fix it. Events: 35001–35005 ([`crate::events::ids`]).
//!
//! On by default; `change-notification = false` in `DATA_DIR/agent.toml` or
//! `DIRBRIDGE_AGENT_CHANGE_NOTIFICATION=false` turns it off (the environment wins).

use std::path::Path;

use ldap::notify::{Mechanism, WatchEvent, WatchOptions, Watcher};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::connector::{self, ConnectorConfig, DirectoryKind};
use crate::events::{ids, EventLog, Level};

/// The `agent.toml` key.
pub const SETTING: &str = "change-notification";
/// The environment variable that overrides it.
pub const ENV: &str = "DIRBRIDGE_AGENT_CHANGE_NOTIFICATION";

fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Whether change notification is on for the agent in `data_dir`: the environment variable
/// [`ENV`], else [`SETTING`] in `agent.toml`, else on. An unreadable value is an error that
/// names the setting.
pub fn enabled(data_dir: &Path) -> Result<bool, String> {
    if let Ok(v) = std::env::var(ENV) {
        return parse_flag(&v).ok_or_else(|| format!("{ENV}={v:?}: use true or false"));
    }
    let path = data_dir.join("agent.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(true);
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    match table.get(SETTING) {
        None => Ok(true),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(other) => Err(format!(
            "{}: {SETTING} = {other} is not a boolean: use true or false",
            path.display()
        )),
    }
}

/// Which roots each watcher watches instead of the connector's own (tests use it to watch a
/// root the server refuses).
pub type RootsOverride = Option<Vec<String>>;

/// Starts a watcher for every connector in `data_dir`. Each signal is a `()` on `wake` (a full
/// channel already holds a wake-up). The returned tasks end with the watchers when aborted.
pub async fn start(
    data_dir: &Path,
    events: &EventLog,
    wake: mpsc::Sender<()>,
    roots_override: RootsOverride,
    missing_backoff: Option<ldap::notify::Backoff>,
) -> Vec<JoinHandle<()>> {
    let connectors = match connector::list(data_dir) {
        Ok(c) => c,
        Err(e) => {
            events.record(
                Level::Warning,
                "sync.notify.fallback",
                Some(ids::NOTIFY_FALLBACK),
                None,
                format!("change notification could not start ({e}): deltas run on the schedule"),
                json!({}),
            );
            return Vec::new();
        }
    };
    let mut tasks = Vec::new();
    for cfg in connectors {
        let password = match connector::password(data_dir, &cfg.name) {
            Ok(p) => p,
            Err(e) => {
                events.record(
                    Level::Warning,
                    "sync.notify.fallback",
                    Some(ids::NOTIFY_FALLBACK),
                    None,
                    format!(
                        "change notification for connector {} could not start ({e}): its deltas run on the schedule",
                        cfg.name
                    ),
                    json!({ "connector": cfg.name }),
                );
                continue;
            }
        };
        let mechanism = match cfg.kind {
            DirectoryKind::Ad => Mechanism::AdNotification,
            DirectoryKind::Openldap => Mechanism::SyncreplPersist,
        };
        let roots = roots_override.clone().unwrap_or_else(|| cfg.roots());
        let mut options = WatchOptions::new(
            cfg.connect_options(),
            cfg.bind_dn.clone(),
            password,
            mechanism,
            roots,
        );
        options.naming_context = cfg.base_dn.clone();
        options.filter = cfg.object_filter();
        if let Some(b) = missing_backoff {
            options.missing_backoff = b;
        }
        let watcher = Watcher::start(options);
        tasks.push(tokio::spawn(forward(
            cfg,
            mechanism,
            watcher,
            wake.clone(),
            events.clone(),
        )));
    }
    tasks
}

/// Turns one connector's watcher events into agent events and wake-ups.
async fn forward(
    cfg: ConnectorConfig,
    mechanism: Mechanism,
    mut watcher: Watcher,
    wake: mpsc::Sender<()>,
    events: EventLog,
) {
    let name = cfg.name.as_str();
    while let Some(event) = watcher.next().await {
        match event {
            WatchEvent::Watching {
                root,
                reconnected: false,
            } => {
                events.record(
                    Level::Info,
                    "sync.notify.started",
                    Some(ids::NOTIFY_STARTED),
                    None,
                    format!("connector {name}: {mechanism} is watching {root}; changes start a delta cycle at once"),
                    json!({ "connector": name, "root": root, "mechanism": mechanism.to_string() }),
                );
            }
            WatchEvent::Watching {
                root,
                reconnected: true,
            } => {
                events.record(
                    Level::Info,
                    "sync.notify.reconnected",
                    Some(ids::NOTIFY_RECONNECTED),
                    None,
                    format!("connector {name}: {mechanism} is watching {root} again; a delta cycle catches up on what changed meanwhile"),
                    json!({ "connector": name, "root": root, "mechanism": mechanism.to_string() }),
                );
                let _ = wake.try_send(());
            }
            WatchEvent::Changed { .. } => {
                let _ = wake.try_send(());
            }
            WatchEvent::Disconnected {
                root,
                error,
                retry_in,
            } => {
                events.record(
                    Level::Warning,
                    "sync.notify.disconnected",
                    Some(ids::NOTIFY_DISCONNECTED),
                    None,
                    format!(
                        "connector {name}: change notification on {root} is not connected ({error}); retrying in {} s, deltas run on the schedule meanwhile",
                        retry_in.as_secs().max(1)
                    ),
                    json!({
                        "connector": name,
                        "root": root,
                        "mechanism": mechanism.to_string(),
                        "diagnostic": error.diagnostic(),
                        "retryInSecs": retry_in.as_secs_f64(),
                    }),
                );
            }
            WatchEvent::RootMissing { root, retry_in } => {
                events.record(
                    Level::Warning,
                    "sync.notify.rootMissing",
                    Some(ids::NOTIFY_ROOT_MISSING),
                    None,
                    format!(
                        "connector {name}: the synced root {root} no longer exists (renamed, moved or deleted), so it is not watched; the agent checks again in {} s and deltas run on the schedule meanwhile. To fix: {}",
                        retry_in.as_secs().max(1),
                        ldap::notify::ROOT_MISSING_FIX
                    ),
                    json!({
                        "connector": name,
                        "root": root,
                        "mechanism": mechanism.to_string(),
                        "retryInSecs": retry_in.as_secs_f64(),
                        "fix": ldap::notify::ROOT_MISSING_FIX,
                    }),
                );
            }
            WatchEvent::Unsupported { root, error } => {
                events.record(
                    Level::Warning,
                    "sync.notify.fallback",
                    Some(ids::NOTIFY_FALLBACK),
                    None,
                    format!(
                        "connector {name}: {error}, so changes below {root} reach the cloud on the sync schedule (the delta interval) instead of at once. To fix: {}",
                        error.fix()
                    ),
                    json!({
                        "connector": name,
                        "root": root,
                        "mechanism": mechanism.to_string(),
                        "diagnostic": error.diagnostic(),
                        "fix": error.fix(),
                    }),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_read_from_agent_toml_and_defaults_to_on() {
        // (The environment variable is not set in unit tests.)
        if std::env::var(ENV).is_ok() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(enabled(dir.path()), Ok(true));
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "cloud-url = \"http://x\"\n").unwrap();
        assert_eq!(enabled(dir.path()), Ok(true));
        std::fs::write(
            &p,
            "cloud-url = \"http://x\"\nchange-notification = false\n",
        )
        .unwrap();
        assert_eq!(enabled(dir.path()), Ok(false));
        std::fs::write(&p, "change-notification = \"no\"\n").unwrap();
        let e = enabled(dir.path()).unwrap_err();
        assert!(
            e.contains("change-notification") && e.contains("true or false"),
            "{e}"
        );
    }

    #[test]
    fn flags_parse() {
        assert_eq!(parse_flag(" Off "), Some(false));
        assert_eq!(parse_flag("1"), Some(true));
        assert_eq!(parse_flag("maybe"), None);
    }
}
