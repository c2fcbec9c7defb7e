//! The decisions of the diff, pure: what an object read now means against the connector space,
//! and whether a run's deletes may be exported.

use proto::sync::{AgentSyncSettings, SyncObject};

use super::map::hash;

/// What to do with an object read from the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Not in the space: export as new.
    Add,
    /// In the space with another hash: export again.
    Update,
    /// Same as what the cloud accepted last: nothing to send.
    Unchanged,
}

/// Compares `object` with the hash the space holds for its anchor.
pub fn diff(space_hash: Option<&str>, object: &SyncObject) -> Change {
    match space_hash {
        None => Change::Add,
        Some(h) if h == hash(object) => Change::Unchanged,
        Some(_) => Change::Update,
    }
}

/// What happens to a run's deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteDecision {
    Export,
    /// Above the threshold and not allowed once: export none of them.
    Stop,
    /// Staging: nothing at all is exported.
    Staged,
}

/// The deletion threshold rule: a run with deletes that would take the deletes of the window
/// (`recent`, already exported by earlier runs within `deletion_window_secs`, plus this run's
/// `count`) above the threshold exports none of them, unless an admin allowed the next run's
/// deletes once. Counting over the window, not per run, keeps quick delta cycles from slicing a
/// mass delete into runs each under the threshold.
pub fn deletes(count: u32, recent: u32, settings: &AgentSyncSettings) -> DeleteDecision {
    if settings.staging {
        DeleteDecision::Staged
    } else if count > 0
        && count.saturating_add(recent) > settings.deletion_threshold
        && !settings.allow_deletes_once
    {
        DeleteDecision::Stop
    } else {
        DeleteDecision::Export
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::sync::{ObjectKind, SyncAttributes};

    fn obj(name: &str) -> SyncObject {
        SyncObject {
            anchor: "AQID".into(),
            kind: ObjectKind::User,
            attributes: SyncAttributes {
                display_name: Some(name.into()),
                distinguished_name: "CN=x".into(),
                ..Default::default()
            },
            members: vec![],
        }
    }

    fn settings(threshold: u32, allow: bool, staging: bool) -> AgentSyncSettings {
        AgentSyncSettings {
            deletion_threshold: threshold,
            deletion_window_secs: 3600,
            allow_deletes_once: allow,
            staging,
            delta_interval_secs: 30,
            full_interval_secs: 86400,
        }
    }

    #[test]
    fn only_changed_objects_are_exported() {
        let a = obj("A");
        assert_eq!(diff(None, &a), Change::Add);
        assert_eq!(diff(Some(&hash(&a)), &a), Change::Unchanged);
        assert_eq!(diff(Some(&hash(&a)), &obj("B")), Change::Update);
    }

    #[test]
    fn deletes_over_threshold_stop_export() {
        let open = settings(3, false, false);
        assert_eq!(deletes(3, 0, &open), DeleteDecision::Export);
        assert_eq!(deletes(4, 0, &open), DeleteDecision::Stop);
        assert_eq!(
            deletes(4, 0, &settings(3, true, false)),
            DeleteDecision::Export
        );
        assert_eq!(
            deletes(0, 0, &settings(3, false, true)),
            DeleteDecision::Staged
        );
    }

    #[test]
    fn deletes_of_earlier_runs_in_the_window_count_too() {
        let open = settings(5, false, false);
        assert_eq!(deletes(2, 3, &open), DeleteDecision::Export);
        assert_eq!(deletes(3, 3, &open), DeleteDecision::Stop);
        // A run without deletes has nothing to stop.
        assert_eq!(deletes(0, 9, &open), DeleteDecision::Export);
        assert_eq!(
            deletes(3, 3, &settings(5, true, false)),
            DeleteDecision::Export
        );
    }
}
