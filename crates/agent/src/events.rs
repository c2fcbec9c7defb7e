//! The agent's local event log: JSON lines in `DATA_DIR/events.jsonl` (id, time, level, code,
//! message, details, and for writeback the numeric `eventId` and the request's `trackingId`).
//! Admin-facing: DNs and server diagnostics may appear here, secrets never.
//!
//! The file rotates at [`MAX_BYTES`]: `events.jsonl` → `events.1.jsonl` → … →
//! `events.{KEEP}.jsonl`, the oldest dropped. [`EventLog::read`] and [`EventLog::query`] read
//! the rotated files too, oldest first.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// Numeric ids of the change-notification events (35xxx; 31xxx–34xxx are writeback's and
/// pass-through sign-in's, in `proto::writeback::events`). Listed in docs/events.md.
pub mod ids {
    /// Change notification is watching a connector's directory.
    pub const NOTIFY_STARTED: u32 = 35001;
    /// The notification connection dropped or could not be opened; retrying with backoff.
    pub const NOTIFY_DISCONNECTED: u32 = 35002;
    /// Watching again after a drop (a delta cycle runs to catch up).
    pub const NOTIFY_RECONNECTED: u32 = 35003;
    /// The directory does not support or refused notification: the schedule alone drives
    /// deltas for this connector.
    pub const NOTIFY_FALLBACK: u32 = 35004;
    /// Change notification is turned off by configuration.
    pub const NOTIFY_OFF: u32 = 35005;
    /// A synced root no longer exists: it is not watched, only read again with a long backoff.
    pub const NOTIFY_ROOT_MISSING: u32 = 35006;
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
    /// The PasswordResetService-style numeric id (31001, 33004, …), writeback events only.
    #[serde(default, rename = "eventId", skip_serializing_if = "Option::is_none")]
    pub event_id: Option<u32>,
    /// The writeback request's tracking id (the one the person and the cloud audit log see).
    #[serde(
        default,
        rename = "trackingId",
        skip_serializing_if = "Option::is_none"
    )]
    pub tracking_id: Option<String>,
}

impl Event {
    /// One readable line: `2026-11-25T22:10:04Z error 33004 [trk] writeback.accessDenied: message`.
    pub fn display(&self) -> String {
        let level = match self.level {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        };
        let mut out = format!("{} {level:<7}", rfc3339(self.time));
        if let Some(id) = self.event_id {
            out.push_str(&format!(" {id}"));
        }
        if let Some(t) = &self.tracking_id {
            out.push_str(&format!(" [{t}]"));
        }
        out.push_str(&format!(" {}: {}", self.code, self.message));
        out
    }
}

/// `YYYY-MM-DDThh:mm:ssZ` for epoch seconds (UTC).
fn rfc3339(t: proto::Epoch) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The live file rotates once it reaches this size.
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept (`events.1.jsonl` … `events.5.jsonl`).
pub const KEEP: usize = 5;

/// Serialises appends and rotation within the process (sync and writeback log concurrently).
static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Appends events to the log file.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
}

impl EventLog {
    pub fn open(data_dir: &Path) -> EventLog {
        EventLog {
            path: data_dir.join("events.jsonl"),
            max_bytes: MAX_BYTES,
            keep: KEEP,
        }
    }

    /// Rotates at `max_bytes`, keeping `keep` old files (tests use small values).
    pub fn with_rotation(mut self, max_bytes: u64, keep: usize) -> EventLog {
        self.max_bytes = max_bytes;
        self.keep = keep.max(1);
        self
    }

    /// `events.{n}.jsonl` beside the live file.
    fn rotated(&self, n: usize) -> PathBuf {
        self.path.with_file_name(format!("events.{n}.jsonl"))
    }

    /// Every file, oldest first.
    fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = (1..=self.keep).rev().map(|n| self.rotated(n)).collect();
        v.push(self.path.clone());
        v
    }

    fn rotate_if_full(&self) -> std::io::Result<()> {
        let len = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if len < self.max_bytes {
            return Ok(());
        }
        match std::fs::remove_file(self.rotated(self.keep)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for n in (1..self.keep).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(&self.path, self.rotated(1))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data directory the log lives in.
    pub fn data_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Writes one event; a failure to write is reported through tracing, never fatal.
    pub fn write(
        &self,
        level: Level,
        code: &str,
        message: impl Into<String>,
        details: serde_json::Value,
    ) -> Event {
        self.record(level, code, None, None, message, details)
    }

    /// Writes one event with a numeric event id and a writeback tracking id.
    pub fn record(
        &self,
        level: Level,
        code: &str,
        event_id: Option<u32>,
        tracking_id: Option<&str>,
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
            event_id,
            tracking_id: tracking_id.map(str::to_string),
        };
        let line = serde_json::to_string(&event).unwrap_or_default();
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let result = {
            let _guard = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            self.rotate_if_full().and_then(|()| {
                opts.open(&self.path)
                    .and_then(|mut f| writeln!(f, "{line}"))
            })
        };
        if let Err(e) = result {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the event log");
        }
        let id = event_id.unwrap_or(0);
        let tracking = tracking_id.unwrap_or("");
        match level {
            Level::Info => tracing::info!(code, id, tracking, "{}", event.message),
            Level::Warning => tracing::warn!(code, id, tracking, "{}", event.message),
            Level::Error => tracing::error!(code, id, tracking, "{}", event.message),
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

    /// Events at or after `since` (epoch seconds), oldest first, rotated files included.
    /// Unreadable lines are skipped.
    pub fn read(&self, since: Option<proto::Epoch>) -> std::io::Result<Vec<Event>> {
        self.query(since, None)
    }

    /// Events at or after `since` and, when given, of the writeback request `tracking_id`,
    /// oldest first, rotated files included.
    pub fn query(
        &self,
        since: Option<proto::Epoch>,
        tracking_id: Option<&str>,
    ) -> std::io::Result<Vec<Event>> {
        let mut out = Vec::new();
        for path in self.files() {
            let f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in std::io::BufReader::new(f).lines() {
                let line = line?;
                let Ok(e) = serde_json::from_str::<Event>(&line) else {
                    continue;
                };
                if since.is_some_and(|s| e.time < s) {
                    continue;
                }
                if tracking_id.is_some_and(|t| e.tracking_id.as_deref() != Some(t)) {
                    continue;
                }
                out.push(e);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn old_lines_without_ids_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path());
        std::fs::write(
            log.path(),
            "{\"id\":\"a\",\"time\":5,\"level\":\"info\",\"code\":\"agent.started\",\"message\":\"m\"}\n",
        )
        .unwrap();
        let read = log.read(None).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].event_id, None);
        assert_eq!(read[0].tracking_id, None);
        let line = serde_json::to_string(&read[0]).unwrap();
        assert!(
            !line.contains("eventId") && !line.contains("trackingId"),
            "{line}"
        );
    }

    #[test]
    fn query_by_tracking_id_and_display() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path());
        log.info("agent.started", "started", json!({}));
        log.record(
            Level::Info,
            "writeback.reset.started",
            Some(31001),
            Some("trk-1"),
            "reset started",
            json!({}),
        );
        log.record(
            Level::Error,
            "writeback.accessDenied",
            Some(33004),
            Some("trk-2"),
            "denied",
            json!({}),
        );
        let one = log.query(None, Some("trk-1")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].event_id, Some(31001));
        let line = one[0].display();
        assert!(
            line.contains(" 31001 [trk-1] writeback.reset.started: reset started"),
            "{line}"
        );
        assert!(line.starts_with("20"), "{line}");
        assert_eq!(log.query(None, None).unwrap().len(), 3);
        assert!(log.query(Some(i64::MAX), None).unwrap().is_empty());
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn the_log_rotates_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).with_rotation(300, 2);
        for i in 0..40 {
            log.record(
                Level::Info,
                "test.line",
                None,
                Some(&format!("t{i}")),
                "x".repeat(100),
                json!({}),
            );
        }
        assert!(dir.path().join("events.1.jsonl").exists());
        assert!(dir.path().join("events.2.jsonl").exists());
        assert!(!dir.path().join("events.3.jsonl").exists());
        for p in [log.path().to_path_buf(), dir.path().join("events.1.jsonl")] {
            // One line past the limit at most.
            assert!(
                std::fs::metadata(&p).unwrap().len() < 600,
                "{}",
                p.display()
            );
        }
        let all = log.read(None).unwrap();
        assert!(all.len() < 40, "old files were dropped");
        let last = all.last().unwrap();
        assert_eq!(last.tracking_id.as_deref(), Some("t39"));
        // Oldest first across files.
        let ids: Vec<u32> = all
            .iter()
            .map(|e| e.tracking_id.as_ref().unwrap()[1..].parse().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(log.query(None, Some("t39")).unwrap().len(), 1);
    }
}
