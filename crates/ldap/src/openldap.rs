//! OpenLDAP: password set/change with the RFC 3062 password modify extended operation and the
//! ppolicy request control, and the syncrepl (RFC 4533) refreshOnly delta.

use ldap3::asn1::{StructureTag, PL};
use ldap3::exop::Exop;
use ldap3::{Mod, Scope};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashSet;
use zeroize::Zeroizing;

use crate::ad::AccountState;
use crate::connection::{Connection, Entry};
use crate::controls::{self, SyncInfo, SyncMode, SyncStateKind};
use crate::error::{from_result, LdapError};

impl Connection {
    /// Sets `user_dn`'s password with the password modify extended operation. Bound as a
    /// service account with write access to `userPassword`, this is an administrative reset;
    /// bound as the user with `old_password`, a change. The ppolicy control is always sent, so
    /// a refusal carries the precise reason ([`LdapError::PolicyViolation`]).
    pub async fn openldap_set_password(
        &mut self,
        user_dn: &str,
        old_password: Option<&SecretString>,
        new_password: &SecretString,
    ) -> Result<(), LdapError> {
        let value = Zeroizing::new(controls::password_modify_request(
            Some(user_dn.as_bytes()),
            old_password.map(|p| p.expose_secret().as_bytes()),
            Some(new_password.expose_secret().as_bytes()),
        ));
        let exop = Exop {
            name: Some(controls::PASSWORD_MODIFY_OID.into()),
            val: Some(value.to_vec()),
        };
        let res = self
            .ldap
            .with_controls(controls::ppolicy_request())
            .extended(exop)
            .await
            .map_err(|e| self.map(e))?;
        if res.1.rc == 0 {
            Ok(())
        } else {
            Err(from_result(&res.1))
        }
    }

    /// Simple bind with the ppolicy request control (non-critical: a server without ppolicy
    /// ignores it), for checking a user's password. A refusal comes back typed from the
    /// response control where the server sends one (locked → [`LdapError::AccountLocked`],
    /// expired → [`crate::BindProblem::PasswordExpired`]). A bind that succeeds while ppolicy
    /// says the password must be changed first (`pwdReset: TRUE` with `pwdMustChange`) is
    /// returned as [`crate::BindProblem::MustChangePassword`]: the session OpenLDAP grants then
    /// may only change the password, so it is no sign-in.
    pub async fn openldap_bind_with_ppolicy(
        &mut self,
        dn: &str,
        password: &SecretString,
    ) -> Result<(), LdapError> {
        if password.expose_secret().is_empty() {
            return Err(LdapError::InvalidCredentials {
                problem: crate::error::BindProblem::WrongPassword,
                diagnostic: "empty password refused by dirbridge".into(),
            });
        }
        let res = self
            .ldap
            .with_controls(controls::ppolicy_request())
            .simple_bind(dn, password.expose_secret())
            .await
            .map_err(|e| self.map(e))?;
        if res.rc != 0 {
            return Err(from_result(&res));
        }
        let after_reset = controls::find(&res.ctrls, controls::PPOLICY_OID)
            .and_then(|v| controls::parse_ppolicy_response(v).ok())
            .and_then(|r| r.error)
            == Some(controls::PpolicyError::ChangeAfterReset);
        if after_reset {
            return Err(LdapError::InvalidCredentials {
                problem: crate::error::BindProblem::MustChangePassword,
                diagnostic: "bind accepted, but ppolicy says the password must be changed after a reset (changeAfterReset)".into(),
            });
        }
        Ok(())
    }

    /// A syncrepl refreshOnly search: with no cookie, the full content; with the cookie of the
    /// previous refresh, what changed since (deletes included when the server keeps a session
    /// log, otherwise as the complement of the "present" set).
    pub async fn openldap_sync_refresh(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        cookie: Option<&[u8]>,
    ) -> Result<SyncRefresh, LdapError> {
        let url = self.url.clone();
        let map = |e| crate::error::from_ldap3(e, &url);
        let mut stream = self
            .ldap
            .with_controls(controls::sync_request(SyncMode::RefreshOnly, cookie, false))
            .streaming_search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(map)?;
        let mut out = SyncRefresh::default();
        while let Some(item) = stream.next().await.map_err(map)? {
            if item.is_intermediate() {
                let Some(value) = intermediate_value(&item.0) else {
                    continue;
                };
                match controls::parse_sync_info(&value)
                    .map_err(|e| LdapError::Protocol(format!("sync info: {e}")))?
                {
                    SyncInfo::NewCookie(c) => out.cookie = Some(c),
                    SyncInfo::RefreshDelete { cookie, .. }
                    | SyncInfo::RefreshPresent { cookie, .. } => {
                        if cookie.is_some() {
                            out.cookie = cookie;
                        }
                    }
                    SyncInfo::SyncIdSet {
                        cookie,
                        refresh_deletes,
                        uuids,
                    } => {
                        if cookie.is_some() {
                            out.cookie = cookie;
                        }
                        if refresh_deletes {
                            out.deleted.extend(uuids);
                        } else {
                            out.present.extend(uuids);
                        }
                    }
                }
                continue;
            }
            if item.is_ref() {
                continue;
            }
            let state = controls::find(&item.1, controls::SYNC_STATE_OID)
                .map(controls::parse_sync_state)
                .transpose()
                .map_err(|e| LdapError::Protocol(format!("sync state control: {e}")))?;
            let entry = Entry::from_search_entry(ldap3::SearchEntry::construct(item));
            match state {
                Some(s) => {
                    if let Some(c) = s.cookie {
                        out.cookie = Some(c);
                    }
                    match s.state {
                        SyncStateKind::Delete => out.deleted.push(s.entry_uuid),
                        SyncStateKind::Present if entry.attrs.is_empty() => {
                            out.present.push(s.entry_uuid)
                        }
                        kind => out.changes.push(SyncChange {
                            kind,
                            entry_uuid: s.entry_uuid,
                            entry,
                        }),
                    }
                }
                None => {
                    return Err(LdapError::Protocol(
                        "syncrepl entry without a sync state control".into(),
                    ))
                }
            }
        }
        let result = stream.finish().await;
        if result.rc != 0 {
            return Err(from_result(&result));
        }
        if let Some(value) = controls::find(&result.ctrls, controls::SYNC_DONE_OID) {
            let done = controls::parse_sync_done(value)
                .map_err(|e| LdapError::Protocol(format!("sync done control: {e}")))?;
            if done.cookie.is_some() {
                out.cookie = done.cookie;
            }
            out.refresh_deletes = done.refresh_deletes;
        }
        Ok(out)
    }
}

/// The attributes writeback reads before writing to an OpenLDAP user
/// ([`openldap_account_state`]); the ppolicy ones are operational and must be asked for.
pub const ACCOUNT_ATTRS: &[&str] = &[
    "entryUUID",
    "uid",
    "pwdAccountLockedTime",
    "pwdReset",
    "pwdFailureTime",
];

/// The relax rules control (draft-zeilenga-ldap-relax), needed to touch ppolicy's
/// NO-USER-MODIFICATION attributes.
pub const RELAX_OID: &str = "1.3.6.1.4.1.4203.666.5.12";

/// ppolicy's value of `pwdAccountLockedTime` for an account locked by an administrator for
/// good ("may only be unlocked by an administrator").
pub const PERMANENT_LOCK: &str = "000001010000Z";

/// The account state of an OpenLDAP user read with [`ACCOUNT_ATTRS`].
pub fn openldap_account_state(entry: &Entry) -> AccountState {
    let lock = entry.text("pwdAccountLockedTime");
    AccountState {
        protected: false,
        disabled: lock == Some(PERMANENT_LOCK),
        locked: lock.is_some(),
    }
}

/// An `entryUUID` filter value from the 16 bytes (text form `8-4-4-4-12`).
pub fn entry_uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

impl Connection {
    /// Every entry below `base` whose `entryUUID` is `uuid` (16 bytes), with
    /// [`ACCOUNT_ATTRS`]: none, one, or (a broken directory) several.
    pub async fn openldap_find_by_entry_uuid(
        &mut self,
        base: &str,
        uuid: &[u8],
    ) -> Result<Vec<Entry>, LdapError> {
        let text = entry_uuid_text(uuid)
            .ok_or_else(|| LdapError::Config("entryUUID must be 16 bytes".into()))?;
        self.search_paged(
            base,
            Scope::Subtree,
            &format!("(entryUUID={text})"),
            ACCOUNT_ATTRS,
            100,
        )
        .await
    }

    /// Unlocks an account: deletes `pwdAccountLockedTime` (OpenLDAP 2.5 lets an account with
    /// write access do that), then, best effort, the failure counter `pwdFailureTime`, which is
    /// NO-USER-MODIFICATION and needs the relax control ([`RELAX_OID`]). Either being absent
    /// already is fine.
    pub async fn openldap_unlock(&mut self, user_dn: &str) -> Result<(), LdapError> {
        let mods = vec![Mod::Delete(
            b"pwdAccountLockedTime".to_vec(),
            HashSet::new(),
        )];
        match self.modify(user_dn, mods, vec![]).await {
            Ok(()) | Err(LdapError::Other { code: 16, .. }) => {}
            Err(e) => return Err(e),
        }
        let mods = vec![Mod::Delete(b"pwdFailureTime".to_vec(), HashSet::new())];
        let relax = ldap3::controls::RawControl {
            ctype: RELAX_OID.into(),
            crit: true,
            val: None,
        };
        // Without the relax right the failures stay counted until pwdFailureCountInterval
        // passes or the user binds; the account is unlocked either way.
        let _ = self.modify(user_dn, mods, vec![relax]).await;
        Ok(())
    }

    /// `pwdReset: TRUE` (the user must change the password at next bind), or removes it.
    pub async fn openldap_set_must_change(
        &mut self,
        user_dn: &str,
        must_change: bool,
    ) -> Result<(), LdapError> {
        let mods = if must_change {
            vec![Mod::Replace(
                b"pwdReset".to_vec(),
                std::iter::once(b"TRUE".to_vec()).collect(),
            )]
        } else {
            vec![Mod::Delete(b"pwdReset".to_vec(), HashSet::new())]
        };
        match self.modify(user_dn, mods, vec![]).await {
            Err(LdapError::Other { code: 16, .. }) if !must_change => Ok(()),
            other => other,
        }
    }
}

impl Connection {
    /// The groups below `base` that `dn` (with `uid`, for `posixGroup`'s `memberUid`) is a
    /// member of, directly or through other groups (`member`, `uniqueMember`), at most
    /// `max_depth` levels up. Each level is one search.
    pub async fn openldap_groups_of(
        &mut self,
        base: &str,
        dn: &str,
        uid: Option<&str>,
        max_depth: usize,
    ) -> Result<Vec<String>, LdapError> {
        let mut seen: Vec<String> = Vec::new();
        let mut frontier = vec![dn.to_owned()];
        let mut first = true;
        for _ in 0..max_depth {
            if frontier.is_empty() {
                break;
            }
            let mut terms: String = frontier
                .iter()
                .map(|m| {
                    let m = ldap3::ldap_escape(m);
                    format!("(member={m})(uniqueMember={m})")
                })
                .collect();
            if let (true, Some(uid)) = (first, uid) {
                terms.push_str(&format!("(memberUid={})", ldap3::ldap_escape(uid)));
            }
            first = false;
            let found = self
                .search_paged(base, Scope::Subtree, &format!("(|{terms})"), &["1.1"], 500)
                .await?;
            frontier = found
                .into_iter()
                .map(|e| e.dn)
                .filter(|g| !seen.iter().any(|s| s.eq_ignore_ascii_case(g)))
                .collect();
            seen.extend(frontier.iter().cloned());
        }
        Ok(seen)
    }

    /// The `olcRootDN` of the database whose suffix is `suffix`, where the bound account may
    /// read `cn=config` (usually it may not: None).
    pub async fn openldap_root_dn(&mut self, suffix: &str) -> Option<String> {
        let filter = format!("(olcSuffix={})", ldap3::ldap_escape(suffix));
        self.search_paged("cn=config", Scope::OneLevel, &filter, &["olcRootDN"], 50)
            .await
            .ok()?
            .into_iter()
            .find_map(|e| e.text("olcRootDN").map(str::to_owned))
    }
}

/// The responseValue of an IntermediateResponse (`[APPLICATION 25] { [0] name, [1] value }`).
fn intermediate_value(tag: &StructureTag) -> Option<Vec<u8>> {
    let PL::C(parts) = &tag.payload else {
        return None;
    };
    parts
        .iter()
        .find(|t| t.id == 1)
        .and_then(|t| match &t.payload {
            PL::P(bytes) => Some(bytes.clone()),
            PL::C(_) => None,
        })
}

/// An entry reported by a refresh.
#[derive(Clone, Debug)]
pub struct SyncChange {
    pub kind: SyncStateKind,
    /// The 16-byte entryUUID (the source anchor for OpenLDAP).
    pub entry_uuid: Vec<u8>,
    pub entry: Entry,
}

/// The result of a refreshOnly search.
#[derive(Clone, Debug, Default)]
pub struct SyncRefresh {
    /// Added or modified entries (and, on a full refresh, every entry).
    pub changes: Vec<SyncChange>,
    /// entryUUIDs of deleted entries.
    pub deleted: Vec<Vec<u8>>,
    /// entryUUIDs reported present without content (unchanged).
    pub present: Vec<Vec<u8>>,
    /// The cookie to send next time.
    pub cookie: Option<Vec<u8>>,
    /// The server reported deletes explicitly (else: whatever was not reported present is gone).
    pub refresh_deletes: bool,
}
