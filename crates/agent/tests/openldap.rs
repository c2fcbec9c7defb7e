//! The agent against a real OpenLDAP (slapd with syncprov) and the real cloud in-process:
//! full import, then add / modify / delete / move out of scope after one syncrepl delta.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use common::{admin_conn, attr, openldap_connector, save_openldap_connector, uniq, Cloud};
use dirbridge_agent as agent;
use proto::sync::{RunKind, RunOutcome};
use testkit::slapd::Slapd;

fn upn(uid: &str) -> String {
    format!("{uid}@dirbridge.test")
}

#[tokio::test]
async fn openldap_full_then_syncrepl_deltas() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("agentOl").unwrap();
    let out = slapd.create_ou("agentOlOut").unwrap();
    let cfg = openldap_connector(slapd, &[&ou]);
    save_openldap_connector(dir.path(), slapd, &cfg);

    let (ann, ben, cat) = (uniq("an"), uniq("be"), uniq("ct"));
    let ann_u = slapd.create_user(&ou, &ann, "Initial-Pass-1").unwrap();
    let ben_u = slapd.create_user(&ou, &ben, "Initial-Pass-1").unwrap();
    let cat_u = slapd.create_user(&ou, &cat, "Initial-Pass-1").unwrap();
    slapd
        .admin_replace(&ann_u.dn, "displayName", &["Ann Ås"])
        .unwrap();
    slapd
        .admin_replace(&cat_u.dn, "pwdAccountLockedTime", &["000001010000Z"])
        .unwrap();
    let root = slapd.admin();
    let mut a = admin_conn(
        &slapd.ldaps_url(),
        slapd.ca_cert_pem(),
        &root.dn,
        &root.password,
    )
    .await;
    let group = uniq("og");
    let group_dn = format!("cn={group},{ou}");
    a.add(
        &group_dn,
        vec![
            attr("objectClass", &["groupOfNames"]),
            attr("cn", &[&group]),
            attr("member", &[&ann_u.dn, &ben_u.dn]),
        ],
    )
    .await
    .unwrap();

    let runs = engine.run_cycle(true).await.expect("full");
    let run = &runs[0];
    assert_eq!(
        (run.kind, run.outcome),
        (RunKind::Full, RunOutcome::Succeeded),
        "{run:?}"
    );
    assert_eq!(run.added, 4, "{run:?}");
    let u = cloud.find_user(&upn(&ann)).await.expect("ann synced");
    assert_eq!(u["displayName"], "Ann Ås");
    assert_eq!(u["source"], "onPremises");
    assert_eq!(u["onPremises"]["samAccountName"], ann.as_str());
    assert_eq!(
        cloud.find_user(&upn(&cat)).await.unwrap()["accountEnabled"],
        false,
        "locked → disabled"
    );
    let g = cloud.group(&group).await.expect("group synced");
    assert_eq!(cloud.members(g["id"].as_str().unwrap()).await.len(), 2);

    // Nothing changed: a delta exports nothing.
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(runs[0].kind, RunKind::Delta);
    assert_eq!(
        (runs[0].added, runs[0].updated, runs[0].deleted),
        (0, 0, 0),
        "{:?}",
        runs[0]
    );

    // Add, modify, delete, move out of scope, membership.
    let dan = uniq("dn");
    slapd.create_user(&ou, &dan, "Initial-Pass-1").unwrap();
    slapd
        .admin_replace(&ben_u.dn, "telephoneNumber", &["+47 11 22 33 44"])
        .unwrap();
    slapd.admin_delete(&cat_u.dn).unwrap();
    slapd
        .admin_replace(&group_dn, "member", &[&ben_u.dn])
        .unwrap();
    a.rename(&ann_u.dn, &format!("uid={ann}"), Some(&out))
        .await
        .unwrap();

    let runs = engine.run_cycle(false).await.expect("delta");
    let run = &runs[0];
    assert_eq!(
        (run.kind, run.outcome),
        (RunKind::Delta, RunOutcome::Succeeded),
        "{run:?}"
    );
    assert!(cloud.find_user(&upn(&dan)).await.is_some(), "added");
    assert_eq!(
        cloud.find_user(&upn(&ben)).await.unwrap()["officePhone"],
        "+47 11 22 33 44"
    );
    assert!(cloud.find_user(&upn(&cat)).await.is_none(), "deleted");
    assert!(
        cloud.find_user(&upn(&ann)).await.is_none(),
        "moved out of scope"
    );
    let members = cloud.members(g["id"].as_str().unwrap()).await;
    assert_eq!(
        members,
        vec![cloud.find_user(&upn(&ben)).await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()]
    );
}

#[tokio::test]
async fn an_oversize_value_skips_that_object_and_the_run_goes_on() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("agentOlBad").unwrap();
    let cfg = openldap_connector(slapd, &[&ou]);
    save_openldap_connector(dir.path(), slapd, &cfg);
    let (good, bad) = (uniq("gd"), uniq("bd"));
    slapd.create_user(&ou, &good, "Initial-Pass-1").unwrap();
    let bad_u = slapd.create_user(&ou, &bad, "Initial-Pass-1").unwrap();
    let long = "x".repeat(2000);
    slapd
        .admin_replace(&bad_u.dn, "description", &[&long])
        .unwrap();

    let runs = engine.run_cycle(true).await.unwrap();
    let run = &runs[0];
    assert_eq!(run.outcome, RunOutcome::CompletedWithErrors, "{run:?}");
    assert_eq!((run.added, run.errors), (1, 1), "{run:?}");
    assert!(cloud.find_user(&upn(&good)).await.is_some());
    assert!(cloud.find_user(&upn(&bad)).await.is_none());
    let events = engine.events().read(None).unwrap();
    let e = events
        .iter()
        .find(|e| e.code == "sync.object.invalid")
        .expect("an event");
    assert!(e.message.contains("description"), "{}", e.message);
}

#[tokio::test]
async fn a_foreign_syncrepl_cookie_still_ends_in_a_correct_state() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("agentOlCookie").unwrap();
    let cfg = openldap_connector(slapd, &[&ou]);
    save_openldap_connector(dir.path(), slapd, &cfg);
    let first = uniq("fc");
    slapd.create_user(&ou, &first, "Initial-Pass-1").unwrap();
    engine.run_cycle(true).await.unwrap();

    engine
        .space()
        .set_cookie(
            "ldap",
            Some(b"rid=999,csn=19700101000000.000000Z#000000#000#000000"),
        )
        .await
        .unwrap();
    let later = uniq("fc");
    slapd.create_user(&ou, &later, "Initial-Pass-1").unwrap();
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Succeeded, "{:?}", runs[0]);
    assert!(cloud.find_user(&upn(&later)).await.is_some());
    assert!(
        cloud.find_user(&upn(&first)).await.is_some(),
        "nothing lost"
    );
}

#[tokio::test]
async fn connector_test_passes_for_the_openldap_service_account() {
    let slapd = Slapd::shared();
    let dir = tempfile::tempdir().unwrap();
    let ou = slapd.create_ou("agentOlTest").unwrap();
    let cfg = openldap_connector(slapd, &[&ou]);
    save_openldap_connector(dir.path(), slapd, &cfg);
    let checks = agent::connector::test(dir.path(), &cfg).await;
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    assert!(checks.iter().any(|c| c.name == "syncrepl"));
    assert!(checks.iter().any(|c| c.name == "size-limit"));
}

#[tokio::test]
async fn connector_test_catches_the_default_size_limit_before_a_full_import_does() {
    // slapd's own limit (500, paged searches included) and 600 users below the synced root.
    let slapd = Slapd::start_with_default_size_limit(&testkit::slapd::SlapdOptions {
        dataset: Some(testkit::dataset::DatasetSpec::new(600, 3)),
    })
    .expect("slapd with the default size limit");
    let dir = tempfile::tempdir().unwrap();
    let cfg = openldap_connector(&slapd, &[slapd.synced_root()]);
    save_openldap_connector(dir.path(), &slapd, &cfg);
    let checks = agent::connector::test(dir.path(), &cfg).await;
    let limit = checks
        .iter()
        .find(|c| c.name == "size-limit")
        .unwrap_or_else(|| panic!("no size-limit check: {checks:#?}"));
    assert!(!limit.ok, "{limit:?}");
    let fix = format!(
        "olcLimits: dn.exact=\"{}\" size.prtotal=unlimited size.soft=unlimited",
        cfg.bind_dn
    );
    assert!(limit.detail.contains(&fix), "{}", limit.detail);
    assert!(
        limit.detail.contains("sizeLimitExceeded"),
        "{}",
        limit.detail
    );
}

#[tokio::test]
async fn a_pushed_sync_now_syncs_without_waiting_for_the_interval() {
    use reqwest::Method;
    use std::time::{Duration, Instant};
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("agentOlPush").unwrap();
    let cfg = openldap_connector(slapd, &[&ou]);
    save_openldap_connector(dir.path(), slapd, &cfg);
    let first = uniq("pf");
    slapd.create_user(&ou, &first, "Initial-Pass-1").unwrap();
    // The timer would wait an hour: only the push can sync the later user in time.
    cloud
        .admin(
            Method::PATCH,
            "/api/v1/sync/settings",
            Some(serde_json::json!({"deltaIntervalSecs": 3600})),
        )
        .await
        .ok();

    let later = uniq("pl");
    let driver = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        // The loop's first (full) cycle.
        while cloud.find_user(&upn(&first)).await.is_none() {
            assert!(Instant::now() < deadline, "the first cycle never synced");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let runs = loop {
            let runs = cloud
                .admin(Method::GET, "/api/v1/sync/runs", None)
                .await
                .ok();
            if !runs.as_array().unwrap().is_empty() {
                break runs;
            }
            assert!(
                Instant::now() < deadline,
                "the first run was never reported"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
        slapd.create_user(&ou, &later, "Initial-Pass-1").unwrap();
        // Ask once the push socket is up (409 until it is).
        let r = cloud.sync_now_when_connected().await;
        assert_eq!(r.body["agents"], 1, "{}", r.body);
        while cloud.find_user(&upn(&later)).await.is_none() {
            assert!(Instant::now() < deadline, "the push never synced");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Change notification off: only the push may explain the second cycle.
    let options = agent::service::ServiceOptions {
        change_notification: false,
        ..Default::default()
    };
    let cycles = agent::service::run_with(&mut engine, driver, options)
        .await
        .unwrap();
    assert_eq!(cycles, 2, "one cycle at start, one pushed");
    let events = engine.events().read(None).unwrap();
    assert!(events.iter().any(|e| e.code == "agent.stopped"));
}

/// The codes of the sync errors of the object at `dn`.
async fn error_codes(cloud: &Cloud, dn: &str) -> Vec<String> {
    let errors = cloud
        .admin(reqwest::Method::GET, "/api/v1/sync/errors", None)
        .await
        .ok();
    errors
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["distinguishedName"]
                .as_str()
                .is_some_and(|d| d.eq_ignore_ascii_case(dn))
        })
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect()
}

/// A user the cloud refused (its UPN suffix is not a verified tenant domain) is not recorded as
/// exported: once the domain is verified (a real DNS TXT record), the next delta sends it again
/// and the sync error goes; with the agent running, verifying the domain syncs it at once (the
/// schedule is an hour).
#[tokio::test]
async fn a_refused_user_applies_once_its_suffix_is_a_tenant_domain() {
    use reqwest::Method;
    use serde_json::json;
    use std::time::{Duration, Instant};
    let slapd = Slapd::shared();
    let mut resolver = testkit::dns::Dns::start().unwrap();
    let mut config = cloud::config::Config::default();
    config.dns.nameservers = vec![resolver.addr()];
    let cloud = Cloud::start_with(config).await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("agentOlRefused").unwrap();
    save_openldap_connector(dir.path(), slapd, &openldap_connector(slapd, &[&ou]));
    let suffix = |tag: &str| format!("{}.example", uniq(tag));
    let (first_domain, later_domain) = (suffix("refa"), suffix("refb"));
    let (mut users, mut dns) = (Vec::new(), Vec::new());
    for domain in [&first_domain, &later_domain] {
        let login = uniq("rf");
        let u = slapd.create_user(&ou, &login, "Initial-Pass-1").unwrap();
        let mail = format!("{login}@{domain}");
        slapd.admin_replace(&u.dn, "mail", &[&mail]).unwrap();
        users.push(mail);
        dns.push(u.dn);
    }
    let runs = engine.run_cycle(true).await.unwrap();
    assert_eq!(
        (runs[0].added, runs[0].errors),
        (0, 2),
        "both refused: {:?}",
        runs[0]
    );
    for dn in &dns {
        assert_eq!(error_codes(&cloud, dn).await, ["upnSuffixNotVerified"]);
    }

    // The cause fixed for the first user: the next delta sends it again (once, though it also
    // changed meanwhile); its error goes.
    // Claimed only: still refused.
    cloud
        .admin(
            Method::POST,
            "/api/v1/tenant/domains",
            Some(json!({ "domain": first_domain })),
        )
        .await
        .ok();
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!((runs[0].added, runs[0].errors), (0, 2), "{:?}", runs[0]);
    cloud.prove_domain(&mut resolver, &first_domain).await;
    slapd
        .admin_replace(&dns[0], "displayName", &["Changed Meanwhile"])
        .unwrap();
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(
        (runs[0].kind, runs[0].outcome, runs[0].added, runs[0].errors),
        (RunKind::Delta, RunOutcome::CompletedWithErrors, 1, 1),
        "{:?}",
        runs[0]
    );
    assert!(
        cloud.find_user(&users[0]).await.is_some(),
        "{} applied",
        users[0]
    );
    assert!(error_codes(&cloud, &dns[0]).await.is_empty());
    // Still refused, still on the list: a second delta tries again and adds nothing.
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!((runs[0].added, runs[0].errors), (0, 1), "{:?}", runs[0]);
    assert_eq!(error_codes(&cloud, &dns[1]).await, ["upnSuffixNotVerified"]);

    // With the agent running: verifying the domain is enough.
    cloud
        .admin(
            Method::PATCH,
            "/api/v1/sync/settings",
            Some(json!({"deltaIntervalSecs": 3600})),
        )
        .await
        .ok();
    let driver = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        // Once the push socket is up (409 until it is).
        cloud.sync_now_when_connected().await;
        cloud.prove_domain(&mut resolver, &later_domain).await;
        while cloud.find_user(&users[1]).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "verifying the domain did not sync it"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        while !error_codes(&cloud, &dns[1]).await.is_empty() {
            assert!(Instant::now() < deadline, "the sync error stayed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let options = agent::service::ServiceOptions {
        change_notification: false,
        ..Default::default()
    };
    agent::service::run_with(&mut engine, driver, options)
        .await
        .unwrap();
}

/// ppolicy keeps two states in one attribute: a lockout after pwdMaxFailure wrong passwords
/// (`pwdAccountLockedTime` with a time, lifted after pwdLockoutDuration) and the permanent
/// lock `000001010000Z`. Only the latter is synced as disabled: a locked-out user stays enabled
/// in the cloud, which is what lets SSPR offer it an unlock (the cloud gives a disabled account a
/// decoy session).
#[tokio::test]
async fn a_ppolicy_lockout_is_synced_as_locked_not_disabled() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("agentOlLock").unwrap();
    let cfg = openldap_connector(slapd, &[&ou]);
    save_openldap_connector(dir.path(), slapd, &cfg);
    let (early, late, gone) = (uniq("le"), uniq("ll"), uniq("lg"));
    let early_u = slapd.create_user(&ou, &early, "Initial-Pass-1").unwrap();
    let late_u = slapd.create_user(&ou, &late, "Initial-Pass-1").unwrap();
    let gone_u = slapd.create_user(&ou, &gone, "Initial-Pass-1").unwrap();
    let lock_out = |dn: String| {
        let url = slapd.ldaps_url();
        let ca = slapd.ca_cert_pem().to_string();
        async move {
            // pwdMaxFailure is 5 on the testkit's slapd.
            for _ in 0..5 {
                let mut c = ldap::Connection::connect(&ldap::ConnectOptions::new(
                    url.clone(),
                    ldap::CaBundle::Pem(ca.clone()),
                ))
                .await
                .unwrap();
                let wrong = ldap::SecretString::from("Wrong-Pass-0".to_string());
                assert!(c.simple_bind(&dn, &wrong).await.is_err());
            }
        }
    };
    lock_out(early_u.dn.clone()).await;
    slapd
        .admin_replace(
            &gone_u.dn,
            "pwdAccountLockedTime",
            &[ldap::openldap::PERMANENT_LOCK],
        )
        .unwrap();
    let root = slapd.admin();
    let mut a = admin_conn(
        &slapd.ldaps_url(),
        slapd.ca_cert_pem(),
        &root.dn,
        &root.password,
    )
    .await;
    let lock_time = a
        .read(&early_u.dn, &["pwdAccountLockedTime"])
        .await
        .unwrap();
    let lock_time = lock_time.text("pwdAccountLockedTime").unwrap().to_string();
    assert_ne!(lock_time, ldap::openldap::PERMANENT_LOCK, "a lockout");

    let runs = engine.run_cycle(true).await.unwrap();
    assert_eq!(runs[0].added, 3, "{:?}", runs[0]);
    let enabled = |u: Option<serde_json::Value>| u.unwrap()["accountEnabled"].clone();
    assert_eq!(
        enabled(cloud.find_user(&upn(&early)).await),
        true,
        "locked out"
    );
    assert_eq!(
        enabled(cloud.find_user(&upn(&gone)).await),
        false,
        "permanent"
    );

    // A lockout after the first sync changes nothing in the cloud either.
    lock_out(late_u.dn.clone()).await;
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(runs[0].kind, RunKind::Delta);
    assert_eq!(
        enabled(cloud.find_user(&upn(&late)).await),
        true,
        "locked out"
    );
}

/// The include OU itself renamed (modrdn): before anything is read, the run fails with what
/// happened, where the OU went (found by the entryUUID remembered for it) and the command that
/// updates the scope; nothing is deleted. With the scope updated, the next run finds the same
/// users (same anchors) and deletes nothing.
#[tokio::test]
async fn renaming_the_include_ou_says_where_it_went_and_deletes_nothing() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("agentOlRename").unwrap();
    let cfg = openldap_connector(slapd, &[&ou]);
    save_openldap_connector(dir.path(), slapd, &cfg);
    let logins = [uniq("rn"), uniq("rn")];
    for l in &logins {
        slapd.create_user(&ou, l, "Initial-Pass-1").unwrap();
    }
    let runs = engine.run_cycle(true).await.unwrap();
    assert_eq!(runs[0].added, 2, "{:?}", runs[0]);
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for l in &logins {
            ids.push(cloud.find_user(&upn(l)).await.unwrap()["id"].to_string());
        }
        ids
    };

    let new_rdn = format!("ou={}", uniq("renamed"));
    let parent = ou.split_once(',').unwrap().1.to_string();
    let new_dn = format!("{new_rdn},{parent}");
    let root = slapd.admin();
    let mut a = admin_conn(
        &slapd.ldaps_url(),
        slapd.ca_cert_pem(),
        &root.dn,
        &root.password,
    )
    .await;
    a.rename(&ou, &new_rdn, None).await.unwrap();

    for full in [false, true] {
        let runs = engine.run_cycle(full).await.unwrap();
        let run = &runs[0];
        assert_eq!(run.outcome, RunOutcome::Failed, "{run:?}");
        assert_eq!(run.deleted, 0, "{run:?}");
        let message = run.message.clone().unwrap_or_default();
        let lower = message.to_lowercase();
        for part in [
            format!("the include ou {} no longer exists", ou.to_lowercase()),
            format!("is now {}", new_dn.to_lowercase()),
            "nothing was read, exported or deleted".into(),
            "dirbridge agent connector add".into(),
            format!("--include-ou {}", new_dn.to_lowercase()),
            format!("--data-dir {}", dir.path().display()).to_lowercase(),
        ] {
            assert!(lower.contains(&part), "{part:?} not in: {message}");
        }
        let events = engine.events().read(None).unwrap();
        let e = events
            .iter()
            .rev()
            .find(|e| e.code == "sync.scope.root_missing")
            .unwrap_or_else(|| panic!("no event: {events:#?}"));
        assert_eq!(e.level, agent::events::Level::Error);
        assert!(e.details["movedTo"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(&new_dn));
        for l in &logins {
            assert!(cloud.find_user(&upn(l)).await.is_some(), "{l} was kept");
        }
    }

    // The scope updated as told: the same users, nothing deleted or re-created.
    let fixed = agent::connector::ConnectorConfig {
        include_ous: vec![new_dn.clone()],
        ..cfg.clone()
    };
    save_openldap_connector(dir.path(), slapd, &fixed);
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(
        (runs[0].outcome, runs[0].deleted, runs[0].added),
        (RunOutcome::Succeeded, 0, 0),
        "{:?}",
        runs[0]
    );
    for (l, id) in logins.iter().zip(&ids) {
        let u = cloud.find_user(&upn(l)).await.unwrap();
        assert_eq!(&u["id"].to_string(), id, "{l} kept its cloud id");
        let dn = u["onPremises"]["distinguishedName"]
            .as_str()
            .unwrap_or_default();
        assert!(
            dn.to_lowercase().ends_with(&new_dn.to_lowercase()),
            "{l}: {dn}; {:?}",
            runs[0]
        );
    }
}

/// An include OU the agent never saw (a typo, or gone before the first run): no id to look
/// for, so the message lists the OUs beside where it should be.
#[tokio::test]
async fn a_missing_include_ou_lists_the_ous_beside_it() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    // A parent of its own, with one OU in it.
    let parent = slapd.create_ou("agentOlBeside").unwrap();
    let ou = format!("ou=sibling,{parent}");
    let root = slapd.admin();
    let mut a = admin_conn(
        &slapd.ldaps_url(),
        slapd.ca_cert_pem(),
        &root.dn,
        &root.password,
    )
    .await;
    a.add(
        &ou,
        vec![
            attr("objectClass", &["organizationalUnit"]),
            attr("ou", &["sibling"]),
        ],
    )
    .await
    .unwrap();
    let missing = format!("ou=neverThere,{parent}");
    let cfg = openldap_connector(slapd, &[&missing]);
    save_openldap_connector(dir.path(), slapd, &cfg);
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Failed, "{:?}", runs[0]);
    let message = runs[0].message.clone().unwrap_or_default().to_lowercase();
    for part in [
        format!("the ous now under {}", parent.to_lowercase()),
        ou.to_lowercase(),
        "--include-ou new-ou-dn".into(),
    ] {
        assert!(message.contains(&part), "{part:?} not in: {message}");
    }
}

/// A user locked out by ppolicy (five wrong passwords) unlocks their account with SSPR: the
/// synced account is enabled (only locked), so the cloud opens a real session, the emailed code
/// verifies, and the unlock runs through the agent's writeback, which removes
/// `pwdAccountLockedTime`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ppolicy_locked_out_user_unlocks_with_sspr() {
    use reqwest::Method;
    use serde_json::json;
    use std::time::Duration;
    let (cloud, smtp) = Cloud::start_with_mail().await;
    cloud
        .admin(Method::POST, "/api/v1/licenses/trial", None)
        .await
        .ok();
    let slapd = Slapd::shared();
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("agentOlSsprUnlock").unwrap();
    let cfg = openldap_connector(slapd, &[&ou]);
    save_openldap_connector(dir.path(), slapd, &cfg);
    let login = uniq("su");
    let user = slapd.create_user(&ou, &login, "Initial-Pass-1").unwrap();
    let bind = |password: &'static str| {
        let (url, ca, dn) = (
            slapd.ldaps_url(),
            slapd.ca_cert_pem().to_string(),
            user.dn.clone(),
        );
        async move {
            let mut c =
                ldap::Connection::connect(&ldap::ConnectOptions::new(url, ldap::CaBundle::Pem(ca)))
                    .await
                    .unwrap();
            c.simple_bind(&dn, &ldap::SecretString::from(password.to_string()))
                .await
                .is_ok()
        }
    };
    for _ in 0..5 {
        assert!(!bind("Wrong-Pass-0").await);
    }
    assert!(!bind("Initial-Pass-1").await, "locked out");
    let runs = engine.run_cycle(true).await.unwrap();
    assert_eq!(runs[0].added, 1, "{:?}", runs[0]);

    let upn = upn(&login);
    let to = format!("{login}@mail.test");
    cloud
        .admin(
            Method::PATCH,
            &format!("/api/v1/users/{upn}"),
            Some(json!({"usageLocation": "NO"})),
        )
        .await
        .ok();
    cloud
        .admin(
            Method::POST,
            &format!("/api/v1/users/{upn}/licenses"),
            Some(json!({"skuId": "DIRBRIDGE_PREMIUM"})),
        )
        .await
        .ok();
    cloud
        .admin(
            Method::PUT,
            &format!("/api/v1/users/{upn}/authentication-methods"),
            Some(json!({ "email": to })),
        )
        .await
        .ok();
    cloud
        .set_policy(json!({
            "enabledFor": "all",
            "methods": ["email"],
            "methodsRequired": 1,
            "writebackEnabled": true,
            "allowUnlockWithoutReset": true,
        }))
        .await;
    agent::enable::enable(
        dir.path(),
        None,
        &agent::enable::CloudAdmin {
            upn: format!("admin@{}", cloud.domain),
            password: ldap::SecretString::from(common::ADMIN_PASSWORD.to_string()),
        },
    )
    .await
    .expect("writeback enable");

    let driver = async {
        // Once the agent's push socket is up (409 until it is).
        cloud.sync_now_when_connected().await;
        let start = cloud
            .call(
                Method::POST,
                "/api/v1/sspr/start",
                None,
                Some(json!({ "userPrincipalName": upn })),
            )
            .await
            .ok();
        let sid = start["sessionId"].as_str().unwrap().to_string();
        let r = cloud
            .sspr(Method::POST, "/api/v1/sspr/email/send", &sid, None)
            .await;
        assert_eq!(r.status.as_u16(), 202, "{}", r.body);
        // Mail 0 to this address is the notice that an administrator set the person's email
        // method; mail 1 carries the code.
        let mail = tokio::task::block_in_place(|| smtp.wait_for(&to, 1, Duration::from_secs(20)))
            .expect("the code is emailed to a real session");
        let digits: Vec<char> = mail.body.chars().collect();
        let code: String = digits
            .windows(8)
            .find(|w| w.iter().all(char::is_ascii_digit))
            .expect("a code")
            .iter()
            .collect();
        let v = cloud
            .sspr(
                Method::POST,
                "/api/v1/sspr/verify",
                &sid,
                Some(json!({"method": "email", "code": code})),
            )
            .await
            .ok();
        assert_eq!(v["canUnlock"], true, "{v}");
        let r = cloud
            .sspr(
                Method::POST,
                "/api/v1/sspr/password",
                &sid,
                Some(json!({"unlockOnly": true})),
            )
            .await
            .ok();
        assert_eq!(r["outcome"], "succeeded", "{r}");
    };
    agent::service::run(&mut engine, driver).await.unwrap();
    assert!(bind("Initial-Pass-1").await, "unlocked on-prem");
    let root = slapd.admin();
    let mut a = admin_conn(
        &slapd.ldaps_url(),
        slapd.ca_cert_pem(),
        &root.dn,
        &root.password,
    )
    .await;
    let e = a.read(&user.dn, &["pwdAccountLockedTime"]).await.unwrap();
    assert_eq!(e.text("pwdAccountLockedTime"), None);
}
