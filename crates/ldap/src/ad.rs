//! Active Directory (and Samba AD): password reset and change through `unicodePwd`, the DirSync
//! delta, and the rights dirbridge's service account needs.

use ldap3::Mod;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::connection::{Connection, Entry};
use crate::controls::{self, dirsync_flags};
use crate::error::LdapError;

/// Schema and extended-right GUIDs of the rights dirbridge's service account needs (the same on
/// every AD forest; checked against Samba's schema in the tests).
pub mod rights {
    /// Extended right User-Force-Change-Password ("Reset Password").
    pub const RESET_PASSWORD: &str = "00299570-246d-11d0-a768-00aa006e0529";
    /// Extended right User-Change-Password ("Change Password").
    pub const CHANGE_PASSWORD: &str = "ab721a53-1e2f-11d0-9819-00aa0040529b";
    /// Extended right DS-Replication-Get-Changes ("Replicating Directory Changes").
    pub const REPLICATING_DIRECTORY_CHANGES: &str = "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2";
    /// Extended right Unexpire-Password.
    pub const UNEXPIRE_PASSWORD: &str = "ccc2dc7d-a6ad-4a7a-8846-c04e3cc53501";
    /// Attribute lockoutTime.
    pub const ATTR_LOCKOUT_TIME: &str = "28630ebf-41d5-11d1-a9c1-0000f80367c1";
    /// Attribute pwdLastSet.
    pub const ATTR_PWD_LAST_SET: &str = "bf967a0a-0de6-11d0-a285-00aa003049e2";
    /// Class user.
    pub const CLASS_USER: &str = "bf967aba-0de6-11d0-a285-00aa003049e2";
}

/// `unicodePwd` value: the password in double quotes, UTF-16LE. Zeroized on drop.
pub fn unicode_pwd(password: &SecretString) -> Zeroizing<Vec<u8>> {
    let mut quoted = Zeroizing::new(String::with_capacity(password.expose_secret().len() + 2));
    quoted.push('"');
    quoted.push_str(password.expose_secret());
    quoted.push('"');
    Zeroizing::new(quoted.encode_utf16().flat_map(u16::to_le_bytes).collect())
}

impl Connection {
    /// Administrative reset (the bound account needs Reset Password on the user): one modify
    /// replacing `unicodePwd`. With `policy_hints` (the OID the server offers,
    /// [`ServerInfo::policy_hints`]) AD applies password history as for a change.
    pub async fn ad_reset_password(
        &mut self,
        user_dn: &str,
        new_password: &SecretString,
        policy_hints: Option<&str>,
    ) -> Result<(), LdapError> {
        let value = unicode_pwd(new_password);
        let mods = vec![Mod::Replace(
            b"unicodePwd".to_vec(),
            std::iter::once(value.to_vec()).collect(),
        )];
        let ctrls = policy_hints
            .map(controls::policy_hints)
            .into_iter()
            .collect();
        self.modify(user_dn, mods, ctrls).await
    }

    /// User change (bound as the user, or as an account with Change Password): one modify
    /// deleting the old quoted value and adding the new one.
    pub async fn ad_change_password(
        &mut self,
        user_dn: &str,
        old_password: &SecretString,
        new_password: &SecretString,
    ) -> Result<(), LdapError> {
        let old = unicode_pwd(old_password);
        let new = unicode_pwd(new_password);
        let mods = vec![
            Mod::Delete(
                b"unicodePwd".to_vec(),
                std::iter::once(old.to_vec()).collect(),
            ),
            Mod::Add(
                b"unicodePwd".to_vec(),
                std::iter::once(new.to_vec()).collect(),
            ),
        ];
        self.modify(user_dn, mods, vec![]).await
    }

    /// One DirSync round: everything changed below the naming context `base` since `cookie`
    /// (empty: everything). Loop while [`DirSyncPage::more`] is set, passing the new cookie.
    /// The bound account needs Replicating Directory Changes on the naming context.
    pub async fn ad_dirsync(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        cookie: &[u8],
    ) -> Result<DirSyncPage, LdapError> {
        let flags = dirsync_flags::INCREMENTAL_VALUES;
        let res = self
            .ldap
            .with_controls(controls::dirsync_request(flags, 1 << 20, cookie))
            .search(base, ldap3::Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| self.map(e))?;
        let result = Connection::check(res.1)?;
        let value = controls::find(&result.ctrls, controls::DIRSYNC_OID).ok_or_else(|| {
            LdapError::Protocol("DirSync answer without the DirSync control".into())
        })?;
        let resp = controls::parse_dirsync_response(value)
            .map_err(|e| LdapError::Protocol(format!("DirSync control: {e}")))?;
        Ok(DirSyncPage {
            entries: res
                .0
                .into_iter()
                .filter(|e| !e.is_ref() && !e.is_intermediate())
                .map(|e| Entry::from_search_entry(ldap3::SearchEntry::construct(e)))
                .collect(),
            cookie: resp.cookie,
            more: resp.more_results,
        })
    }
}

/// What an AD server's root DSE says about it, for writeback and `connector test`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// A Samba DC: its root DSE has `vendorName: Samba Team …` (Windows has no vendorName).
    pub samba: bool,
    /// The policy-hints control OID the server lists in `supportedControl` (the current one
    /// first). None: a reset cannot be made to enforce password history (Samba before 4.24).
    pub policy_hints: Option<&'static str>,
}

impl ServerInfo {
    /// From a root DSE read with `vendorName` and `supportedControl`.
    pub fn from_root_dse(dse: &Entry) -> ServerInfo {
        let listed = |oid: &str| {
            dse.values("supportedControl")
                .iter()
                .any(|v| v.as_slice() == oid.as_bytes())
        };
        ServerInfo {
            samba: dse
                .text("vendorName")
                .is_some_and(|v| v.to_ascii_lowercase().contains("samba")),
            policy_hints: [
                controls::POLICY_HINTS_OID,
                controls::POLICY_HINTS_DEPRECATED_OID,
            ]
            .into_iter()
            .find(|oid| listed(oid)),
        }
    }
}

impl Connection {
    /// Reads the root DSE for [`ServerInfo`].
    pub async fn ad_server_info(&mut self) -> Result<ServerInfo, LdapError> {
        let dse = self.read("", &["vendorName", "supportedControl"]).await?;
        Ok(ServerInfo::from_root_dse(&dse))
    }
}

/// The `<GUID=…>` DN form AD accepts anywhere a DN is expected, from the 16 `objectGUID` bytes
/// (text form: first three groups little-endian). None unless exactly 16 bytes.
pub fn guid_dn(object_guid: &[u8]) -> Option<String> {
    guid_text(object_guid).map(|g| format!("<GUID={g}>"))
}

/// `objectGUID` bytes in AD's text form (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
pub fn guid_text(b: &[u8]) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    let hex = |r: &[u8]| r.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        hex(&b[8..10]),
        hex(&b[10..16])
    ))
}

impl Connection {
    /// Reads an object by its `objectGUID` (AD's `<GUID=…>` DN form), whatever its DN is now.
    pub async fn ad_read_by_guid(
        &mut self,
        object_guid: &[u8],
        attrs: &[&str],
    ) -> Result<Entry, LdapError> {
        let dn = guid_dn(object_guid)
            .ok_or_else(|| LdapError::Config("objectGUID must be 16 bytes".into()))?;
        self.read(&dn, attrs).await
    }

    /// Whether the bound account may read `CN=Deleted Objects` of the naming context `base`
    /// (with the show-deleted control). Without it, Samba's DirSync does not report deletes to
    /// the account. Samba answers a base search of the container to any account, but with no
    /// attributes when its ACL grants no Read Property: only an entry that carries its
    /// `objectGUID` counts.
    pub async fn ad_can_read_deleted_objects(&mut self, base: &str) -> Result<bool, LdapError> {
        let dn = format!("CN=Deleted Objects,{base}");
        let show_deleted = ldap3::controls::RawControl {
            ctype: "1.2.840.113556.1.4.417".into(),
            crit: true,
            val: None,
        };
        let res = self
            .ldap
            .with_controls(vec![show_deleted])
            .search(
                &dn,
                ldap3::Scope::Base,
                "(objectClass=*)",
                vec!["objectGUID"],
            )
            .await
            .map_err(|e| self.map(e))?;
        match Connection::check(res.1) {
            Ok(_) => Ok(res.0.into_iter().any(|e| {
                !Entry::from_search_entry(ldap3::SearchEntry::construct(e))
                    .values("objectGUID")
                    .is_empty()
            })),
            Err(LdapError::NoSuchObject { .. }) | Err(LdapError::InsufficientAccess { .. }) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads an object by its `objectGUID` if it matches `filter` (None when it exists but
    /// does not match; [`LdapError::NoSuchObject`] when it does not exist).
    pub async fn ad_read_by_guid_matching(
        &mut self,
        object_guid: &[u8],
        filter: &str,
        attrs: &[&str],
    ) -> Result<Option<Entry>, LdapError> {
        let dn = guid_dn(object_guid)
            .ok_or_else(|| LdapError::Config("objectGUID must be 16 bytes".into()))?;
        self.read_matching(&dn, filter, attrs).await
    }
}

/// The attributes writeback reads before writing to an AD user ([`ad_account_state`]).
pub const ACCOUNT_ATTRS: &[&str] = &[
    "objectGUID",
    "sAMAccountName",
    "adminCount",
    "userAccountControl",
    "lockoutTime",
    "msDS-User-Account-Control-Computed",
];

/// `userAccountControl` bit ACCOUNTDISABLE.
pub const UF_ACCOUNTDISABLE: u32 = 0x2;
/// `msDS-User-Account-Control-Computed` bit LOCKOUT (the lockout has not expired yet).
pub const UF_LOCKOUT: u32 = 0x10;

/// What writeback must know about an account before it writes (AD and OpenLDAP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountState {
    /// AD `adminCount=1`: a member (now or once) of a protected group.
    pub protected: bool,
    /// AD `userAccountControl` ACCOUNTDISABLE; OpenLDAP: locked by an administrator for good
    /// (`pwdAccountLockedTime: 000001010000Z`).
    pub disabled: bool,
    /// Locked out now (AD `lockoutTime` ≠ 0 and, where the server computes it, the lockout has
    /// not expired; OpenLDAP `pwdAccountLockedTime` present).
    pub locked: bool,
}

fn number(entry: &Entry, attr: &str) -> Option<i64> {
    entry.text(attr).and_then(|t| t.trim().parse().ok())
}

/// The account state of an AD user read with [`ACCOUNT_ATTRS`].
pub fn ad_account_state(entry: &Entry) -> AccountState {
    let uac = number(entry, "userAccountControl").unwrap_or(0) as u32;
    let lockout_time = number(entry, "lockoutTime").unwrap_or(0);
    let locked = match number(entry, "msDS-User-Account-Control-Computed") {
        Some(computed) => (computed as u32) & UF_LOCKOUT != 0,
        None => lockout_time != 0,
    };
    AccountState {
        protected: number(entry, "adminCount") == Some(1),
        disabled: uac & UF_ACCOUNTDISABLE != 0,
        locked,
    }
}

/// The groups and accounts AD protects (those AdminSDHolder guards, MS-ADTS 3.1.1.6.1.2.3):
/// RIDs relative to a domain SID (`S-1-5-21-x-y-z-RID`). The accounts (500, 502) are matched
/// against the user's own SID, the groups against its `tokenGroups`.
pub const PROTECTED_DOMAIN_RIDS: &[(u32, &str)] = &[
    (500, "Administrator"),
    (502, "krbtgt"),
    (512, "Domain Admins"),
    (516, "Domain Controllers"),
    (518, "Schema Admins"),
    (519, "Enterprise Admins"),
    (521, "Read-only Domain Controllers"),
];

/// The protected builtin groups (`S-1-5-32-RID`).
pub const PROTECTED_BUILTIN_RIDS: &[(u32, &str)] = &[
    (544, "Administrators"),
    (548, "Account Operators"),
    (549, "Server Operators"),
    (550, "Print Operators"),
    (551, "Backup Operators"),
    (552, "Replicator"),
];

/// The name of the protected group or account `sid` (text form) is, if it is one. Domain
/// RIDs count in any domain of the forest (Enterprise and Schema Admins live in the root
/// domain).
pub fn protected_sid(sid: &str) -> Option<&'static str> {
    let parts: Vec<&str> = sid.split('-').collect();
    let rid = |p: &str| p.parse::<u32>().ok();
    let find = |list: &[(u32, &'static str)], r: Option<u32>| {
        list.iter().find(|(x, _)| Some(*x) == r).map(|(_, n)| *n)
    };
    match parts.as_slice() {
        ["S", "1", "5", "32", r] => find(PROTECTED_BUILTIN_RIDS, rid(r)),
        ["S", "1", "5", "21", a, b, c, r] if [a, b, c].iter().all(|x| rid(x).is_some()) => {
            find(PROTECTED_DOMAIN_RIDS, rid(r))
        }
        _ => None,
    }
}

/// What makes an AD account protected: its own SID or a group of its `tokenGroups` (direct
/// or nested membership, the primary group included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protection {
    /// The group's (or account's) name, e.g. `Domain Admins`.
    pub name: &'static str,
    pub sid: String,
}

/// The first protected SID among the account's own SID and its token groups.
pub fn protection(own_sid: &str, token_groups: &[String]) -> Option<Protection> {
    std::iter::once(own_sid)
        .chain(token_groups.iter().map(String::as_str))
        .find_map(|s| {
            protected_sid(s).map(|name| Protection {
                name,
                sid: s.to_string(),
            })
        })
}

impl Connection {
    /// The SID of `dn` and the SIDs of its `tokenGroups` (every group it is a member of,
    /// transitively, and its primary group), read on the object itself (AD computes
    /// `tokenGroups` only for a base-scope read). [`LdapError::InsufficientAccess`] when the
    /// bound account may not read them: AD always lists at least the primary group.
    pub async fn ad_token_groups(&mut self, dn: &str) -> Result<(String, Vec<String>), LdapError> {
        let e = self.read(dn, &["objectSid", "tokenGroups"]).await?;
        let unreadable = |what: &str| LdapError::InsufficientAccess {
            diagnostic: format!("the {what} of {dn} is not readable"),
        };
        let own = e
            .values("objectSid")
            .first()
            .ok_or_else(|| unreadable("objectSid"))
            .and_then(|v| crate::rights::parse_sid(v, 0).map(|s| s.0))?;
        let groups = e
            .values("tokenGroups")
            .iter()
            .map(|v| crate::rights::parse_sid(v, 0).map(|s| s.0))
            .collect::<Result<Vec<_>, _>>()?;
        if groups.is_empty() {
            return Err(unreadable("tokenGroups"));
        }
        Ok((own, groups))
    }
}

impl Connection {
    /// Looks a user up by `objectGUID` for writeback: None when no object has it.
    pub async fn ad_find_by_guid(
        &mut self,
        object_guid: &[u8],
    ) -> Result<Option<Entry>, LdapError> {
        match self.ad_read_by_guid(object_guid, ACCOUNT_ATTRS).await {
            Ok(e) => Ok(Some(e)),
            Err(LdapError::NoSuchObject { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Unlocks an AD account: `lockoutTime=0` (needs write `lockoutTime` on the user).
    pub async fn ad_unlock(&mut self, user_dn: &str) -> Result<(), LdapError> {
        let mods = vec![Mod::Replace(
            b"lockoutTime".to_vec(),
            std::iter::once(b"0".to_vec()).collect(),
        )];
        self.modify(user_dn, mods, vec![]).await
    }

    /// `pwdLastSet=0` (the user must change the password at next sign-in) or `-1` (the
    /// password counts as set now). Needs write `pwdLastSet` on the user.
    pub async fn ad_set_must_change(
        &mut self,
        user_dn: &str,
        must_change: bool,
    ) -> Result<(), LdapError> {
        let value: &[u8] = if must_change { b"0" } else { b"-1" };
        let mods = vec![Mod::Replace(
            b"pwdLastSet".to_vec(),
            std::iter::once(value.to_vec()).collect(),
        )];
        self.modify(user_dn, mods, vec![]).await
    }
}

/// One DirSync answer.
#[derive(Clone, Debug)]
pub struct DirSyncPage {
    /// Changed objects: only changed attributes plus `objectGUID`; deleted ones with `isDeleted`.
    pub entries: Vec<Entry>,
    /// The watermark to send next time.
    pub cookie: Vec<u8>,
    /// More changes are waiting: call again at once with `cookie`.
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_is_little_endian_in_the_first_three_groups() {
        let b: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            guid_text(&b).unwrap(),
            "03020100-0504-0706-0809-0a0b0c0d0e0f"
        );
        assert!(guid_dn(&b[..15]).is_none());
    }

    #[test]
    fn protected_sids_are_the_admin_sd_holder_list() {
        let dom = "S-1-5-21-1004336348-1177238915-682003330";
        for (rid, name) in [
            (512, "Domain Admins"),
            (516, "Domain Controllers"),
            (518, "Schema Admins"),
            (519, "Enterprise Admins"),
            (521, "Read-only Domain Controllers"),
            (502, "krbtgt"),
            (500, "Administrator"),
        ] {
            assert_eq!(protected_sid(&format!("{dom}-{rid}")), Some(name));
        }
        for (rid, name) in [
            (544, "Administrators"),
            (548, "Account Operators"),
            (549, "Server Operators"),
            (550, "Print Operators"),
            (551, "Backup Operators"),
            (552, "Replicator"),
        ] {
            assert_eq!(protected_sid(&format!("S-1-5-32-{rid}")), Some(name));
        }
        // Domain Users, Domain Guests, Domain Computers, Users, Guests, Remote Desktop
        // Users, an ordinary account and group, Everyone, Authenticated Users.
        for sid in [
            format!("{dom}-513"),
            format!("{dom}-514"),
            format!("{dom}-515"),
            format!("{dom}-1105"),
            format!("{dom}-1512"),
            "S-1-5-32-545".into(),
            "S-1-5-32-546".into(),
            "S-1-5-32-555".into(),
            "S-1-1-0".into(),
            "S-1-5-11".into(),
            // Not a domain SID: the RID alone does not make it protected.
            "S-1-5-21-512".into(),
            "S-1-5-32-544-1".into(),
            "S-1-5-80-512".into(),
        ] {
            assert_eq!(protected_sid(&sid), None, "{sid}");
        }
        let user = format!("{dom}-1107");
        assert_eq!(protection(&user, &[format!("{dom}-513")]), None);
        assert_eq!(
            protection(&user, &[format!("{dom}-513"), format!("{dom}-512")]),
            Some(Protection {
                name: "Domain Admins",
                sid: format!("{dom}-512")
            })
        );
        assert_eq!(
            protection(&format!("{dom}-502"), &[]).map(|p| p.name),
            Some("krbtgt")
        );
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        let v = unicode_pwd(&SecretString::from("Ab1"));
        assert_eq!(&v[..], &[b'"', 0, b'A', 0, b'b', 0, b'1', 0, b'"', 0]);
        let v = unicode_pwd(&SecretString::from("Å"));
        assert_eq!(&v[..], &[b'"', 0, 0xc5, 0x00, b'"', 0]);
    }
}
