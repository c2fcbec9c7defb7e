//! Change notification against the real servers (testkit): syncrepl refreshAndPersist on slapd,
//! LDAP_SERVER_NOTIFICATION_OID on Samba AD, and the typed refusal when a server does not offer
//! the mechanism.

use std::time::Duration;

use dirbridge_ldap::notify::{Mechanism, NotifyError, WatchEvent, WatchOptions, Watcher};
use dirbridge_ldap::{CaBundle, ConnectOptions, SecretString};
use testkit::samba::{Samba, ServiceAccount};
use testkit::slapd::{OpenLdapServiceAccount, Slapd};

/// Generous: a bounded wait for behaviour, not a latency assertion.
const WAIT: Duration = Duration::from_secs(60);

async fn next(w: &mut Watcher) -> WatchEvent {
    tokio::time::timeout(WAIT, w.next())
        .await
        .expect("the watcher said nothing")
        .expect("the watcher ended")
}

/// Waits for `Watching` (reporting anything else on the way as a failure).
async fn until_watching(w: &mut Watcher) -> String {
    match next(w).await {
        WatchEvent::Watching { root, reconnected } => {
            assert!(!reconnected);
            root
        }
        other => panic!("expected Watching, got {other:?}"),
    }
}

/// Waits for a `Changed` event, skipping nothing else but further `Changed` events.
async fn until_changed(w: &mut Watcher) -> String {
    match next(w).await {
        WatchEvent::Changed { root } => root,
        other => panic!("expected Changed, got {other:?}"),
    }
}

fn slapd_options(slapd: &Slapd, mechanism: Mechanism, roots: Vec<String>) -> WatchOptions {
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let mut o = WatchOptions::new(
        ConnectOptions::new(
            slapd.ldap_url(),
            CaBundle::Pem(slapd.ca_cert_pem().to_owned()),
        ),
        svc.dn,
        SecretString::from(svc.password),
        mechanism,
        roots,
    );
    o.naming_context = slapd.base_dn().into();
    o.filter = "(objectClass=inetOrgPerson)".into();
    o
}

fn samba_options(samba: &Samba, mechanism: Mechanism, roots: Vec<String>) -> WatchOptions {
    let svc = samba.service_account(ServiceAccount::Full);
    let mut o = WatchOptions::new(
        ConnectOptions::new(
            samba.ldaps_url(),
            CaBundle::Pem(samba.ca_cert_pem().to_owned()),
        ),
        svc.dn,
        SecretString::from(svc.password),
        mechanism,
        roots,
    );
    o.naming_context = samba.base_dn().into();
    o
}

#[tokio::test]
async fn openldap_persist_search_signals_a_modify() {
    let slapd = Slapd::shared();
    let ou = slapd.create_ou("notify").unwrap();
    let user = slapd
        .create_user(&ou, "notified", "Initial-Pass-1")
        .unwrap();
    let mut w = Watcher::start(slapd_options(
        slapd,
        Mechanism::SyncreplPersist,
        vec![ou.clone()],
    ));
    assert_eq!(until_watching(&mut w).await, ou);
    slapd
        .admin_replace(&user.dn, "telephoneNumber", &["+47 22 33 44 55"])
        .unwrap();
    assert_eq!(until_changed(&mut w).await, ou);
    // And again: the search stays open.
    slapd
        .admin_replace(&user.dn, "telephoneNumber", &["+47 22 33 44 56"])
        .unwrap();
    assert_eq!(until_changed(&mut w).await, ou);
}

#[tokio::test]
async fn samba_notification_signals_a_modify_below_the_root() {
    let samba = Samba::shared();
    let ou = samba.create_ou("notify").unwrap();
    let user = samba
        .create_user(&ou, "notified1", "Initial-Pass-1!")
        .unwrap();
    let mut w = Watcher::start(samba_options(
        samba,
        Mechanism::AdNotification,
        vec![ou.clone()],
    ));
    // One search on the naming context, filtered to the roots here.
    assert_eq!(until_watching(&mut w).await, samba.base_dn());
    samba
        .admin_replace(&user.dn, "telephoneNumber", &["+47 22 33 44 55"])
        .unwrap();
    until_changed(&mut w).await;
    samba
        .admin_replace(&user.dn, "telephoneNumber", &["+47 22 33 44 56"])
        .unwrap();
    until_changed(&mut w).await;
}

#[tokio::test]
async fn syncrepl_on_samba_is_reported_unsupported() {
    let samba = Samba::shared();
    let mut w = Watcher::start(samba_options(
        samba,
        Mechanism::SyncreplPersist,
        vec![samba.synced_root().into()],
    ));
    match next(&mut w).await {
        WatchEvent::Unsupported {
            error: e @ NotifyError::Unsupported { .. },
            ..
        } => assert!(e.fix().contains("syncprov"), "{}", e.fix()),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(WAIT, w.next())
            .await
            .unwrap()
            .is_none(),
        "the watcher stops after a refusal"
    );
}

#[tokio::test]
async fn ad_notification_on_slapd_is_reported_unsupported() {
    let slapd = Slapd::shared();
    let mut w = Watcher::start(slapd_options(
        slapd,
        Mechanism::AdNotification,
        vec![slapd.synced_root().into()],
    ));
    match next(&mut w).await {
        WatchEvent::Unsupported {
            error: e @ NotifyError::Unsupported { .. },
            ..
        } => assert!(e.fix().contains("Active Directory"), "{}", e.fix()),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[tokio::test]
async fn syncrepl_on_a_root_without_syncprov_is_reported_unsupported() {
    // slapd's cn=config database has no syncprov overlay: slapd answers
    // unavailableCriticalExtension ("critical control unavailable in context").
    let slapd = Slapd::shared();
    let mut w = Watcher::start(slapd_options(
        slapd,
        Mechanism::SyncreplPersist,
        vec!["cn=config".into()],
    ));
    match next(&mut w).await {
        WatchEvent::Unsupported {
            root,
            error: e @ NotifyError::Unsupported { .. },
        } => {
            assert_eq!(root, "cn=config");
            assert!(e.fix().contains("olcOverlay=syncprov"), "{}", e.fix());
            assert!(e.to_string().contains("syncrepl"), "{e}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_dropped_connection_is_reconnected_and_watching_resumes() {
    let slapd = Slapd::shared();
    let ou = slapd.create_ou("notifyDrop").unwrap();
    let user = slapd.create_user(&ou, "dropped", "Initial-Pass-1").unwrap();
    let proxy = testkit::proxy::CutProxy::start(port_of(&slapd.ldaps_url()))
        .await
        .unwrap();
    let mut options = slapd_options(slapd, Mechanism::SyncreplPersist, vec![ou.clone()]);
    // The server's certificate names 127.0.0.1, so TLS through the proxy verifies as usual.
    options.connect.url = format!("ldaps://127.0.0.1:{}", proxy.port);
    options.backoff.min = Duration::from_millis(200);
    let mut w = Watcher::start(options);
    until_watching(&mut w).await;

    proxy.cut();
    match next(&mut w).await {
        WatchEvent::Disconnected { root, retry_in, .. } => {
            assert_eq!(root, ou);
            assert!(retry_in >= Duration::from_millis(200), "{retry_in:?}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    match next(&mut w).await {
        WatchEvent::Watching { root, reconnected } => {
            assert_eq!(root, ou);
            assert!(reconnected);
        }
        other => panic!("expected Watching again, got {other:?}"),
    }
    slapd
        .admin_replace(&user.dn, "telephoneNumber", &["+47 22 33 44 57"])
        .unwrap();
    assert_eq!(until_changed(&mut w).await, ou);
}

#[tokio::test]
async fn an_unreachable_directory_is_retried_with_growing_waits() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let slapd = Slapd::shared();
    let mut options = slapd_options(
        slapd,
        Mechanism::SyncreplPersist,
        vec![slapd.synced_root().into()],
    );
    options.connect.url = format!("ldaps://127.0.0.1:{port}");
    options.backoff.min = Duration::from_millis(50);
    let mut w = Watcher::start(options);
    let mut waits = Vec::new();
    while waits.len() < 3 {
        match next(&mut w).await {
            WatchEvent::Disconnected {
                error, retry_in, ..
            } => {
                assert!(
                    matches!(error, dirbridge_ldap::LdapError::Unreachable { .. }),
                    "{error:?}"
                );
                waits.push(retry_in);
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }
    assert!(waits[0] < waits[1] && waits[1] < waits[2], "{waits:?}");
}

#[tokio::test]
async fn watching_a_root_larger_than_the_size_limit_starts_without_reading_it() {
    // 1,200 users below the root, a soft size limit of 500 for ordinary accounts: a persist
    // search without a current cookie would have to send them all first.
    let slapd = Slapd::start(&testkit::slapd::SlapdOptions {
        dataset: Some(testkit::dataset::DatasetSpec::new(1200, 7)),
    })
    .unwrap();
    let user = slapd.dataset_user(0).unwrap();
    let mut w = Watcher::start(slapd_options(
        &slapd,
        Mechanism::SyncreplPersist,
        vec![slapd.synced_root().into()],
    ));
    assert_eq!(until_watching(&mut w).await, slapd.synced_root());
    slapd
        .admin_replace(&user.dn, "telephoneNumber", &["+47 22 33 44 58"])
        .unwrap();
    assert_eq!(until_changed(&mut w).await, slapd.synced_root());
}
