//! The agent against a real OpenLDAP (slapd with syncprov) and the real cloud in-process:
//! full import, then add / modify / delete / move out of scope after one syncrepl delta.

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
    let u = cloud.user(&upn(&ann)).await.expect("ann synced");
    assert_eq!(u["displayName"], "Ann Ås");
    assert_eq!(u["source"], "onPremises");
    assert_eq!(u["onPremises"]["samAccountName"], ann.as_str());
    assert_eq!(
        cloud.user(&upn(&cat)).await.unwrap()["accountEnabled"],
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
    assert!(cloud.user(&upn(&dan)).await.is_some(), "added");
    assert_eq!(
        cloud.user(&upn(&ben)).await.unwrap()["officePhone"],
        "+47 11 22 33 44"
    );
    assert!(cloud.user(&upn(&cat)).await.is_none(), "deleted");
    assert!(cloud.user(&upn(&ann)).await.is_none(), "moved out of scope");
    let members = cloud.members(g["id"].as_str().unwrap()).await;
    assert_eq!(
        members,
        vec![cloud.user(&upn(&ben)).await.unwrap()["id"]
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
    assert!(cloud.user(&upn(&good)).await.is_some());
    assert!(cloud.user(&upn(&bad)).await.is_none());
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
    assert!(cloud.user(&upn(&later)).await.is_some());
    assert!(cloud.user(&upn(&first)).await.is_some(), "nothing lost");
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
        while cloud.user(&upn(&first)).await.is_none() {
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
        loop {
            let r = cloud
                .admin(
                    Method::POST,
                    "/api/v1/sync/run",
                    Some(serde_json::json!({"full": false})),
                )
                .await;
            if r.status.is_success() {
                assert_eq!(r.body["agents"], 1, "{}", r.body);
                break;
            }
            assert_eq!(r.status.as_u16(), 409, "{}", r.body);
            assert!(Instant::now() < deadline, "the push socket never connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        while cloud.user(&upn(&later)).await.is_none() {
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
