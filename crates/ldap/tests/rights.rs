//! The effective-rights check (`ldap::rights`) against a real Samba AD DC and a real slapd:
//! every delegated service account is reported with exactly the rights it holds, and the
//! check changes nothing.

mod common;

use common::{bind, bind_as};
use dirbridge_ldap::ad::rights as guids;
use dirbridge_ldap::rights::{Right, Status};
use dirbridge_ldap::Scope;
use testkit::samba::{self, AdRight, Samba, ServiceAccount};
use testkit::slapd::{OpenLdapServiceAccount, Slapd};

const INITIAL: &str = "Initial-Pass-1";

fn ad_right(r: AdRight) -> Option<Right> {
    match r {
        AdRight::ResetPassword => Some(Right::ResetPassword),
        AdRight::ChangePassword => Some(Right::ChangePassword),
        AdRight::WriteLockoutTime => Some(Right::WriteLockoutTime),
        AdRight::WritePwdLastSet => Some(Right::WritePwdLastSet),
        AdRight::ReplicatingDirectoryChanges | AdRight::UnexpirePassword => None,
    }
}

#[test]
fn the_checked_guids_are_the_ones_samba_delegates() {
    let g = samba::delegation_guids().expect("testkit delegation report");
    let text = g.to_string().to_ascii_lowercase();
    for guid in [
        guids::RESET_PASSWORD,
        guids::CHANGE_PASSWORD,
        guids::ATTR_LOCKOUT_TIME,
        guids::ATTR_PWD_LAST_SET,
        guids::CLASS_USER,
    ] {
        assert!(text.contains(guid), "{guid} not in {g}");
    }
}

#[tokio::test]
async fn ad_every_service_account_has_exactly_its_delegated_rights() {
    let samba = Samba::shared();
    let roots = vec![samba.synced_root().to_string()];
    for account in ServiceAccount::all() {
        let creds = samba.service_account(account);
        let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &creds)
            .await
            .expect("bind");
        let report = c
            .ad_effective_rights(&creds.dn, &roots)
            .await
            .unwrap_or_else(|e| panic!("{}: {e} {:?}", account.name(), e.diagnostic()));
        let sid = report.sid.clone().expect("the account's SID");
        assert!(sid.starts_with("S-1-5-21-"), "{sid}");
        let missing = match account {
            ServiceAccount::Missing(r) => ad_right(r),
            ServiceAccount::Full => None,
        };
        for right in Right::AD {
            let check = report.check(samba.synced_root(), right).expect("checked");
            if Some(right) == missing {
                assert_eq!(check.status, Status::Missing, "{} {right}", account.name());
                assert_eq!(check.fixes.len(), 2, "{check:?}");
                assert!(
                    check.fixes[0].starts_with("samba-tool dsacl set"),
                    "{check:?}"
                );
                assert!(check.fixes[0].contains(&sid), "{check:?}");
                assert!(check.fixes[0].contains(samba.synced_root()), "{check:?}");
                assert!(
                    check.fixes[1].contains(&format!("DIRBRIDGE\\{}:", account.name())),
                    "{check:?}"
                );
                assert!(!report.describe_missing().contains("Domain Admin"));
            } else {
                assert_eq!(check.status, Status::Granted, "{} {right}", account.name());
                assert!(check.fixes.is_empty());
            }
        }
        assert_eq!(report.complete(), missing.is_none(), "{}", account.name());
    }
}

#[tokio::test]
async fn ad_rights_are_read_through_a_upn_and_on_a_nested_ou() {
    let samba = Samba::shared();
    let nested = samba.create_ou("rights-nested").expect("OU");
    let creds = samba.service_account(ServiceAccount::Missing(AdRight::WritePwdLastSet));
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &creds)
        .await
        .unwrap();
    let report = c
        .ad_effective_rights(&creds.login, std::slice::from_ref(&nested))
        .await
        .expect("rights");
    assert_eq!(
        report.account.to_ascii_lowercase(),
        creds.dn.to_ascii_lowercase()
    );
    let missing: Vec<_> = report.missing().into_iter().map(|(_, c)| c.right).collect();
    assert_eq!(missing, vec![Right::WritePwdLastSet]);
}

#[tokio::test]
async fn ad_a_root_without_delegation_misses_everything() {
    let samba = Samba::shared();
    let creds = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &creds)
        .await
        .unwrap();
    // The service accounts' own OU is outside the synced root: nothing is delegated there.
    let report = c
        .ad_effective_rights(&creds.dn, &[samba::SERVICE_OU.to_string()])
        .await
        .expect("rights");
    assert_eq!(report.missing().len(), 4, "{report:?}");
}

// ---------------------------------------------------------------- OpenLDAP

#[tokio::test]
async fn openldap_noop_reports_each_accounts_rights_and_changes_nothing() {
    let slapd = Slapd::shared();
    let ou = slapd.create_ou("rights").expect("OU");
    let user = slapd.create_user(&ou, "rights-user", INITIAL).unwrap();
    let locked_ou = slapd.create_ou("rights-locked").expect("OU");
    let locked = slapd
        .create_user(&locked_ou, "rights-locked", INITIAL)
        .unwrap();
    slapd
        .admin_replace(&locked.dn, "pwdAccountLockedTime", &["000001010000Z"])
        .unwrap();
    let roots = vec![ou.clone(), locked_ou.clone()];

    for account in OpenLdapServiceAccount::ALL {
        let creds = slapd.service_account(account);
        let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &creds)
            .await
            .unwrap();
        let report = c
            .openldap_effective_rights(&creds.dn, &roots, "(objectClass=inetOrgPerson)")
            .await
            .unwrap_or_else(|e| panic!("{account:?}: {e} {:?}", e.diagnostic()));
        let missing = match account {
            OpenLdapServiceAccount::Full => None,
            OpenLdapServiceAccount::MissingPasswordWrite => Some(Right::WriteUserPassword),
            OpenLdapServiceAccount::MissingLockWrite => Some(Right::WriteLockTime),
        };
        for root in &roots {
            for right in Right::OPENLDAP {
                let check = report.check(root, right).unwrap();
                if Some(right) == missing {
                    assert_eq!(check.status, Status::Missing, "{account:?} {right}");
                    assert!(check.fixes[0].starts_with("olcAccess: to dn.subtree="));
                    assert!(check.fixes[0].contains(&creds.dn), "{check:?}");
                } else {
                    assert_eq!(check.status, Status::Granted, "{account:?} {right}");
                }
            }
        }
    }

    // Nothing changed: the old password still binds, the lock is still there.
    bind_as(&slapd.ldaps_url(), slapd.ca_cert_pem(), &user.dn, INITIAL)
        .await
        .expect("the old password still works after the No-Op checks");
    let admin = slapd.admin();
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &admin)
        .await
        .unwrap();
    let e = c
        .search_paged(
            &locked.dn,
            Scope::Base,
            "(objectClass=*)",
            &["pwdAccountLockedTime", "pwdChangedTime", "pwdHistory"],
            10,
        )
        .await
        .unwrap();
    assert_eq!(e[0].text("pwdAccountLockedTime"), Some("000001010000Z"));
    let e = c
        .search_paged(
            &user.dn,
            Scope::Base,
            "(objectClass=*)",
            &["pwdHistory"],
            10,
        )
        .await
        .unwrap();
    assert!(e[0].values("pwdHistory").is_empty(), "{e:?}");
}

#[tokio::test]
async fn openldap_a_root_without_users_is_unchecked_not_missing() {
    let slapd = Slapd::shared();
    let ou = slapd.create_ou("rights-empty").expect("OU");
    let creds = slapd.service_account(OpenLdapServiceAccount::MissingPasswordWrite);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &creds)
        .await
        .unwrap();
    let report = c
        .openldap_effective_rights(
            &creds.dn,
            std::slice::from_ref(&ou),
            "(objectClass=inetOrgPerson)",
        )
        .await
        .unwrap();
    assert!(report.complete());
    assert!(matches!(
        report.check(&ou, Right::WriteUserPassword).unwrap().status,
        Status::Unchecked(_)
    ));
}
