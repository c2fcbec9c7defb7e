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
    /// replacing `unicodePwd`. With `enforce_history` the policy-hints control asks AD to apply
    /// password history as for a change.
    pub async fn ad_reset_password(
        &mut self,
        user_dn: &str,
        new_password: &SecretString,
        enforce_history: bool,
    ) -> Result<(), LdapError> {
        let value = unicode_pwd(new_password);
        let mods = vec![Mod::Replace(
            b"unicodePwd".to_vec(),
            std::iter::once(value.to_vec()).collect(),
        )];
        let ctrls = if enforce_history {
            vec![controls::policy_hints(true)]
        } else {
            vec![]
        };
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
    fn unicode_pwd_is_quoted_utf16le() {
        let v = unicode_pwd(&SecretString::from("Ab1"));
        assert_eq!(&v[..], &[b'"', 0, b'A', 0, b'b', 0, b'1', 0, b'"', 0]);
        let v = unicode_pwd(&SecretString::from("Å"));
        assert_eq!(&v[..], &[b'"', 0, 0xc5, 0x00, b'"', 0]);
    }
}
