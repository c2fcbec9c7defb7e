//! "Must change at next sign-in" for an administrator's reset on OpenLDAP, never lost.
//!
//! The reset is two operations there: the password modify extended operation (the only way to
//! hand slapd a cleartext password it hashes and checks against ppolicy whatever its
//! configuration: a plain `userPassword` modify is stored in clear unless the ppolicy overlay
//! has `olcPPolicyHashCleartext: TRUE`, which the service account cannot read), then a modify of
//! `pwdReset: TRUE` (the exop itself clears `pwdReset`). So before the first, the agent records
//! a marker in its data dir (`must-change/`, one file per connector and user); the second
//! removes it. If the second fails, or the agent stops between the two, the marker stays and
//! [`repair`] sets the flag on the next service cycle until it succeeds: whenever the password
//! changed, the flag ends up set. (A marker left by a stop *before* the password operation sets
//! the flag on an unchanged password: the cautious side; that request ended `outcomeUnknown`.)

use std::path::{Path, PathBuf};

use ldap::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::connector;
use crate::events::{EventLog, Level};
use crate::AgentError;

/// The folder of the markers in the agent's data dir.
pub const DIR: &str = "must-change";

/// One pending flag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub connector: String,
    pub anchor: String,
    pub dn: String,
    /// Unix seconds when the reset started.
    pub since: i64,
}

fn path(data_dir: &Path, connector: &str, anchor: &str) -> PathBuf {
    let key = Sha256::digest(format!("{connector}\n{anchor}").as_bytes());
    data_dir
        .join(DIR)
        .join(format!("{}.json", hex::encode(&key[..16])))
}

/// Records that `dn`'s password is about to be reset with "must change" (durably: written,
/// synced and renamed into place before the password operation runs).
pub(crate) fn mark(data_dir: &Path, p: &Pending) -> Result<PathBuf, AgentError> {
    let dir = data_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(AgentError::io(&dir))?;
    let target = path(data_dir, &p.connector, &p.anchor);
    let tmp = target.with_extension("tmp");
    let body = serde_json::to_vec(p).map_err(|e| AgentError::Config(e.to_string()))?;
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp).map_err(AgentError::io(&tmp))?;
        f.write_all(&body).map_err(AgentError::io(&tmp))?;
        f.sync_all().map_err(AgentError::io(&tmp))?;
    }
    std::fs::rename(&tmp, &target).map_err(AgentError::io(&target))?;
    Ok(target)
}

/// The flag is set (or the password did not change): the marker goes.
pub(crate) fn clear(marker: &Path) {
    let _ = std::fs::remove_file(marker);
}

/// The flags still to set.
pub fn pending(data_dir: &Path) -> Vec<(PathBuf, Pending)> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(DIR)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let body = std::fs::read(&p).ok()?;
            Some((p, serde_json::from_slice(&body).ok()?))
        })
        .collect()
}

/// Sets every pending flag it can (as the connector's service account) and logs what it did.
/// Returns how many are still pending.
pub async fn repair(data_dir: &Path, events: &EventLog) -> usize {
    let mut left = 0;
    for (marker, p) in pending(data_dir) {
        match set_flag(data_dir, &p).await {
            Err(ldap::LdapError::NoSuchObject { .. }) => {
                clear(&marker);
                events.record(
                    Level::Info,
                    "writeback.adminReset.mustChangeDropped",
                    None,
                    None,
                    format!("{}: \"must change the password at next sign-in\" was pending, but the entry no longer exists", p.dn),
                    json!({ "connector": p.connector, "dn": p.dn, "since": p.since }),
                );
            }
            Ok(()) => {
                clear(&marker);
                events.record(
                    Level::Info,
                    "writeback.adminReset.mustChangeRepaired",
                    None,
                    None,
                    format!(
                        "{}: \"must change the password at next sign-in\" is set now; an administrator's reset (started at {}) had changed the password without it",
                        p.dn, p.since
                    ),
                    json!({ "connector": p.connector, "dn": p.dn, "since": p.since }),
                );
            }
            Err(e) => {
                left += 1;
                events.record(
                    Level::Warning,
                    "writeback.adminReset.mustChangePending",
                    None,
                    None,
                    format!(
                        "{}: an administrator's reset changed the password, but \"must change the password at next sign-in\" could not be set yet ({e}); the agent tries again every cycle. To fix: give the service account write access to pwdReset below the synced OUs (an olcAccess rule)",
                        p.dn
                    ),
                    json!({ "connector": p.connector, "dn": p.dn, "since": p.since, "diagnostic": e.diagnostic() }),
                );
            }
        }
    }
    left
}

async fn set_flag(data_dir: &Path, p: &Pending) -> Result<(), ldap::LdapError> {
    let config = connector::load(data_dir, &p.connector)
        .map_err(|e| ldap::LdapError::Config(e.to_string()))?;
    let password = connector::password(data_dir, &p.connector)
        .map_err(|e| ldap::LdapError::Config(e.to_string()))?;
    let mut c = Connection::connect(&config.connect_options()).await?;
    c.simple_bind(&config.bind_dn, &password).await?;
    let set = c.openldap_set_must_change(&p.dn, true).await;
    let _ = c.unbind().await;
    set
}
