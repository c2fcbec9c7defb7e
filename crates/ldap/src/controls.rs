//! LDAP controls dirbridge sends and reads, encoded and decoded with [`crate::ber`] (never with
//! ldap3's panicking parsers).

use ldap3::controls::RawControl;

use crate::ber::{self, tag, BerError, Reader};

/// Simple paged results (RFC 2696).
pub const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
/// AD DirSync.
pub const DIRSYNC_OID: &str = "1.2.840.113556.1.4.841";
/// AD password policy hints: enforce history on an administrative reset.
pub const POLICY_HINTS_OID: &str = "1.2.840.113556.1.4.2239";
/// The policy-hints control's first OID (Windows Server 2008 R2), same value; still listed by
/// later Windows versions.
pub const POLICY_HINTS_DEPRECATED_OID: &str = "1.2.840.113556.1.4.2066";
/// Password policy request/response (draft-behera-ldap-password-policy).
pub const PPOLICY_OID: &str = "1.3.6.1.4.1.42.2.27.8.5.1";
/// Content synchronization (RFC 4533) request, state, done, and the intermediate sync info.
pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
pub const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
pub const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
pub const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";
/// Password modify extended operation (RFC 3062).
pub const PASSWORD_MODIFY_OID: &str = "1.3.6.1.4.1.4203.1.11.1";

/// The value of the first response control with `oid`, if any.
pub fn find<'a>(ctrls: &'a [ldap3::controls::Control], oid: &str) -> Option<&'a [u8]> {
    ctrls
        .iter()
        .find(|c| c.1.ctype == oid)
        .map(|c| c.1.val.as_deref().unwrap_or(&[]))
}

/// Paged results request: `SEQUENCE { size INTEGER, cookie OCTET STRING }`.
pub fn paged_request(size: i32, cookie: &[u8]) -> RawControl {
    RawControl {
        ctype: PAGED_RESULTS_OID.into(),
        crit: false,
        val: Some(ber::sequence(&[
            &ber::integer(size as i64),
            &ber::octet_string(cookie),
        ])),
    }
}

/// Paged results response: the cookie (empty on the last page).
pub fn parse_paged_response(value: &[u8]) -> Result<Vec<u8>, BerError> {
    let mut outer = Reader::new(value);
    let mut seq = outer.sequence()?;
    let _estimate = seq.integer()?;
    let cookie = seq.octet_string()?.to_vec();
    Ok(cookie)
}

/// DirSync flags.
pub mod dirsync_flags {
    /// Return only what the caller may read (no Replicating Directory Changes right needed).
    pub const OBJECT_SECURITY: u32 = 0x0000_0001;
    /// Parents before children.
    pub const ANCESTORS_FIRST_ORDER: u32 = 0x0000_0800;
    /// Leave out secret attributes.
    pub const PUBLIC_DATA_ONLY: u32 = 0x0000_2000;
    /// Linked attributes (group members) as incremental value changes.
    pub const INCREMENTAL_VALUES: u32 = 0x8000_0000;
}

/// DirSync request: `SEQUENCE { flags INTEGER, maxBytes INTEGER, cookie OCTET STRING }`. AD
/// requires it critical. The flags are a 32-bit signed value on the wire, so
/// `INCREMENTAL_VALUES` is the four bytes `80 00 00 00`.
pub fn dirsync_request(flags: u32, max_bytes: i32, cookie: &[u8]) -> RawControl {
    RawControl {
        ctype: DIRSYNC_OID.into(),
        crit: true,
        val: Some(ber::sequence(&[
            &ber::integer(flags as i32 as i64),
            &ber::integer(max_bytes as i64),
            &ber::octet_string(cookie),
        ])),
    }
}

/// DirSync response: `SEQUENCE { moreResults INTEGER, unused INTEGER, cookie OCTET STRING }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirSyncResponse {
    pub more_results: bool,
    pub cookie: Vec<u8>,
}

pub fn parse_dirsync_response(value: &[u8]) -> Result<DirSyncResponse, BerError> {
    let mut outer = Reader::new(value);
    let mut seq = outer.sequence()?;
    let more = seq.integer()?;
    let _unused = seq.integer()?;
    let cookie = seq.octet_string()?.to_vec();
    Ok(DirSyncResponse {
        more_results: more != 0,
        cookie,
    })
}

/// AD policy hints, `SEQUENCE { flags INTEGER }` with flag 1: apply password history to a reset.
/// `oid` is whichever of [`POLICY_HINTS_OID`] and [`POLICY_HINTS_DEPRECATED_OID`] the server
/// lists ([`crate::ad::ServerInfo::policy_hints`]).
pub fn policy_hints(oid: &str) -> RawControl {
    RawControl {
        ctype: oid.into(),
        crit: false,
        val: Some(ber::sequence(&[&ber::integer(1)])),
    }
}

/// The ppolicy request control (no value).
pub fn ppolicy_request() -> RawControl {
    RawControl {
        ctype: PPOLICY_OID.into(),
        crit: false,
        val: None,
    }
}

/// ppolicy warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PpolicyWarning {
    TimeBeforeExpiration(i64),
    GraceAuthnsRemaining(i64),
}

/// ppolicy error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PpolicyError {
    PasswordExpired,
    AccountLocked,
    ChangeAfterReset,
    PasswordModNotAllowed,
    MustSupplyOldPassword,
    InsufficientPasswordQuality,
    PasswordTooShort,
    PasswordTooYoung,
    PasswordInHistory,
    PasswordTooLong,
    Unknown(i64),
}

impl PpolicyError {
    fn from_code(c: i64) -> PpolicyError {
        match c {
            0 => PpolicyError::PasswordExpired,
            1 => PpolicyError::AccountLocked,
            2 => PpolicyError::ChangeAfterReset,
            3 => PpolicyError::PasswordModNotAllowed,
            4 => PpolicyError::MustSupplyOldPassword,
            5 => PpolicyError::InsufficientPasswordQuality,
            6 => PpolicyError::PasswordTooShort,
            7 => PpolicyError::PasswordTooYoung,
            8 => PpolicyError::PasswordInHistory,
            9 => PpolicyError::PasswordTooLong,
            other => PpolicyError::Unknown(other),
        }
    }
}

/// The ppolicy response control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PpolicyResponse {
    pub warning: Option<PpolicyWarning>,
    pub error: Option<PpolicyError>,
}

/// ```text
/// SEQUENCE {
///    warning [0] CHOICE { timeBeforeExpiration [0] INTEGER, graceAuthNsRemaining [1] INTEGER } OPTIONAL,
///    error   [1] ENUMERATED OPTIONAL }
/// ```
pub fn parse_ppolicy_response(value: &[u8]) -> Result<PpolicyResponse, BerError> {
    let mut outer = Reader::new(value);
    let mut seq = outer.sequence()?;
    let mut resp = PpolicyResponse::default();
    if let Some(w) = seq.optional(tag::context_constructed(0))? {
        let mut inner = Reader::new(w);
        let (t, v) = inner.any()?;
        resp.warning = Some(match t {
            t if t == tag::context(0) => {
                PpolicyWarning::TimeBeforeExpiration(ber::decode_integer(v)?)
            }
            t if t == tag::context(1) => {
                PpolicyWarning::GraceAuthnsRemaining(ber::decode_integer(v)?)
            }
            found => {
                return Err(BerError::UnexpectedTag {
                    expected: tag::context(0),
                    found,
                })
            }
        });
    }
    if let Some(e) = seq.optional(tag::context(1))? {
        resp.error = Some(PpolicyError::from_code(ber::decode_integer(e)?));
    }
    Ok(resp)
}

/// Password modify request value (RFC 3062):
/// `SEQUENCE { userIdentity [0] OPTIONAL, oldPasswd [1] OPTIONAL, newPasswd [2] OPTIONAL }`.
pub fn password_modify_request(
    user: Option<&[u8]>,
    old: Option<&[u8]>,
    new: Option<&[u8]>,
) -> Vec<u8> {
    let mut parts = Vec::new();
    for (i, v) in [user, old, new].into_iter().enumerate() {
        if let Some(v) = v {
            parts.extend(ber::tlv(tag::context(i as u8), v));
        }
    }
    ber::tlv(tag::SEQUENCE, &parts)
}

/// Sync request modes (RFC 4533).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    RefreshOnly = 1,
    RefreshAndPersist = 3,
}

/// `SEQUENCE { mode ENUMERATED, cookie OCTET STRING OPTIONAL, reloadHint BOOLEAN DEFAULT FALSE }`
pub fn sync_request(mode: SyncMode, cookie: Option<&[u8]>, reload_hint: bool) -> RawControl {
    let mut parts = ber::enumerated(mode as i64);
    if let Some(c) = cookie {
        parts.extend(ber::octet_string(c));
    }
    if reload_hint {
        parts.extend(ber::boolean(true));
    }
    RawControl {
        ctype: SYNC_REQUEST_OID.into(),
        crit: true,
        val: Some(ber::tlv(tag::SEQUENCE, &parts)),
    }
}

/// The state an entry is reported in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncStateKind {
    Present,
    Add,
    Modify,
    Delete,
}

/// Sync state control on an entry:
/// `SEQUENCE { state ENUMERATED, entryUUID OCTET STRING (16), cookie OCTET STRING OPTIONAL }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncState {
    pub state: SyncStateKind,
    pub entry_uuid: Vec<u8>,
    pub cookie: Option<Vec<u8>>,
}

pub fn parse_sync_state(value: &[u8]) -> Result<SyncState, BerError> {
    let mut outer = Reader::new(value);
    let mut seq = outer.sequence()?;
    let state = match seq.enumerated()? {
        0 => SyncStateKind::Present,
        1 => SyncStateKind::Add,
        2 => SyncStateKind::Modify,
        3 => SyncStateKind::Delete,
        _ => return Err(BerError::Unsupported),
    };
    let entry_uuid = seq.octet_string()?.to_vec();
    let cookie = seq.optional(tag::OCTET_STRING)?.map(<[u8]>::to_vec);
    Ok(SyncState {
        state,
        entry_uuid,
        cookie,
    })
}

/// Sync done control: `SEQUENCE { cookie OCTET STRING OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncDone {
    pub cookie: Option<Vec<u8>>,
    pub refresh_deletes: bool,
}

pub fn parse_sync_done(value: &[u8]) -> Result<SyncDone, BerError> {
    let mut outer = Reader::new(value);
    let mut seq = outer.sequence()?;
    let cookie = seq.optional(tag::OCTET_STRING)?.map(<[u8]>::to_vec);
    let refresh_deletes = match seq.optional(tag::BOOLEAN)? {
        Some(b) => ber::decode_boolean(b)?,
        None => false,
    };
    Ok(SyncDone {
        cookie,
        refresh_deletes,
    })
}

/// Sync info intermediate message value (a CHOICE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncInfo {
    NewCookie(Vec<u8>),
    RefreshDelete {
        cookie: Option<Vec<u8>>,
        refresh_done: bool,
    },
    RefreshPresent {
        cookie: Option<Vec<u8>>,
        refresh_done: bool,
    },
    SyncIdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<Vec<u8>>,
    },
}

pub fn parse_sync_info(value: &[u8]) -> Result<SyncInfo, BerError> {
    let mut r = Reader::new(value);
    let (t, v) = r.any()?;
    let refresh = |v: &[u8]| -> Result<(Option<Vec<u8>>, bool), BerError> {
        let mut s = Reader::new(v);
        let cookie = s.optional(tag::OCTET_STRING)?.map(<[u8]>::to_vec);
        let done = match s.optional(tag::BOOLEAN)? {
            Some(b) => ber::decode_boolean(b)?,
            None => true,
        };
        Ok((cookie, done))
    };
    match t {
        t if t == tag::context(0) => Ok(SyncInfo::NewCookie(v.to_vec())),
        t if t == tag::context_constructed(1) => {
            let (cookie, refresh_done) = refresh(v)?;
            Ok(SyncInfo::RefreshDelete {
                cookie,
                refresh_done,
            })
        }
        t if t == tag::context_constructed(2) => {
            let (cookie, refresh_done) = refresh(v)?;
            Ok(SyncInfo::RefreshPresent {
                cookie,
                refresh_done,
            })
        }
        t if t == tag::context_constructed(3) => {
            let mut s = Reader::new(v);
            let cookie = s.optional(tag::OCTET_STRING)?.map(<[u8]>::to_vec);
            let refresh_deletes = match s.optional(tag::BOOLEAN)? {
                Some(b) => ber::decode_boolean(b)?,
                None => false,
            };
            let mut set = Reader::new(s.expect(tag::SET)?);
            let mut uuids = Vec::new();
            while !set.is_empty() {
                uuids.push(set.octet_string()?.to_vec());
            }
            Ok(SyncInfo::SyncIdSet {
                cookie,
                refresh_deletes,
                uuids,
            })
        }
        found => Err(BerError::UnexpectedTag {
            expected: tag::context(0),
            found,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirsync_request_encodes_the_flag_as_four_bytes() {
        let c = dirsync_request(dirsync_flags::INCREMENTAL_VALUES, 1 << 20, b"");
        assert!(c.crit);
        assert_eq!(
            c.val.unwrap(),
            vec![
                0x30, 0x0d, 0x02, 0x04, 0x80, 0x00, 0x00, 0x00, 0x02, 0x03, 0x10, 0x00, 0x00, 0x04,
                0x00
            ]
        );
    }

    #[test]
    fn ppolicy_response_as_openldap_sends_it() {
        // What slapd 2.5 sent for a too-short password: MAOBAQY= (base64).
        let r = parse_ppolicy_response(&[0x30, 0x03, 0x81, 0x01, 0x06]).unwrap();
        assert_eq!(r.error, Some(PpolicyError::PasswordTooShort));
        assert_eq!(r.warning, None);
        let r = parse_ppolicy_response(&[0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x02]).unwrap();
        assert_eq!(r.warning, Some(PpolicyWarning::GraceAuthnsRemaining(2)));
        let r = parse_ppolicy_response(&[0x30, 0x00]).unwrap();
        assert_eq!(r, PpolicyResponse::default());
    }

    #[test]
    fn malformed_controls_are_errors() {
        assert!(parse_ppolicy_response(&[0x30, 0x03, 0x81, 0x05, 0x06]).is_err());
        assert!(parse_dirsync_response(&[0x30, 0x02, 0x02]).is_err());
        assert!(parse_sync_state(&[0x30, 0x03, 0x0a, 0x01, 0x09]).is_err());
        assert!(parse_sync_info(&[0xa3, 0x02, 0x31, 0x05]).is_err());
        assert!(parse_paged_response(&[]).is_err());
    }

    #[test]
    fn sync_done_and_info() {
        let done = parse_sync_done(&[0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c']).unwrap();
        assert_eq!(done.cookie.as_deref(), Some(&b"abc"[..]));
        assert!(!done.refresh_deletes);
        let info = parse_sync_info(&[0xa3, 0x07, 0x31, 0x05, 0x04, 0x03, 1, 2, 3]).unwrap();
        assert_eq!(
            info,
            SyncInfo::SyncIdSet {
                cookie: None,
                refresh_deletes: false,
                uuids: vec![vec![1, 2, 3]]
            }
        );
    }
}
