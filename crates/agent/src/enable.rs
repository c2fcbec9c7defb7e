//! Turning password writeback on and off for this agent (`dirbridge agent writeback
//! enable|status|disable`), see docs/writeback.md "Enabling".
//!
//! Enabling checks the two credentials separately and names the one that failed — the cloud
//! administrator's (signed in at the cloud, must hold Global Administrator) and the connector's
//! directory credential — then the service account's effective rights on every synced root
//! (`ldap::rights`). Only when everything passed does it roll the sealing key and tell the cloud
//! (`PUT /api/v1/agents/{id}/writeback`); if the cloud refuses, the previous key is restored.
//! `DATA_DIR/writeback.json` records the local state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ldap::rights::RightsReport;
use ldap::LdapError;
use proto::writeback::{events as ids, AgentWriteback, DirectoryKind, EnableRequest};
use proto::{Role, TokenRequest, TokenResponse};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::connector::{self, ConnectorConfig};
use crate::events::{EventLog, Level};
use crate::identity;
use crate::link::LinkError;
use crate::{write_private, AgentError};

/// Event codes of this module (recorded with the numeric ids of `proto::writeback::events`).
pub mod codes {
    pub const ENABLE_START: &str = "writeback.enable.start";
    pub const ENABLE_SUCCESS: &str = "writeback.enable.succeeded";
    pub const ENABLE_FAILED: &str = "writeback.enable.failed";
    pub const BAD_CLOUD_CREDENTIAL: &str = "writeback.enable.badCloudCredential";
    pub const KEY_CREATED: &str = "writeback.key.created";
    pub const DISABLE_START: &str = "writeback.disable.start";
    pub const DISABLE_SUCCESS: &str = "writeback.disable.succeeded";
    pub const DISABLE_FAIL: &str = "writeback.disable.failed";
}

/// The sentence `enable` prints on success.
pub const ENABLED_SENTENCE: &str = "Password reset write-back is enabled.";

/// Why enabling (or disabling) did not happen.
#[derive(Debug, Error)]
pub enum EnableError {
    #[error("the cloud administrator credential was refused: the cloud did not accept the password of {upn} ({message}); check the user name and password of a Global Administrator")]
    CloudCredentialRefused { upn: String, message: String },
    #[error("the cloud administrator {upn} does not hold the Global Administrator role (it holds: {held}); sign in with a Global Administrator")]
    NotGlobalAdministrator { upn: String, held: String },
    #[error("the cloud administrator {upn} belongs to another tenant than this agent; sign in with an administrator of the agent's tenant")]
    OtherTenant { upn: String },
    #[error("the cloud could not be reached at {url} ({reason})")]
    CloudUnreachable { url: String, reason: String },
    #[error("the directory credential of connector {connector} (bind DN {bind_dn}) was refused{}; store the right password with `dirbridge agent connector add` (same name)", reason(problem))]
    DirectoryCredentialRefused {
        connector: String,
        bind_dn: String,
        problem: ldap::BindProblem,
    },
    #[error("the directory of connector {connector} could not be used: {source}")]
    Directory {
        connector: String,
        #[source]
        source: LdapError,
    },
    #[error("connector {connector}: the service account lacks rights writeback needs, so nothing was changed. Delegate exactly these rights to it:\n{}", report.describe_missing().trim_end())]
    MissingRights {
        connector: String,
        report: Box<RightsReport>,
    },
    #[error("more than one connector is configured ({names}): choose one with --connector NAME")]
    ChooseConnector { names: String },
    #[error("the cloud refused to enable writeback: {message} ({code}, HTTP {status}); the previous sealing key was kept")]
    CloudRefused {
        status: u16,
        code: String,
        message: String,
    },
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl EnableError {
    /// A stable code for `--output json` and the event log.
    pub fn code(&self) -> &'static str {
        match self {
            EnableError::CloudCredentialRefused { .. } => "badCloudCredential",
            EnableError::NotGlobalAdministrator { .. } => "notGlobalAdministrator",
            EnableError::OtherTenant { .. } => "otherTenant",
            EnableError::CloudUnreachable { .. } => "cloudUnreachable",
            EnableError::DirectoryCredentialRefused { .. } => "badDirectoryCredential",
            EnableError::Directory { .. } => "directoryError",
            EnableError::MissingRights { .. } => "missingRights",
            EnableError::ChooseConnector { .. } => "chooseConnector",
            EnableError::CloudRefused { .. } => "cloudRefused",
            EnableError::Link(_) => "cloudError",
            EnableError::Agent(_) => "agentError",
        }
    }
}

/// `DATA_DIR/writeback.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LocalState {
    pub connector: String,
    pub enabled_at: proto::Epoch,
}

fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("writeback.json")
}

/// The local writeback state, if enabled here.
pub fn local_state(data_dir: &Path) -> Result<Option<LocalState>, AgentError> {
    let p = state_path(data_dir);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| AgentError::Config(format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io(&p)(e)),
    }
}

/// What enabling did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Enabled {
    pub connector: String,
    pub directory_kind: DirectoryKind,
    pub checked_roots: Vec<String>,
    pub sealing_public_key: String,
    pub enabled_at: proto::Epoch,
    /// Rights the directory could not be asked about (OpenLDAP: a root without users), as
    /// sentences for the admin to check by hand.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
    /// What the operator should know about the directory server (`connector::server_advice`:
    /// Samba's old password period, resets without password history).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<String>,
}

/// The cloud administrator who authorises enabling.
pub struct CloudAdmin {
    pub upn: String,
    pub password: SecretString,
}

impl std::fmt::Debug for CloudAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudAdmin")
            .field("upn", &self.upn)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// " (wrong password)" etc., or nothing when the directory did not say.
fn reason(problem: &ldap::BindProblem) -> String {
    match problem.explain().trim_start_matches(": ") {
        "" => String::new(),
        why => format!(" ({why})"),
    }
}

fn http() -> Result<reqwest::Client, EnableError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| EnableError::Link(LinkError::Protocol(e.to_string())))
}

fn unreachable(url: &str, e: &reqwest::Error) -> EnableError {
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        reason = format!("{reason}: {s}");
        src = s.source();
    }
    EnableError::CloudUnreachable {
        url: url.to_string(),
        reason,
    }
}

/// (status, code, message) of an error answer.
async fn failure(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or("").to_string();
    let message = v["error"]["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| text.chars().take(200).collect());
    (status, code, message)
}

fn chosen_connector(data_dir: &Path, name: Option<&str>) -> Result<ConnectorConfig, EnableError> {
    if let Some(n) = name {
        return Ok(connector::load(data_dir, n)?);
    }
    let mut all = connector::list(data_dir)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(AgentError::Config(
            "no connector is configured: add one with `dirbridge agent connector add`".into(),
        )
        .into()),
        _ => Err(EnableError::ChooseConnector {
            names: all
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Signs in at the cloud as the administrator and checks the role. The token is returned for
/// the enabling call; the caller signs it out afterwards.
async fn sign_in(
    http: &reqwest::Client,
    cloud: &str,
    admin: &CloudAdmin,
    tenant_id: &str,
) -> Result<TokenResponse, EnableError> {
    let url = format!("{cloud}/api/v1/auth/token");
    let mut request = TokenRequest {
        user_principal_name: admin.upn.clone(),
        password: admin.password.expose_secret().to_string(),
    };
    let serialized = serde_json::to_vec(&request);
    zeroize::Zeroize::zeroize(&mut request.password);
    let body = Zeroizing::new(
        serialized.map_err(|e| EnableError::Link(LinkError::Protocol(e.to_string())))?,
    );
    let resp = http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| unreachable(cloud, &e))?;
    if !resp.status().is_success() {
        let (status, code, message) = failure(resp).await;
        if status == 401 || status == 403 || status == 429 {
            return Err(EnableError::CloudCredentialRefused {
                upn: admin.upn.clone(),
                message,
            });
        }
        return Err(EnableError::Link(LinkError::Refused {
            status,
            code,
            message,
        }));
    }
    let token: TokenResponse = resp
        .json()
        .await
        .map_err(|e| EnableError::Link(LinkError::Protocol(e.to_string())))?;
    if token.tenant_id != tenant_id {
        sign_out(http, cloud, &token.access_token).await;
        return Err(EnableError::OtherTenant {
            upn: admin.upn.clone(),
        });
    }
    if !token.roles.contains(&Role::GlobalAdministrator) {
        sign_out(http, cloud, &token.access_token).await;
        let held = if token.roles.is_empty() {
            "no administrator role".to_string()
        } else {
            token
                .roles
                .iter()
                .map(|r| r.display_name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(EnableError::NotGlobalAdministrator {
            upn: admin.upn.clone(),
            held,
        });
    }
    Ok(token)
}

/// Revokes the administrator's token (best effort: it expires anyway).
async fn sign_out(http: &reqwest::Client, cloud: &str, token: &str) {
    let _ = http
        .delete(format!("{cloud}/api/v1/auth/token"))
        .bearer_auth(token)
        .send()
        .await;
}

/// Binds with the connector's stored credential and reads the service account's effective
/// rights on every root.
pub async fn check_rights(
    data_dir: &Path,
    config: &ConnectorConfig,
) -> Result<RightsReport, EnableError> {
    let password = connector::password(data_dir, &config.name)?;
    let mut conn = match connector::connect(config, &password).await {
        Ok(c) => c,
        Err(AgentError::Directory {
            source: LdapError::InvalidCredentials { problem, .. },
            ..
        }) => {
            return Err(EnableError::DirectoryCredentialRefused {
                connector: config.name.clone(),
                bind_dn: config.bind_dn.clone(),
                problem,
            })
        }
        Err(AgentError::Directory { connector, source }) => {
            return Err(EnableError::Directory { connector, source })
        }
        Err(e) => return Err(e.into()),
    };
    let roots = config.roots();
    let report = match config.kind {
        connector::DirectoryKind::Ad => conn.ad_effective_rights(&config.bind_dn, &roots).await,
        connector::DirectoryKind::Openldap => {
            conn.openldap_effective_rights(&config.bind_dn, &roots, &config.user_filter())
                .await
        }
    };
    let _ = conn.unbind().await;
    report.map_err(|source| EnableError::Directory {
        connector: config.name.clone(),
        source,
    })
}

/// [`check_rights`] as `connector test` checks (its "writeback rights" section): one per
/// right and root, a missing one with the delegation commands, one the directory could not be
/// asked about as a warning.
pub async fn rights_checks(data_dir: &Path, config: &ConnectorConfig) -> Vec<connector::Check> {
    use ldap::rights::Status;
    let report = match check_rights(data_dir, config).await {
        Ok(r) => r,
        Err(e) => return vec![connector::Check::new("writeback", false, e.to_string())],
    };
    let mut out = Vec::new();
    for root in &report.roots {
        for c in &root.checks {
            let name = c.right.code();
            let on = format!("{} on users below {}", c.right, root.root);
            out.push(match &c.status {
                Status::Granted => {
                    connector::Check::new(name, true, format!("{} has {on}", report.account))
                }
                Status::Unchecked(why) => {
                    connector::Check::warning(name, format!("{on} was not checked: {why}"))
                }
                Status::Missing => {
                    let denied = c
                        .denied_for
                        .as_ref()
                        .map(|sid| format!(" (a deny ACE for {sid} takes it away: remove it)"))
                        .unwrap_or_default();
                    connector::Check::new(
                        name,
                        false,
                        format!(
                            "{} lacks {on}{denied}; writeback enable will refuse. Grant it with: {}",
                            report.account,
                            c.fixes.join("  or  ")
                        ),
                    )
                }
            });
        }
    }
    out
}

fn wire_kind(kind: connector::DirectoryKind) -> DirectoryKind {
    match kind {
        connector::DirectoryKind::Ad => DirectoryKind::ActiveDirectory,
        connector::DirectoryKind::Openldap => DirectoryKind::OpenLdap,
    }
}

fn event(
    log: &EventLog,
    level: Level,
    code: &str,
    id: u32,
    message: &str,
    details: serde_json::Value,
) {
    log.record(level, code, Some(id), None, message, details);
}

/// Enables writeback for this agent with connector `connector` (None: the only one), checked
/// in this order: cloud administrator, directory credential, rights; then the key is rolled
/// and the cloud told. Nothing local changes unless every check passed.
pub async fn enable(
    data_dir: &Path,
    connector_name: Option<&str>,
    admin: &CloudAdmin,
) -> Result<Enabled, EnableError> {
    let log = EventLog::open(data_dir);
    let result = enable_inner(data_dir, connector_name, admin, &log).await;
    match &result {
        Ok(done) => event(
            &log,
            Level::Info,
            codes::ENABLE_SUCCESS,
            ids::ENABLE_SUCCESS,
            ENABLED_SENTENCE,
            serde_json::json!({ "connector": done.connector, "roots": done.checked_roots }),
        ),
        Err(e @ EnableError::CloudCredentialRefused { upn, .. }) => event(
            &log,
            Level::Error,
            codes::BAD_CLOUD_CREDENTIAL,
            ids::BAD_CLOUD_CREDENTIAL,
            &e.to_string(),
            serde_json::json!({ "admin": upn }),
        ),
        Err(e) => {
            log.error(
                codes::ENABLE_FAILED,
                e.to_string(),
                serde_json::json!({ "reason": e.code() }),
            );
        }
    };
    result
}

async fn enable_inner(
    data_dir: &Path,
    connector_name: Option<&str>,
    admin: &CloudAdmin,
    log: &EventLog,
) -> Result<Enabled, EnableError> {
    let ident = identity::load(data_dir)?;
    let config = chosen_connector(data_dir, connector_name)?;
    event(
        log,
        Level::Info,
        codes::ENABLE_START,
        ids::ENABLE_START,
        "Enabling password reset write-back.",
        serde_json::json!({ "connector": config.name, "admin": admin.upn }),
    );
    let cloud = ident.config.cloud_url.trim_end_matches('/').to_string();
    let http = http()?;

    // (a) the cloud administrator.
    let token = sign_in(&http, &cloud, admin, &ident.config.tenant_id).await?;
    let result = async {
        // (b) the directory credential, (c) the rights.
        let report = check_rights(data_dir, &config).await?;
        if !report.complete() {
            return Err(EnableError::MissingRights {
                connector: config.name.clone(),
                report: Box::new(report),
            });
        }
        let checked_roots = config.roots();
        let unchecked: Vec<String> = report
            .roots
            .iter()
            .flat_map(|r| {
                r.checks.iter().filter_map(move |c| match &c.status {
                    ldap::rights::Status::Unchecked(why) => {
                        Some(format!("{} on {} was not checked: {why}", c.right, r.root))
                    }
                    _ => None,
                })
            })
            .collect();

        // Every check passed: roll the key, tell the cloud, restore the key if it refuses.
        let key_path = identity::sealing_key_path(data_dir);
        let previous = Zeroizing::new(std::fs::read(&key_path).ok());
        let public = identity::roll_sealing_key(data_dir)?;
        event(
            log,
            Level::Info,
            codes::KEY_CREATED,
            ids::KEY_CREATED,
            "A new writeback sealing key pair was created.",
            serde_json::json!({ "publicKey": public }),
        );
        let body = EnableRequest {
            sealing_public_key: public.clone(),
            connector: config.name.clone(),
            directory_kind: wire_kind(config.kind),
            checked_roots: checked_roots.clone(),
        };
        let url = format!(
            "{cloud}/api/v1/agents/{}/writeback",
            url_segment(&ident.config.agent_id)
        );
        let sent = http
            .put(&url)
            .bearer_auth(&token.access_token)
            .json(&body)
            .send()
            .await;
        let refusal = match sent {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => {
                let (status, code, message) = failure(resp).await;
                Some(EnableError::CloudRefused {
                    status,
                    code,
                    message,
                })
            }
            Err(e) => Some(unreachable(&cloud, &e)),
        };
        if let Some(err) = refusal {
            if let Some(old) = previous.as_ref() {
                write_private(&key_path, old).map_err(AgentError::io(&key_path))?;
            }
            return Err(err);
        }
        let enabled_at = crate::now();
        let state = LocalState {
            connector: config.name.clone(),
            enabled_at,
        };
        let p = state_path(data_dir);
        let text =
            serde_json::to_vec_pretty(&state).map_err(|e| AgentError::Config(e.to_string()))?;
        write_private(&p, &text).map_err(AgentError::io(&p))?;
        Ok(Enabled {
            connector: config.name.clone(),
            directory_kind: wire_kind(config.kind),
            checked_roots,
            sealing_public_key: public,
            enabled_at,
            unchecked,
            advice: connector::advice(data_dir, &config)
                .await
                .into_iter()
                .map(|c| c.detail)
                .collect(),
        })
    }
    .await;
    sign_out(&http, &cloud, &token.access_token).await;
    result
}

/// Percent-encodes one path segment.
fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A signed request of this agent to the cloud's agent API.
async fn signed(
    data_dir: &Path,
    method: Method,
    path: &str,
) -> Result<serde_json::Value, EnableError> {
    let ident = identity::load(data_dir)?;
    let link = ident.link()?;
    let http = http()?;
    let mut req = http.request(method.clone(), format!("{}{path}", link.base()));
    for (k, v) in link.sign(&method, path, &[]) {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|e| unreachable(link.base(), &e))?;
    if resp.status().is_success() {
        let text = resp.text().await.unwrap_or_default();
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        return serde_json::from_str(&text)
            .map_err(|e| EnableError::Link(LinkError::Protocol(e.to_string())));
    }
    let (status, code, message) = failure(resp).await;
    Err(EnableError::Link(if status == 401 {
        LinkError::Unauthorized { message }
    } else if status >= 500 {
        LinkError::Server { status, message }
    } else {
        LinkError::Refused {
            status,
            code,
            message,
        }
    }))
}

/// Local and cloud view of writeback for this agent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `writeback.json`, when enabled here.
    pub local: Option<LocalState>,
    pub sealing_key_present: bool,
    /// The cloud's view (signed `GET /api/v1/agent/writeback`), or why it is unknown.
    pub cloud: Option<AgentWriteback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_error: Option<String>,
}

/// The local state, and the cloud's view as far as it can be read.
pub async fn status(data_dir: &Path) -> Result<Status, EnableError> {
    identity::load(data_dir)?;
    let local = local_state(data_dir)?;
    let sealing_key_present = identity::sealing_key_path(data_dir).is_file();
    let (cloud, cloud_error) = match signed(data_dir, Method::GET, "/api/v1/agent/writeback").await
    {
        Ok(v) => match serde_json::from_value::<AgentWriteback>(v) {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(format!("unexpected answer from the cloud: {e}"))),
        },
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Status {
        local,
        sealing_key_present,
        cloud,
        cloud_error,
    })
}

/// Stops the cloud sending this agent writeback requests (signed
/// `DELETE /api/v1/agent/writeback`) and removes `writeback.json`.
pub async fn disable(data_dir: &Path) -> Result<(), EnableError> {
    let log = EventLog::open(data_dir);
    identity::load(data_dir)?;
    event(
        &log,
        Level::Info,
        codes::DISABLE_START,
        ids::DISABLE_START,
        "Disabling password reset write-back.",
        serde_json::Value::Null,
    );
    if let Err(e) = signed(data_dir, Method::DELETE, "/api/v1/agent/writeback").await {
        event(
            &log,
            Level::Error,
            codes::DISABLE_FAIL,
            ids::DISABLE_FAIL,
            &format!("Disabling password reset write-back failed: {e}"),
            serde_json::Value::Null,
        );
        return Err(e);
    }
    let p = state_path(data_dir);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(AgentError::io(&p)(e).into()),
    }
    event(
        &log,
        Level::Info,
        codes::DISABLE_SUCCESS,
        ids::DISABLE_SUCCESS,
        "Password reset write-back is disabled.",
        serde_json::Value::Null,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_debug_redacts_the_password() {
        let a = CloudAdmin {
            upn: "a@b".into(),
            password: SecretString::from("Marker-Pa55".to_string()),
        };
        let d = format!("{a:?}");
        assert!(!d.contains("Marker"), "{d}");
    }

    #[test]
    fn errors_name_the_credential_that_failed() {
        let e = EnableError::CloudCredentialRefused {
            upn: "admin@x".into(),
            message: "wrong".into(),
        };
        assert!(e
            .to_string()
            .contains("the cloud administrator credential was refused"));
        let e = EnableError::DirectoryCredentialRefused {
            connector: "corp".into(),
            bind_dn: "CN=svc".into(),
            problem: ldap::BindProblem::WrongPassword,
        };
        assert!(e.to_string().starts_with(
            "the directory credential of connector corp (bind DN CN=svc) was refused"
        ));
        let e = EnableError::NotGlobalAdministrator {
            upn: "u@x".into(),
            held: "User Administrator".into(),
        };
        assert!(e.to_string().contains("Global Administrator role"));
    }
}
