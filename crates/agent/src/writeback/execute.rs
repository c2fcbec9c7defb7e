//! Running one opened writeback operation against the directory (docs/writeback.md,
//! "Operations"): find the user by anchor, refuse protected and disabled accounts, write, and
//! turn every answer into a [`WritebackResult`] whose `message` comes only from
//! [`person_message`] and whose `admin_detail` names what an administrator must fix.
//!
//! Every request logs a start event and a success or failure event (31xxx, by operation), and
//! on failure the 33xxx event of the failure class first, all with the tracking id.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ldap::ad::AccountState;
use ldap::rights::{ad_fixes, openldap_fixes, Right};
use ldap::{Connection, Entry, LdapError, Scope};
use proto::writeback::{
    events as ids, person_message, Outcome, PolicyReason, WritebackOperation, WritebackResult,
};
use secrecy::SecretString;
use serde_json::json;
use zeroize::Zeroizing;

use crate::connector::{sid_text, ConnectorConfig, DirectoryKind};
use crate::events::{EventLog, Level};

/// What the tenant's policy lets the agent do beyond the operation itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecPolicy {
    /// A reset of a locked-out account also unlocks it, and `unlock` requests are honoured.
    /// When false, a locked-out account is refused as `accountLockedOut`.
    pub allow_unlock: bool,
}

impl Default for ExecPolicy {
    fn default() -> ExecPolicy {
        ExecPolicy { allow_unlock: true }
    }
}

/// Why an operation did not succeed, for the result and the event log.
#[derive(Debug)]
pub(crate) struct Failure {
    pub outcome: Outcome,
    pub reason: Option<PolicyReason>,
    /// The 33xxx event.
    pub event_id: u32,
    /// For administrators: what happened and what to do (DNs allowed, never a password).
    pub detail: String,
    /// The directory's own text, for the event log only.
    pub diagnostic: Option<String>,
}

impl Failure {
    pub(crate) fn new(outcome: Outcome, event_id: u32, detail: impl Into<String>) -> Failure {
        Failure {
            outcome,
            reason: None,
            event_id,
            detail: detail.into(),
            diagnostic: None,
        }
    }

    pub(crate) fn level(&self) -> Level {
        match self.event_id {
            ids::USER_NOT_FOUND
            | ids::ACCOUNT_DISABLED
            | ids::ACCOUNT_LOCKED_OUT
            | ids::WRONG_CURRENT_PASSWORD
            | ids::PASSWORD_POLICY => Level::Warning,
            _ => Level::Error,
        }
    }

    fn code(&self) -> &'static str {
        match self.outcome {
            Outcome::PolicyRefused => "writeback.policyRefused",
            Outcome::WrongCurrentPassword => "writeback.wrongCurrentPassword",
            Outcome::AccountDisabled => "writeback.accountDisabled",
            Outcome::AccountLockedOut => "writeback.accountLockedOut",
            Outcome::ProtectedAccount => "writeback.protectedAccount",
            Outcome::AccessDenied => "writeback.accessDenied",
            Outcome::UserNotFound => "writeback.userNotFound",
            Outcome::AmbiguousUser => "writeback.ambiguousUser",
            Outcome::DirectoryUnreachable => "writeback.directoryUnreachable",
            Outcome::ConfigurationError => "writeback.configurationError",
            _ => "writeback.directoryError",
        }
    }
}

/// Runs `op` (already opened) in the directory of `config`, bound as its service account with
/// `password`, and logs its events under `tracking_id`. Never fails: every problem is an
/// outcome. `agent_id` of the result is left empty for the caller.
pub async fn execute(
    config: &ConnectorConfig,
    password: &SecretString,
    op: &WritebackOperation,
    policy: ExecPolicy,
    events: &EventLog,
    tracking_id: &str,
) -> WritebackResult {
    if let WritebackOperation::Verify {
        anchor,
        password: user_password,
    } = op
    {
        let connectors = [(config.clone(), password.clone())];
        return super::verify::verify(
            &connectors,
            anchor,
            &secret(user_password),
            events,
            tracking_id,
        )
        .await;
    }
    let op_kind = op.operation_kind();
    let kind = op_kind.as_str();
    let (start, success, fail) = op_kind.event_ids();
    let words = op_kind.describe();
    events.record(
        Level::Info,
        &format!("writeback.{kind}.started"),
        Some(start),
        Some(tracking_id),
        format!("{words} started (connector {})", config.name),
        json!({ "connector": config.name, "anchor": op.anchor(), "operation": kind }),
    );
    match run(config, password, op, policy, events).await {
        Ok(dn) => {
            events.record(
                Level::Info,
                &format!("writeback.{kind}.succeeded"),
                Some(success),
                Some(tracking_id),
                format!("{words} succeeded for {dn}"),
                json!({ "connector": config.name, "dn": dn, "operation": kind }),
            );
            WritebackResult {
                tracking_id: tracking_id.to_string(),
                outcome: Outcome::Succeeded,
                policy_reason: None,
                message: person_message(Outcome::Succeeded, None, kind),
                event_id: Some(success),
                agent_id: None,
                admin_detail: None,
            }
        }
        Err(f) => {
            events.record(
                f.level(),
                f.code(),
                Some(f.event_id),
                Some(tracking_id),
                f.detail.clone(),
                json!({
                    "connector": config.name,
                    "operation": kind,
                    "outcome": f.outcome,
                    "policyReason": f.reason,
                    "diagnostic": f.diagnostic,
                }),
            );
            events.record(
                Level::Error,
                &format!("writeback.{kind}.failed"),
                Some(fail),
                Some(tracking_id),
                format!("{words} failed (event {} says why)", f.event_id),
                json!({ "connector": config.name, "operation": kind, "outcome": f.outcome }),
            );
            failure_result(tracking_id, kind, f)
        }
    }
}

pub(crate) fn failure_result(
    tracking_id: &str,
    kind: impl AsRef<str>,
    f: Failure,
) -> WritebackResult {
    WritebackResult {
        tracking_id: tracking_id.to_string(),
        outcome: f.outcome,
        policy_reason: f.reason,
        message: person_message(f.outcome, f.reason, kind),
        event_id: Some(f.event_id),
        agent_id: None,
        admin_detail: Some(f.detail),
    }
}

/// What the agent was doing when the directory answered, to name the missing right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Bind,
    Lookup,
    SetPassword,
    ChangePassword,
    UserBind,
    Unlock,
    MustChange,
}

/// The user as found by anchor.
pub(crate) struct Target {
    pub dn: String,
    pub state: AccountState,
}

async fn run(
    config: &ConnectorConfig,
    password: &SecretString,
    op: &WritebackOperation,
    policy: ExecPolicy,
    events: &EventLog,
) -> Result<String, Failure> {
    let mut c = Connection::connect(&config.connect_options())
        .await
        .map_err(|e| classify(config, Step::Bind, None, e))?;
    c.simple_bind(&config.bind_dn, password)
        .await
        .map_err(|e| classify(config, Step::Bind, None, e))?;
    let result = run_bound(&mut c, config, op, policy, events).await;
    if config.kind == DirectoryKind::Ad
        && result
            .as_ref()
            .is_err_and(|f| f.outcome == Outcome::AccessDenied)
    {
        // Name the account by SID in the delegation command.
        let sid = account_sid(&mut c, &config.bind_dn).await;
        let _ = c.unbind().await;
        return result.map_err(|mut f| {
            f.detail = f.detail.replace(SID_PLACEHOLDER, &sid);
            f
        });
    }
    let _ = c.unbind().await;
    result
}

async fn run_bound(
    c: &mut Connection,
    config: &ConnectorConfig,
    op: &WritebackOperation,
    policy: ExecPolicy,
    events: &EventLog,
) -> Result<String, Failure> {
    let target = find(c, config, op.anchor()).await?;
    let dn = target.dn.clone();
    let err = |step: Step| {
        let dn = dn.clone();
        move |e: LdapError| classify(config, step, Some(&dn), e)
    };
    super::protected::refuse_protected(c, config, &target).await?;
    if target.state.disabled {
        return Err(Failure::new(
            Outcome::AccountDisabled,
            ids::ACCOUNT_DISABLED,
            format!("{dn} is disabled on-prem; enable it there first"),
        ));
    }
    let locked_refusal = |why: &str| {
        Failure::new(
            Outcome::AccountLockedOut,
            ids::ACCOUNT_LOCKED_OUT,
            format!("{dn} is locked out and {why}; unlock it on-prem"),
        )
    };
    let ad = config.kind == DirectoryKind::Ad;
    match op {
        WritebackOperation::Reset { new_password, .. }
        | WritebackOperation::AdminReset { new_password, .. } => {
            if target.state.locked {
                if !policy.allow_unlock {
                    return Err(locked_refusal(
                        "the writeback policy does not allow unlocking",
                    ));
                }
                unlock(c, ad, &dn).await.map_err(err(Step::Unlock))?;
            }
            let new = secret(new_password);
            let must_change = matches!(
                op,
                WritebackOperation::AdminReset {
                    must_change: true,
                    ..
                }
            );
            if !ad && must_change {
                return openldap_reset_must_change(c, config, op.anchor(), &dn, &new, events)
                    .await
                    .map(|()| dn.clone());
            }
            if ad {
                // Resets keep the history rule, as a change would, where the server can.
                let hints = c.ad_server_info().await.ok().and_then(|i| i.policy_hints);
                c.ad_reset_password(&dn, &new, hints)
                    .await
                    .map_err(err(Step::SetPassword))?;
            } else if let Err(e) = c.openldap_set_password(&dn, None, &new).await {
                let mut f = err(Step::SetPassword)(e);
                if f.reason == Some(PolicyReason::TooRecent) {
                    f.detail = openldap_min_age_detail(c, &dn).await;
                }
                return Err(f);
            }
            if must_change {
                c.ad_set_must_change(&dn, true)
                    .await
                    .map_err(err(Step::MustChange))?;
            }
        }
        WritebackOperation::Change {
            old_password,
            new_password,
            ..
        } => {
            if target.state.locked {
                return Err(locked_refusal(
                    "a locked-out account cannot change its password",
                ));
            }
            let old = secret(old_password);
            let new = secret(new_password);
            if ad {
                c.ad_change_password(&dn, &old, &new)
                    .await
                    .map_err(err(Step::ChangePassword))?;
            } else {
                // A change is the user's own act: bound as the user with the old password.
                let mut u = Connection::connect(&config.connect_options())
                    .await
                    .map_err(err(Step::Bind))?;
                u.simple_bind(&dn, &old)
                    .await
                    .map_err(err(Step::UserBind))?;
                let changed = u.openldap_set_password(&dn, Some(&old), &new).await;
                let _ = u.unbind().await;
                changed.map_err(err(Step::ChangePassword))?;
            }
        }
        WritebackOperation::Unlock { .. } => {
            if !policy.allow_unlock {
                return Err(locked_refusal(
                    "the writeback policy does not allow unlocking",
                ));
            }
            unlock(c, ad, &dn).await.map_err(err(Step::Unlock))?;
        }
        WritebackOperation::Verify { .. } => {
            // Never reached: `execute` hands a sign-in to `super::verify` before binding.
            return Err(Failure::new(
                Outcome::ConfigurationError,
                ids::CONFIGURATION_ERROR,
                "a sign-in check is not a writeback operation",
            ));
        }
    }
    Ok(dn)
}

/// An administrator's reset with "must change at next sign-in" on OpenLDAP: the password
/// modify operation, then `pwdReset: TRUE`, with a durable marker around them so the flag is
/// set whenever the password changed ([`super::must_change`]).
async fn openldap_reset_must_change(
    c: &mut Connection,
    config: &ConnectorConfig,
    anchor: &str,
    dn: &str,
    new: &SecretString,
    events: &EventLog,
) -> Result<(), Failure> {
    let pending = super::must_change::Pending {
        connector: config.name.clone(),
        anchor: anchor.to_string(),
        dn: dn.to_string(),
        since: crate::now(),
    };
    let marker = super::must_change::mark(events.data_dir(), &pending).map_err(|e| {
        Failure::new(
            Outcome::ConfigurationError,
            ids::CONFIGURATION_ERROR,
            format!("{dn}: nothing was changed: the agent could not record the pending \"must change at next sign-in\" in its data dir ({e}); check that the data dir is writable"),
        )
    })?;
    if let Err(e) = c.openldap_set_password(dn, None, new).await {
        super::must_change::clear(&marker);
        let mut f = classify(config, Step::SetPassword, Some(dn), e);
        if f.reason == Some(PolicyReason::TooRecent) {
            f.detail = openldap_min_age_detail(c, dn).await;
        }
        return Err(f);
    }
    match c.openldap_set_must_change(dn, true).await {
        Ok(()) => {
            super::must_change::clear(&marker);
            Ok(())
        }
        Err(e) => {
            // Half done, said so: the password changed; the marker stays and the service sets
            // the flag on its next cycle.
            let mut f = classify(config, Step::MustChange, Some(dn), e);
            f.detail.push_str(" The new password is set; the agent keeps trying to set \"must change at next sign-in\" on every cycle until it succeeds.");
            Err(f)
        }
    }
}

/// OpenLDAP's ppolicy applies `pwdMinAge` to every writer but the rootdn, so a reset by the
/// service account within the minimum age is refused (`passwordTooYoung`), unlike AD, where
/// the minimum age binds only the user's own change. The Relax control does not lift it
/// (checked on slapd 2.5), and ppolicy picks the policy by the *user's* entry, so no policy
/// for the service account can either. dirbridge keeps the directory's rule and tells the
/// administrator which setting decides and when a retry will pass.
async fn openldap_min_age_detail(c: &mut Connection, dn: &str) -> String {
    let user = c
        .read(dn, &["pwdChangedTime", "pwdPolicySubentry"])
        .await
        .ok();
    let changed = user
        .as_ref()
        .and_then(|e| e.text("pwdChangedTime").map(str::to_string));
    let policy_dn = user
        .as_ref()
        .and_then(|e| e.text("pwdPolicySubentry").map(str::to_string));
    let min_age = match &policy_dn {
        Some(p) => c
            .read(p, &["pwdMinAge"])
            .await
            .ok()
            .and_then(|e| e.text("pwdMinAge").and_then(|v| v.parse::<i64>().ok())),
        None => None,
    };
    let policy = match &policy_dn {
        Some(p) => format!("the password policy {p}"),
        None => "the default password policy (the entry named by olcPPolicyDefault on the ppolicy overlay)".into(),
    };
    let age = min_age
        .map(|s| format!("pwdMinAge: {s} (seconds)"))
        .unwrap_or_else(|| "pwdMinAge".into());
    let when = match (&changed, min_age) {
        (Some(t), Some(s)) => {
            format!("; it was last changed at {t}, so a reset passes {s} s after that")
        }
        (Some(t), None) => format!("; it was last changed at {t}"),
        _ => String::new(),
    };
    format!(
        "{dn}: the on-prem password policy refused the reset because the password was changed too recently{when}. OpenLDAP's ppolicy applies {age} in {policy} to resets by the service account too (Active Directory does not), and dirbridge keeps that rule. Retry later, or lower pwdMinAge in that policy (0 turns the minimum age off). A reset that requires a change at next sign-in is not held back while the previous reset's requirement (pwdReset: TRUE) is still pending."
    )
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

async fn unlock(c: &mut Connection, ad: bool, dn: &str) -> Result<(), LdapError> {
    if ad {
        c.ad_unlock(dn).await
    } else {
        c.openldap_unlock(dn).await
    }
}

/// Finds the user by its anchor: exactly one object in the connector's scope.
pub(crate) async fn find(
    c: &mut Connection,
    config: &ConnectorConfig,
    anchor: &str,
) -> Result<Target, Failure> {
    let not_found = |why: String| Failure::new(Outcome::UserNotFound, ids::USER_NOT_FOUND, why);
    let bytes = Zeroizing::new(
        B64.decode(anchor)
            .ok()
            .filter(|b| b.len() == 16)
            .ok_or_else(|| {
                not_found(format!(
                    "the source anchor {anchor:?} is not the base64 of 16 bytes"
                ))
            })?,
    );
    let lookup = |e| classify(config, Step::Lookup, None, e);
    let attr = config.anchor_attr();
    let entries: Vec<Entry> = match config.kind {
        DirectoryKind::Ad if attr.eq_ignore_ascii_case("objectGUID") => c
            .ad_find_by_guid(&bytes)
            .await
            .map_err(lookup)?
            .into_iter()
            .collect(),
        DirectoryKind::Ad => {
            let mut found = c
                .search_paged(
                    &config.base_dn,
                    Scope::Subtree,
                    &format!("({attr}={})", escape_bytes(&bytes)),
                    ldap::ad::ACCOUNT_ATTRS,
                    100,
                )
                .await
                .map_err(lookup)?;
            if found.is_empty() && attr.eq_ignore_ascii_case("ms-DS-ConsistencyGuid") {
                // Not stamped yet: the sync used the objectGUID.
                found = c
                    .ad_find_by_guid(&bytes)
                    .await
                    .map_err(lookup)?
                    .into_iter()
                    .collect();
            }
            found
        }
        DirectoryKind::Openldap => c
            .openldap_find_by_entry_uuid(&config.base_dn, &bytes)
            .await
            .map_err(lookup)?,
    };
    let in_scope: Vec<Entry> = entries
        .into_iter()
        .filter(|e| crate::sync::scope::in_scope(config, &e.dn))
        .collect();
    match in_scope.len() {
        0 => Err(not_found(format!(
            "no object in the scope of connector {} has the source anchor {anchor} ({attr}); it may have been deleted or moved out of scope: run a full sync",
            config.name
        ))),
        1 => {
            let e = &in_scope[0];
            let state = match config.kind {
                DirectoryKind::Ad => ldap::ad::ad_account_state(e),
                DirectoryKind::Openldap => ldap::openldap::openldap_account_state(e),
            };
            Ok(Target {
                dn: e.dn.clone(),
                state,
            })
        }
        n => Err(Failure::new(
            Outcome::AmbiguousUser,
            ids::MULTIPLE_MATCHES,
            format!(
                "{n} objects have the source anchor {anchor} ({attr}): {}; fix the duplicate on-prem",
                in_scope.iter().map(|e| e.dn.as_str()).collect::<Vec<_>>().join("; ")
            ),
        )),
    }
}

/// `\xx` for every byte (an LDAP filter value, RFC 4515).
fn escape_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\{x:02x}")).collect()
}

/// Replaced by the service account's SID once known (it takes another read).
const SID_PLACEHOLDER: &str = "<SID of the service account>";

async fn account_sid(c: &mut Connection, dn: &str) -> String {
    c.read(dn, &["objectSid"])
        .await
        .ok()
        .and_then(|e| e.values("objectSid").first().map(|s| sid_text(s)))
        .unwrap_or_else(|| SID_PLACEHOLDER.into())
}

/// The synced root the user is below (the OU the right must be delegated on).
fn root_of(config: &ConnectorConfig, dn: &str) -> String {
    config
        .roots()
        .into_iter()
        .find(|r| crate::sync::scope::is_below(dn, r))
        .unwrap_or_else(|| config.base_dn.clone())
}

/// The right an insufficient-access answer at `step` means.
fn missing_right(kind: DirectoryKind, step: Step) -> Option<Right> {
    Some(match (kind, step) {
        (DirectoryKind::Ad, Step::SetPassword) => Right::ResetPassword,
        (DirectoryKind::Ad, Step::ChangePassword) => Right::ChangePassword,
        (DirectoryKind::Ad, Step::Unlock) => Right::WriteLockoutTime,
        (DirectoryKind::Ad, Step::MustChange) => Right::WritePwdLastSet,
        (DirectoryKind::Openldap, Step::SetPassword | Step::ChangePassword) => {
            Right::WriteUserPassword
        }
        (DirectoryKind::Openldap, Step::Unlock | Step::MustChange) => Right::WriteLockTime,
        _ => return None,
    })
}

/// The `DOMAIN\name` form of an AD account for `dsacls`, from its DN.
fn down_level_name(config: &ConnectorConfig) -> String {
    let domain = config
        .base_dn
        .split(',')
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.eq_ignore_ascii_case("DC").then(|| v.to_ascii_uppercase())
        })
        .unwrap_or_else(|| "DOMAIN".into());
    let cn = config
        .bind_dn
        .split(',')
        .next()
        .and_then(|p| p.split_once('=').map(|(_, v)| v.to_string()))
        .unwrap_or_else(|| config.bind_dn.clone());
    format!("{domain}\\{cn}")
}

/// One LDAP error at `step` as an outcome with its 33xxx event and admin detail.
pub(crate) fn classify(
    config: &ConnectorConfig,
    step: Step,
    dn: Option<&str>,
    e: LdapError,
) -> Failure {
    let diagnostic = e.diagnostic().map(str::to_string);
    let who = dn.unwrap_or("the user");
    let mut f = match &e {
        LdapError::Unreachable { .. } | LdapError::Timeout | LdapError::Unavailable { .. } => {
            Failure::new(
                Outcome::DirectoryUnreachable,
                ids::UNKNOWN_DIRECTORY_ERROR,
                format!(
                    "connector {}: the directory at {} could not be reached ({e}); check that the agent host reaches it",
                    config.name, config.url
                ),
            )
        }
        LdapError::InvalidCredentials { .. } if step == Step::Bind => Failure::new(
            Outcome::DirectoryUnreachable,
            ids::CONFIGURATION_ERROR,
            format!(
                "the directory credential for connector {} ({}) was refused ({e}); store the current password with `dirbridge agent connector add`",
                config.name, config.bind_dn
            ),
        ),
        LdapError::InvalidCredentials { problem, .. } if step == Step::UserBind => match problem {
            ldap::BindProblem::AccountDisabled => Failure::new(
                Outcome::AccountDisabled,
                ids::ACCOUNT_DISABLED,
                format!("{who} is disabled on-prem"),
            ),
            ldap::BindProblem::AccountLocked => Failure::new(
                Outcome::AccountLockedOut,
                ids::ACCOUNT_LOCKED_OUT,
                format!("{who} is locked out on-prem"),
            ),
            _ => Failure::new(
                Outcome::WrongCurrentPassword,
                ids::WRONG_CURRENT_PASSWORD,
                format!("{who}: the current password given for the change was refused ({e})"),
            ),
        },
        LdapError::WrongCurrentPassword { .. } => Failure::new(
            Outcome::WrongCurrentPassword,
            ids::WRONG_CURRENT_PASSWORD,
            format!("{who}: the current password given for the change is wrong"),
        ),
        LdapError::PolicyViolation { reason, .. } => {
            let mut f = Failure::new(
                Outcome::PolicyRefused,
                ids::PASSWORD_POLICY,
                format!("{who}: the on-prem password policy refused the new password: {reason}"),
            );
            f.reason = Some(policy_reason(*reason));
            f
        }
        LdapError::AccountLocked { .. } => Failure::new(
            Outcome::AccountLockedOut,
            ids::ACCOUNT_LOCKED_OUT,
            format!("{who} is locked out on-prem"),
        ),
        LdapError::NoSuchObject { .. } => Failure::new(
            Outcome::UserNotFound,
            ids::USER_NOT_FOUND,
            format!("{who} no longer exists (it was deleted or moved while the request ran)"),
        ),
        LdapError::InsufficientAccess { .. } => access_denied(config, step, who),
        LdapError::CertificateRejected { .. }
        | LdapError::Tls { .. }
        | LdapError::Config(_)
        | LdapError::StrongerAuthRequired { .. }
        | LdapError::UnwillingToPerform { .. }
        | LdapError::Unsupported { .. } => Failure::new(
            Outcome::ConfigurationError,
            ids::CONFIGURATION_ERROR,
            format!(
                "connector {} ({}): {e}; check the connector's URL, CA file and that password writes go over TLS (`dirbridge agent connector test`)",
                config.name, config.url
            ),
        ),
        _ => Failure::new(
            Outcome::DirectoryError,
            ids::UNKNOWN_DIRECTORY_ERROR,
            format!("{who}: the directory answered {e}"),
        ),
    };
    f.diagnostic = diagnostic;
    f
}

fn access_denied(config: &ConnectorConfig, step: Step, who: &str) -> Failure {
    let root = root_of(config, who);
    let consequence = match step {
        Step::MustChange => {
            "the new password was set, but the user is not required to change it at next sign-in"
        }
        Step::Unlock => "nothing was changed",
        _ => "the password was not changed",
    };
    let detail = match missing_right(config.kind, step) {
        Some(right) => {
            let fixes = match config.kind {
                DirectoryKind::Ad => {
                    ad_fixes(
                    &config.url,
                    &root,
                    right,
                    SID_PLACEHOLDER,
                    &down_level_name(config),
                )
                }
                DirectoryKind::Openldap => openldap_fixes(&root, right, &config.bind_dn),
            };
            format!(
                "the service account {} lacks {right} on {root} (needed for {who}); {consequence}. Grant it with: {}",
                config.bind_dn,
                fixes.join("  or  ")
            )
        }
        None => format!(
            "the service account {} may not read {who} (insufficient access rights); grant it read access below {root}",
            config.bind_dn
        ),
    };
    Failure::new(Outcome::AccessDenied, ids::PERMISSIONS, detail)
}

fn policy_reason(r: ldap::PolicyReason) -> PolicyReason {
    match r {
        ldap::PolicyReason::TooShort { .. } => PolicyReason::TooShort,
        ldap::PolicyReason::NotComplex | ldap::PolicyReason::TooLong => PolicyReason::Complexity,
        ldap::PolicyReason::InHistory => PolicyReason::History,
        ldap::PolicyReason::TooYoung => PolicyReason::TooRecent,
        ldap::PolicyReason::MustSupplyOldPassword
        | ldap::PolicyReason::ChangeNotAllowed
        | ldap::PolicyReason::Unspecified => PolicyReason::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: DirectoryKind) -> ConnectorConfig {
        ConnectorConfig {
            name: "corp".into(),
            kind,
            url: "ldaps://dc.example:636".into(),
            ca_file: "/ca.pem".into(),
            bind_dn: "CN=MSOL_x,OU=Service,DC=example,DC=com".into(),
            base_dn: "DC=example,DC=com".into(),
            include_ous: vec!["OU=Staff,DC=example,DC=com".into()],
            exclude_ous: vec![],
            filter: None,
            group_scope: None,
            user_classes: vec![],
            group_classes: vec![],
            upn_from: None,
            anchor: None,
            protected: Default::default(),
        }
    }

    #[test]
    fn insufficient_access_names_account_right_ou_and_fix() {
        let c = config(DirectoryKind::Ad);
        let f = classify(
            &c,
            Step::SetPassword,
            Some("CN=Ann,OU=Staff,DC=example,DC=com"),
            LdapError::InsufficientAccess {
                diagnostic: "00002098: insufficient access".into(),
            },
        );
        assert_eq!(f.outcome, Outcome::AccessDenied);
        assert_eq!(f.event_id, 33004);
        for part in [
            "CN=MSOL_x",
            "Reset Password",
            "OU=Staff,DC=example,DC=com",
            "samba-tool dsacl set",
            "EXAMPLE\\MSOL_x",
        ] {
            assert!(f.detail.contains(part), "{part}: {}", f.detail);
        }
    }

    #[test]
    fn policy_reasons_map_to_the_wire() {
        let c = config(DirectoryKind::Openldap);
        for (r, want) in [
            (
                ldap::PolicyReason::TooShort {
                    min_length: Some(7),
                },
                PolicyReason::TooShort,
            ),
            (ldap::PolicyReason::NotComplex, PolicyReason::Complexity),
            (ldap::PolicyReason::InHistory, PolicyReason::History),
            (ldap::PolicyReason::TooYoung, PolicyReason::TooRecent),
            (ldap::PolicyReason::Unspecified, PolicyReason::Other),
        ] {
            let f = classify(
                &c,
                Step::SetPassword,
                Some("uid=a,dc=x"),
                LdapError::PolicyViolation {
                    reason: r,
                    diagnostic: "server words".into(),
                },
            );
            assert_eq!((f.outcome, f.reason), (Outcome::PolicyRefused, Some(want)));
            let res = failure_result("t", "reset", f);
            assert!(!res.message.contains("server words") && !res.message.contains("dc="));
        }
    }

    #[test]
    fn a_refused_service_bind_is_unreachable_with_33009() {
        let c = config(DirectoryKind::Ad);
        let f = classify(
            &c,
            Step::Bind,
            None,
            LdapError::InvalidCredentials {
                problem: ldap::BindProblem::WrongPassword,
                diagnostic: String::new(),
            },
        );
        assert_eq!(
            (f.outcome, f.event_id),
            (Outcome::DirectoryUnreachable, 33009)
        );
        assert!(f.detail.contains("directory credential for connector corp"));
    }
}
