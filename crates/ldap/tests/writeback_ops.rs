//! The directory operations password writeback uses, against a real Samba AD DC and a real
//! OpenLDAP slapd (testkit): looking a user up by anchor with its account state, unlock, and
//! "must change at next sign-in".

mod common;

use common::{bind, bind_as, secret};
use dirbridge_ldap::ad::{ad_account_state, AccountState};
use dirbridge_ldap::openldap::{openldap_account_state, PERMANENT_LOCK};
use dirbridge_ldap::LdapError;
use testkit::samba::{AdRight, Samba, ServiceAccount};
use testkit::slapd::{OpenLdapServiceAccount, Slapd};

const INITIAL: &str = "Initial-Pass-1";

fn entry_uuid(c: &dirbridge_ldap::Entry) -> Vec<u8> {
    let text = c.text("entryUUID").expect("entryUUID");
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn ad_lookup_by_guid_reads_the_account_state() {
    let samba = Samba::shared();
    let ou = samba.create_ou("wb-state").unwrap();
    let user = samba.create_user(&ou, "wbstate", INITIAL).unwrap();
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let guid = c
        .read(&user.dn, &["objectGUID"])
        .await
        .unwrap()
        .values("objectGUID")[0]
        .clone();
    let found = c.ad_find_by_guid(&guid).await.unwrap().expect("found");
    assert!(found.dn.eq_ignore_ascii_case(&user.dn), "{}", found.dn);
    assert_eq!(ad_account_state(&found), AccountState::default());

    samba
        .admin_replace(&user.dn, "userAccountControl", &["514"])
        .unwrap();
    samba.admin_replace(&user.dn, "adminCount", &["1"]).unwrap();
    let found = c.ad_find_by_guid(&guid).await.unwrap().unwrap();
    let state = ad_account_state(&found);
    assert!(
        state.disabled && state.protected && !state.locked,
        "{state:?}"
    );

    let mut missing = guid.clone();
    missing[0] ^= 0xff;
    missing[15] ^= 0xff;
    assert!(c.ad_find_by_guid(&missing).await.unwrap().is_none());
}

#[tokio::test]
async fn ad_must_change_sets_pwd_last_set_and_needs_the_right() {
    let samba = Samba::shared();
    let ou = samba.create_ou("wb-mustchange").unwrap();
    let user = samba.create_user(&ou, "wbmust", INITIAL).unwrap();
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    c.ad_set_must_change(&user.dn, true).await.unwrap();
    let e = c.read(&user.dn, &["pwdLastSet"]).await.unwrap();
    assert_eq!(e.text("pwdLastSet"), Some("0"));
    c.ad_set_must_change(&user.dn, false).await.unwrap();
    let e = c.read(&user.dn, &["pwdLastSet"]).await.unwrap();
    assert_ne!(e.text("pwdLastSet"), Some("0"));
    c.ad_unlock(&user.dn)
        .await
        .expect("unlocking an unlocked account is fine");

    for missing in [AdRight::WritePwdLastSet, AdRight::WriteLockoutTime] {
        let svc = samba.service_account(ServiceAccount::Missing(missing));
        let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
            .await
            .unwrap();
        let err = match missing {
            AdRight::WritePwdLastSet => c.ad_set_must_change(&user.dn, true).await,
            _ => c.ad_unlock(&user.dn).await,
        }
        .expect_err("refused without the right");
        assert!(
            matches!(err, LdapError::InsufficientAccess { .. }),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn openldap_unlock_lets_a_locked_user_bind_again() {
    let slapd = Slapd::shared();
    let ou = slapd.create_ou("wb-unlock").unwrap();
    let user = slapd.create_user(&ou, "wb-unlock", INITIAL).unwrap();
    // Locked out for real: pwdMaxFailure (5) wrong binds. Once, in a loaded
    // CI run, the correct bind after five still succeeded (cause not pinned
    // down; a lost pwdFailureTime value is the likely one). That success
    // clears the count, so a whole round is repeated, at most three times.
    let mut locked = false;
    for _round in 0..3 {
        for _ in 0..5 {
            assert!(bind_as(
                &slapd.ldaps_url(),
                slapd.ca_cert_pem(),
                &user.dn,
                "Wrong-Pass-0"
            )
            .await
            .is_err());
        }
        if bind_as(&slapd.ldaps_url(), slapd.ca_cert_pem(), &user.dn, INITIAL)
            .await
            .is_err()
        {
            locked = true;
            break;
        }
    }
    assert!(locked, "five wrong binds lock the account");
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let read = c.read(&user.dn, &["entryUUID"]).await.unwrap();
    let found = c
        .openldap_find_by_entry_uuid(slapd.base_dn(), &entry_uuid(&read))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let state = openldap_account_state(&found[0]);
    assert!(state.locked && !state.disabled, "{state:?}");

    // Without write access to the lock attributes: refused, still locked.
    let nolock = slapd.service_account(OpenLdapServiceAccount::MissingLockWrite);
    let mut n = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &nolock)
        .await
        .unwrap();
    let err = n.openldap_unlock(&user.dn).await.expect_err("no right");
    assert!(
        matches!(err, LdapError::InsufficientAccess { .. }),
        "{err:?}"
    );

    c.openldap_unlock(&user.dn).await.expect("unlock");
    c.openldap_unlock(&user.dn)
        .await
        .expect("unlock again is fine");
    bind_as(&slapd.ldaps_url(), slapd.ca_cert_pem(), &user.dn, INITIAL)
        .await
        .expect("binds after the unlock");

    slapd
        .admin_replace(&user.dn, "pwdAccountLockedTime", &[PERMANENT_LOCK])
        .unwrap();
    let found = c
        .openldap_find_by_entry_uuid(slapd.base_dn(), &entry_uuid(&read))
        .await
        .unwrap();
    assert!(openldap_account_state(&found[0]).disabled);
    assert!(c
        .openldap_find_by_entry_uuid(slapd.base_dn(), &[7u8; 16])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn openldap_must_change_sets_pwd_reset() {
    let slapd = Slapd::shared();
    let ou = slapd.create_ou("wb-reset").unwrap();
    let user = slapd.create_user(&ou, "wb-reset", INITIAL).unwrap();
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd.ca_cert_pem(), &svc)
        .await
        .unwrap();
    c.openldap_set_password(&user.dn, None, &secret("Admin-Set-Pass-3"))
        .await
        .unwrap();
    c.openldap_set_must_change(&user.dn, true).await.unwrap();
    let e = c.read(&user.dn, &["pwdReset"]).await.unwrap();
    assert_eq!(e.text("pwdReset"), Some("TRUE"));
    c.openldap_set_must_change(&user.dn, false).await.unwrap();
    c.openldap_set_must_change(&user.dn, false).await.unwrap();
    let e = c.read(&user.dn, &["pwdReset"]).await.unwrap();
    assert_eq!(e.text("pwdReset"), None);
}
