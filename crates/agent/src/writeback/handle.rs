//! One pushed writeback request, end to end on the agent (docs/writeback.md, "One request, end
//! to end"): open it with the current sealing key (read from disk per request, because
//! `agent writeback enable` rolls `keys/sealing.key` while the service runs), with the replay
//! guard in the SQLite space → on refusal log 32004/32005 and stop (no claim) → claim it →
//! only if the cloud says proceed, run it ([`super::execute`]) → report the result. A
//! pass-through sign-in takes the same path without needing `writeback.json` (any connector
//! of the agent can check a password), and overlaps its claim with the directory lookup.

use std::path::Path;

use proto::writeback::{events as ids, Outcome, SealedRequest, WritebackResult};
use proto::Epoch;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::failure::{failure_result, Failure};
use super::{execute, ExecPolicy, OpenError, OpenPersistedError, Opener};
use crate::events::{EventLog, Level};
use crate::link::Link;
use crate::space::Space;
use crate::{connector, identity, AgentError};

/// `DATA_DIR/writeback.json`, written by `dirbridge agent writeback enable`.
pub const SETTINGS_FILE: &str = "writeback.json";

/// Which connector writeback writes to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WritebackSettings {
    pub connector: String,
    pub enabled_at: Epoch,
}

/// The writeback settings, or None when writeback was never enabled on this agent.
pub fn load_settings(data_dir: &Path) -> Result<Option<WritebackSettings>, AgentError> {
    let p = data_dir.join(SETTINGS_FILE);
    match std::fs::read_to_string(&p) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| AgentError::Config(format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io(&p)(e)),
    }
}

/// Handles one pushed request. Returns the result reported to the cloud, or None when the
/// request was refused, not ours to run (claim refused), or the claim could not be made.
pub async fn handle(
    data_dir: &Path,
    link: &Link,
    space: &Space,
    events: &EventLog,
    request: &SealedRequest,
    policy: ExecPolicy,
) -> Option<WritebackResult> {
    let tracking = request.tracking_id.as_str();
    // The key on disk now: an enable may have rolled it since the service started.
    let opener = match identity::load(data_dir) {
        Ok(id) => Opener::from_identity(&id),
        Err(e) => {
            events.record(
                Level::Error,
                "writeback.request.refused",
                Some(ids::DECRYPTION_ERROR),
                Some(tracking),
                format!("the writeback request could not be opened: the agent's keys could not be loaded ({e})"),
                json!({}),
            );
            return None;
        }
    };
    let op = match opener.open_persisted(request, crate::now(), space).await {
        Ok(op) => op,
        Err(e) => {
            let (level, id) = match &e {
                OpenPersistedError::Refused(
                    OpenError::DecryptionFailed | OpenError::Malformed(_),
                ) => (Level::Error, ids::DECRYPTION_ERROR),
                OpenPersistedError::Refused(_) => (Level::Warning, ids::ENVELOPE_REFUSED),
                OpenPersistedError::Guard(_) => (Level::Error, ids::ENVELOPE_REFUSED),
            };
            events.record(
                level,
                "writeback.request.refused",
                Some(id),
                Some(tracking),
                format!("writeback request refused, not claimed: {e}"),
                json!({ "tenantId": request.tenant_id, "agentId": request.agent_id, "expiresAt": request.expires_at }),
            );
            return None;
        }
    };
    if let proto::writeback::WritebackOperation::Verify { anchor, password } = &**op {
        let password = secrecy::SecretString::from(password.clone());
        return sign_in(data_dir, link, events, tracking, anchor, &password).await;
    }
    match link.writeback_claim(tracking).await {
        Ok(answer) if answer.proceed => {}
        Ok(answer) => {
            events.record(
                Level::Info,
                "writeback.request.notClaimed",
                None,
                Some(tracking),
                format!(
                    "the cloud gave the writeback request to another agent or it expired ({}); not run",
                    answer.reason.as_deref().unwrap_or("no reason given")
                ),
                json!({}),
            );
            return None;
        }
        Err(e) => {
            events.record(
                Level::Warning,
                "writeback.request.claimFailed",
                None,
                Some(tracking),
                format!("claiming the writeback request failed ({e}); not run"),
                json!({}),
            );
            return None;
        }
    }
    let mut result = run_claimed(data_dir, events, tracking, &op, policy).await;
    result.agent_id = Some(link.agent_id().to_string());
    if let Err(e) = link.writeback_result(&result).await {
        events.record(
            Level::Error,
            "writeback.result.unreported",
            None,
            Some(tracking),
            format!(
                "the result ({:?}) could not be reported to the cloud ({e}); the person will be told the outcome is unknown",
                result.outcome
            ),
            json!({ "outcome": result.outcome }),
        );
    }
    Some(result)
}

/// The connectors a pass-through sign-in looks in, with their service account passwords: the
/// writeback connector first when writeback is enabled, then every other connector. Writeback
/// need not be enabled: any registered agent with a connector can check a password.
pub fn sign_in_connectors(
    data_dir: &Path,
) -> Result<Vec<(connector::ConnectorConfig, secrecy::SecretString)>, AgentError> {
    let first = load_settings(data_dir).ok().flatten().map(|s| s.connector);
    let mut configs = connector::list(data_dir)?;
    configs.sort_by_key(|c| Some(&c.name) != first.as_ref());
    configs
        .into_iter()
        .map(|c| {
            let pw = connector::password(data_dir, &c.name)?;
            Ok((c, pw))
        })
        .collect()
}

/// A pass-through sign-in: the claim and the harmless part (connect, service bind, find the
/// user, open the user's connection) run at once; the bind as the user — the step the
/// directory counts — only once the cloud said proceed.
async fn sign_in(
    data_dir: &Path,
    link: &Link,
    events: &EventLog,
    tracking: &str,
    anchor: &str,
    password: &secrecy::SecretString,
) -> Option<WritebackResult> {
    let prepare = async {
        match sign_in_connectors(data_dir) {
            Ok(connectors) => super::verify::prepare(&connectors, anchor).await,
            Err(e) => Err(super::verify::NotPrepared {
                connector: None,
                failure: Failure {
                    outcome: Outcome::ConfigurationError,
                    reason: None,
                    event_id: ids::SIGN_IN_FAILED,
                    detail: format!("the agent's connectors could not be read: {e}"),
                    diagnostic: None,
                },
            }),
        }
    };
    let (claim, prepared) = tokio::join!(link.writeback_claim(tracking), prepare);
    match claim {
        Ok(answer) if answer.proceed => {}
        Ok(answer) => {
            events.record(
                Level::Info,
                "signIn.notClaimed",
                None,
                Some(tracking),
                format!(
                    "the cloud gave the sign-in check to another agent or it expired ({}); the password was not tried",
                    answer.reason.as_deref().unwrap_or("no reason given")
                ),
                json!({}),
            );
            return None;
        }
        Err(e) => {
            events.record(
                Level::Warning,
                "signIn.claimFailed",
                None,
                Some(tracking),
                format!("claiming the sign-in check failed ({e}); the password was not tried"),
                json!({}),
            );
            return None;
        }
    }
    let mut result = match prepared {
        Ok(p) => {
            let (connector, dn, outcome) = super::verify::finish(p, password).await;
            super::verify::report(events, tracking, Some(&connector), &dn, outcome)
        }
        Err(np) => super::verify::report(
            events,
            tracking,
            np.connector.as_deref(),
            anchor,
            Err(np.failure),
        ),
    };
    result.agent_id = Some(link.agent_id().to_string());
    if let Err(e) = link.writeback_result(&result).await {
        events.record(
            Level::Error,
            "signIn.result.unreported",
            None,
            Some(tracking),
            format!(
                "the sign-in result ({:?}) could not be reported to the cloud ({e}); the person will be asked to try again",
                result.outcome
            ),
            json!({ "outcome": result.outcome }),
        );
    }
    Some(result)
}

/// Resolves the writeback connector and runs the operation.
async fn run_claimed(
    data_dir: &Path,
    events: &EventLog,
    tracking: &str,
    op: &proto::writeback::WritebackOperation,
    policy: ExecPolicy,
) -> WritebackResult {
    let connector = load_settings(data_dir).and_then(|s| {
        let s = s.ok_or_else(|| {
            AgentError::Config(format!(
                "password writeback is not enabled on this agent ({} is missing): run `dirbridge agent writeback enable --data-dir {}`",
                data_dir.join(SETTINGS_FILE).display(),
                data_dir.display()
            ))
        })?;
        let config = connector::load(data_dir, &s.connector)?;
        let password = connector::password(data_dir, &s.connector)?;
        Ok((config, password))
    });
    match connector {
        Ok((config, password)) => execute(&config, &password, op, policy, events, tracking).await,
        Err(e) => {
            let f = Failure {
                outcome: Outcome::ConfigurationError,
                reason: None,
                event_id: ids::CONFIGURATION_ERROR,
                detail: e.to_string(),
                diagnostic: None,
            };
            events.record(
                Level::Error,
                "writeback.configurationError",
                Some(ids::CONFIGURATION_ERROR),
                Some(tracking),
                f.detail.clone(),
                json!({ "operation": op.kind() }),
            );
            failure_result(tracking, op.kind(), f)
        }
    }
}
