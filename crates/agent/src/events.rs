//! The agent's local event log: JSON lines in `DATA_DIR/events.jsonl` (id, time, level, code,
//! message, details). Admin-facing: DNs and server diagnostics may appear here, secrets never.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// One event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: String,
    pub time: proto::Epoch,
    pub level: Level,
    /// Stable code, e.g. `sync.run.finished`, `sync.object.skipped`.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// Appends events to the log file.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    pub fn open(data_dir: &Path) -> EventLog {
        EventLog {
            path: data_dir.join("events.jsonl"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event; a failure to write is reported through tracing, never fatal.
    pub fn write(
        &self,
        level: Level,
        code: &str,
        message: impl Into<String>,
        details: serde_json::Value,
    ) -> Event {
        let event = Event {
            id: uuid::Uuid::now_v7().to_string(),
            time: crate::now(),
            level,
            code: code.to_string(),
            message: message.into(),
            details,
        };
        let line = serde_json::to_string(&event).unwrap_or_default();
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let result = opts
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = result {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the event log");
        }
        match level {
            Level::Info => tracing::info!(code, "{}", event.message),
            Level::Warning => tracing::warn!(code, "{}", event.message),
            Level::Error => tracing::error!(code, "{}", event.message),
        }
        event
    }

    pub fn info(
        &self,
        code: &str,
        message: impl Into<String>,
        details: serde_json::Value,
    ) -> Event {
        self.write(Level::Info, code, message, details)
    }

    pub fn warn(
        &self,
        code: &str,
        message: impl Into<String>,
        details: serde_json::Value,
    ) -> Event {
        self.write(Level::Warning, code, message, details)
    }

    pub fn error(
        &self,
        code: &str,
        message: impl Into<String>,
        details: serde_json::Value,
    ) -> Event {
        self.write(Level::Error, code, message, details)
    }

    /// Events at or after `since` (epoch seconds), oldest first. Unreadable lines are skipped.
    pub fn read(&self, since: Option<proto::Epoch>) -> std::io::Result<Vec<Event>> {
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for line in std::io::BufReader::new(f).lines() {
            let line = line?;
            if let Ok(e) = serde_json::from_str::<Event>(&line) {
                if since.is_none_or(|s| e.time >= s) {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }
}
