//! Password writeback on the wire: the sealed request the cloud sends to an agent, and the
//! operation sealed inside it.
//!
//! The cloud seals a [`WritebackOperation`] (JSON) with HPKE (RFC 9180, mode base,
//! DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305) to the agent's X25519 sealing
//! key, with [`associated_data`] binding the version, tenant, agent, tracking id and expiry, and
//! [`INFO`] as the HPKE info string. Only the agent named in the request can open it, and
//! changing any header field makes opening fail.

use serde::{Deserialize, Serialize};

use crate::Epoch;

/// The only [`SealedRequest::version`] there is.
pub const VERSION: u8 = 1;

/// HPKE `info` for writeback requests (distinct from any other use of the sealing key).
pub const INFO: &[u8] = b"dirbridge writeback request v1";

/// The HPKE associated data of a request:
/// `DIRBRIDGE-WB-V{version}\n{tenant}\n{agent}\n{tracking}\n{expires_at}`.
/// Both sides refuse ids that fail [`is_header_id`] (no newlines), so the encoding is
/// unambiguous.
pub fn associated_data(
    version: u8,
    tenant_id: &str,
    agent_id: &str,
    tracking_id: &str,
    expires_at: Epoch,
) -> String {
    format!("DIRBRIDGE-WB-V{version}\n{tenant_id}\n{agent_id}\n{tracking_id}\n{expires_at}")
}

/// True when `id` can go into [`associated_data`]: 1 to 256 bytes, no control characters.
pub fn is_header_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && !id.chars().any(char::is_control)
}

/// A writeback request sealed to one agent. The header fields travel in clear and are bound
/// into the ciphertext as associated data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SealedRequest {
    pub version: u8,
    pub tenant_id: String,
    pub agent_id: String,
    pub tracking_id: String,
    pub expires_at: Epoch,
    /// HPKE encapsulated key, base64 (32 bytes for X25519).
    pub encapsulated_key: String,
    /// HPKE ciphertext of the JSON [`WritebackOperation`], base64.
    pub ciphertext: String,
}

/// What the agent is asked to do. Sealed; never sent or logged in clear. `Debug` redacts
/// passwords. Serde only here: the agent and the cloud keep values of this type in zeroizing
/// wrappers.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum WritebackOperation {
    /// Self-service reset: set a new password without knowing the old one.
    Reset {
        anchor: String,
        new_password: String,
    },
    /// Self-service change: the user knows the current password.
    Change {
        anchor: String,
        old_password: String,
        new_password: String,
    },
    /// Unlock the account without changing the password.
    Unlock { anchor: String },
    /// Reset by an administrator from the admin portal.
    AdminReset {
        anchor: String,
        new_password: String,
        must_change: bool,
    },
    /// Pass-through sign-in: check `password` by binding to the directory as the user, on a
    /// connection of its own. Changes nothing (beyond what the directory itself records for a
    /// sign-in: a wrong password counts toward its lockout, as any bind does). Served by any
    /// present agent of the tenant, whether or not password writeback is enabled on it.
    #[serde(rename = "signIn")]
    Verify { anchor: String, password: String },
}

impl WritebackOperation {
    /// The source anchor (base64 immutable id) of the target user.
    pub fn anchor(&self) -> &str {
        match self {
            WritebackOperation::Reset { anchor, .. }
            | WritebackOperation::Change { anchor, .. }
            | WritebackOperation::Unlock { anchor }
            | WritebackOperation::AdminReset { anchor, .. }
            | WritebackOperation::Verify { anchor, .. } => anchor,
        }
    }

    /// What kind of operation this is.
    pub fn operation_kind(&self) -> OperationKind {
        match self {
            WritebackOperation::Reset { .. } => OperationKind::Reset,
            WritebackOperation::Change { .. } => OperationKind::Change,
            WritebackOperation::Unlock { .. } => OperationKind::Unlock,
            WritebackOperation::AdminReset { .. } => OperationKind::AdminReset,
            WritebackOperation::Verify { .. } => OperationKind::SignIn,
        }
    }

    /// The wire name of the operation (`reset`, `change`, `unlock`, `adminReset`, `signIn`).
    pub fn kind(&self) -> &'static str {
        self.operation_kind().as_str()
    }

    /// True for the pass-through sign-in check (which writes nothing).
    pub fn is_verify(&self) -> bool {
        matches!(self, WritebackOperation::Verify { .. })
    }
}

/// The kind (and queue `kind`) of a pass-through sign-in ([`WritebackOperation::Verify`]).
pub const SIGN_IN: &str = "signIn";

/// The kinds of [`WritebackOperation`]: they pick the words a person sees, the agent's event
/// ids and the audit action. On the wire and in the queue's `kind` column, the camelCase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OperationKind {
    Reset,
    Change,
    Unlock,
    AdminReset,
    SignIn,
}

impl OperationKind {
    pub const ALL: [OperationKind; 5] = [
        OperationKind::Reset,
        OperationKind::Change,
        OperationKind::Unlock,
        OperationKind::AdminReset,
        OperationKind::SignIn,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Reset => "reset",
            OperationKind::Change => "change",
            OperationKind::Unlock => "unlock",
            OperationKind::AdminReset => "adminReset",
            OperationKind::SignIn => SIGN_IN,
        }
    }

    /// The kind of a wire name, if it is one.
    pub fn parse(s: &str) -> Option<OperationKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The operation in words, for event messages.
    pub fn describe(self) -> &'static str {
        match self {
            OperationKind::Reset => "password reset",
            OperationKind::Change => "password change",
            OperationKind::Unlock => "account unlock",
            OperationKind::AdminReset => "administrator password reset",
            OperationKind::SignIn => "pass-through sign-in",
        }
    }

    /// The agent's (start, success, fail) event ids of a writeback of this kind (a sign-in
    /// logs [`events::SIGN_IN_SUCCEEDED`] and its siblings instead, and has no start).
    pub fn event_ids(self) -> (u32, u32, u32) {
        match self {
            OperationKind::Reset => (
                events::RESET_START,
                events::RESET_SUCCESS,
                events::RESET_FAIL,
            ),
            OperationKind::Change => (
                events::CHANGE_START,
                events::CHANGE_SUCCESS,
                events::CHANGE_FAIL,
            ),
            OperationKind::Unlock => (
                events::UNLOCK_START,
                events::UNLOCK_SUCCESS,
                events::UNLOCK_FAIL,
            ),
            OperationKind::AdminReset => (
                events::ADMIN_RESET_START,
                events::ADMIN_RESET_SUCCESS,
                events::ADMIN_RESET_FAIL,
            ),
            OperationKind::SignIn => (
                events::SIGN_IN_SUCCEEDED,
                events::SIGN_IN_SUCCEEDED,
                events::SIGN_IN_FAILED,
            ),
        }
    }
}

impl AsRef<str> for OperationKind {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for WritebackOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const R: &str = "[redacted]";
        match self {
            WritebackOperation::Reset { anchor, .. } => f
                .debug_struct("Reset")
                .field("anchor", anchor)
                .field("new_password", &R)
                .finish(),
            WritebackOperation::Change { anchor, .. } => f
                .debug_struct("Change")
                .field("anchor", anchor)
                .field("old_password", &R)
                .field("new_password", &R)
                .finish(),
            WritebackOperation::Unlock { anchor } => {
                f.debug_struct("Unlock").field("anchor", anchor).finish()
            }
            WritebackOperation::AdminReset {
                anchor,
                must_change,
                ..
            } => f
                .debug_struct("AdminReset")
                .field("anchor", anchor)
                .field("new_password", &R)
                .field("must_change", must_change)
                .finish(),
            WritebackOperation::Verify { anchor, .. } => f
                .debug_struct("Verify")
                .field("anchor", anchor)
                .field("password", &R)
                .finish(),
        }
    }
}

// ---------------------------------------------------------------- results

/// How a writeback request ended. The agent decides every outcome from `succeeded` to
/// `directoryUnreachable`; the cloud decides the last four (it never reached an agent, or never
/// heard back).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Done in the directory (event 31002 / 31007 / 31010).
    Succeeded,
    /// The directory's password policy refused the new password (33008); see [`PolicyReason`].
    PolicyRefused,
    /// Self-service change: the current password given is wrong (33007).
    WrongCurrentPassword,
    /// The on-prem account is disabled (33005).
    AccountDisabled,
    /// The on-prem account is locked out and the policy does not allow unlocking (33006).
    AccountLockedOut,
    /// Protected account (`adminCount=1`): refused by design (33004).
    ProtectedAccount,
    /// The agent's service account lacks a right (33004, the incumbent's 0x80230626). The person
    /// is told to contact their administrator; `adminDetail` names account, right, OU and fix.
    AccessDenied,
    /// No directory object has the user's anchor (33002).
    UserNotFound,
    /// More than one object matched the anchor (33003).
    AmbiguousUser,
    /// The agent could not reach or bind to the directory (33009 for a refused bind).
    DirectoryUnreachable,
    /// Agent misconfiguration (no connector, writeback credential missing...) (33009).
    ConfigurationError,
    /// Any other directory error (33001).
    DirectoryError,
    /// The agent refused the envelope: expired, replayed, not for it, or undecryptable (32004).
    RequestRefused,
    /// Cloud: no writeback agent is connected, or none claimed the request in time.
    AgentUnavailable,
    /// Cloud: an agent claimed the request but no result came back before the deadline; it ran
    /// at most once, and may or may not have changed the password.
    OutcomeUnknown,
    /// Sign-in: the directory refused the password (AD `data 52e`, OpenLDAP invalidCredentials)
    /// (34002).
    WrongPassword,
    /// Sign-in: the password is right but has expired (AD `data 532`, ppolicy passwordExpired);
    /// the person changes it with self-service change (34002).
    PasswordExpired,
    /// Sign-in: the password is right but must be changed first (AD `data 773`, `pwdLastSet=0`;
    /// ppolicy changeAfterReset, `pwdReset: TRUE`) (34002).
    MustChangePassword,
    /// Sign-in: the on-prem account has expired (AD `data 701`, `accountExpires`) (34002).
    AccountExpired,
    /// Sign-in: not allowed now or from here (AD `data 530` logon hours, `531` workstations)
    /// (34002).
    LogonRestricted,
}

/// Why the on-prem policy refused a password, as far as the directory said.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PolicyReason {
    TooShort,
    /// Complexity / quality rules.
    Complexity,
    /// Matches a recent password.
    History,
    /// Changed too recently (minimum password age).
    TooRecent,
    /// The directory refused without saying which rule.
    Other,
}

/// The result of one writeback request, as the agent reports it and the API returns it.
/// `message` is for the person (plain words, no DN, no server text); `adminDetail` is for
/// administrators only (audit log, agent event log) and never holds a password.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WritebackResult {
    pub tracking_id: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_reason: Option<PolicyReason>,
    pub message: String,
    /// The agent event id that recorded the result (31002, 33008, ...), if an agent ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<u32>,
    /// The agent that ran it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// For administrators: account, right, OU and the command that fixes it, and similar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_detail: Option<String>,
}

/// The words a person sees for `outcome` (and `reason` for policy refusals). One place, so the
/// agent, the cloud and the portal say the same thing.
/// `kind` is an [`OperationKind`] or its wire name (an unknown name reads as a reset).
pub fn person_message(
    outcome: Outcome,
    reason: Option<PolicyReason>,
    kind: impl AsRef<str>,
) -> String {
    let kind = OperationKind::parse(kind.as_ref()).unwrap_or(OperationKind::Reset);
    if kind == OperationKind::SignIn {
        return sign_in_message(outcome);
    }
    match outcome {
        Outcome::Succeeded => match kind {
            OperationKind::Unlock => "Your account is unlocked.".into(),
            _ => "Your password has been changed.".into(),
        },
        Outcome::PolicyRefused => match reason.unwrap_or(PolicyReason::Other) {
            PolicyReason::TooShort => "Your organisation's password policy refused the new password: it is too short. Choose a longer one.".into(),
            PolicyReason::Complexity => "Your organisation's password policy refused the new password: it is not complex enough. Mix upper and lower case letters, digits and symbols, and avoid your name.".into(),
            PolicyReason::History => "Your organisation's password policy refused the new password: you have used it recently. Choose one you have not used before.".into(),
            PolicyReason::TooRecent => "Your organisation's password policy refused the change: your password was changed too recently. Try again later.".into(),
            PolicyReason::Other => "Your organisation's password policy refused the new password. Choose a longer, more complex password you have not used before.".into(),
        },
        Outcome::WrongCurrentPassword => "The current password you entered is not correct.".into(),
        Outcome::AccountDisabled => "Your account is disabled. Contact your administrator.".into(),
        Outcome::AccountLockedOut => "Your account is locked out. Contact your administrator to unlock it.".into(),
        Outcome::ProtectedAccount => "Passwords of privileged accounts cannot be reset here. Contact your administrator.".into(),
        Outcome::AccessDenied | Outcome::ConfigurationError => "Your password could not be changed because of a configuration problem in your organisation's directory. Contact your administrator.".into(),
        Outcome::UserNotFound | Outcome::AmbiguousUser => "Your account could not be found in your organisation's directory. Contact your administrator.".into(),
        Outcome::DirectoryUnreachable | Outcome::AgentUnavailable => "Your organisation's directory cannot be reached right now, so your password was not changed. Try again in a few minutes.".into(),
        Outcome::DirectoryError | Outcome::RequestRefused => "Your password could not be changed because of an error in your organisation's directory. Try again, or contact your administrator.".into(),
        Outcome::OutcomeUnknown => "We could not confirm whether your password was changed. Try signing in with the new password; if that fails, try again in a few minutes.".into(),
        Outcome::WrongPassword => "The password you entered is not correct.".into(),
        Outcome::PasswordExpired
        | Outcome::MustChangePassword
        | Outcome::AccountExpired
        | Outcome::LogonRestricted => sign_in_message(outcome),
    }
}

/// Where a person changes an expired or must-change password themselves.
pub const SELF_SERVICE_CHANGE: &str = "/api/v1/sspr/change";

/// The words for a pass-through sign-in ([`SIGN_IN`]). A wrong password reads exactly as the
/// cloud's own "user name or password is incorrect"; the rest say what to do next.
fn sign_in_message(outcome: Outcome) -> String {
    match outcome {
        Outcome::Succeeded => "You are signed in.".into(),
        Outcome::WrongPassword | Outcome::WrongCurrentPassword | Outcome::UserNotFound => {
            "The user name or password is incorrect.".into()
        }
        Outcome::PasswordExpired => format!("Your password has expired. Change it with self-service password change ({SELF_SERVICE_CHANGE}: your current password and a new one), then sign in with the new password."),
        Outcome::MustChangePassword => format!("You must change your password before you can sign in. Change it with self-service password change ({SELF_SERVICE_CHANGE}: your current password and a new one), then sign in with the new password."),
        Outcome::AccountDisabled => "Your account is disabled in your organisation's directory. Contact your administrator.".into(),
        Outcome::AccountLockedOut => "Your account is locked out in your organisation's directory after too many wrong passwords. Wait for it to unlock, reset your password with self-service password reset, or contact your administrator.".into(),
        Outcome::AccountExpired => "Your account has expired in your organisation's directory. Contact your administrator to extend it.".into(),
        Outcome::LogonRestricted => "Your account is not allowed to sign in at this time or from this place. Try again within your permitted hours, or contact your administrator.".into(),
        Outcome::DirectoryUnreachable | Outcome::AgentUnavailable | Outcome::OutcomeUnknown => "Your organisation's directory cannot be reached right now, so your password could not be checked. Try again in a few minutes; an administrator can check the agents with `dirbridge agents list`.".into(),
        Outcome::PolicyRefused
        | Outcome::ProtectedAccount
        | Outcome::AccessDenied
        | Outcome::AmbiguousUser
        | Outcome::ConfigurationError
        | Outcome::DirectoryError
        | Outcome::RequestRefused => "Your password could not be checked because of a problem with your organisation's directory. Try again in a few minutes, or contact your administrator.".into(),
    }
}

// ---------------------------------------------------------------- agent <-> cloud

/// `POST /api/v1/agent/writeback/claim` (signed): the agent asks to run a request it was pushed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    pub tracking_id: String,
}

/// The answer to a claim: `proceed` is true for exactly one claim of a request; otherwise the
/// agent must not touch the directory (another agent has it, or it expired).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimAnswer {
    pub proceed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Which kind of directory an agent writes back to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum DirectoryKind {
    ActiveDirectory,
    OpenLdap,
}

/// `PUT /api/v1/agents/{id}/writeback` (Global Administrator's bearer token, sent by
/// `dirbridge agent writeback enable` after its own checks): turn writeback on for that agent
/// with a freshly generated sealing key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnableRequest {
    /// The new X25519 sealing public key, base64 (the key rolls on every enable).
    pub sealing_public_key: String,
    pub connector: String,
    pub directory_kind: DirectoryKind,
    /// The OUs whose rights were checked.
    pub checked_roots: Vec<String>,
}

/// One agent's writeback state (`GET /api/v1/writeback`, `GET /api/v1/agent/writeback`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentWriteback {
    pub agent_id: String,
    pub agent_name: String,
    pub enabled: bool,
    pub connector: Option<String>,
    pub directory_kind: Option<DirectoryKind>,
    pub enabled_at: Option<Epoch>,
    pub key_created_at: Option<Epoch>,
    /// Connected to some cloud instance's push socket recently.
    pub connected: bool,
}

/// `GET /api/v1/writeback` (Global Administrator).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WritebackStatus {
    /// Writeback can work right now: a premium SKU, the policy switch on, an enabled agent.
    pub available: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub agents: Vec<AgentWriteback>,
}

/// Event ids of the agent's writeback log (the incumbent's PasswordResetService family).
pub mod events {
    pub const RESET_START: u32 = 31001;
    pub const RESET_SUCCESS: u32 = 31002;
    pub const RESET_FAIL: u32 = 31003;
    pub const ENABLE_START: u32 = 31004;
    pub const ENABLE_SUCCESS: u32 = 31005;
    pub const CHANGE_START: u32 = 31006;
    pub const CHANGE_SUCCESS: u32 = 31007;
    pub const CHANGE_FAIL: u32 = 31008;
    pub const ADMIN_RESET_START: u32 = 31009;
    pub const ADMIN_RESET_SUCCESS: u32 = 31010;
    pub const ADMIN_RESET_FAIL: u32 = 31011;
    pub const DISABLE_START: u32 = 31012;
    pub const DISABLE_SUCCESS: u32 = 31013;
    pub const DISABLE_FAIL: u32 = 31014;
    pub const SERVICE_STARTED: u32 = 31015;
    pub const SERVICE_STOPPED: u32 = 31016;
    pub const KEY_CREATED: u32 = 31018;
    pub const HEARTBEAT: u32 = 31019;
    /// dirbridge's own: unlock start / success / fail.
    pub const UNLOCK_START: u32 = 31020;
    pub const UNLOCK_SUCCESS: u32 = 31021;
    pub const UNLOCK_FAIL: u32 = 31022;
    pub const DECRYPTION_ERROR: u32 = 32004;
    /// dirbridge's own: an envelope refused as expired, replayed or for another agent.
    pub const ENVELOPE_REFUSED: u32 = 32005;
    pub const BAD_CLOUD_CREDENTIAL: u32 = 32009;
    pub const UNKNOWN_DIRECTORY_ERROR: u32 = 33001;
    pub const USER_NOT_FOUND: u32 = 33002;
    pub const MULTIPLE_MATCHES: u32 = 33003;
    pub const PERMISSIONS: u32 = 33004;
    pub const ACCOUNT_DISABLED: u32 = 33005;
    pub const ACCOUNT_LOCKED_OUT: u32 = 33006;
    pub const WRONG_CURRENT_PASSWORD: u32 = 33007;
    pub const PASSWORD_POLICY: u32 = 33008;
    pub const CONFIGURATION_ERROR: u32 = 33009;
    /// dirbridge's own, pass-through sign-in (one event per attempt, never the password):
    /// the directory accepted the user's password.
    pub const SIGN_IN_SUCCEEDED: u32 = 34001;
    /// Pass-through sign-in: the directory refused the person (wrong password, disabled, locked
    /// out, expired, must change, logon hours); `outcome` says which.
    pub const SIGN_IN_REFUSED: u32 = 34002;
    /// Pass-through sign-in: the password could not be checked (directory unreachable, user not
    /// found, configuration); `outcome` and the message say why.
    pub const SIGN_IN_FAILED: u32 = 34003;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_kinds_round_trip_their_wire_names() {
        for k in OperationKind::ALL {
            assert_eq!(OperationKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(
                person_message(Outcome::Succeeded, None, k),
                person_message(Outcome::Succeeded, None, k.as_str())
            );
        }
        assert_eq!(OperationKind::parse("nonsense"), None);
        let op = WritebackOperation::Unlock { anchor: "a".into() };
        assert_eq!(op.operation_kind(), OperationKind::Unlock);
        assert_eq!(op.kind(), "unlock");
    }

    const MARKER: &str = "Marker-Pa55word-7f3c";

    #[test]
    fn operations_are_tagged_camel_case() {
        let op = WritebackOperation::AdminReset {
            anchor: "AQID".into(),
            new_password: MARKER.into(),
            must_change: true,
        };
        let v = serde_json::to_value(&op).unwrap();
        assert_eq!(v["op"], "adminReset");
        assert_eq!(v["newPassword"], MARKER);
        assert_eq!(v["mustChange"], true);
        let back: WritebackOperation = serde_json::from_value(v).unwrap();
        assert_eq!(back, op);
        let u: WritebackOperation =
            serde_json::from_str(r#"{"op":"unlock","anchor":"AQID"}"#).unwrap();
        assert_eq!(u.anchor(), "AQID");
        assert_eq!(u.kind(), "unlock");
    }

    #[test]
    fn debug_redacts_every_password() {
        let ops = [
            WritebackOperation::Reset {
                anchor: "a".into(),
                new_password: MARKER.into(),
            },
            WritebackOperation::Change {
                anchor: "a".into(),
                old_password: MARKER.into(),
                new_password: MARKER.into(),
            },
            WritebackOperation::AdminReset {
                anchor: "a".into(),
                new_password: MARKER.into(),
                must_change: false,
            },
            WritebackOperation::Verify {
                anchor: "a".into(),
                password: MARKER.into(),
            },
        ];
        for op in ops {
            let d = format!("{op:?} {op:#?}");
            assert!(!d.contains(MARKER), "{d}");
            assert!(d.contains("[redacted]"));
        }
    }

    #[test]
    fn verify_is_the_sign_in_operation() {
        let op = WritebackOperation::Verify {
            anchor: "AQID".into(),
            password: MARKER.into(),
        };
        let v = serde_json::to_value(&op).unwrap();
        assert_eq!(v["op"], "signIn");
        assert_eq!(v["password"], MARKER);
        assert_eq!(op.kind(), SIGN_IN);
        assert!(op.is_verify());
        let back: WritebackOperation = serde_json::from_value(v).unwrap();
        assert_eq!(back, op);
    }

    #[test]
    fn sign_in_messages_say_what_to_do_next() {
        let wrong = person_message(Outcome::WrongPassword, None, SIGN_IN);
        assert_eq!(wrong, "The user name or password is incorrect.");
        for o in [Outcome::PasswordExpired, Outcome::MustChangePassword] {
            let m = person_message(o, None, SIGN_IN);
            assert!(m.contains(SELF_SERVICE_CHANGE), "{m}");
        }
        assert!(person_message(Outcome::AccountDisabled, None, SIGN_IN).contains("disabled"));
        assert!(person_message(Outcome::AccountLockedOut, None, SIGN_IN).contains("locked"));
        for o in [
            Outcome::AgentUnavailable,
            Outcome::DirectoryUnreachable,
            Outcome::OutcomeUnknown,
        ] {
            let m = person_message(o, None, SIGN_IN);
            assert!(m.contains("dirbridge agents list"), "{m}");
            assert!(!m.contains("password was not changed"), "{m}");
        }
        // Writeback's words are unchanged.
        assert_eq!(
            person_message(Outcome::Succeeded, None, "reset"),
            "Your password has been changed."
        );
    }

    #[test]
    fn associated_data_is_canonical() {
        assert_eq!(
            associated_data(1, "t", "a", "k", 42),
            "DIRBRIDGE-WB-V1\nt\na\nk\n42"
        );
        assert!(is_header_id("0b7c-uuid"));
        assert!(!is_header_id("a\nb"));
        assert!(!is_header_id(""));
    }
}
