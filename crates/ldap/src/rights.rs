//! The effective rights of the bound service account on the synced roots, read from what the
//! directory reports — never by changing a real user. See docs/writeback.md "Enabling".
//!
//! * AD: the DACL of each root (`nTSecurityDescriptor`, read with the SD_FLAGS control so a
//!   non-admin may read it), parsed here ([`SecurityDescriptor`]), evaluated for descendant
//!   `user` objects against the account's SID and `tokenGroups`: the ACEs a user below the root
//!   inherits, in their order, the first one that allows or denies a right decides it.
//! * OpenLDAP: a modify of a user below each root sent with the No-Op control
//!   ([`NOOP_OID`], critical): slapd runs its access checks and changes nothing.
//!
//! Every missing right comes with the exact delegation command ([`Check::fixes`]).

use std::fmt;

use ldap3::controls::RawControl;
use ldap3::{Mod, Scope, SearchEntry, SearchOptions};
use rand::Rng;

use crate::ad::{guid_text, rights as guids};
use crate::connection::{Connection, Entry};
use crate::error::{from_result, LdapError};

/// The LDAP_SERVER_SD_FLAGS_OID control (which parts of `nTSecurityDescriptor` to return).
pub const SD_FLAGS_OID: &str = "1.2.840.113556.1.4.801";
/// DACL_SECURITY_INFORMATION.
pub const DACL_SECURITY_INFORMATION: u8 = 4;
/// OpenLDAP's No-Op control: run the operation's checks, change nothing.
pub const NOOP_OID: &str = "1.3.6.1.4.1.4203.666.5.2";
/// The result slapd gives an operation sent with the No-Op control that would have succeeded
/// (`LDAP_X_NO_OPERATION`).
pub const NOOP_SUCCESS: u32 = 0x410e;

// Access mask bits (MS-ADTS 5.1.3.2, MS-DTYP 2.4.3).
const ADS_RIGHT_DS_WRITE_PROP: u32 = 0x0000_0020;
const ADS_RIGHT_DS_CONTROL_ACCESS: u32 = 0x0000_0100;
const GENERIC_ALL: u32 = 0x1000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;

// ACE types.
const ACCESS_ALLOWED: u8 = 0x00;
const ACCESS_DENIED: u8 = 0x01;
const ACCESS_ALLOWED_OBJECT: u8 = 0x05;
const ACCESS_DENIED_OBJECT: u8 = 0x06;

// ACE flags.
const OBJECT_INHERIT: u8 = 0x01;
const CONTAINER_INHERIT: u8 = 0x02;
const NO_PROPAGATE_INHERIT: u8 = 0x04;

// Object ACE flags.
const OBJECT_TYPE_PRESENT: u32 = 0x1;
const INHERITED_OBJECT_TYPE_PRESENT: u32 = 0x2;

/// Everyone and Authenticated Users: in the token of every authenticated bind, though AD does
/// not list them in `tokenGroups`.
const IMPLICIT_SIDS: [&str; 2] = ["S-1-1-0", "S-1-5-11"];

/// A right dirbridge's service account needs for writeback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Right {
    /// AD: Reset Password (User-Force-Change-Password) on users below the root.
    ResetPassword,
    /// AD: Change Password (User-Change-Password) on users below the root.
    ChangePassword,
    /// AD: write `lockoutTime` (unlock) on users below the root.
    WriteLockoutTime,
    /// AD: write `pwdLastSet` ("must change at next sign-in") on users below the root.
    WritePwdLastSet,
    /// OpenLDAP: write `userPassword` (reset) on entries below the root.
    WriteUserPassword,
    /// OpenLDAP: write `pwdAccountLockedTime` (unlock) on entries below the root.
    WriteLockTime,
}

impl Right {
    /// The rights checked on AD.
    pub const AD: [Right; 4] = [
        Right::ResetPassword,
        Right::ChangePassword,
        Right::WriteLockoutTime,
        Right::WritePwdLastSet,
    ];
    /// The rights checked on OpenLDAP.
    pub const OPENLDAP: [Right; 2] = [Right::WriteUserPassword, Right::WriteLockTime];

    /// Stable name (JSON, events).
    pub fn code(self) -> &'static str {
        match self {
            Right::ResetPassword => "resetPassword",
            Right::ChangePassword => "changePassword",
            Right::WriteLockoutTime => "writeLockoutTime",
            Right::WritePwdLastSet => "writePwdLastSet",
            Right::WriteUserPassword => "writeUserPassword",
            Right::WriteLockTime => "writePwdAccountLockedTime",
        }
    }

    /// AD: (needed access bit, schema GUID of the right or attribute).
    fn ad_access(self) -> Option<(u32, &'static str)> {
        Some(match self {
            Right::ResetPassword => (ADS_RIGHT_DS_CONTROL_ACCESS, guids::RESET_PASSWORD),
            Right::ChangePassword => (ADS_RIGHT_DS_CONTROL_ACCESS, guids::CHANGE_PASSWORD),
            Right::WriteLockoutTime => (ADS_RIGHT_DS_WRITE_PROP, guids::ATTR_LOCKOUT_TIME),
            Right::WritePwdLastSet => (ADS_RIGHT_DS_WRITE_PROP, guids::ATTR_PWD_LAST_SET),
            Right::WriteUserPassword | Right::WriteLockTime => return None,
        })
    }

    /// The `dsacls` right string (`CA;Reset Password;user`).
    fn dsacls(self) -> &'static str {
        match self {
            Right::ResetPassword => "CA;Reset Password;user",
            Right::ChangePassword => "CA;Change Password;user",
            Right::WriteLockoutTime => "WP;lockoutTime;user",
            Right::WritePwdLastSet => "WP;pwdLastSet;user",
            Right::WriteUserPassword | Right::WriteLockTime => "",
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Right::ResetPassword => "Reset Password",
            Right::ChangePassword => "Change Password",
            Right::WriteLockoutTime => "write lockoutTime",
            Right::WritePwdLastSet => "write pwdLastSet",
            Right::WriteUserPassword => "write userPassword",
            Right::WriteLockTime => "write pwdAccountLockedTime",
        })
    }
}

/// What the directory says about one right on one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Granted,
    Missing,
    /// The directory gave no answer either way (OpenLDAP: no user below the root to test on,
    /// or its password policy refused first). Does not count as missing.
    Unchecked(String),
}

/// One right on one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub right: Right,
    pub status: Status,
    /// AD: the SID whose deny ACE takes the right away, if that is why it is missing.
    pub denied_for: Option<String>,
    /// For a missing right: the commands that delegate it (empty when granted).
    pub fixes: Vec<String>,
}

/// The rights on one synced root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootRights {
    pub root: String,
    pub checks: Vec<Check>,
}

/// The effective rights of one account on every synced root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RightsReport {
    /// The account's DN.
    pub account: String,
    /// AD: the account's SID.
    pub sid: Option<String>,
    pub roots: Vec<RootRights>,
}

impl RightsReport {
    /// The check of `right` on `root`, if it was checked.
    pub fn check(&self, root: &str, right: Right) -> Option<&Check> {
        self.roots
            .iter()
            .find(|r| r.root.eq_ignore_ascii_case(root))
            .and_then(|r| r.checks.iter().find(|c| c.right == right))
    }

    /// Every (root, check) whose right is missing.
    pub fn missing(&self) -> Vec<(&str, &Check)> {
        self.roots
            .iter()
            .flat_map(|r| r.checks.iter().map(move |c| (r.root.as_str(), c)))
            .filter(|(_, c)| c.status == Status::Missing)
            .collect()
    }

    /// True when nothing is missing.
    pub fn complete(&self) -> bool {
        self.missing().is_empty()
    }

    /// An admin-facing text: one line per missing right and the commands that fix it.
    pub fn describe_missing(&self) -> String {
        let mut s = String::new();
        for (root, c) in self.missing() {
            s.push_str(&format!(
                "{} lacks {} on users below {root}",
                self.account, c.right
            ));
            if let Some(sid) = &c.denied_for {
                s.push_str(&format!(" (a deny ACE for {sid} takes it away: remove it)"));
            }
            s.push_str(".\n");
            for f in &c.fixes {
                s.push_str(&format!("  {f}\n"));
            }
        }
        s
    }
}

// ---------------------------------------------------------------- security descriptors

/// A parsed self-relative security descriptor (only what the rights check needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityDescriptor {
    pub owner: Option<String>,
    /// None: no DACL (everyone has every right).
    pub dacl: Option<Vec<Ace>>,
}

/// One access control entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    pub allow: bool,
    pub flags: u8,
    pub mask: u32,
    /// Text GUID of the right, property or property set (object ACEs only).
    pub object_type: Option<String>,
    /// Text GUID of the object class the ACE is inherited to (object ACEs only).
    pub inherited_object_type: Option<String>,
    pub sid: String,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, LdapError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| sd_error("truncated"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, LdapError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| sd_error("truncated"))
}

fn sd_error(what: &str) -> LdapError {
    LdapError::Protocol(format!("nTSecurityDescriptor: {what}"))
}

/// A binary SID at `at` in text form (`S-1-5-21-…`), and its length.
pub fn parse_sid(b: &[u8], at: usize) -> Result<(String, usize), LdapError> {
    let head = b.get(at..at + 8).ok_or_else(|| sd_error("truncated SID"))?;
    let count = head[1] as usize;
    let len = 8 + 4 * count;
    if b.len() < at + len {
        return Err(sd_error("truncated SID"));
    }
    let authority = head[2..8]
        .iter()
        .fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
    let mut s = format!("S-{}-{authority}", head[0]);
    for i in 0..count {
        s.push_str(&format!("-{}", u32_at(b, at + 8 + 4 * i)?));
    }
    Ok((s, len))
}

impl SecurityDescriptor {
    /// Parses a self-relative security descriptor (MS-DTYP 2.4.6). Never panics.
    pub fn parse(b: &[u8]) -> Result<SecurityDescriptor, LdapError> {
        if b.len() < 20 || b[0] != 1 {
            return Err(sd_error("not a self-relative security descriptor"));
        }
        let owner_at = u32_at(b, 4)? as usize;
        let dacl_at = u32_at(b, 16)? as usize;
        let owner = if owner_at == 0 {
            None
        } else {
            Some(parse_sid(b, owner_at)?.0)
        };
        let dacl = if dacl_at == 0 {
            None
        } else {
            Some(parse_acl(b, dacl_at)?)
        };
        Ok(SecurityDescriptor { owner, dacl })
    }
}

fn parse_acl(b: &[u8], at: usize) -> Result<Vec<Ace>, LdapError> {
    let size = u16_at(b, at + 2)? as usize;
    let count = u16_at(b, at + 4)? as usize;
    let end = at + size;
    if b.len() < end || size < 8 {
        return Err(sd_error("truncated ACL"));
    }
    let mut aces = Vec::with_capacity(count);
    let mut p = at + 8;
    for _ in 0..count {
        if p + 4 > end {
            return Err(sd_error("truncated ACE"));
        }
        let kind = b[p];
        let flags = b[p + 1];
        let ace_size = u16_at(b, p + 2)? as usize;
        if ace_size < 8 || p + ace_size > end {
            return Err(sd_error("bad ACE size"));
        }
        let ace = &b[p..p + ace_size];
        match kind {
            ACCESS_ALLOWED | ACCESS_DENIED => {
                let mask = u32_at(ace, 4)?;
                let (sid, _) = parse_sid(ace, 8)?;
                aces.push(Ace {
                    allow: kind == ACCESS_ALLOWED,
                    flags,
                    mask,
                    object_type: None,
                    inherited_object_type: None,
                    sid,
                });
            }
            ACCESS_ALLOWED_OBJECT | ACCESS_DENIED_OBJECT => {
                let mask = u32_at(ace, 4)?;
                let oflags = u32_at(ace, 8)?;
                let mut q = 12;
                let mut guid = |present: bool| -> Result<Option<String>, LdapError> {
                    if !present {
                        return Ok(None);
                    }
                    let g = ace
                        .get(q..q + 16)
                        .ok_or_else(|| sd_error("truncated GUID"))?;
                    q += 16;
                    Ok(guid_text(g))
                };
                let object_type = guid(oflags & OBJECT_TYPE_PRESENT != 0)?;
                let inherited_object_type = guid(oflags & INHERITED_OBJECT_TYPE_PRESENT != 0)?;
                let (sid, _) = parse_sid(ace, q)?;
                aces.push(Ace {
                    allow: kind == ACCESS_ALLOWED_OBJECT,
                    flags,
                    mask,
                    object_type,
                    inherited_object_type,
                    sid,
                });
            }
            // Audit, alarm and callback ACEs grant nothing here.
            _ => {}
        }
        p += ace_size;
    }
    Ok(aces)
}

/// Property sets (schema `attributeSecurityGUID`) of the attributes checked, as the directory's
/// schema has them: a write-property ACE on the set covers the attribute.
#[derive(Clone, Debug, Default)]
pub struct PropertySets {
    pub lockout_time: Option<String>,
    pub pwd_last_set: Option<String>,
}

/// Evaluates `right` on descendant `user` objects of the object whose DACL is `dacl`, for a
/// token holding `sids`: the ACEs a user below inherits, in order; the first that covers the
/// right decides it. Returns (granted, the SID of the deciding deny ACE).
pub fn evaluate(
    dacl: Option<&[Ace]>,
    sids: &[String],
    right: Right,
    sets: &PropertySets,
) -> (bool, Option<String>) {
    let Some((bit, guid)) = right.ad_access() else {
        return (false, None);
    };
    let Some(dacl) = dacl else {
        return (true, None);
    };
    let set = match right {
        Right::WriteLockoutTime => sets.lockout_time.as_deref(),
        Right::WritePwdLastSet => sets.pwd_last_set.as_deref(),
        _ => None,
    };
    for ace in dacl {
        if !sids.iter().any(|s| s.eq_ignore_ascii_case(&ace.sid)) {
            continue;
        }
        // Only ACEs a child container/object inherits reach the users below.
        if ace.flags & (CONTAINER_INHERIT | OBJECT_INHERIT) == 0 {
            continue;
        }
        // Inherited by direct children only: it does not reach every user below. An allow
        // of that kind is not counted; a deny is (either way the cautious answer).
        if ace.flags & NO_PROPAGATE_INHERIT != 0 && ace.allow {
            continue;
        }
        if let Some(t) = &ace.inherited_object_type {
            if !t.eq_ignore_ascii_case(guids::CLASS_USER) {
                continue;
            }
        }
        let generic = ace.mask & GENERIC_ALL != 0
            || (bit == ADS_RIGHT_DS_WRITE_PROP && ace.mask & GENERIC_WRITE != 0);
        if !generic && ace.mask & bit == 0 {
            continue;
        }
        let applies = match &ace.object_type {
            None => true,
            Some(t) => {
                t.eq_ignore_ascii_case(guid) || set.is_some_and(|s| t.eq_ignore_ascii_case(s))
            }
        };
        if !applies {
            continue;
        }
        return if ace.allow {
            (true, None)
        } else {
            (false, Some(ace.sid.clone()))
        };
    }
    (false, None)
}

/// `samba-tool`'s options for running against the DC at `dc_url` from any host (as a domain
/// administrator, whose password samba-tool prompts for).
pub fn samba_tool_target(dc_url: &str) -> String {
    format!("-H {dc_url} -U Administrator")
}

/// The commands that delegate `right` on `root` to `sid` / `account` (`DOMAIN\name`), the
/// samba-tool one run against the DC at `dc_url`.
pub fn ad_fixes(dc_url: &str, root: &str, right: Right, sid: &str, account: &str) -> Vec<String> {
    let Some((bit, guid)) = right.ad_access() else {
        return Vec::new();
    };
    let kind = if bit == ADS_RIGHT_DS_CONTROL_ACCESS {
        "CR"
    } else {
        "WP"
    };
    vec![
        format!(
            "samba-tool dsacl set {} --objectdn='{root}' --sddl='(OA;CI;{kind};{guid};{};{sid})'",
            samba_tool_target(dc_url),
            guids::CLASS_USER
        ),
        format!("dsacls \"{root}\" /I:S /G \"{account}:{}\"", right.dsacls()),
    ]
}

/// The `olcAccess` rule that grants `right` on `root` to `account_dn`.
pub fn openldap_fixes(root: &str, right: Right, account_dn: &str) -> Vec<String> {
    let attrs = match right {
        Right::WriteUserPassword => "userPassword",
        Right::WriteLockTime => "pwdAccountLockedTime,pwdFailureTime,pwdReset",
        _ => return Vec::new(),
    };
    vec![
        format!(
            "olcAccess: to dn.subtree=\"{root}\" attrs={attrs} by dn.exact=\"{account_dn}\" write by * break"
        ),
        "(add it to the database's olcAccess in cn=config with ldapmodify, before any other rule for these attributes)".to_string(),
    ]
}

fn sd_flags_control() -> RawControl {
    // SEQUENCE { INTEGER flags }
    RawControl {
        ctype: SD_FLAGS_OID.into(),
        crit: true,
        val: Some(vec![0x30, 0x03, 0x02, 0x01, DACL_SECURITY_INFORMATION]),
    }
}

fn first_dc_label(dn: &str) -> String {
    dn.split(',')
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.eq_ignore_ascii_case("dc").then(|| v.to_ascii_uppercase())
        })
        .unwrap_or_default()
}

impl Connection {
    async fn search_one(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        ctrls: Vec<RawControl>,
    ) -> Result<Option<Entry>, LdapError> {
        let url = self.url.clone();
        let ldap = if ctrls.is_empty() {
            &mut self.ldap
        } else {
            self.ldap.with_controls(ctrls)
        };
        let res = ldap
            .with_search_options(SearchOptions::new().sizelimit(1))
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| crate::error::from_ldap3(e, &url))?;
        // sizeLimitExceeded (4) after one entry is what was asked for.
        if res.1.rc != 0 && res.1.rc != 4 {
            return Err(from_result(&res.1));
        }
        Ok(res
            .0
            .into_iter()
            .find(|e| !e.is_ref() && !e.is_intermediate())
            .map(|e| Entry::from_search_entry(SearchEntry::construct(e))))
    }

    /// The DN of the account `name` (a DN, a UPN or `DOMAIN\name`).
    async fn ad_account_dn(&mut self, name: &str, base: &str) -> Result<String, LdapError> {
        if name.contains('=') {
            return Ok(name.to_owned());
        }
        let filter = match name.split_once('\\') {
            Some((_, sam)) => format!("(sAMAccountName={})", ldap3::ldap_escape(sam)),
            None => format!("(userPrincipalName={})", ldap3::ldap_escape(name)),
        };
        self.search_one(base, Scope::Subtree, &filter, &["1.1"], vec![])
            .await?
            .map(|e| e.dn)
            .ok_or_else(|| LdapError::NoSuchObject {
                matched: String::new(),
                diagnostic: format!("no account {name} below {base}"),
            })
    }

    /// AD: the effective rights of the bound account `account` (its DN, UPN or
    /// `DOMAIN\name`) on users below each of `roots`, from each root's DACL and the account's
    /// `tokenGroups`. Reads only.
    pub async fn ad_effective_rights(
        &mut self,
        account: &str,
        roots: &[String],
    ) -> Result<RightsReport, LdapError> {
        let dse = self
            .read(
                "",
                &[
                    "defaultNamingContext",
                    "schemaNamingContext",
                    "configurationNamingContext",
                ],
            )
            .await?;
        let base = dse
            .text("defaultNamingContext")
            .unwrap_or_default()
            .to_owned();
        let dn = self.ad_account_dn(account, &base).await?;
        let me = self
            .read(&dn, &["objectSid", "tokenGroups", "sAMAccountName"])
            .await?;
        let sid = me
            .values("objectSid")
            .first()
            .map(|v| parse_sid(v, 0).map(|s| s.0))
            .transpose()?
            .ok_or_else(|| LdapError::Protocol(format!("{dn} has no objectSid")))?;
        let mut sids = vec![sid.clone()];
        for g in me.values("tokenGroups") {
            sids.push(parse_sid(g, 0)?.0);
        }
        sids.extend(IMPLICIT_SIDS.iter().map(|s| s.to_string()));

        let dc_url = self.url.clone();
        let netbios = self.ad_netbios_name(&dse, &base).await;
        let sam = me.text("sAMAccountName").unwrap_or(account).to_owned();
        let qualified = format!("{netbios}\\{sam}");
        let sets = self.ad_property_sets(&dse).await;

        let mut out = Vec::new();
        for root in roots {
            let entry = self
                .search_one(
                    root,
                    Scope::Base,
                    "(objectClass=*)",
                    &["nTSecurityDescriptor"],
                    vec![sd_flags_control()],
                )
                .await?
                .ok_or_else(|| LdapError::NoSuchObject {
                    matched: String::new(),
                    diagnostic: format!("{root} was not returned"),
                })?;
            let raw = entry
                .values("nTSecurityDescriptor")
                .first()
                .ok_or_else(|| LdapError::InsufficientAccess {
                    diagnostic: format!("the security descriptor of {root} is not readable"),
                })?;
            let sd = SecurityDescriptor::parse(raw)?;
            let checks = Right::AD
                .iter()
                .map(|&right| {
                    let (granted, denied_for) = evaluate(sd.dacl.as_deref(), &sids, right, &sets);
                    Check {
                        right,
                        status: if granted {
                            Status::Granted
                        } else {
                            Status::Missing
                        },
                        denied_for,
                        fixes: if granted {
                            Vec::new()
                        } else {
                            ad_fixes(&dc_url, root, right, &sid, &qualified)
                        },
                    }
                })
                .collect();
            out.push(RootRights {
                root: root.clone(),
                checks,
            });
        }
        Ok(RightsReport {
            account: dn,
            sid: Some(sid),
            roots: out,
        })
    }

    /// The domain's NetBIOS name from its crossRef, or the first DC label.
    async fn ad_netbios_name(&mut self, dse: &Entry, base: &str) -> String {
        if let Some(config) = dse.text("configurationNamingContext") {
            let filter = format!(
                "(&(objectClass=crossRef)(nCName={}))",
                ldap3::ldap_escape(base)
            );
            let partitions = format!("CN=Partitions,{config}");
            if let Ok(Some(e)) = self
                .search_one(
                    &partitions,
                    Scope::OneLevel,
                    &filter,
                    &["nETBIOSName"],
                    vec![],
                )
                .await
            {
                if let Some(n) = e.text("nETBIOSName") {
                    return n.to_owned();
                }
            }
        }
        first_dc_label(base)
    }

    /// The property sets of `lockoutTime` and `pwdLastSet` from the schema (none if unreadable).
    async fn ad_property_sets(&mut self, dse: &Entry) -> PropertySets {
        let mut sets = PropertySets::default();
        let Some(schema) = dse.text("schemaNamingContext").map(str::to_owned) else {
            return sets;
        };
        for (name, slot) in [
            ("lockoutTime", &mut sets.lockout_time),
            ("pwdLastSet", &mut sets.pwd_last_set),
        ] {
            let filter = format!("(lDAPDisplayName={name})");
            if let Ok(Some(e)) = self
                .search_one(
                    &schema,
                    Scope::OneLevel,
                    &filter,
                    &["attributeSecurityGUID"],
                    vec![],
                )
                .await
            {
                *slot = e
                    .values("attributeSecurityGUID")
                    .first()
                    .and_then(|g| guid_text(g));
            }
        }
        sets
    }

    /// OpenLDAP: the effective rights of the bound account `account_dn` below each of
    /// `roots`, by a modify of one user (matching `user_filter`) sent with the No-Op control:
    /// replace `userPassword` with a random long value, and (separately) delete
    /// `pwdAccountLockedTime`. slapd runs its access checks and changes nothing.
    /// [`LdapError::Unsupported`] when the server does not know the No-Op control.
    pub async fn openldap_effective_rights(
        &mut self,
        account_dn: &str,
        roots: &[String],
        user_filter: &str,
    ) -> Result<RightsReport, LdapError> {
        let mut out = Vec::new();
        for root in roots {
            let user = self
                .search_one(root, Scope::Subtree, user_filter, &["1.1"], vec![])
                .await?;
            let mut checks = Vec::new();
            for right in Right::OPENLDAP {
                let status = match &user {
                    None => Status::Unchecked(format!("no user below {root} to check on")),
                    Some(u) => self.noop_modify(&u.dn, right).await?,
                };
                let fixes = if status == Status::Missing {
                    openldap_fixes(root, right, account_dn)
                } else {
                    Vec::new()
                };
                checks.push(Check {
                    right,
                    status,
                    denied_for: None,
                    fixes,
                });
            }
            out.push(RootRights {
                root: root.clone(),
                checks,
            });
        }
        Ok(RightsReport {
            account: account_dn.to_owned(),
            sid: None,
            roots: out,
        })
    }

    async fn noop_modify(&mut self, dn: &str, right: Right) -> Result<Status, LdapError> {
        let mods: Vec<Mod<Vec<u8>>> = match right {
            Right::WriteUserPassword => {
                let value = zeroize::Zeroizing::new(random_password());
                vec![Mod::Replace(
                    b"userPassword".to_vec(),
                    std::iter::once(value.as_bytes().to_vec()).collect(),
                )]
            }
            _ => vec![Mod::Replace(
                b"pwdAccountLockedTime".to_vec(),
                Default::default(),
            )],
        };
        let noop = RawControl {
            ctype: NOOP_OID.into(),
            crit: true,
            val: None,
        };
        let url = self.url.clone();
        let res = self
            .ldap
            .with_controls(vec![noop])
            .modify(dn, mods)
            .await
            .map_err(|e| crate::error::from_ldap3(e, &url))?;
        match res.rc {
            NOOP_SUCCESS => Ok(Status::Granted),
            // Success without "no operation" would mean slapd applied the change: it must
            // refuse an unknown critical control, so this is a server bug; say so.
            0 => Err(LdapError::Protocol(
                "the directory answered a No-Op modify with plain success".into(),
            )),
            50 => Ok(Status::Missing),
            12 => Err(from_result(&res)),
            _ => match from_result(&res) {
                e @ (LdapError::PolicyViolation { .. } | LdapError::ConstraintViolation { .. }) => {
                    Ok(Status::Unchecked(format!(
                        "the password policy answered before the access check: {e}"
                    )))
                }
                e => Err(e),
            },
        }
    }
}

/// 32 random characters from all four classes (passes any quality check; never sent except
/// in a No-Op modify, which changes nothing).
fn random_password() -> String {
    const SETS: [&[u8]; 4] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
        b"!#%+-=?@_",
    ];
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|i| {
            let set = SETS[i % 4];
            set[rng.gen_range(0..set.len())] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid_bytes(auth: u8, subs: &[u32]) -> Vec<u8> {
        let mut v = vec![1, subs.len() as u8, 0, 0, 0, 0, 0, auth];
        for s in subs {
            v.extend_from_slice(&s.to_le_bytes());
        }
        v
    }

    fn guid_bytes(text: &str) -> Vec<u8> {
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        let b: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let mut out = vec![b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]];
        out.extend_from_slice(&b[8..]);
        out
    }

    fn object_ace(
        allow: bool,
        flags: u8,
        mask: u32,
        ot: Option<&str>,
        iot: Option<&str>,
        sid: &[u8],
    ) -> Vec<u8> {
        let mut body = mask.to_le_bytes().to_vec();
        let of = ot.map_or(0, |_| 1) | iot.map_or(0, |_| 2);
        body.extend_from_slice(&(of as u32).to_le_bytes());
        for g in [ot, iot].into_iter().flatten() {
            body.extend(guid_bytes(g));
        }
        body.extend_from_slice(sid);
        let mut ace = vec![if allow { 5 } else { 6 }, flags];
        ace.extend_from_slice(&((4 + body.len()) as u16).to_le_bytes());
        ace.extend(body);
        ace
    }

    fn sd(aces: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = aces.concat();
        let mut acl = vec![4, 0];
        acl.extend_from_slice(&((8 + body.len()) as u16).to_le_bytes());
        acl.extend_from_slice(&(aces.len() as u16).to_le_bytes());
        acl.extend_from_slice(&[0, 0]);
        acl.extend(body);
        let mut out = vec![1, 0, 0x04, 0x80];
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&20u32.to_le_bytes());
        out.extend(acl);
        out
    }

    #[test]
    fn parses_sids() {
        let (s, n) = parse_sid(&sid_bytes(5, &[21, 1, 2, 3, 1105]), 0).unwrap();
        assert_eq!(s, "S-1-5-21-1-2-3-1105");
        assert_eq!(n, 28);
        assert!(parse_sid(&[1, 5, 0, 0], 0).is_err());
    }

    #[test]
    fn deny_before_allow_wins_and_inheritance_rules_apply() {
        let me = sid_bytes(5, &[21, 9, 9, 9, 1200]);
        let me_text = "S-1-5-21-9-9-9-1200".to_string();
        let user = Some(guids::CLASS_USER);
        let reset = Some(guids::RESET_PASSWORD);
        let bytes = sd(&[
            // Not inherited (no CI): does not reach users below.
            object_ace(true, 0, 0x100, Some(guids::CHANGE_PASSWORD), None, &me),
            // Inherited to computers only.
            object_ace(
                true,
                2,
                0x20,
                Some(guids::ATTR_PWD_LAST_SET),
                Some("bf967a86-0de6-11d0-a285-00aa003049e2"),
                &me,
            ),
            object_ace(false, 2, 0x100, reset, user, &me),
            object_ace(true, 2 | 8, 0x100, reset, user, &me),
            object_ace(true, 2, 0x20, Some(guids::ATTR_LOCKOUT_TIME), user, &me),
        ]);
        let parsed = SecurityDescriptor::parse(&bytes).unwrap();
        let dacl = parsed.dacl.as_deref();
        let sids = vec![me_text.clone()];
        let sets = PropertySets::default();
        assert_eq!(
            evaluate(dacl, &sids, Right::ResetPassword, &sets),
            (false, Some(me_text.clone()))
        );
        assert_eq!(
            evaluate(dacl, &sids, Right::ChangePassword, &sets),
            (false, None)
        );
        assert_eq!(
            evaluate(dacl, &sids, Right::WritePwdLastSet, &sets),
            (false, None)
        );
        assert_eq!(
            evaluate(dacl, &sids, Right::WriteLockoutTime, &sets),
            (true, None)
        );
        // Someone else's ACEs count for nothing.
        assert_eq!(
            evaluate(
                dacl,
                &["S-1-5-21-1-1-1-1".into()],
                Right::WriteLockoutTime,
                &sets
            ),
            (false, None)
        );
    }

    #[test]
    fn generic_all_and_property_sets_count() {
        let me = sid_bytes(5, &[21, 9, 9, 9, 1200]);
        let sids = vec!["S-1-5-21-9-9-9-1200".to_string()];
        let set = "4c164200-20c0-11d0-a768-00aa006e0529";
        let bytes = sd(&[
            object_ace(true, 2, 0x20, Some(set), Some(guids::CLASS_USER), &me),
            object_ace(true, 2, GENERIC_ALL, None, Some(guids::CLASS_USER), &me),
        ]);
        let parsed = SecurityDescriptor::parse(&bytes).unwrap();
        let sets = PropertySets {
            lockout_time: None,
            pwd_last_set: Some(set.into()),
        };
        for r in Right::AD {
            assert!(evaluate(parsed.dacl.as_deref(), &sids, r, &sets).0, "{r}");
        }
        assert!(SecurityDescriptor::parse(&bytes[..30]).is_err());
    }

    #[test]
    fn fixes_name_the_sid_and_the_right() {
        let f = ad_fixes(
            "ldaps://dc1.x:636",
            "OU=Corp,DC=x",
            Right::ResetPassword,
            "S-1-5-21-1",
            "X\\svc",
        );
        assert!(f[0].starts_with(
            "samba-tool dsacl set -H ldaps://dc1.x:636 -U Administrator --objectdn='OU=Corp,DC=x'"
        ));
        assert!(f[0].contains("(OA;CI;CR;00299570-246d-11d0-a768-00aa006e0529;bf967aba-0de6-11d0-a285-00aa003049e2;S-1-5-21-1)"));
        assert_eq!(
            f[1],
            "dsacls \"OU=Corp,DC=x\" /I:S /G \"X\\svc:CA;Reset Password;user\""
        );
        let f = openldap_fixes("ou=Corp", Right::WriteUserPassword, "cn=svc");
        assert!(f[0].starts_with(
            "olcAccess: to dn.subtree=\"ou=Corp\" attrs=userPassword by dn.exact=\"cn=svc\" write"
        ));
    }
}
