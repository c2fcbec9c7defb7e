//! Which DNs are in a connector's scope: below the base (or an included OU) and not below an
//! excluded OU. DNs compare case-insensitively, RDN by RDN.

use crate::connector::ConnectorConfig;
pub use ldap::dn::{dn_key, is_below, parent_dn};

/// `dn` is in the connector's scope.
pub fn in_scope(config: &ConnectorConfig, dn: &str) -> bool {
    config.roots().iter().any(|r| is_below(dn, r))
        && !config.exclude_ous.iter().any(|x| is_below(dn, x))
}

/// Whether moving or deleting the OU at `dn` can change what is in scope: it lies below (or
/// above) an included root or an excluded OU.
pub fn affects_scope(config: &ConnectorConfig, dn: &str) -> bool {
    config
        .roots()
        .iter()
        .chain(config.exclude_ous.iter())
        .any(|r| is_below(dn, r) || is_below(r, dn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::DirectoryKind;

    #[test]
    fn the_parent_of_a_dn_keeps_its_spelling_and_escapes() {
        assert_eq!(
            parent_dn("OU=Sales\\, EMEA,OU=Staff,DC=x").as_deref(),
            Some("OU=Staff,DC=x")
        );
        assert_eq!(parent_dn("ou=Sales, dc=x").as_deref(), Some("dc=x"));
        assert_eq!(parent_dn("dc=x"), None);
    }

    fn config(include: &[&str], exclude: &[&str]) -> ConnectorConfig {
        ConnectorConfig {
            include_ous: include.iter().map(|s| s.to_string()).collect(),
            exclude_ous: exclude.iter().map(|s| s.to_string()).collect(),
            ..ConnectorConfig::new(
                "t",
                DirectoryKind::Ad,
                "ldaps://dc".into(),
                "/ca.pem".into(),
                "CN=svc".into(),
                "DC=example,DC=com".into(),
            )
        }
    }

    #[test]
    fn below_compares_rdns_case_insensitively() {
        assert!(is_below(
            "CN=A,OU=Staff, DC=Example,DC=com",
            "ou=staff,dc=example,dc=com"
        ));
        assert!(is_below(
            "OU=Staff,DC=example,DC=com",
            "OU=Staff,DC=example,DC=com"
        ));
        assert!(!is_below(
            "CN=A,OU=NotStaff,DC=example,DC=com",
            "OU=Staff,DC=example,DC=com"
        ));
        // An escaped comma is part of the value, not a separator.
        assert!(!is_below(
            "CN=Smith\\, Staff,DC=example,DC=com",
            "CN= Staff,DC=example,DC=com"
        ));
        assert!(is_below(
            "CN=Smith\\, John,OU=X,DC=example,DC=com",
            "OU=X,DC=example,DC=com"
        ));
    }

    #[test]
    fn excluded_ous_win_over_included_ones() {
        let c = config(
            &["OU=Corp,DC=example,DC=com"],
            &["OU=Gone,OU=Corp,DC=example,DC=com"],
        );
        assert!(in_scope(&c, "CN=a,OU=Corp,DC=example,DC=com"));
        assert!(!in_scope(&c, "CN=a,OU=Gone,OU=Corp,DC=example,DC=com"));
        assert!(!in_scope(&c, "CN=a,OU=Other,DC=example,DC=com"));
        assert!(affects_scope(&c, "OU=Team,OU=Corp,DC=example,DC=com"));
        assert!(
            affects_scope(&c, "DC=example,DC=com"),
            "a parent of the root"
        );
        assert!(!affects_scope(&c, "OU=Other,DC=example,DC=com"));
        let all = config(&[], &[]);
        assert!(in_scope(&all, "CN=a,OU=Other,DC=example,DC=com"));
        assert!(!in_scope(&all, "CN=a,DC=other,DC=com"));
    }
}
