//! dirbridge-ldap against a real OpenLDAP slapd (testkit): TLS verification, password modify
//! with ppolicy, typed refusals, syncrepl refreshOnly.

mod common;

use common::{bind, bind_as, connect, secret};
use dirbridge_ldap::controls::SyncStateKind;
use dirbridge_ldap::{LdapError, PolicyReason, Scope};
use testkit::ca::TestCa;
use testkit::slapd::{OpenLdapServiceAccount, PpolicySettings, Slapd};

const INITIAL: &str = "Initial-Pass-1";

fn user_in_own_ou(slapd: &Slapd, test: &str) -> testkit::samba::Credentials {
    let ou = slapd.create_ou(test).expect("create OU");
    slapd
        .create_user(&ou, &format!("u-{test}"), INITIAL)
        .expect("create user")
}

#[tokio::test]
async fn ldaps_and_starttls_bind_with_certificate_verification() {
    let slapd = Slapd::shared();
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &svc)
        .await
        .expect("LDAPS bind");
    bind(&slapd.ldap_url(), slapd.ca_cert_pem(), &svc)
        .await
        .expect("StartTLS bind");
}

#[tokio::test]
async fn a_wrong_ca_is_rejected() {
    let slapd = Slapd::shared();
    let other = TestCa::new("some other CA").unwrap();
    for url in [slapd.ldaps_url(), slapd.ldap_url()] {
        let err = connect(&url, other.cert_pem())
            .await
            .err()
            .expect("wrong CA must fail");
        assert!(
            matches!(err, LdapError::CertificateRejected { .. }),
            "{url}: {err:?}"
        );
    }
}

#[tokio::test]
async fn service_account_sets_a_password_and_the_user_binds_with_it() {
    let slapd = Slapd::shared();
    let user = user_in_own_ou(slapd, "reset");
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &svc)
        .await
        .unwrap();
    c.openldap_set_password(&user.dn, None, &secret("Brand-New-Pass-7"))
        .await
        .expect("password modify by the service account");
    bind_as(
        &slapd.ldaps_url(),
        slapd.ca_cert_pem(),
        &user.dn,
        "Brand-New-Pass-7",
    )
    .await
    .expect("user binds with the new password");
    let err = bind_as(&slapd.ldaps_url(), slapd.ca_cert_pem(), &user.dn, INITIAL)
        .await
        .err()
        .expect("old password no longer works");
    assert!(
        matches!(err, LdapError::InvalidCredentials { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn ppolicy_refuses_a_weak_password_with_its_reason() {
    let slapd = Slapd::shared();
    let user = user_in_own_ou(slapd, "weak");
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &svc)
        .await
        .unwrap();

    let err = c
        .openldap_set_password(&user.dn, None, &secret("short1"))
        .await
        .expect_err("below pwdMinLength");
    assert!(
        matches!(
            err,
            LdapError::PolicyViolation {
                reason: PolicyReason::TooShort { min_length: None },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.result_code(), Some(19));

    // History: setting the same password twice.
    c.openldap_set_password(&user.dn, None, &secret("History-Pass-1"))
        .await
        .unwrap();
    let err = c
        .openldap_set_password(&user.dn, None, &secret("History-Pass-1"))
        .await
        .expect_err("in history");
    assert!(
        matches!(
            err,
            LdapError::PolicyViolation {
                reason: PolicyReason::InHistory,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn account_without_password_write_gets_insufficient_access() {
    let slapd = Slapd::shared();
    let user = user_in_own_ou(slapd, "no_write");
    let svc = slapd.service_account(OpenLdapServiceAccount::MissingPasswordWrite);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let err = c
        .openldap_set_password(&user.dn, None, &secret("Brand-New-Pass-7"))
        .await
        .expect_err("no write access to userPassword");
    assert!(
        matches!(err, LdapError::InsufficientAccess { .. }),
        "{err:?}"
    );
    assert_eq!(err.result_code(), Some(50));
}

#[tokio::test]
async fn lock_attribute_writes_follow_the_acls() {
    let slapd = Slapd::shared();
    let user = user_in_own_ou(slapd, "lock");
    let lock = || {
        vec![ldap3::Mod::Replace(
            b"pwdAccountLockedTime".to_vec(),
            std::iter::once(b"000001010000Z".to_vec()).collect(),
        )]
    };
    let full = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &full)
        .await
        .unwrap();
    c.modify(&user.dn, lock(), vec![])
        .await
        .expect("lock by the full account");
    let err = bind_as(&slapd.ldaps_url(), slapd.ca_cert_pem(), &user.dn, INITIAL)
        .await
        .err()
        .expect("a locked account cannot bind");
    assert!(
        matches!(err, LdapError::InvalidCredentials { .. }),
        "{err:?}"
    );

    let nolock = slapd.service_account(OpenLdapServiceAccount::MissingLockWrite);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &nolock)
        .await
        .unwrap();
    let err = c
        .modify(&user.dn, lock(), vec![])
        .await
        .expect_err("no write access");
    assert!(
        matches!(err, LdapError::InsufficientAccess { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn user_changes_own_password_with_the_old_one() {
    let slapd = Slapd::shared();
    let user = user_in_own_ou(slapd, "self_change");
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &user)
        .await
        .unwrap();
    c.openldap_set_password(&user.dn, Some(&secret(INITIAL)), &secret("Changed-Pass-9"))
        .await
        .expect("self change");
    bind_as(
        &slapd.ldaps_url(),
        slapd.ca_cert_pem(),
        &user.dn,
        "Changed-Pass-9",
    )
    .await
    .expect("bind with the changed password");
}

#[tokio::test]
async fn syncrepl_refresh_answers_with_a_cookie_and_then_only_changes() {
    let slapd = Slapd::shared();
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let attrs = ["entryUUID", "cn", "mail", "telephoneNumber"];
    let filter = "(objectClass=inetOrgPerson)";

    // The whole synced tree.
    let full = c
        .openldap_sync_refresh(slapd.synced_root(), filter, &attrs, None)
        .await
        .expect("full refresh");
    assert!(full.cookie.is_some(), "refresh must answer with a cookie");
    let dataset_users = slapd.dataset().unwrap().users.len();
    assert!(
        full.changes.len() >= dataset_users,
        "{} < {dataset_users}",
        full.changes.len()
    );
    assert!(full.changes.iter().all(|ch| ch.entry_uuid.len() == 16));

    // Deltas, in this test's own OU (other tests change entries of the shared server).
    let ou = slapd.create_ou("syncrepl").unwrap();
    let user = slapd.create_user(&ou, "u-syncrepl", INITIAL).unwrap();
    let first = c
        .openldap_sync_refresh(&ou, filter, &attrs, None)
        .await
        .unwrap();
    assert_eq!(first.changes.len(), 1);
    let uuid = first.changes[0].entry_uuid.clone();

    slapd
        .admin_replace(&user.dn, "telephoneNumber", &["+47 22 00 00 00"])
        .unwrap();
    let delta = c
        .openldap_sync_refresh(&ou, filter, &attrs, first.cookie.as_deref())
        .await
        .expect("delta refresh");
    assert!(delta.cookie.is_some());
    assert_eq!(delta.changes.len(), 1, "{:?}", delta.changes);
    assert_eq!(delta.changes[0].entry.dn, user.dn);
    assert_eq!(delta.changes[0].entry_uuid, uuid);
    assert_ne!(delta.changes[0].kind, SyncStateKind::Delete);
    assert_eq!(
        delta.changes[0].entry.text("telephoneNumber"),
        Some("+47 22 00 00 00")
    );

    // A delete comes back as a delete, by entryUUID (syncprov keeps a session log).
    slapd.admin_delete(&user.dn).unwrap();
    let after_delete = c
        .openldap_sync_refresh(&ou, filter, &attrs, delta.cookie.as_deref())
        .await
        .expect("refresh after delete");
    assert!(after_delete.deleted.contains(&uuid), "{after_delete:?}");
    assert!(
        after_delete.changes.is_empty(),
        "{:?}",
        after_delete.changes
    );
}

#[tokio::test]
async fn paged_search_reads_every_dataset_user() {
    let slapd = Slapd::shared();
    let data = slapd.dataset().unwrap();
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let entries = c
        .search_paged(
            slapd.synced_root(),
            Scope::Subtree,
            "(&(objectClass=inetOrgPerson)(givenName=*))",
            &["cn", "c"],
            100,
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), data.users.len());
    assert!(entries.iter().any(|e| e.text("cn") == Some("Åse Ødegård")));
}

#[tokio::test]
async fn a_fresh_server_takes_a_stricter_policy() {
    let slapd = Slapd::start_fresh().unwrap();
    slapd
        .set_password_policy(&PpolicySettings {
            min_length: Some(16),
            ..Default::default()
        })
        .unwrap();
    let ou = slapd.create_ou("policy").unwrap();
    let user = slapd.create_user(&ou, "policyuser", INITIAL).unwrap();
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let err = c
        .openldap_set_password(&user.dn, None, &secret("Fifteen-chars-1"))
        .await
        .expect_err("below the new minimum");
    assert!(
        matches!(
            err,
            LdapError::PolicyViolation {
                reason: PolicyReason::TooShort { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(Slapd::shared()
        .set_password_policy(&PpolicySettings::default())
        .is_err());
}
