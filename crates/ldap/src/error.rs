//! Every way talking to a directory can fail, as one typed enum. LDAP result codes, AD's
//! diagnostic texts (`0000052D`, `data 775`, …) and the ppolicy response control are turned into
//! [`LdapError`] here and nowhere else; everything above matches on the enum.
//!
//! `Display` never includes the server's raw text or a DN (those can reach people); the raw
//! diagnostic is kept in the variant for the admin event log ([`LdapError::diagnostic`]).

use std::fmt;

use ldap3::LdapResult;
use thiserror::Error;

use crate::controls::{self, PpolicyError};

/// Why a directory refused a new password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyReason {
    /// Shorter than the minimum length (AD says the minimum; ppolicy does not).
    TooShort {
        min_length: Option<u32>,
    },
    TooLong,
    /// AD complexity rules, or ppolicy's quality check.
    NotComplex,
    /// Used before (password history).
    InHistory,
    /// Changed too recently (minimum password age).
    TooYoung,
    /// A user change must supply the current password.
    MustSupplyOldPassword,
    /// Changing the password is not allowed for this account.
    ChangeNotAllowed,
    /// A policy refusal the directory did not explain (Windows AD only says `0000052D`).
    Unspecified,
}

impl fmt::Display for PolicyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyReason::TooShort {
                min_length: Some(n),
            } => {
                write!(f, "the password is too short (at least {n} characters)")
            }
            PolicyReason::TooShort { min_length: None } => write!(f, "the password is too short"),
            PolicyReason::TooLong => write!(f, "the password is too long"),
            PolicyReason::NotComplex => {
                write!(f, "the password does not meet the complexity requirements")
            }
            PolicyReason::InHistory => write!(f, "the password was used before"),
            PolicyReason::TooYoung => write!(f, "the password was changed too recently"),
            PolicyReason::MustSupplyOldPassword => write!(f, "the current password is required"),
            PolicyReason::ChangeNotAllowed => {
                write!(f, "the password of this account may not be changed")
            }
            PolicyReason::Unspecified => write!(f, "the password does not meet the policy"),
        }
    }
}

/// Why a bind failed, where the directory says (AD's `data XXX`, ppolicy's control).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindProblem {
    WrongPassword,
    NoSuchUser,
    AccountDisabled,
    AccountExpired,
    AccountLocked,
    PasswordExpired,
    MustChangePassword,
    LogonRestricted,
    Unknown,
}

impl BindProblem {
    /// ": <reason in words>" for messages, or nothing when the directory did not say.
    pub fn explain(&self) -> &'static str {
        match self {
            BindProblem::WrongPassword => ": wrong password",
            BindProblem::NoSuchUser => ": no such account",
            BindProblem::AccountDisabled => ": the account is disabled",
            BindProblem::AccountExpired => ": the account has expired",
            BindProblem::AccountLocked => ": the account is locked out",
            BindProblem::PasswordExpired => ": the password has expired",
            BindProblem::MustChangePassword => ": the password must be changed first",
            BindProblem::LogonRestricted => {
                ": sign-in is restricted for this account (hours or workstations)"
            }
            BindProblem::Unknown => "",
        }
    }
}

/// What went wrong talking to a directory.
#[derive(Debug, Error)]
pub enum LdapError {
    #[error("the directory cannot be reached ({reason})")]
    Unreachable { url: String, reason: String },
    #[error("the directory's TLS certificate was not accepted ({reason})")]
    CertificateRejected { url: String, reason: String },
    #[error("TLS with the directory failed ({reason})")]
    Tls { url: String, reason: String },
    #[error("the configuration is invalid: {0}")]
    Config(String),
    #[error("the directory did not answer in time")]
    Timeout,
    #[error("the credentials were not accepted{}", problem.explain())]
    InvalidCredentials {
        problem: BindProblem,
        diagnostic: String,
    },
    #[error("the directory requires TLS (or a stronger authentication) for this operation")]
    StrongerAuthRequired { diagnostic: String },
    #[error("the account is not allowed to do this (insufficient access rights)")]
    InsufficientAccess { diagnostic: String },
    #[error("the directory's password policy refused the password: {reason}")]
    PolicyViolation {
        reason: PolicyReason,
        diagnostic: String,
    },
    #[error("the current password given is wrong")]
    WrongCurrentPassword { diagnostic: String },
    #[error("the account is locked")]
    AccountLocked { diagnostic: String },
    #[error("the object does not exist")]
    NoSuchObject { matched: String, diagnostic: String },
    #[error("an object with this name already exists")]
    AlreadyExists { diagnostic: String },
    #[error("the directory refused a constraint (result 19)")]
    ConstraintViolation { diagnostic: String },
    #[error("the directory is unwilling to perform the operation")]
    UnwillingToPerform { diagnostic: String },
    #[error("the directory does not support a critical control or operation")]
    Unsupported { diagnostic: String },
    #[error("the directory is busy or unavailable (result {code})")]
    Unavailable { code: u32, diagnostic: String },
    #[error("the directory sent a malformed response ({0})")]
    Protocol(String),
    #[error("LDAP result {code} ({name})")]
    Other {
        code: u32,
        name: &'static str,
        diagnostic: String,
    },
}

impl LdapError {
    /// The LDAP result code, where there was one.
    pub fn result_code(&self) -> Option<u32> {
        Some(match self {
            LdapError::InvalidCredentials { .. } => 49,
            LdapError::StrongerAuthRequired { .. } => 8,
            LdapError::InsufficientAccess { .. } => 50,
            LdapError::PolicyViolation { .. }
            | LdapError::WrongCurrentPassword { .. }
            | LdapError::ConstraintViolation { .. } => 19,
            LdapError::NoSuchObject { .. } => 32,
            LdapError::AlreadyExists { .. } => 68,
            LdapError::UnwillingToPerform { .. } => 53,
            LdapError::Unsupported { .. } => 12,
            LdapError::Unavailable { code, .. } | LdapError::Other { code, .. } => *code,
            _ => return None,
        })
    }

    /// The server's own text, for the admin event log (never for end users).
    pub fn diagnostic(&self) -> Option<&str> {
        match self {
            LdapError::InvalidCredentials { diagnostic, .. }
            | LdapError::StrongerAuthRequired { diagnostic }
            | LdapError::InsufficientAccess { diagnostic }
            | LdapError::PolicyViolation { diagnostic, .. }
            | LdapError::WrongCurrentPassword { diagnostic }
            | LdapError::AccountLocked { diagnostic }
            | LdapError::NoSuchObject { diagnostic, .. }
            | LdapError::AlreadyExists { diagnostic }
            | LdapError::ConstraintViolation { diagnostic }
            | LdapError::UnwillingToPerform { diagnostic }
            | LdapError::Unsupported { diagnostic }
            | LdapError::Unavailable { diagnostic, .. }
            | LdapError::Other { diagnostic, .. } => Some(diagnostic),
            LdapError::Unreachable { reason, .. }
            | LdapError::CertificateRejected { reason, .. }
            | LdapError::Tls { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// The RFC 4511 name of a result code.
pub fn result_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        68 => "entryAlreadyExists",
        80 => "other",
        _ => "unknown",
    }
}

/// Maps a non-success LDAP result (with its response controls) to the typed error.
pub fn from_result(res: &LdapResult) -> LdapError {
    let diagnostic = res.text.trim_end_matches('\0').to_owned();
    let ppolicy = controls::find(&res.ctrls, controls::PPOLICY_OID)
        .and_then(|v| controls::parse_ppolicy_response(v).ok())
        .and_then(|r| r.error);

    if let Some(err) = ppolicy {
        if let Some(e) = from_ppolicy_error(err, &diagnostic) {
            return e;
        }
    }
    match res.rc {
        8 | 13 => LdapError::StrongerAuthRequired { diagnostic },
        12 | 2 => LdapError::Unsupported { diagnostic },
        19 => from_constraint_violation(diagnostic),
        32 => LdapError::NoSuchObject {
            matched: res.matched.clone(),
            diagnostic,
        },
        49 => LdapError::InvalidCredentials {
            problem: bind_problem(&diagnostic),
            diagnostic,
        },
        50 => LdapError::InsufficientAccess { diagnostic },
        // AD returns unwillingToPerform for an attempt to reset a password over a connection
        // without TLS; keep it distinct from a rights problem.
        53 => LdapError::UnwillingToPerform { diagnostic },
        68 => LdapError::AlreadyExists { diagnostic },
        51 | 52 => LdapError::Unavailable {
            code: res.rc,
            diagnostic,
        },
        code => LdapError::Other {
            code,
            name: result_name(code),
            diagnostic,
        },
    }
}

fn from_ppolicy_error(err: PpolicyError, diagnostic: &str) -> Option<LdapError> {
    let diagnostic = diagnostic.to_owned();
    let reason = match err {
        PpolicyError::PasswordTooShort => PolicyReason::TooShort { min_length: None },
        PpolicyError::PasswordTooLong => PolicyReason::TooLong,
        PpolicyError::InsufficientPasswordQuality => PolicyReason::NotComplex,
        PpolicyError::PasswordInHistory => PolicyReason::InHistory,
        PpolicyError::PasswordTooYoung => PolicyReason::TooYoung,
        PpolicyError::MustSupplyOldPassword => PolicyReason::MustSupplyOldPassword,
        PpolicyError::PasswordModNotAllowed => PolicyReason::ChangeNotAllowed,
        PpolicyError::AccountLocked => return Some(LdapError::AccountLocked { diagnostic }),
        PpolicyError::PasswordExpired => {
            return Some(LdapError::InvalidCredentials {
                problem: BindProblem::PasswordExpired,
                diagnostic,
            })
        }
        PpolicyError::ChangeAfterReset => {
            return Some(LdapError::InvalidCredentials {
                problem: BindProblem::MustChangePassword,
                diagnostic,
            })
        }
        PpolicyError::Unknown(_) => return None,
    };
    Some(LdapError::PolicyViolation { reason, diagnostic })
}

/// AD (and Samba) put a Windows error code in front of the text: `0000052D` is
/// ERROR_PASSWORD_RESTRICTION, `00000056` ERROR_INVALID_PASSWORD (wrong current password).
/// Samba adds why; Windows does not.
fn from_constraint_violation(diagnostic: String) -> LdapError {
    let code = windows_code(&diagnostic);
    match code {
        Some(0x52d) => LdapError::PolicyViolation {
            reason: samba_policy_reason(&diagnostic),
            diagnostic,
        },
        Some(0x56) | Some(0x56b) => LdapError::WrongCurrentPassword { diagnostic },
        _ => {
            let lower = diagnostic.to_ascii_lowercase();
            if lower.contains("password fails quality") {
                LdapError::PolicyViolation {
                    reason: PolicyReason::NotComplex,
                    diagnostic,
                }
            } else if lower.contains("password is in history") {
                LdapError::PolicyViolation {
                    reason: PolicyReason::InHistory,
                    diagnostic,
                }
            } else {
                LdapError::ConstraintViolation { diagnostic }
            }
        }
    }
}

/// The leading 8-hex-digit Windows error code of an AD diagnostic.
pub fn windows_code(diagnostic: &str) -> Option<u32> {
    let head = diagnostic.get(..8)?;
    if !head.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(head, 16).ok()
}

fn samba_policy_reason(text: &str) -> PolicyReason {
    let lower = text.to_ascii_lowercase();
    if lower.contains("too short") {
        // "... It should be equal or longer than 7 characters!"
        let min_length = lower
            .split("longer than ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        PolicyReason::TooShort { min_length }
    } else if lower.contains("too long") {
        PolicyReason::TooLong
    } else if lower.contains("complexity") {
        PolicyReason::NotComplex
    } else if lower.contains("already used") || lower.contains("history") {
        PolicyReason::InHistory
    } else if lower.contains("too young") {
        PolicyReason::TooYoung
    } else if lower.contains("provide the old password") {
        PolicyReason::MustSupplyOldPassword
    } else if lower.contains("changes disabled") || lower.contains("can't be changed") {
        PolicyReason::ChangeNotAllowed
    } else {
        PolicyReason::Unspecified
    }
}

/// AD: `80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563`.
fn bind_problem(diagnostic: &str) -> BindProblem {
    let Some(rest) = diagnostic.split("data ").nth(1) else {
        return BindProblem::Unknown;
    };
    let code: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    match code.to_ascii_lowercase().as_str() {
        "52e" => BindProblem::WrongPassword,
        "525" => BindProblem::NoSuchUser,
        "530" | "531" => BindProblem::LogonRestricted,
        "532" => BindProblem::PasswordExpired,
        "533" => BindProblem::AccountDisabled,
        "701" => BindProblem::AccountExpired,
        "773" => BindProblem::MustChangePassword,
        "775" => BindProblem::AccountLocked,
        _ => BindProblem::Unknown,
    }
}

/// Maps an ldap3 error (transport, TLS, timeouts, or an LDAP result) to the typed error.
pub fn from_ldap3(err: ldap3::LdapError, url: &str) -> LdapError {
    use ldap3::LdapError as E;
    match err {
        E::LdapResult { result } => from_result(&result),
        E::Timeout { .. } => LdapError::Timeout,
        E::Rustls { source } => tls_error(&source, url),
        E::Io { source } => {
            if let Some(tls) = source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return tls_error(tls, url);
            }
            LdapError::Unreachable {
                url: url.to_owned(),
                reason: source.to_string(),
            }
        }
        E::UrlParsing { .. } | E::UnknownScheme(_) | E::DNSName { .. } => {
            LdapError::Config(format!("invalid directory URL {url}: {err}"))
        }
        E::EndOfStream | E::ResultRecv { .. } | E::OpSend { .. } => LdapError::Unreachable {
            url: url.to_owned(),
            reason: format!("connection closed: {err}"),
        },
        other => LdapError::Protocol(other.to_string()),
    }
}

fn tls_error(e: &rustls::Error, url: &str) -> LdapError {
    match e {
        rustls::Error::InvalidCertificate(c) => LdapError::CertificateRejected {
            url: url.to_owned(),
            reason: format!("{c:?}"),
        },
        other => LdapError::Tls {
            url: url.to_owned(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: text.into(),
            refs: vec![],
            ctrls: vec![],
        }
    }

    #[test]
    fn samba_policy_texts() {
        let e = from_result(&result(19, "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 7 characters!"));
        assert!(
            matches!(
                e,
                LdapError::PolicyViolation {
                    reason: PolicyReason::TooShort {
                        min_length: Some(7)
                    },
                    ..
                }
            ),
            "{e:?}"
        );
        let e = from_result(&result(19, "0000052D: Constraint violation - check_password_restrictions: the password does not meet the complexity criteria!"));
        assert!(matches!(
            e,
            LdapError::PolicyViolation {
                reason: PolicyReason::NotComplex,
                ..
            }
        ));
        let e = from_result(&result(19, "0000052D: Constraint violation - check_password_restrictions: the password was already used (in history)!"));
        assert!(matches!(
            e,
            LdapError::PolicyViolation {
                reason: PolicyReason::InHistory,
                ..
            }
        ));
        let e = from_result(&result(19, "0000052D: AtrErr: DSID-03191083, #1:\n\t0: 0000052D: DSID-03191083, problem 1005 (CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)\n"));
        assert!(matches!(
            e,
            LdapError::PolicyViolation {
                reason: PolicyReason::Unspecified,
                ..
            }
        ));
        let e = from_result(&result(19, "00000056: Constraint violation - check_password_restrictions: The old password specified doesn't match!"));
        assert!(matches!(e, LdapError::WrongCurrentPassword { .. }));
    }

    #[test]
    fn ad_bind_data_codes() {
        let e = from_result(&result(49, "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1"));
        assert!(matches!(
            e,
            LdapError::InvalidCredentials {
                problem: BindProblem::AccountLocked,
                ..
            }
        ));
        let e = from_result(&result(49, "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1"));
        assert!(matches!(
            e,
            LdapError::InvalidCredentials {
                problem: BindProblem::WrongPassword,
                ..
            }
        ));
    }

    #[test]
    fn display_leaks_no_server_text() {
        let e = from_result(&result(
            50,
            "00002098: insufficient access rights on CN=Secret Person,OU=x",
        ));
        assert!(!e.to_string().contains("CN="));
        assert_eq!(e.result_code(), Some(50));
        assert!(e.diagnostic().unwrap().contains("CN=Secret"));
    }
}
