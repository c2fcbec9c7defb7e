//! LDAP entry → [`SyncObject`]: pure, no I/O. Group members come back as DNs; the engine turns
//! them into anchors through the connector space.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ldap::Entry;
use proto::sync::{ObjectKind, SyncAttributes, SyncObject};
use sha2::{Digest, Sha256};

use super::scope;
use crate::connector::{ConnectorConfig, DirectoryKind};

/// Longest attribute value exported (characters).
pub const MAX_VALUE_CHARS: usize = 1024;

/// An entry that maps to an exportable object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedObject {
    /// Members still as DNs (groups only); `object.members` is empty.
    pub object: SyncObject,
    pub member_dns: Vec<String>,
}

/// The outcome of mapping one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    Object(Box<MappedObject>),
    /// Never synced (the reason, for the log): not a user or group, a computer, a critical
    /// system object, krbtgt, outside the group scope.
    Skipped(&'static str),
}

/// An entry that cannot be exported as it is; the object is skipped with an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("{dn}: the anchor attribute {attribute} is missing or malformed")]
    NoAnchor { dn: String, attribute: String },
    #[error("{dn}: the value of {attribute} {reason}")]
    Invalid {
        dn: String,
        attribute: String,
        reason: String,
    },
}

/// The attributes the mapping reads (ask the directory for these).
pub fn attributes(config: &ConnectorConfig) -> Vec<String> {
    let mut a: Vec<String> = [
        "objectClass",
        "cn",
        "displayName",
        "givenName",
        "sn",
        "mail",
        "mobile",
        "telephoneNumber",
        "c",
        "description",
        "member",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match config.kind {
        DirectoryKind::Ad => a.extend(
            [
                "objectGUID",
                "userPrincipalName",
                "sAMAccountName",
                "userAccountControl",
                "isCriticalSystemObject",
                "isDeleted",
                "memberOf",
                "ms-DS-ConsistencyGuid",
            ]
            .iter()
            .map(|s| s.to_string()),
        ),
        DirectoryKind::Openldap => a.extend(
            [
                "entryUUID",
                "uid",
                "uniqueMember",
                "pwdAccountLockedTime",
                "memberOf",
            ]
            .iter()
            .map(|s| s.to_string()),
        ),
    }
    a.push(config.anchor_attr().to_string());
    // Attributes named in a UPN template.
    for part in config.upn_rule().split('{').skip(1) {
        if let Some((name, _)) = part.split_once('}') {
            a.push(name.to_string());
        }
    }
    if !config.upn_rule().contains('{') {
        a.push(config.upn_rule().to_string());
    }
    a.sort_by_key(|s| s.to_ascii_lowercase());
    a.dedup_by(|x, y| x.eq_ignore_ascii_case(y));
    a
}

/// The source anchor of an entry: base64 of the objectGUID / ms-DS-ConsistencyGuid bytes, or of
/// the 16 bytes of the entryUUID (text form parsed).
pub fn anchor_of(config: &ConnectorConfig, entry: &Entry) -> Result<String, MapError> {
    let attr = config.anchor_attr();
    let no = || MapError::NoAnchor {
        dn: entry.dn.clone(),
        attribute: attr.to_string(),
    };
    let value = match entry.values(attr).first() {
        Some(v) => v.clone(),
        None if attr.eq_ignore_ascii_case("ms-DS-ConsistencyGuid") => {
            // Not stamped yet: the objectGUID is what Entra Connect uses then too.
            entry.values("objectGUID").first().cloned().ok_or_else(no)?
        }
        None => return Err(no()),
    };
    let bytes = if attr.eq_ignore_ascii_case("entryUUID") {
        let text = std::str::from_utf8(&value).map_err(|_| no())?;
        uuid_bytes(text).ok_or_else(no)?
    } else {
        value
    };
    if bytes.len() != 16 {
        return Err(no());
    }
    Ok(B64.encode(bytes))
}

/// The 16 bytes of a UUID in text form.
pub fn uuid_bytes(text: &str) -> Option<Vec<u8>> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    hex::decode(hex).ok()
}

/// Anchor from raw 16 bytes (syncrepl entryUUIDs, DirSync objectGUIDs).
pub fn anchor_from_bytes(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The kind of directory object, or why it is never synced.
pub fn classify(config: &ConnectorConfig, entry: &Entry) -> Result<ObjectKind, &'static str> {
    let classes: Vec<String> = entry
        .values("objectClass")
        .iter()
        .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
        .collect();
    let has = |c: &str| classes.iter().any(|x| x.eq_ignore_ascii_case(c));
    if has("computer") {
        return Err("computer");
    }
    if entry
        .text("isCriticalSystemObject")
        .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"))
    {
        return Err("critical system object");
    }
    if entry
        .text("sAMAccountName")
        .is_some_and(|v| v.eq_ignore_ascii_case("krbtgt"))
    {
        return Err("krbtgt");
    }
    if config.user_classes().iter().any(|c| has(c)) {
        Ok(ObjectKind::User)
    } else if config.group_classes().iter().any(|c| has(c)) {
        Ok(ObjectKind::Group)
    } else {
        Err("not a user or group")
    }
}

fn text(entry: &Entry, name: &str) -> Result<Option<String>, MapError> {
    let Some(v) = entry.values(name).first() else {
        return Ok(None);
    };
    let invalid = |reason: &str| MapError::Invalid {
        dn: entry.dn.clone(),
        attribute: name.to_string(),
        reason: reason.to_string(),
    };
    let s = std::str::from_utf8(v).map_err(|_| invalid("is not UTF-8"))?;
    if s.chars().count() > MAX_VALUE_CHARS {
        return Err(invalid(&format!(
            "is longer than {MAX_VALUE_CHARS} characters"
        )));
    }
    let s = s.trim();
    Ok((!s.is_empty()).then(|| s.to_string()))
}

fn upn(config: &ConnectorConfig, entry: &Entry) -> Result<Option<String>, MapError> {
    let rule = config.upn_rule();
    if !rule.contains('{') {
        return text(entry, rule);
    }
    let mut out = String::new();
    let mut rest = rule;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        match text(entry, &after[..j])? {
            Some(v) => out.push_str(&v),
            None => return Ok(None),
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// Maps one entry (which must hold [`attributes`]).
pub fn map_entry(config: &ConnectorConfig, entry: &Entry) -> Result<Mapped, MapError> {
    let kind = match classify(config, entry) {
        Ok(k) => k,
        Err(reason) => return Ok(Mapped::Skipped(reason)),
    };
    if let (ObjectKind::User, Some(group)) = (kind, &config.group_scope) {
        let key = scope::dn_key(group);
        let member = entry
            .values("memberOf")
            .iter()
            .any(|v| std::str::from_utf8(v).is_ok_and(|d| scope::dn_key(d) == key));
        if !member {
            return Ok(Mapped::Skipped("outside the group scope"));
        }
    }
    let anchor = anchor_of(config, entry)?;
    let account_enabled = match (kind, config.kind) {
        (ObjectKind::Group, _) => true,
        (ObjectKind::User, DirectoryKind::Ad) => {
            let uac = text(entry, "userAccountControl")?
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            uac & 2 == 0
        }
        // Only ppolicy's permanent lock disables; a lockout (`pwdAccountLockedTime` with a time,
        // after pwdMaxFailure wrong passwords) is locked, as AD's lockoutTime is: the account
        // stays enabled, so its user may unlock it with SSPR.
        (ObjectKind::User, DirectoryKind::Openldap) => {
            !ldap::openldap::openldap_account_state(entry).disabled
        }
    };
    let sam = match config.kind {
        DirectoryKind::Ad => text(entry, "sAMAccountName")?,
        DirectoryKind::Openldap => text(entry, "uid")?,
    };
    let display_name = match text(entry, "displayName")? {
        Some(d) => Some(d),
        None => text(entry, "cn")?,
    };
    let dn = entry.dn.clone();
    if dn.chars().count() > MAX_VALUE_CHARS * 4 || dn.contains('\0') {
        return Err(MapError::Invalid {
            dn: dn.chars().take(200).collect(),
            attribute: "distinguishedName".into(),
            reason: "is too long".into(),
        });
    }
    let attributes = match kind {
        ObjectKind::User => SyncAttributes {
            user_principal_name: upn(config, entry)?,
            display_name,
            given_name: text(entry, "givenName")?,
            surname: text(entry, "sn")?,
            mail: text(entry, "mail")?,
            mobile_phone: text(entry, "mobile")?,
            office_phone: text(entry, "telephoneNumber")?,
            country: text(entry, "c")?.map(|c| c.to_ascii_uppercase()),
            account_enabled,
            distinguished_name: dn,
            sam_account_name: sam,
            description: text(entry, "description")?,
        },
        ObjectKind::Group => SyncAttributes {
            display_name,
            mail: text(entry, "mail")?,
            account_enabled,
            distinguished_name: dn,
            sam_account_name: sam,
            description: text(entry, "description")?,
            ..Default::default()
        },
    };
    let mut member_dns = Vec::new();
    if kind == ObjectKind::Group && entry.attrs.keys().any(|k| k.starts_with("member;range=")) {
        // AD sends the members of a large group (over 1,500) in ranges; exporting the first
        // range as the whole membership would remove members in the cloud.
        return Err(MapError::Invalid {
            dn: entry.dn.clone(),
            attribute: "member".into(),
            reason: "holds more values than the directory returns at once (ranged retrieval is not supported yet)".into(),
        });
    }
    if kind == ObjectKind::Group {
        for attr in ["member", "uniqueMember"] {
            for v in entry.values(attr) {
                let s = std::str::from_utf8(v).map_err(|_| MapError::Invalid {
                    dn: entry.dn.clone(),
                    attribute: attr.into(),
                    reason: "is not UTF-8".into(),
                })?;
                // uniqueMember may carry an `#'…'B` UID suffix.
                let s = match (attr, s.rfind("#'")) {
                    ("uniqueMember", Some(i)) => &s[..i],
                    _ => s,
                };
                member_dns.push(s.to_string());
            }
        }
    }
    Ok(Mapped::Object(Box::new(MappedObject {
        object: SyncObject {
            anchor,
            kind,
            attributes,
            members: Vec::new(),
        },
        member_dns,
    })))
}

/// The hash the connector space keeps of an exported object (members sorted first).
pub fn hash(object: &SyncObject) -> String {
    let mut o = object.clone();
    o.members.sort();
    o.members.dedup();
    let bytes = serde_json::to_vec(&o).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ad() -> ConnectorConfig {
        ConnectorConfig::new(
            "corp",
            DirectoryKind::Ad,
            "ldaps://dc".into(),
            "/ca.pem".into(),
            "CN=svc".into(),
            "DC=example,DC=com".into(),
        )
    }

    fn openldap() -> ConnectorConfig {
        ConnectorConfig {
            kind: DirectoryKind::Openldap,
            base_dn: "dc=example,dc=com".into(),
            ..ad()
        }
    }

    fn entry(dn: &str, attrs: &[(&str, &[&[u8]])]) -> Entry {
        let mut m = BTreeMap::new();
        for (k, vs) in attrs {
            m.insert(
                k.to_ascii_lowercase(),
                vs.iter().map(|v| v.to_vec()).collect(),
            );
        }
        Entry {
            dn: dn.into(),
            attrs: m,
        }
    }

    const GUID: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

    fn ad_user(extra: &[(&str, &[&[u8]])]) -> Entry {
        let mut a: Vec<(&str, &[&[u8]])> = vec![
            (
                "objectClass",
                &[b"top", b"person", b"organizationalPerson", b"user"],
            ),
            ("objectGUID", &[GUID]),
            ("cn", &[b"Ada Lovelace"]),
            ("userPrincipalName", &[b"ada@example.com"]),
            ("sAMAccountName", &[b"ada"]),
            ("givenName", &[b"Ada"]),
            ("sn", &[b"Lovelace"]),
            ("mail", &[b"ada@example.com"]),
            ("c", &[b"no"]),
            ("userAccountControl", &[b"512"]),
        ];
        a.extend_from_slice(extra);
        entry("CN=Ada Lovelace,OU=Staff,DC=example,DC=com", &a)
    }

    fn object(m: Mapped) -> MappedObject {
        match m {
            Mapped::Object(o) => *o,
            other => panic!("expected an object, got {other:?}"),
        }
    }

    #[test]
    fn ad_user_maps_every_attribute() {
        let o = object(map_entry(&ad(), &ad_user(&[])).unwrap()).object;
        assert_eq!(o.anchor, B64.encode(GUID));
        assert_eq!(o.kind, ObjectKind::User);
        let a = &o.attributes;
        assert_eq!(a.user_principal_name.as_deref(), Some("ada@example.com"));
        assert_eq!(
            a.display_name.as_deref(),
            Some("Ada Lovelace"),
            "falls back to cn"
        );
        assert_eq!(a.given_name.as_deref(), Some("Ada"));
        assert_eq!(a.surname.as_deref(), Some("Lovelace"));
        assert_eq!(a.country.as_deref(), Some("NO"));
        assert_eq!(a.sam_account_name.as_deref(), Some("ada"));
        assert_eq!(
            a.distinguished_name,
            "CN=Ada Lovelace,OU=Staff,DC=example,DC=com"
        );
        assert!(a.account_enabled);
    }

    #[test]
    fn account_disabled_bit_disables() {
        let o = object(map_entry(&ad(), &ad_user(&[("userAccountControl", &[b"514"])])).unwrap());
        assert!(!o.object.attributes.account_enabled);
    }

    #[test]
    fn display_name_wins_over_cn() {
        let o = object(map_entry(&ad(), &ad_user(&[("displayName", &[b"Countess"])])).unwrap());
        assert_eq!(
            o.object.attributes.display_name.as_deref(),
            Some("Countess")
        );
    }

    #[test]
    fn critical_objects_computers_and_krbtgt_are_skipped() {
        let crit = ad_user(&[("isCriticalSystemObject", &[b"TRUE"])]);
        assert_eq!(
            map_entry(&ad(), &crit).unwrap(),
            Mapped::Skipped("critical system object")
        );
        let comp = entry(
            "CN=PC1,DC=example,DC=com",
            &[
                ("objectClass", &[b"top", b"user", b"computer"]),
                ("objectGUID", &[GUID]),
            ],
        );
        assert_eq!(
            map_entry(&ad(), &comp).unwrap(),
            Mapped::Skipped("computer")
        );
        let krb = ad_user(&[("sAMAccountName", &[b"krbtgt"])]);
        assert!(matches!(
            map_entry(&ad(), &krb).unwrap(),
            Mapped::Skipped(_)
        ));
        let ou = entry(
            "OU=x,DC=example,DC=com",
            &[("objectClass", &[b"organizationalUnit"])],
        );
        assert!(matches!(map_entry(&ad(), &ou).unwrap(), Mapped::Skipped(_)));
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        let bad = ad_user(&[("displayName", &[&[0xff, 0xfe, 0x41]])]);
        assert!(matches!(
            map_entry(&ad(), &bad),
            Err(MapError::Invalid { ref attribute, .. }) if attribute == "displayName"
        ));
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        let bad = ad_user(&[("description", &[long.as_bytes()])]);
        assert!(matches!(
            map_entry(&ad(), &bad),
            Err(MapError::Invalid { .. })
        ));
        let noguid = entry(
            "CN=x,DC=example,DC=com",
            &[("objectClass", &[b"user"]), ("objectGUID", &[b"short"])],
        );
        assert!(matches!(
            map_entry(&ad(), &noguid),
            Err(MapError::NoAnchor { .. })
        ));
    }

    #[test]
    fn groups_keep_member_dns() {
        let g = entry(
            "CN=Sales,OU=Staff,DC=example,DC=com",
            &[
                ("objectClass", &[b"top", b"group"]),
                ("objectGUID", &[GUID]),
                ("cn", &[b"Sales"]),
                (
                    "member",
                    &[
                        b"CN=Ada Lovelace,OU=Staff,DC=example,DC=com",
                        b"CN=B,DC=example,DC=com",
                    ],
                ),
            ],
        );
        let o = object(map_entry(&ad(), &g).unwrap());
        assert_eq!(o.object.kind, ObjectKind::Group);
        assert_eq!(o.object.attributes.display_name.as_deref(), Some("Sales"));
        assert_eq!(o.member_dns.len(), 2);
    }

    #[test]
    fn a_ranged_member_list_is_refused_not_truncated() {
        let g = entry(
            "CN=Big,DC=example,DC=com",
            &[
                ("objectClass", &[b"group"]),
                ("objectGUID", &[GUID]),
                ("member;range=0-1499", &[b"CN=a,DC=example,DC=com"]),
            ],
        );
        assert!(matches!(
            map_entry(&ad(), &g),
            Err(MapError::Invalid { .. })
        ));
    }

    #[test]
    fn openldap_entry_uuid_lock_and_upn_template() {
        let e = entry(
            "uid=ada,ou=Staff,dc=example,dc=com",
            &[
                ("objectClass", &[b"inetOrgPerson"]),
                ("entryUUID", &[b"01020304-0506-0708-090a-0b0c0d0e0f10"]),
                ("uid", &[b"ada"]),
                ("cn", &[b"Ada"]),
                ("mail", &[b"ada@example.com"]),
                ("pwdAccountLockedTime", &[b"000001010000Z"]),
            ],
        );
        let o = object(map_entry(&openldap(), &e).unwrap()).object;
        assert_eq!(o.anchor, B64.encode(GUID));
        assert_eq!(
            o.attributes.user_principal_name.as_deref(),
            Some("ada@example.com")
        );
        assert!(!o.attributes.account_enabled);
        assert_eq!(o.attributes.sam_account_name.as_deref(), Some("ada"));
        let mut locked = e.clone();
        locked.attrs.insert(
            "pwdaccountlockedtime".into(),
            vec![b"20261206213000Z".to_vec()],
        );
        let o = object(map_entry(&openldap(), &locked).unwrap()).object;
        assert!(o.attributes.account_enabled, "locked out, not disabled");
        let templ = ConnectorConfig {
            upn_from: Some("{uid}@corp.example".into()),
            ..openldap()
        };
        let o = object(map_entry(&templ, &e).unwrap()).object;
        assert_eq!(
            o.attributes.user_principal_name.as_deref(),
            Some("ada@corp.example")
        );
        assert!(attributes(&templ).iter().any(|a| a == "uid"));
    }

    #[test]
    fn group_scope_filters_users() {
        let c = ConnectorConfig {
            group_scope: Some("CN=Synced,DC=example,DC=com".into()),
            ..ad()
        };
        assert_eq!(
            map_entry(&c, &ad_user(&[])).unwrap(),
            Mapped::Skipped("outside the group scope")
        );
        let member = ad_user(&[("memberOf", &[b"cn=synced,dc=example,dc=com"])]);
        assert!(matches!(map_entry(&c, &member).unwrap(), Mapped::Object(_)));
    }

    #[test]
    fn hash_ignores_member_order_and_sees_changes() {
        let mut a = object(map_entry(&ad(), &ad_user(&[])).unwrap()).object;
        a.members = vec!["b".into(), "a".into()];
        let mut b = a.clone();
        b.members = vec!["a".into(), "b".into()];
        assert_eq!(hash(&a), hash(&b));
        b.attributes.mobile_phone = Some("+47 1".into());
        assert_ne!(hash(&a), hash(&b));
    }
}
