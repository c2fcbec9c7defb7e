//! dirbridge-ldap against a real Samba AD DC (testkit): TLS verification, delegated password
//! reset and change, typed errors, DirSync.

mod common;

use common::{bind, bind_as, connect, secret};
use dirbridge_ldap::ad::rights;
use dirbridge_ldap::{BindProblem, LdapError, PolicyReason, Scope};
use testkit::ca::TestCa;
use testkit::samba::{AdPasswordPolicy, AdRight, Samba, ServiceAccount, BASE_DN};

const INITIAL: &str = "Initial-Pass-1";

/// A fresh OU with one user in the shared instance.
fn user_in_own_ou(samba: &Samba, test: &str) -> testkit::samba::Credentials {
    let ou = samba.create_ou(test).expect("create OU");
    let login = format!("u{}", &test[..test.len().min(12)]).replace('_', "");
    samba
        .create_user(&ou, &login, INITIAL)
        .expect("create user")
}

#[tokio::test]
async fn ldaps_bind_with_certificate_verification() {
    let samba = Samba::shared();
    let svc = samba.service_account(ServiceAccount::Full);
    bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .expect("LDAPS bind");
    // StartTLS on 389 with the same CA works too.
    bind(&samba.ldap_url(), samba.ca_cert_pem(), &svc)
        .await
        .expect("StartTLS bind");
    // A UPN works as the bind name in AD.
    bind_as(
        &samba.ldaps_url(),
        samba.ca_cert_pem(),
        &svc.login,
        &svc.password,
    )
    .await
    .expect("UPN bind");
}

#[tokio::test]
async fn ldaps_with_a_wrong_ca_is_rejected() {
    let samba = Samba::shared();
    let other = TestCa::new("some other CA").unwrap();
    let err = connect(&samba.ldaps_url(), other.cert_pem())
        .await
        .err()
        .expect("connecting with the wrong CA must fail");
    assert!(
        matches!(err, LdapError::CertificateRejected { .. }),
        "{err:?}"
    );
    let err = connect(&samba.ldap_url(), other.cert_pem())
        .await
        .err()
        .expect("StartTLS with the wrong CA must fail");
    assert!(
        matches!(err, LdapError::CertificateRejected { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_password_is_invalid_credentials_with_the_reason() {
    let samba = Samba::shared();
    let svc = samba.service_account(ServiceAccount::Full);
    let err = bind_as(
        &samba.ldaps_url(),
        samba.ca_cert_pem(),
        &svc.dn,
        "not-the-password",
    )
    .await
    .err()
    .expect("wrong password must fail");
    assert!(
        matches!(
            err,
            LdapError::InvalidCredentials {
                problem: BindProblem::WrongPassword,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn delegated_account_resets_a_password_and_the_user_binds_with_it() {
    let samba = Samba::shared();
    let user = user_in_own_ou(samba, "reset_works");
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    c.ad_reset_password(&user.dn, &secret("Brand-New-Pass-7"), None)
        .await
        .expect("reset by the delegated account");

    bind_as(
        &samba.ldaps_url(),
        samba.ca_cert_pem(),
        &user.dn,
        "Brand-New-Pass-7",
    )
    .await
    .expect("user binds with the new password");
    let err = bind_as(&samba.ldaps_url(), samba.ca_cert_pem(), &user.dn, INITIAL)
        .await
        .err()
        .expect("the old password no longer works");
    assert!(
        matches!(err, LdapError::InvalidCredentials { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn account_without_reset_right_gets_insufficient_access() {
    let samba = Samba::shared();
    let user = user_in_own_ou(samba, "no_reset_right");
    let svc = samba.service_account(ServiceAccount::Missing(AdRight::ResetPassword));
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let err = c
        .ad_reset_password(&user.dn, &secret("Brand-New-Pass-7"), None)
        .await
        .expect_err("reset without the right must fail");
    assert!(
        matches!(err, LdapError::InsufficientAccess { .. }),
        "{err:?}"
    );
    assert_eq!(err.result_code(), Some(50));
    // And the password did not change.
    bind_as(&samba.ldaps_url(), samba.ca_cert_pem(), &user.dn, INITIAL)
        .await
        .expect("old password still valid");
}

#[tokio::test]
async fn too_short_password_is_a_typed_policy_violation() {
    let samba = Samba::shared();
    let user = user_in_own_ou(samba, "too_short");
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let err = c
        .ad_reset_password(&user.dn, &secret("Ab1!"), None)
        .await
        .expect_err("too short");
    match &err {
        LdapError::PolicyViolation { reason, diagnostic } => {
            assert_eq!(
                *reason,
                PolicyReason::TooShort {
                    min_length: Some(7)
                }
            );
            assert!(diagnostic.starts_with("0000052D"), "{diagnostic}");
        }
        other => panic!("expected a policy violation, got {other:?}"),
    }
    assert_eq!(err.result_code(), Some(19));

    let err = c
        .ad_reset_password(&user.dn, &secret("onlylowercaseletters"), None)
        .await
        .expect_err("not complex");
    assert!(
        matches!(
            err,
            LdapError::PolicyViolation {
                reason: PolicyReason::NotComplex,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn user_changes_own_password_and_a_wrong_old_one_is_typed() {
    let samba = Samba::shared();
    let user = user_in_own_ou(samba, "self_change");
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &user)
        .await
        .unwrap();
    let err = c
        .ad_change_password(
            &user.dn,
            &secret("Not-The-Old-1"),
            &secret("Changed-Pass-9"),
        )
        .await
        .expect_err("wrong old password");
    assert!(
        matches!(err, LdapError::WrongCurrentPassword { .. }),
        "{err:?}"
    );
    c.ad_change_password(&user.dn, &secret(INITIAL), &secret("Changed-Pass-9"))
        .await
        .expect("change with the right old password");
    bind_as(
        &samba.ldaps_url(),
        samba.ca_cert_pem(),
        &user.dn,
        "Changed-Pass-9",
    )
    .await
    .expect("bind with the changed password");
}

#[tokio::test]
async fn reset_of_a_missing_user_is_no_such_object() {
    let samba = Samba::shared();
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let err = c
        .ad_reset_password(
            &format!("CN=Nobody Here,{}", samba.synced_root()),
            &secret("Brand-New-Pass-7"),
            None,
        )
        .await
        .expect_err("no such user");
    assert!(matches!(err, LdapError::NoSuchObject { .. }), "{err:?}");
}

#[tokio::test]
async fn protected_admin_cannot_be_reset_by_the_service_account() {
    let samba = Samba::shared();
    let data = samba
        .dataset()
        .expect("shared instance has the small dataset");
    let i = data.users.iter().position(|u| u.admin).unwrap();
    let admin = samba.dataset_user(i).unwrap();
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let entry = c.read(&admin.dn, &["adminCount"]).await.unwrap();
    assert_eq!(entry.text("adminCount"), Some("1"));
    let err = c
        .ad_reset_password(&admin.dn, &secret("Brand-New-Pass-7"), None)
        .await
        .expect_err("adminCount=1 users carry AdminSDHolder's ACL");
    assert!(
        matches!(err, LdapError::InsufficientAccess { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn lockout_time_and_pwd_last_set_writes_follow_the_delegation() {
    let samba = Samba::shared();
    let user = user_in_own_ou(samba, "attr_writes");
    let modify = |attr: &'static str, value: &'static str| {
        vec![ldap3::Mod::Replace(
            attr.as_bytes().to_vec(),
            std::iter::once(value.as_bytes().to_vec()).collect(),
        )]
    };
    let full = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &full)
        .await
        .unwrap();
    c.modify(&user.dn, modify("lockoutTime", "0"), vec![])
        .await
        .expect("unlock");
    c.modify(&user.dn, modify("pwdLastSet", "0"), vec![])
        .await
        .expect("expire");
    c.modify(&user.dn, modify("pwdLastSet", "-1"), vec![])
        .await
        .expect("unexpire");

    for (missing, attr, value) in [
        (AdRight::WriteLockoutTime, "lockoutTime", "0"),
        (AdRight::WritePwdLastSet, "pwdLastSet", "0"),
    ] {
        let svc = samba.service_account(ServiceAccount::Missing(missing));
        let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
            .await
            .unwrap();
        let err = c
            .modify(&user.dn, modify(attr, value), vec![])
            .await
            .expect_err("write without the right");
        assert!(
            matches!(err, LdapError::InsufficientAccess { .. }),
            "{missing:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn dirsync_answers_with_a_cookie_and_then_only_changes() {
    let samba = Samba::shared();
    let user = user_in_own_ou(samba, "dirsync");
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let attrs = ["objectGUID", "sAMAccountName", "telephoneNumber"];
    let filter = "(&(objectClass=user)(objectCategory=person))";
    let mut cookie = Vec::new();
    let mut seen = 0;
    loop {
        let page = c
            .ad_dirsync(BASE_DN, filter, &attrs, &cookie)
            .await
            .expect("DirSync");
        seen += page.entries.len();
        assert!(!page.cookie.is_empty(), "DirSync must answer with a cookie");
        cookie = page.cookie;
        if !page.more {
            break;
        }
    }
    let dataset_users = samba.dataset().unwrap().users.len();
    assert!(
        seen >= dataset_users,
        "full DirSync saw {seen} users, dataset has {dataset_users}"
    );

    samba
        .admin_replace(&user.dn, "telephoneNumber", &["+47 22 00 00 00"])
        .unwrap();
    let page = c
        .ad_dirsync(BASE_DN, filter, &attrs, &cookie)
        .await
        .expect("delta");
    let changed: Vec<_> = page
        .entries
        .iter()
        .map(|e| e.dn.to_ascii_lowercase())
        .collect();
    assert!(
        changed.contains(&user.dn.to_ascii_lowercase()),
        "{changed:?}"
    );
    assert!(
        page.entries.len() < dataset_users,
        "delta should not be a full read"
    );
    let e = page
        .entries
        .iter()
        .find(|e| e.dn.eq_ignore_ascii_case(&user.dn))
        .unwrap();
    assert_eq!(e.values("objectGUID").first().map(Vec::len), Some(16));
    assert_eq!(e.text("telephoneNumber"), Some("+47 22 00 00 00"));
}

#[tokio::test]
async fn dirsync_without_replicating_directory_changes_is_refused() {
    let samba = Samba::shared();
    let svc = samba.service_account(ServiceAccount::Missing(
        AdRight::ReplicatingDirectoryChanges,
    ));
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let err = c
        .ad_dirsync(BASE_DN, "(objectClass=user)", &["objectGUID"], &[])
        .await
        .expect_err("DirSync without the right");
    assert!(
        matches!(err, LdapError::InsufficientAccess { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn paged_search_reads_every_dataset_user_with_non_ascii_intact() {
    let samba = Samba::shared();
    let data = samba.dataset().unwrap();
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let entries = c
        .search_paged(
            samba.synced_root(),
            Scope::Subtree,
            "(&(objectClass=user)(objectCategory=person)(givenName=*))",
            &["displayName", "sAMAccountName"],
            50,
        )
        .await
        .unwrap();
    let from_dataset = entries
        .iter()
        .filter(|e| !e.dn.to_ascii_lowercase().contains("ou=tests,"))
        .count();
    assert_eq!(from_dataset, data.users.len());
    assert!(entries
        .iter()
        .any(|e| e.text("displayName") == Some("Åse Ødegård")));
}

/// Reads a GUID attribute and formats it like AD does (first three groups little-endian).
fn guid_text(bytes: &[u8]) -> String {
    assert_eq!(bytes.len(), 16);
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
        bytes[3],
        bytes[2],
        bytes[1],
        bytes[0],
        bytes[5],
        bytes[4],
        bytes[7],
        bytes[6],
        bytes[8],
        bytes[9],
        bytes[10..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

#[tokio::test]
async fn rights_guids_match_the_server_schema() {
    let samba = Samba::shared();
    let admin = samba.admin();
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &admin)
        .await
        .unwrap();
    let schema = format!("CN=Schema,CN=Configuration,{BASE_DN}");
    for (name, expected) in [
        ("lockoutTime", rights::ATTR_LOCKOUT_TIME),
        ("pwdLastSet", rights::ATTR_PWD_LAST_SET),
        ("user", rights::CLASS_USER),
    ] {
        let e = c
            .search_paged(
                &schema,
                Scope::OneLevel,
                &format!("(lDAPDisplayName={name})"),
                &["schemaIDGUID"],
                10,
            )
            .await
            .unwrap();
        assert_eq!(
            guid_text(&e[0].values("schemaIDGUID")[0]),
            expected,
            "{name}"
        );
    }
    let ext = format!("CN=Extended-Rights,CN=Configuration,{BASE_DN}");
    for (cn, expected) in [
        ("User-Force-Change-Password", rights::RESET_PASSWORD),
        ("User-Change-Password", rights::CHANGE_PASSWORD),
        (
            "DS-Replication-Get-Changes",
            rights::REPLICATING_DIRECTORY_CHANGES,
        ),
        ("Unexpire-Password", rights::UNEXPIRE_PASSWORD),
    ] {
        let e = c
            .search_paged(
                &ext,
                Scope::OneLevel,
                &format!("(cn={cn})"),
                &["rightsGuid"],
                10,
            )
            .await
            .unwrap();
        assert_eq!(e[0].text("rightsGuid"), Some(expected), "{cn}");
    }
}

#[tokio::test]
async fn a_fresh_domain_takes_a_stricter_policy() {
    let samba = Samba::start_fresh().expect("fresh Samba");
    samba
        .set_password_policy(&AdPasswordPolicy {
            min_length: Some(12),
            ..Default::default()
        })
        .unwrap();
    let ou = samba.create_ou("policy").unwrap();
    let user = samba
        .create_user(&ou, "policyuser", "Long-Enough-Pass-1")
        .unwrap();
    let svc = samba.service_account(ServiceAccount::Full);
    let mut c = bind(&samba.ldaps_url(), samba.ca_cert_pem(), &svc)
        .await
        .unwrap();
    let err = c
        .ad_reset_password(&user.dn, &secret("Short-Pass1"), None)
        .await
        .expect_err("11 characters is below the new minimum");
    assert!(
        matches!(
            err,
            LdapError::PolicyViolation {
                reason: PolicyReason::TooShort {
                    min_length: Some(12)
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(Samba::shared()
        .set_password_policy(&AdPasswordPolicy::default())
        .is_err());
}

/// Issue 11: the demo's `connector test` said the MSOL_ account could see deleted objects
/// although nothing granted it. The cause was the check, not the template: Samba answers a base
/// search of `CN=Deleted Objects` to any account, with no attributes. The grant a test makes
/// changes its own instance only: a second instance copied from the same cached template does
/// not have it.
#[tokio::test]
async fn deleted_objects_are_readable_only_after_a_grant_which_stays_in_its_instance() {
    let first = Samba::start_fresh().expect("fresh Samba");
    let svc = first.service_account(ServiceAccount::Full);
    let mut c = bind(&first.ldaps_url(), first.ca_cert_pem(), &svc)
        .await
        .unwrap();
    assert!(
        !c.ad_can_read_deleted_objects(BASE_DN).await.unwrap(),
        "nothing granted the service account read on CN=Deleted Objects"
    );
    first.grant_deleted_objects_read(&svc.dn).expect("grant");
    let mut c = bind(&first.ldaps_url(), first.ca_cert_pem(), &svc)
        .await
        .unwrap();
    assert!(c.ad_can_read_deleted_objects(BASE_DN).await.unwrap());

    let second = Samba::start_fresh().expect("second fresh Samba");
    let mut c = bind(&second.ldaps_url(), second.ca_cert_pem(), &svc)
        .await
        .unwrap();
    assert!(
        !c.ad_can_read_deleted_objects(BASE_DN).await.unwrap(),
        "the first instance's grant reached the cached template"
    );
}
