//! Running one opened writeback operation against the directory (docs/writeback.md,
//! "Operations"): find the user by anchor, refuse protected and disabled accounts, write, and
//! turn every answer into a [`WritebackResult`] whose `message` comes only from
//! [`person_message`] and whose `admin_detail` names what an administrator must fix.
//!
//! Every request logs a start event and a success or failure event (31xxx, by operation), and
//! on failure the 33xxx event of the failure class first, all with the tracking id.

use ldap::{Connection, LdapError};
use proto::writeback::{
    events as ids, person_message, Outcome, PolicyReason, WritebackOperation, WritebackResult,
};
use secrecy::SecretString;
use serde_json::json;

use super::failure::*;
use crate::connector::{ConnectorConfig, DirectoryKind};
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: DirectoryKind) -> ConnectorConfig {
        ConnectorConfig {
            include_ous: vec!["OU=Staff,DC=example,DC=com".into()],
            ..ConnectorConfig::new(
                "corp",
                kind,
                "ldaps://dc.example:636".into(),
                "/ca.pem".into(),
                "CN=MSOL_x,OU=Service,DC=example,DC=com".into(),
                "DC=example,DC=com".into(),
            )
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
