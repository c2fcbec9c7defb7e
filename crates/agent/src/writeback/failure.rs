//! What went wrong in a writeback or sign-in check, told once for every operation: the typed
//! [`Failure`] (outcome, 33xxx event, detail for administrators, the directory's own text),
//! [`classify`] of an LDAP error at a [`Step`], and [`find`], which finds the user by anchor
//! (the first step of every operation). `execute`, `verify` and `protected` all use these.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ldap::ad::AccountState;
use ldap::rights::{ad_fixes, openldap_fixes, Right};
use ldap::{Connection, Entry, LdapError, Scope};
use proto::writeback::{events as ids, person_message, Outcome, PolicyReason, WritebackResult};

use zeroize::Zeroizing;

use crate::connector::{sid_text, ConnectorConfig, DirectoryKind};
use crate::events::Level;

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

    pub(super) fn code(&self) -> &'static str {
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
pub(super) fn escape_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\{x:02x}")).collect()
}

/// Replaced by the service account's SID once known (it takes another read).
pub(super) const SID_PLACEHOLDER: &str = "<SID of the service account>";

pub(super) async fn account_sid(c: &mut Connection, dn: &str) -> String {
    c.read(dn, &["objectSid"])
        .await
        .ok()
        .and_then(|e| e.values("objectSid").first().map(|s| sid_text(s)))
        .unwrap_or_else(|| SID_PLACEHOLDER.into())
}

/// The synced root the user is below (the OU the right must be delegated on).
pub(super) fn root_of(config: &ConnectorConfig, dn: &str) -> String {
    config
        .roots()
        .into_iter()
        .find(|r| crate::sync::scope::is_below(dn, r))
        .unwrap_or_else(|| config.base_dn.clone())
}

/// The right an insufficient-access answer at `step` means.
pub(super) fn missing_right(kind: DirectoryKind, step: Step) -> Option<Right> {
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
pub(super) fn down_level_name(config: &ConnectorConfig) -> String {
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

pub(super) fn access_denied(config: &ConnectorConfig, step: Step, who: &str) -> Failure {
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

pub(super) fn policy_reason(r: ldap::PolicyReason) -> PolicyReason {
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
