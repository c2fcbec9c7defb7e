//! The OpenLDAP fixture: TLS with the test CA, the dataset, the policy, several instances.

use dirbridge_testkit::slapd::{OpenLdapServiceAccount, Slapd, POLICY_DN, SYNCED_ROOT};
use ldap::{CaBundle, ConnectOptions, Connection, LdapError, Scope, SecretString};

async fn bind(url: &str, slapd: &Slapd, dn: &str, password: &str) -> Result<Connection, LdapError> {
    let mut c = Connection::connect(&ConnectOptions::new(
        url,
        CaBundle::File(slapd.ca_cert_path().to_path_buf()),
    ))
    .await?;
    c.simple_bind(dn, &SecretString::from(password.to_owned()))
        .await?;
    Ok(c)
}

#[tokio::test]
async fn ldaps_and_starttls_answer_with_the_ca_file() {
    let slapd = Slapd::shared();
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    bind(&slapd.ldaps_url(), slapd, &svc.dn, &svc.password)
        .await
        .expect("LDAPS");
    bind(&slapd.ldap_url(), slapd, &svc.dn, &svc.password)
        .await
        .expect("StartTLS");
}

#[tokio::test]
async fn small_dataset_is_loaded_with_hashed_passwords_and_locked_leavers() {
    let slapd = Slapd::shared();
    let data = slapd.dataset().unwrap();
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd, &svc.dn, &svc.password)
        .await
        .unwrap();
    let users = c
        .search_paged(
            SYNCED_ROOT,
            Scope::Subtree,
            "(&(objectClass=inetOrgPerson)(givenName=*))",
            &[
                "cn",
                "userPassword",
                "pwdAccountLockedTime",
                "entryUUID",
                "c",
            ],
            100,
        )
        .await
        .unwrap();
    assert_eq!(users.len(), data.users.len());
    assert!(users.iter().all(|e| e
        .values("userPassword")
        .first()
        .is_some_and(|p| p.starts_with(b"{SSHA}"))));
    let locked = users
        .iter()
        .filter(|e| !e.values("pwdAccountLockedTime").is_empty())
        .count();
    assert_eq!(locked, data.users.iter().filter(|u| !u.enabled).count());
    for special in data.users_needing_escape() {
        assert!(
            users
                .iter()
                .any(|e| e.text("cn") == Some(special.cn.as_str())),
            "{:?}",
            special.cn
        );
    }
    let sample = slapd.sample_user().unwrap();
    bind(&slapd.ldaps_url(), slapd, &sample.dn, &sample.password)
        .await
        .expect("sample user binds");
}

#[tokio::test]
async fn the_default_policy_is_in_place() {
    let slapd = Slapd::shared();
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut c = bind(&slapd.ldaps_url(), slapd, &svc.dn, &svc.password)
        .await
        .unwrap();
    let p = c
        .read(
            POLICY_DN,
            &[
                "pwdMinLength",
                "pwdCheckQuality",
                "pwdInHistory",
                "pwdLockout",
            ],
        )
        .await
        .unwrap();
    assert_eq!(p.text("pwdMinLength"), Some("8"));
    assert_eq!(p.text("pwdCheckQuality"), Some("2"));
    assert_eq!(p.text("pwdInHistory"), Some("5"));
    assert_eq!(p.text("pwdLockout"), Some("TRUE"));
}

#[tokio::test]
async fn two_instances_run_side_by_side() {
    let a = Slapd::start_fresh().unwrap();
    let b = Slapd::start_fresh().unwrap();
    assert_ne!(a.ldaps_url(), b.ldaps_url());
    let ou = a.create_ou("only_in_a").unwrap();
    let admin = a.admin();
    let mut ca = bind(&a.ldaps_url(), &a, &admin.dn, &admin.password)
        .await
        .unwrap();
    let mut cb = bind(&b.ldaps_url(), &b, &admin.dn, &admin.password)
        .await
        .unwrap();
    ca.read(&ou, &["ou"]).await.expect("in a");
    assert!(matches!(
        cb.read(&ou, &["ou"]).await,
        Err(LdapError::NoSuchObject { .. })
    ));
    let pid = a.pid();
    drop(a);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
