//! The agent against a real Samba AD DC and the real cloud in-process: full import, every kind
//! of on-prem change after one delta cycle, the deletion threshold, and crash replay.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use common::{admin_conn, attr, uniq, Cloud};
use dirbridge_agent as agent;
use ldap::Connection;
use proto::sync::{RunKind, RunOutcome};
use testkit::samba::Samba;

async fn admin(samba: &Samba) -> Connection {
    let a = samba.admin();
    admin_conn(&samba.ldaps_url(), samba.ca_cert_pem(), &a.dn, &a.password).await
}

async fn add_ou(c: &mut Connection, dn: &str) {
    let name = dn.split(',').next().unwrap().split_once('=').unwrap().1;
    c.add(
        dn,
        vec![
            attr("objectClass", &["organizationalUnit"]),
            attr("ou", &[name]),
        ],
    )
    .await
    .unwrap();
}

async fn add_group(c: &mut Connection, dn: &str, name: &str, members: &[&str]) {
    let mut attrs = vec![
        attr("objectClass", &["group"]),
        attr("sAMAccountName", &[name]),
    ];
    if !members.is_empty() {
        attrs.push(attr("member", members));
    }
    c.add(dn, attrs).await.unwrap();
}

fn upn(login: &str) -> String {
    format!("{login}@dirbridge.test")
}

#[tokio::test]
async fn full_sync_then_every_change_reaches_the_cloud_after_one_delta() {
    let samba = Samba::shared();
    common::grant_deleted_objects_read(samba).await;
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;

    let ou_a = samba.create_ou("agentA").unwrap();
    let ou_b = samba.create_ou("agentB").unwrap();
    let ou_out = samba.create_ou("agentOut").unwrap();
    let cfg = common::ad_connector(samba, &[&ou_a, &ou_b]);
    common::save_ad_connector(dir.path(), samba, &cfg);

    let (alice, bob, carol, eve) = (uniq("al"), uniq("bo"), uniq("ca"), uniq("ev"));
    let alice_u = samba.create_user(&ou_a, &alice, "Initial-Pass-1").unwrap();
    let bob_u = samba.create_user(&ou_a, &bob, "Initial-Pass-1").unwrap();
    let carol_u = samba.create_user(&ou_a, &carol, "Initial-Pass-1").unwrap();
    let eve_u = samba.create_user(&ou_b, &eve, "Initial-Pass-1").unwrap();
    let outsider = uniq("ou");
    samba
        .create_user(&ou_out, &outsider, "Initial-Pass-1")
        .unwrap();
    samba.admin_replace(&alice_u.dn, "c", &["NO"]).unwrap();
    samba
        .admin_replace(&alice_u.dn, "displayName", &["Alice Ågren"])
        .unwrap();
    samba
        .admin_replace(&carol_u.dn, "userAccountControl", &["514"])
        .unwrap();
    let mut a = admin(samba).await;
    let group = uniq("grp");
    let group_dn = format!("CN={group},{ou_a}");
    add_group(&mut a, &group_dn, &group, &[&alice_u.dn, &eve_u.dn]).await;

    // Full import.
    let runs = engine.run_cycle(true).await.expect("full cycle");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.kind, RunKind::Full);
    assert_eq!(run.outcome, RunOutcome::Succeeded, "{run:?}");
    assert_eq!(run.added, 5, "{run:?}");

    let u = cloud.find_user(&upn(&alice)).await.expect("alice synced");
    assert_eq!(u["displayName"], "Alice Ågren");
    assert_eq!(u["usageLocation"], "NO");
    assert_eq!(u["accountEnabled"], true);
    assert_eq!(u["source"], "onPremises");
    assert_eq!(
        u["onPremises"]["samAccountName"]
            .as_str()
            .map(str::to_lowercase),
        Some(alice.to_lowercase())
    );
    let c = cloud.find_user(&upn(&carol)).await.expect("carol synced");
    assert_eq!(c["accountEnabled"], false);
    assert!(
        cloud.find_user(&upn(&outsider)).await.is_none(),
        "outside the scope"
    );
    let g = cloud.group(&group).await.expect("group synced");
    let mut members = cloud.members(g["id"].as_str().unwrap()).await;
    members.sort();
    let mut expected = vec![
        u["id"].as_str().unwrap().to_string(),
        cloud.find_user(&upn(&eve)).await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    expected.sort();
    assert_eq!(members, expected);

    // A second full run exports nothing.
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(runs[0].kind, RunKind::Delta);
    assert_eq!(
        (runs[0].added, runs[0].updated, runs[0].deleted),
        (0, 0, 0),
        "{:?}",
        runs[0]
    );

    // Every kind of change, then one delta.
    let dave = uniq("da");
    let dave_u = samba.create_user(&ou_b, &dave, "Initial-Pass-1").unwrap();
    samba
        .admin_replace(&bob_u.dn, "telephoneNumber", &["+47 22 33 44 55"])
        .unwrap();
    a.rename(&bob_u.dn, &format!("CN={bob}-renamed"), None)
        .await
        .unwrap();
    a.rename(&alice_u.dn, &format!("CN={alice}"), Some(&ou_b))
        .await
        .unwrap();
    samba
        .admin_replace(&dave_u.dn, "userAccountControl", &["514"])
        .unwrap();
    samba.admin_delete(&carol_u.dn).unwrap();
    a.rename(&eve_u.dn, &format!("CN={eve}"), Some(&ou_out))
        .await
        .unwrap();
    samba
        .admin_replace(&group_dn, "member", &[&dave_u.dn])
        .unwrap();

    let runs = engine.run_cycle(false).await.expect("delta cycle");
    let run = &runs[0];
    assert_eq!(run.kind, RunKind::Delta, "{run:?}");
    assert_eq!(run.outcome, RunOutcome::Succeeded, "{run:?}");

    let d = cloud.find_user(&upn(&dave)).await.expect("added user");
    assert_eq!(d["accountEnabled"], false, "disabled");
    let b = cloud.find_user(&upn(&bob)).await.unwrap();
    assert_eq!(b["officePhone"], "+47 22 33 44 55");
    assert!(
        b["onPremises"]["distinguishedName"]
            .as_str()
            .unwrap()
            .contains("-renamed"),
        "{b}"
    );
    let u2 = cloud.find_user(&upn(&alice)).await.unwrap();
    assert_eq!(u2["id"], u["id"], "a move keeps the object");
    assert!(
        u2["onPremises"]["distinguishedName"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains(&ou_b.to_lowercase()),
        "{u2}"
    );
    assert!(
        cloud.find_user(&upn(&carol)).await.is_none(),
        "deleted on-prem"
    );
    assert!(
        cloud.find_user(&upn(&eve)).await.is_none(),
        "moved out of scope"
    );
    let members = cloud.members(g["id"].as_str().unwrap()).await;
    assert_eq!(members, vec![d["id"].as_str().unwrap().to_string()]);

    // Nothing left over.
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(
        (runs[0].added, runs[0].updated, runs[0].deleted),
        (0, 0, 0),
        "{:?}",
        runs[0]
    );
    let events = engine.events().read(None).unwrap();
    assert!(events.iter().any(|e| e.code == "sync.run.finished"));
    // The service account's password is only in its 0600 secret file.
    let svc = samba.service_account(testkit::samba::ServiceAccount::Full);
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .chain(std::fs::read_dir(dir.path().join("connectors")).unwrap());
    for entry in files {
        let p = entry.unwrap().path();
        if p.is_dir() || p.extension().is_some_and(|x| x == "secret") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&svc.password),
            "the password is in {}",
            p.display()
        );
    }
    let log = std::fs::read_to_string(engine.events().path()).unwrap();
    assert!(
        !log.contains("Testkit-Svc-Pass"),
        "no secret in the event log"
    );
}

#[tokio::test]
async fn deletes_over_threshold_stop_export_until_allowed() {
    let samba = Samba::shared();
    common::grant_deleted_objects_read(samba).await;
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;

    let parent = samba.create_ou("agentThr").unwrap();
    let elsewhere = samba.create_ou("agentThrOut").unwrap();
    let mut a = admin(samba).await;
    let child = format!("OU={},{parent}", uniq("dept"));
    add_ou(&mut a, &child).await;
    let logins: Vec<String> = (0..5).map(|_| uniq("th")).collect();
    for l in &logins {
        samba.create_user(&child, l, "Initial-Pass-1").unwrap();
    }
    let cfg = common::ad_connector(samba, &[&parent]);
    common::save_ad_connector(dir.path(), samba, &cfg);
    let runs = engine.run_cycle(true).await.unwrap();
    assert_eq!(runs[0].added, 5, "{:?}", runs[0]);
    cloud.set_threshold(3).await;

    // The classic mistake: the OU moves out of the synced scope.
    let child_rdn = child.split(',').next().unwrap().to_string();
    a.rename(&child, &child_rdn, Some(&elsewhere))
        .await
        .unwrap();
    let runs = engine.run_cycle(false).await.unwrap();
    let run = &runs[0];
    assert_eq!(run.outcome, RunOutcome::StoppedDeletionThreshold, "{run:?}");
    assert_eq!(run.pending_deletes, 5);
    assert_eq!(run.deleted, 0);
    for l in &logins {
        assert!(cloud.find_user(&upn(l)).await.is_some(), "nothing deleted");
    }
    let events = engine.events().read(None).unwrap();
    assert!(events.iter().any(|e| e.code == "sync.deletion_threshold"));

    // Still stopped on the next run; then an admin allows it once.
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(
        runs[0].outcome,
        RunOutcome::StoppedDeletionThreshold,
        "{:?}",
        runs[0]
    );
    cloud.allow_deletes().await;
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Succeeded, "{:?}", runs[0]);
    assert_eq!(runs[0].deleted, 5, "{:?}", runs[0]);
    for l in &logins {
        assert!(
            cloud.find_user(&upn(l)).await.is_none(),
            "deleted after allow-deletes"
        );
    }
}

#[tokio::test]
async fn crash_between_accepted_batch_and_commit_replays_without_duplicates() {
    let samba = Samba::shared();
    common::grant_deleted_objects_read(samba).await;
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = samba.create_ou("agentCrash").unwrap();
    let prefix = uniq("cr");
    for i in 0..3 {
        samba
            .create_user(&ou, &format!("{prefix}x{i}"), "Initial-Pass-1")
            .unwrap();
    }
    let cfg = common::ad_connector(samba, &[&ou]);
    common::save_ad_connector(dir.path(), samba, &cfg);

    engine.hooks.fail_after_accepted_batch = true;
    let err = engine
        .run_cycle(true)
        .await
        .expect_err("the hook stops the cycle");
    assert!(matches!(err, agent::AgentError::Interrupted(_)), "{err}");
    assert_eq!(
        cloud.users_with_prefix(&prefix).await.len(),
        3,
        "the cloud applied the batch"
    );
    assert!(
        engine.space().cookie("corp").await.unwrap().is_none(),
        "no cookie committed"
    );
    assert!(!engine.space().inflight("corp").await.unwrap().is_empty());
    drop(engine);

    // A restarted agent replays the batch, then finds nothing else to export.
    let mut engine = agent::sync::Engine::open(dir.path()).await.unwrap();
    let runs = engine.run_cycle(false).await.unwrap();
    let run = &runs[0];
    assert_eq!(run.outcome, RunOutcome::Succeeded, "{run:?}");
    assert_eq!(run.kind, RunKind::Full, "no cookie yet: a full import");
    assert_eq!(
        run.added, 0,
        "the replay is answered, not applied again: {run:?}"
    );
    assert_eq!(
        cloud.users_with_prefix(&prefix).await.len(),
        3,
        "no duplicates"
    );
    assert!(engine.space().inflight("corp").await.unwrap().is_empty());
    assert!(engine.space().cookie("corp").await.unwrap().is_some());
    let events = engine.events().read(None).unwrap();
    assert!(events.iter().any(|e| e.code == "sync.batch.replay"));

    // And deltas work from there.
    samba
        .admin_replace(
            &format!("CN={prefix}x0,{ou}"),
            "mobile",
            &["+47 900 00 000"],
        )
        .unwrap();
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(runs[0].updated, 1, "{:?}", runs[0]);
    let u = cloud.find_user(&upn(&format!("{prefix}x0"))).await.unwrap();
    assert_eq!(u["mobilePhone"], "+47 900 00 000");
}

#[tokio::test]
async fn connector_test_names_the_missing_dirsync_right_and_how_to_grant_it() {
    let samba = Samba::shared();
    common::grant_deleted_objects_read(samba).await;
    let dir = tempfile::tempdir().unwrap();
    let ou = samba.create_ou("agentTest").unwrap();

    let cfg = common::ad_connector(samba, &[&ou]);
    common::save_ad_connector(dir.path(), samba, &cfg);
    let checks = agent::connector::test(dir.path(), &cfg).await;
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    assert!(checks.iter().any(|c| c.name == "dirsync"));
    assert!(checks.iter().any(|c| c.name == "deletes"));

    let svc = samba.service_account(testkit::samba::ServiceAccount::Missing(
        testkit::samba::AdRight::ReplicatingDirectoryChanges,
    ));
    let cfg = agent::connector::ConnectorConfig {
        name: "nodirsync".into(),
        bind_dn: svc.dn.clone(),
        ..common::ad_connector(samba, &[&ou])
    };
    agent::connector::save(dir.path(), &cfg, &ldap::SecretString::from(svc.password)).unwrap();
    let checks = agent::connector::test(dir.path(), &cfg).await;
    let bind = checks.iter().find(|c| c.name == "bind").unwrap();
    assert!(bind.ok, "{bind:?}");
    let dirsync = checks.iter().find(|c| c.name == "dirsync").unwrap();
    assert!(!dirsync.ok);
    assert!(
        dirsync.detail.contains(&format!("samba-tool dsacl set -H {} -U Administrator --objectdn=DC=dirbridge,DC=test --sddl='(OA;;CR;1131f6aa-9c07-11d1-f79f-00c04fc2dcd2;;S-1-5-21-", samba.ldaps_url())),
        "{}",
        dirsync.detail
    );
    // The Windows tool is dsacls, and the account is named.
    assert!(
        dirsync.detail.contains(
            "dsacls \"DC=dirbridge,DC=test\" /G \"DIRBRIDGE\\MSOL_nodirsync:CA;Replicating Directory Changes\""
        ),
        "{}",
        dirsync.detail
    );

    // A CA that did not issue the server's certificate: TLS fails, and the check says why.
    let other = testkit::ca::TestCa::new("some other CA").unwrap();
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, other.cert_pem()).unwrap();
    let wrong_ca = agent::connector::ConnectorConfig {
        ca_file: ca,
        ..cfg.clone()
    };
    let checks = agent::connector::test(dir.path(), &wrong_ca).await;
    let tls = checks.iter().find(|c| c.name == "tls").unwrap();
    assert!(!tls.ok && tls.detail.contains("does not vouch"), "{tls:?}");

    // A wrong password is a failed bind, said plainly.
    agent::connector::save(
        dir.path(),
        &cfg,
        &ldap::SecretString::from("wrong-password".to_string()),
    )
    .unwrap();
    let checks = agent::connector::test(dir.path(), &cfg).await;
    let bind = checks.iter().find(|c| c.name == "bind").unwrap();
    assert!(
        !bind.ok && bind.detail.contains("check the bind DN and the password"),
        "{bind:?}"
    );
}

#[tokio::test]
async fn staging_computes_and_exports_nothing() {
    let samba = Samba::shared();
    common::grant_deleted_objects_read(samba).await;
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = samba.create_ou("agentStage").unwrap();
    let logins: Vec<String> = (0..2).map(|_| uniq("sg")).collect();
    for l in &logins {
        samba.create_user(&ou, l, "Initial-Pass-1").unwrap();
    }
    common::save_ad_connector(dir.path(), samba, &common::ad_connector(samba, &[&ou]));
    cloud
        .admin(
            reqwest::Method::PATCH,
            "/api/v1/sync/settings",
            Some(serde_json::json!({"staging": true})),
        )
        .await
        .ok();
    let runs = engine.run_cycle(true).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Staged, "{:?}", runs[0]);
    assert_eq!(runs[0].added, 2, "would add: {:?}", runs[0]);
    for l in &logins {
        assert!(
            cloud.find_user(&upn(l)).await.is_none(),
            "staging exports nothing"
        );
    }
    // Out of staging, the same objects go.
    cloud
        .admin(
            reqwest::Method::PATCH,
            "/api/v1/sync/settings",
            Some(serde_json::json!({"staging": false})),
        )
        .await
        .ok();
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Succeeded, "{:?}", runs[0]);
    for l in &logins {
        assert!(cloud.find_user(&upn(l)).await.is_some());
    }
}

#[tokio::test]
async fn the_service_loop_heartbeats_syncs_and_stops_on_request() {
    let samba = Samba::shared();
    common::grant_deleted_objects_read(samba).await;
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = samba.create_ou("agentLoop").unwrap();
    let login = uniq("lp");
    samba.create_user(&ou, &login, "Initial-Pass-1").unwrap();
    common::save_ad_connector(dir.path(), samba, &common::ad_connector(samba, &[&ou]));

    // Stop once the user is in the cloud (polling, with a deadline).
    let stop = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while cloud.find_user(&upn(&login)).await.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the loop never synced"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let cycles = agent::service::run(&mut engine, stop).await.unwrap();
    assert!(cycles >= 1);
    let agents = cloud
        .admin(reqwest::Method::GET, "/api/v1/agents", None)
        .await
        .ok();
    let a = &agents.as_array().unwrap()[0];
    assert!(a["lastHeartbeatAt"].is_number(), "{a}");
    let events = engine.events().read(None).unwrap();
    assert!(events.iter().any(|e| e.code == "agent.stopped"));
}

#[tokio::test]
async fn a_refused_cookie_falls_back_to_a_full_import() {
    let samba = Samba::shared();
    common::grant_deleted_objects_read(samba).await;
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = samba.create_ou("agentCookie").unwrap();
    let login = uniq("ck");
    samba.create_user(&ou, &login, "Initial-Pass-1").unwrap();
    common::save_ad_connector(dir.path(), samba, &common::ad_connector(samba, &[&ou]));
    engine.run_cycle(true).await.unwrap();

    engine
        .space()
        .set_cookie("corp", Some(b"not a DirSync cookie at all"))
        .await
        .unwrap();
    let later = uniq("ck");
    samba.create_user(&ou, &later, "Initial-Pass-1").unwrap();
    let runs = engine.run_cycle(false).await.unwrap();
    let run = &runs[0];
    assert_eq!(
        (run.kind, run.outcome),
        (RunKind::Full, RunOutcome::Succeeded),
        "{run:?}"
    );
    assert_eq!(run.added, 1, "{run:?}");
    assert!(cloud.find_user(&upn(&later)).await.is_some());
    let events = engine.events().read(None).unwrap();
    assert!(
        events.iter().any(|e| e.code == "sync.cookie.refused"),
        "{events:#?}"
    );
    // And the stored cookie is a good one again.
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(
        (runs[0].kind, runs[0].outcome),
        (RunKind::Delta, RunOutcome::Succeeded),
        "{:?}",
        runs[0]
    );
}

async fn binds(samba: &Samba, dn: &str, password: &str) -> bool {
    let mut c = Connection::connect(&ldap::ConnectOptions::new(
        samba.ldaps_url(),
        ldap::CaBundle::Pem(samba.ca_cert_pem().to_owned()),
    ))
    .await
    .unwrap();
    c.simple_bind(dn, &ldap::SecretString::from(password.to_owned()))
        .await
        .is_ok()
}

#[tokio::test]
async fn samba_default_old_password_period_keeps_the_previous_password_and_connector_test_says_so()
{
    // Samba's own default (60 minutes), which the testkit otherwise sets to 0.
    let samba = Samba::start(&testkit::samba::SambaOptions {
        old_password_allowed_period: Some(60),
        ..Default::default()
    })
    .expect("fresh Samba");
    let ou = samba.create_ou("oldpw").unwrap();
    let user = samba.create_user(&ou, "oldpw", "Initial-Pass-1").unwrap();
    let cfg = common::ad_connector(&samba, &[&ou]);
    let svc = samba.service_account(testkit::samba::ServiceAccount::Full);
    let mut c = agent::connector::connect(&cfg, &ldap::SecretString::from(svc.password))
        .await
        .unwrap();
    c.ad_reset_password(
        &user.dn,
        &ldap::SecretString::from("Replaced-Pass-2".to_owned()),
        None,
    )
    .await
    .unwrap();
    assert!(binds(&samba, &user.dn, "Replaced-Pass-2").await);
    assert!(
        binds(&samba, &user.dn, "Initial-Pass-1").await,
        "the previous password still binds during the period"
    );

    let dir = tempfile::tempdir().unwrap();
    common::save_ad_connector(dir.path(), &samba, &cfg);
    let checks = agent::connector::test(dir.path(), &cfg).await;
    let advice = checks
        .iter()
        .find(|c| c.name == "old-password")
        .unwrap_or_else(|| panic!("no Samba advice: {checks:#?}"));
    assert!(advice.ok && advice.warn, "{advice:?}");
    assert!(
        advice
            .detail
            .contains("`old password allowed period = 0` in the [global] section of smb.conf"),
        "{}",
        advice.detail
    );
    // Samba 4.17 has no policy-hints control: resets cannot keep the history rule.
    let history = checks.iter().find(|c| c.name == "reset-history").unwrap();
    assert!(history.warn && history.detail.contains("a password change does"));
}
