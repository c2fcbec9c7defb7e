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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
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
}

impl WritebackOperation {
    /// The source anchor (base64 immutable id) of the target user.
    pub fn anchor(&self) -> &str {
        match self {
            WritebackOperation::Reset { anchor, .. }
            | WritebackOperation::Change { anchor, .. }
            | WritebackOperation::Unlock { anchor }
            | WritebackOperation::AdminReset { anchor, .. } => anchor,
        }
    }

    /// The wire name of the operation (`reset`, `change`, `unlock`, `adminReset`).
    pub fn kind(&self) -> &'static str {
        match self {
            WritebackOperation::Reset { .. } => "reset",
            WritebackOperation::Change { .. } => "change",
            WritebackOperation::Unlock { .. } => "unlock",
            WritebackOperation::AdminReset { .. } => "adminReset",
        }
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ];
        for op in ops {
            let d = format!("{op:?} {op:#?}");
            assert!(!d.contains(MARKER), "{d}");
            assert!(d.contains("[redacted]"));
        }
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
