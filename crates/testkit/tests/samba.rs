//! The Samba AD DC fixture: it starts, verifies with the test CA, runs several instances side by
//! side, carries the dataset and the delegated service accounts.

use dirbridge_testkit::samba::{Samba, ServiceAccount, BASE_DN, SYNCED_ROOT};
use ldap::{CaBundle, ConnectOptions, Connection, LdapError, Scope, SecretString};

async fn bind(samba: &Samba, dn: &str, password: &str) -> Result<Connection, LdapError> {
    let mut c = Connection::connect(&ConnectOptions::new(
        samba.ldaps_url(),
        CaBundle::File(samba.ca_cert_path().to_path_buf()),
    ))
    .await?;
    c.simple_bind(dn, &SecretString::from(password.to_owned()))
        .await?;
    Ok(c)
}

#[tokio::test]
async fn shared_instance_answers_ldaps_with_its_ca_file() {
    let samba = Samba::shared();
    assert!(samba.ip().is_loopback());
    assert!(samba.ldaps_url().starts_with("ldaps://127."));
    let admin = samba.admin();
    let mut c = bind(samba, &admin.dn, &admin.password)
        .await
        .expect("admin bind over LDAPS");
    let root = c.read(BASE_DN, &["objectClass"]).await.unwrap();
    assert_eq!(root.dn.to_ascii_lowercase(), BASE_DN.to_ascii_lowercase());
}

#[tokio::test]
async fn two_instances_run_side_by_side_and_are_independent() {
    let a = Samba::start_fresh().expect("first instance");
    let b = Samba::start_fresh().expect("second instance");
    assert_ne!(a.ip(), b.ip());
    assert_ne!(a.pid(), b.pid());
    let ou = a.create_ou("only_in_a").unwrap();
    let admin = a.admin();
    let mut ca = bind(&a, &admin.dn, &admin.password)
        .await
        .expect("bind to a");
    let mut cb = bind(&b, &admin.dn, &admin.password)
        .await
        .expect("bind to b");
    ca.read(&ou, &["ou"]).await.expect("the OU exists in a");
    let err = cb.read(&ou, &["ou"]).await.expect_err("and not in b");
    assert!(matches!(err, LdapError::NoSuchObject { .. }), "{err:?}");

    // Dropping one stops its server and leaves the other running.
    let pid = a.pid();
    drop(a);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "samba {pid} still running"
    );
    cb.read(BASE_DN, &["objectClass"])
        .await
        .expect("b still answers");
}

#[tokio::test]
async fn small_dataset_is_loaded_with_its_special_cases() {
    let samba = Samba::shared();
    let data = samba
        .dataset()
        .expect("the shared instance has the small dataset");
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(samba, &svc.dn, &svc.password).await.unwrap();
    let users = c
        .search_paged(
            SYNCED_ROOT,
            Scope::Subtree,
            "(&(objectCategory=person)(objectClass=user)(givenName=*))",
            &["cn", "userAccountControl", "c", "mail", "mobile"],
            100,
        )
        .await
        .unwrap();
    let users: Vec<_> = users
        .into_iter()
        .filter(|e| !e.dn.contains(",OU=Tests,"))
        .collect();
    assert_eq!(users.len(), data.users.len());
    let disabled = users
        .iter()
        .filter(|e| e.text("userAccountControl") == Some("514"))
        .count();
    assert_eq!(disabled, data.users.iter().filter(|u| !u.enabled).count());
    for special in data.users_needing_escape() {
        assert!(
            users
                .iter()
                .any(|e| e.text("cn") == Some(special.cn.as_str())),
            "{:?} missing",
            special.cn
        );
    }
    // Nested group: Nested Outer ∋ Nested Middle ∋ Nested Inner.
    let outer = c
        .search_paged(
            SYNCED_ROOT,
            Scope::Subtree,
            "(cn=Nested Outer)",
            &["member"],
            10,
        )
        .await
        .unwrap();
    assert!(outer[0]
        .values("member")
        .iter()
        .any(|m| String::from_utf8_lossy(m).starts_with("CN=Nested Middle,")));
}

#[tokio::test]
async fn dataset_users_bind_with_their_passwords() {
    let samba = Samba::shared();
    let sample = samba.sample_user().unwrap();
    bind(samba, &sample.login, &sample.password)
        .await
        .expect("sample user binds by UPN");
    let data = samba.dataset().unwrap();
    let tricky = data.users.iter().position(|u| u.cn == "Berg, Ola").unwrap();
    let who = samba.dataset_user(tricky).unwrap();
    bind(samba, &who.dn, &who.password)
        .await
        .expect("escaped DN binds");
    let disabled = data.users.iter().position(|u| !u.enabled).unwrap();
    let who = samba.dataset_user(disabled).unwrap();
    let err = bind(samba, &who.dn, &who.password)
        .await
        .err()
        .expect("disabled users cannot bind");
    assert!(
        matches!(err, LdapError::InvalidCredentials { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn service_accounts_are_not_privileged() {
    let samba = Samba::shared();
    let admin = samba.admin();
    let mut c = bind(samba, &admin.dn, &admin.password).await.unwrap();
    for account in ServiceAccount::all() {
        let svc = samba.service_account(account);
        let e = c.read(&svc.dn, &["memberOf", "adminCount"]).await.unwrap();
        assert!(
            e.values("memberOf").is_empty(),
            "{account:?} is in {:?}",
            e.values("memberOf")
        );
        assert!(e.text("adminCount").is_none());
    }
}

#[test]
fn the_shared_instance_refuses_domain_wide_changes() {
    let samba = Samba::shared();
    assert!(samba.is_shared());
    assert!(samba
        .set_password_policy(&dirbridge_testkit::samba::AdPasswordPolicy {
            min_length: Some(3),
            ..Default::default()
        })
        .is_err());
}
