//! Fault cases against real servers (slapd, the cloud in-process): the directory disappearing
//! in the middle of a full import, and the service loop outliving a directory outage. Each
//! must give a clear event, lose or duplicate no object, and leave the agent running.
//!
//! A directory "coming back" is a new slapd started from the same cached database: the testkit
//! copies one slapadd-built database per dataset, so entryUUIDs (the anchors) are identical
//! across instances. Its ports differ, so the connector is saved again with the new URL, as
//! an admin would after moving the directory.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::connector::ConnectorConfig;
use agent::events::{Event, EventLog};
use common::Cloud;
use dirbridge_agent as agent;
use ldap::SecretString;
use proto::sync::{RunKind, RunOutcome, MAX_BATCH_OBJECTS};
use reqwest::Method;
use serde_json::{json, Value};
use testkit::dataset::DatasetSpec;
use testkit::slapd::{OpenLdapServiceAccount, Slapd, SlapdOptions};

const CONNECTOR: &str = "ldap";

fn connector(slapd: &Slapd) -> ConnectorConfig {
    ConnectorConfig {
        name: CONNECTOR.into(),
        ..common::openldap_connector(slapd, &[slapd.synced_root()])
    }
}

/// Points the agent's connector at `slapd` (first setup, or the directory back on new ports).
fn save_connector(data_dir: &Path, slapd: &Slapd) {
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    agent::connector::save(
        data_dir,
        &connector(slapd),
        &SecretString::from(svc.password),
    )
    .unwrap();
}

fn start_slapd(spec: DatasetSpec) -> Slapd {
    Slapd::start(&SlapdOptions {
        dataset: Some(spec),
    })
    .expect("slapd")
}

/// Every user the cloud has with source onPremises (all pages).
async fn synced_users(cloud: &Cloud) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/api/v1/users?source=onPremises&limit=1000".to_string();
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let page = cloud.admin(Method::GET, &path, None).await.ok();
        out.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return out,
        }
    }
}

/// Fails on a duplicated anchor or UPN; returns the anchors.
#[track_caller]
fn unique_anchors(users: &[Value]) -> HashSet<String> {
    let mut anchors = HashSet::new();
    let mut upns = HashSet::new();
    for u in users {
        let a = u["onPremises"]["immutableId"]
            .as_str()
            .unwrap_or_else(|| panic!("no immutableId: {u}"))
            .to_string();
        assert!(anchors.insert(a.clone()), "anchor {a} twice in the cloud");
        let upn = u["userPrincipalName"].as_str().unwrap().to_lowercase();
        assert!(upns.insert(upn.clone()), "UPN {upn} twice in the cloud");
    }
    anchors
}

/// The UPNs the directory's users map to (OpenLDAP: `mail`).
fn dataset_upns(slapd: &Slapd) -> HashSet<String> {
    slapd
        .dataset()
        .unwrap()
        .users
        .iter()
        .map(|u| u.mail.to_lowercase())
        .collect()
}

fn upns(users: &[Value]) -> HashSet<String> {
    users
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap().to_lowercase())
        .collect()
}

/// Polls the event log until an event after `from` (index) satisfies `f`.
async fn wait_for_event(
    log: &EventLog,
    from: usize,
    what: &str,
    within: Duration,
    f: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + within;
    loop {
        let events = log.read(None).unwrap();
        if let Some(e) = events.iter().skip(from).find(|e| f(e)) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {within:?}; events:\n{}",
            events
                .iter()
                .map(|e| format!("{} {:?} {}", e.code, e.level, e.message))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn run_outcome(e: &Event) -> Option<(String, String)> {
    (e.code == "sync.run.finished").then(|| {
        (
            e.details["kind"].as_str().unwrap_or_default().to_string(),
            e.details["outcome"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_disappearing_mid_import_fails_the_run_and_the_next_run_loses_and_duplicates_nothing(
) {
    // Enough users for several batches of MAX_BATCH_OBJECTS.
    let spec = DatasetSpec::new(2500, 7);
    let slapd = Arc::new(start_slapd(spec));
    let n_users = slapd.dataset().unwrap().users.len();
    assert!(n_users >= 4 * MAX_BATCH_OBJECTS);
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    save_connector(dir.path(), &slapd);

    // The directory goes away as soon as the cloud has accepted the first batch: the engine is
    // then between two pages of its paged search.
    let killed = Arc::new(AtomicBool::new(false));
    let (k, s) = (killed.clone(), slapd.clone());
    engine.set_progress(Arc::new(move |p| {
        if p.phase == "export" && p.exported > 0 && !k.swap(true, Ordering::SeqCst) {
            s.shutdown();
        }
    }));
    let t = Instant::now();
    let result = engine.run_cycle(true).await;
    assert!(
        killed.load(Ordering::SeqCst),
        "the import ended before a batch was accepted"
    );
    eprintln!("interrupted cycle: {:.2}s", t.elapsed().as_secs_f64());

    // A failed run (the engine reports a failed connector as a Failed run, not an Err).
    let runs = result.expect("a directory failure is a failed run, not a failed cycle");
    let run = &runs[0];
    assert_eq!(
        (run.kind, run.outcome),
        (RunKind::Full, RunOutcome::Failed),
        "{run:?}"
    );
    let message = run.message.clone().unwrap_or_default();
    assert!(message.contains(CONNECTOR), "{message}");
    let events = engine.events().read(None).unwrap();
    let failed = events
        .iter()
        .find(|e| e.code == "sync.run.failed")
        .unwrap_or_else(|| panic!("no sync.run.failed event: {events:#?}"));
    assert_eq!(failed.level, agent::events::Level::Error);
    assert_eq!(failed.details["connector"], CONNECTOR);
    assert!(
        failed.message.contains("directory (ldap)"),
        "the event names the directory: {}",
        failed.message
    );
    eprintln!("event: {}", failed.message);
    // The cookie was not advanced, nothing is left in flight.
    assert_eq!(engine.space().cookie(CONNECTOR).await.unwrap(), None);
    assert!(engine.space().inflight(CONNECTOR).await.unwrap().is_empty());

    // What the cloud accepted before the failure: some users, no duplicates, and the space
    // knows exactly those.
    let partial = synced_users(&cloud).await;
    let partial_anchors = unique_anchors(&partial);
    assert!(
        !partial.is_empty() && partial.len() < n_users,
        "{} of {n_users} users after the interruption",
        partial.len()
    );
    let (space_users, _) = engine.space().counts(CONNECTOR).await.unwrap();
    assert_eq!(space_users as usize, partial.len(), "space vs cloud");
    let partial_ids: Vec<(String, String)> = partial
        .iter()
        .map(|u| {
            (
                u["userPrincipalName"].as_str().unwrap().to_string(),
                u["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();

    // The directory comes back (same database, so the same entryUUIDs) on new ports.
    drop(engine);
    let back = start_slapd(spec);
    save_connector(dir.path(), &back);
    let mut engine = agent::sync::Engine::open(dir.path()).await.unwrap();
    let t = Instant::now();
    let runs = engine.run_cycle(true).await.expect("full after the outage");
    eprintln!("repairing cycle: {:.2}s", t.elapsed().as_secs_f64());
    let run = &runs[0];
    assert_eq!(
        (run.kind, run.outcome),
        (RunKind::Full, RunOutcome::Succeeded),
        "{run:?}"
    );
    assert_eq!(run.deleted, 0, "{run:?}");

    let all = synced_users(&cloud).await;
    let anchors = unique_anchors(&all);
    assert_eq!(all.len(), n_users, "exactly the directory's users");
    assert_eq!(upns(&all), dataset_upns(&back), "none lost");
    assert!(
        partial_anchors.is_subset(&anchors),
        "users synced before the outage kept their anchors"
    );
    for (upn, id) in &partial_ids {
        let u = cloud
            .find_user(upn)
            .await
            .unwrap_or_else(|| panic!("{upn} lost"));
        assert_eq!(u["id"].as_str().unwrap(), id, "{upn} was re-created");
    }
    // Only what the cloud did not have yet was added: the missing users and every group.
    let n_groups = back.dataset().unwrap().groups.len();
    assert_eq!(
        run.added as usize,
        n_users - partial.len() + n_groups,
        "{run:?}"
    );
    assert!(engine.space().cookie(CONNECTOR).await.unwrap().is_some());

    // And the state is settled: a delta finds nothing to do.
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(
        (runs[0].kind, runs[0].outcome),
        (RunKind::Delta, RunOutcome::Succeeded),
        "{:?}",
        runs[0]
    );
    assert_eq!(
        (runs[0].added, runs[0].updated, runs[0].deleted),
        (0, 0, 0),
        "{:?}",
        runs[0]
    );
    assert_eq!(synced_users(&cloud).await.len(), n_users);
}

/// The agent records batch n + 1 while the cloud applies n, and commits n only after n + 1 is
/// sent. A crash in between leaves two in-flight records, both applied by the cloud: the
/// restarted agent replays both, in order, gets the first answers, and adds nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_two_batches_in_flight_replays_both_and_duplicates_nothing() {
    let spec = DatasetSpec::new(2500, 7);
    let slapd = start_slapd(spec);
    let n_users = slapd.dataset().unwrap().users.len();
    let n_groups = slapd.dataset().unwrap().groups.len();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    save_connector(dir.path(), &slapd);

    engine.hooks.fail_with_two_batches_in_flight = true;
    let err = engine
        .run_cycle(true)
        .await
        .expect_err("the hook stops the cycle");
    assert!(matches!(err, agent::AgentError::Interrupted(_)), "{err}");
    let left = engine.space().inflight(CONNECTOR).await.unwrap();
    assert_eq!(
        left.iter().map(|b| b.seq).collect::<Vec<_>>(),
        vec![0, 1],
        "both batches recorded"
    );
    let sent: usize = left.iter().map(|b| b.upserts.len()).sum();
    assert_eq!(sent, 2 * MAX_BATCH_OBJECTS, "two first batches of users");
    let applied = synced_users(&cloud).await;
    assert_eq!(applied.len(), sent, "the cloud applied both");
    assert_eq!(
        engine.space().counts(CONNECTOR).await.unwrap(),
        (0, 0),
        "nothing committed here"
    );
    drop(engine);

    let mut engine = agent::sync::Engine::open(dir.path()).await.unwrap();
    let runs = engine.run_cycle(false).await.unwrap();
    let run = &runs[0];
    assert_eq!(
        (run.kind, run.outcome),
        (RunKind::Full, RunOutcome::Succeeded),
        "no cookie yet: a full import; {run:?}"
    );
    assert_eq!(
        run.added as usize,
        n_users - sent + n_groups,
        "the replays were answered, not applied again: {run:?}"
    );
    assert!(engine.space().inflight(CONNECTOR).await.unwrap().is_empty());
    let all = synced_users(&cloud).await;
    unique_anchors(&all);
    assert_eq!(all.len(), n_users, "exactly the directory's users");
    let replayed: Vec<Event> = engine
        .events()
        .read(None)
        .unwrap()
        .into_iter()
        .filter(|e| e.code == "sync.batch.replayed")
        .collect();
    assert_eq!(
        replayed
            .iter()
            .map(|e| e.details["seq"].as_u64())
            .collect::<Vec<_>>(),
        vec![Some(0), Some(1)],
        "replayed in order"
    );
    assert!(
        replayed.iter().all(|e| e.message.contains("0 added")),
        "first answers: {replayed:?}"
    );
}

/// Like the first test, but the directory dies abruptly (SIGKILL) at whatever point the engine
/// has reached once the cloud holds a first batch, while the cycle runs in its own task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_killed_at_any_point_of_a_full_import_loses_and_duplicates_nothing() {
    let spec = DatasetSpec::new(2500, 7);
    let slapd = start_slapd(spec);
    let n_users = slapd.dataset().unwrap().users.len();
    let n_groups = slapd.dataset().unwrap().groups.len();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    save_connector(dir.path(), &slapd);

    let cycle = tokio::spawn(async move {
        let r = engine.run_cycle(true).await;
        (r, engine)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = synced_users(&cloud).await.len();
        if n > 0 {
            break;
        }
        assert!(
            !cycle.is_finished(),
            "the cycle ended before the cloud had a batch"
        );
        assert!(Instant::now() < deadline, "no batch reached the cloud");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-KILL", &slapd.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (result, engine) = tokio::time::timeout(Duration::from_secs(20), cycle)
        .await
        .expect("the cycle ends once the directory is gone")
        .unwrap();
    slapd.shutdown();

    let runs = result.expect("a directory failure is a failed run, not a failed cycle");
    assert_eq!(
        (runs[0].kind, runs[0].outcome),
        (RunKind::Full, RunOutcome::Failed),
        "the import cannot have finished: {:?}",
        runs[0]
    );
    let events = engine.events().read(None).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.code == "sync.run.failed" && e.message.contains("directory (ldap)")),
        "{events:#?}"
    );
    assert_eq!(engine.space().cookie(CONNECTOR).await.unwrap(), None);
    let partial = synced_users(&cloud).await;
    unique_anchors(&partial);
    assert!(partial.len() < n_users, "{}", partial.len());
    let (space_users, _) = engine.space().counts(CONNECTOR).await.unwrap();
    assert_eq!(space_users as usize, partial.len(), "space vs cloud");

    drop(engine);
    let back = start_slapd(spec);
    save_connector(dir.path(), &back);
    let mut engine = agent::sync::Engine::open(dir.path()).await.unwrap();
    let runs = engine.run_cycle(true).await.expect("full after the outage");
    let run = &runs[0];
    assert_eq!(
        (run.kind, run.outcome),
        (RunKind::Full, RunOutcome::Succeeded),
        "{run:?}"
    );
    assert_eq!(
        (run.added as usize, run.deleted),
        (n_users - partial.len() + n_groups, 0),
        "{run:?}"
    );
    let all = synced_users(&cloud).await;
    unique_anchors(&all);
    assert_eq!(all.len(), n_users, "exactly the directory's users");
    assert_eq!(upns(&all), dataset_upns(&back), "none lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_keeps_running_while_the_directory_is_down_and_recovers() {
    let spec = DatasetSpec::small();
    let slapd = start_slapd(spec);
    let n_users = slapd.dataset().unwrap().users.len();
    let cloud = Cloud::start().await;
    cloud
        .admin(
            Method::PATCH,
            "/api/v1/sync/settings",
            Some(json!({"deltaIntervalSecs": 5})),
        )
        .await
        .ok();
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    save_connector(dir.path(), &slapd);
    let log = EventLog::open(dir.path());

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(async move {
        let r = agent::service::run(&mut engine, async {
            let _ = stop_rx.await;
        })
        .await;
        (r, engine)
    });

    // The first round: a full import.
    let first = wait_for_event(
        &log,
        0,
        "a first successful full run",
        Duration::from_secs(20),
        |e| run_outcome(e).is_some(),
    )
    .await;
    assert_eq!(
        run_outcome(&first).unwrap(),
        ("full".into(), "succeeded".into()),
        "{first:?}"
    );
    assert_eq!(synced_users(&cloud).await.len(), n_users);

    // The directory goes away; the next round fails with a clear event, and the loop goes on.
    slapd.shutdown();
    let mark = log.read(None).unwrap().len();
    let failed = wait_for_event(
        &log,
        mark,
        "an event for the failed cycle",
        Duration::from_secs(15),
        |e| e.code == "sync.run.failed" || e.code == "agent.cycle.failed",
    )
    .await;
    assert_eq!(failed.level, agent::events::Level::Error);
    assert!(failed.message.contains("ldap"), "{}", failed.message);
    let finished = wait_for_event(
        &log,
        mark,
        "the failed run's report",
        Duration::from_secs(5),
        |e| run_outcome(e).is_some(),
    )
    .await;
    assert_eq!(run_outcome(&finished).unwrap().1, "failed", "{finished:?}");
    assert!(
        !service.is_finished(),
        "the service stopped after a failed cycle"
    );
    assert_eq!(
        synced_users(&cloud).await.len(),
        n_users,
        "an unreachable directory deletes nothing"
    );

    // The directory comes back: the next round succeeds, with nothing lost or duplicated.
    let back = start_slapd(spec);
    save_connector(dir.path(), &back);
    let mark = log.read(None).unwrap().len();
    let ok = wait_for_event(
        &log,
        mark,
        "a successful run after the outage",
        Duration::from_secs(15),
        |e| run_outcome(e).is_some_and(|(_, o)| o == "succeeded"),
    )
    .await;
    assert_eq!(ok.details["deleted"], 0, "{ok:?}");
    let all = synced_users(&cloud).await;
    unique_anchors(&all);
    assert_eq!(upns(&all), dataset_upns(&back));
    assert!(!service.is_finished());

    // Stopped cleanly through its shutdown signal.
    stop_tx.send(()).unwrap();
    let (result, _engine) = tokio::time::timeout(Duration::from_secs(10), service)
        .await
        .expect("the service stops on its signal")
        .unwrap();
    let cycles = result.expect("a clean stop");
    assert!(cycles >= 3, "{cycles} cycles");
    let events = log.read(None).unwrap();
    let stopped = events
        .iter()
        .find(|e| e.code == "agent.stopped")
        .unwrap_or_else(|| panic!("no agent.stopped event: {events:#?}"));
    assert_eq!(stopped.details["cycles"], cycles, "{stopped:?}");
}

/// A full import cut off by the network after an earlier full had stored a cookie (the
/// periodic full of `agent run`, or `sync run --full`): the old cookie must not survive, or
/// the next cycle would be a delta that trusts the directory's change log across the outage
/// (after a slapd crash its contextCSN can be older than what it holds). The next cycle is a
/// full import, and every user reaches the cloud.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_import_cut_off_is_followed_by_a_full_import_not_a_delta() {
    let spec = DatasetSpec::new(2500, 7);
    let slapd = start_slapd(spec);
    let ldaps_port: u16 = slapd
        .ldaps_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = Arc::new(testkit::proxy::CutProxy::start(ldaps_port).await.unwrap());
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let cfg = ConnectorConfig {
        // The server's certificate names 127.0.0.1: TLS through the proxy verifies as usual.
        url: format!("ldaps://127.0.0.1:{}", proxy.port),
        ..connector(&slapd)
    };
    agent::connector::save(dir.path(), &cfg, &SecretString::from(svc.password)).unwrap();

    let runs = engine.run_cycle(true).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Succeeded, "{:?}", runs[0]);
    assert!(engine.space().cookie(CONNECTOR).await.unwrap().is_some());
    let mut expected = dataset_upns(&slapd);
    for i in 0..3 {
        let login = format!("late{i}");
        slapd
            .create_user(slapd.synced_root(), &login, "Initial-Pass-1")
            .unwrap();
        expected.insert(format!("{login}@dirbridge.test"));
    }

    // A forced full import, cut off halfway through the paged search.
    let armed = Arc::new(AtomicBool::new(true));
    let (a, p) = (armed.clone(), proxy.clone());
    engine.set_progress(Arc::new(move |pr| {
        if pr.phase == "import" && pr.read >= 1000 && a.swap(false, Ordering::SeqCst) {
            p.cut();
        }
    }));
    let runs = engine.run_cycle(true).await.unwrap();
    assert!(!armed.load(Ordering::SeqCst), "the import was never cut");
    assert_eq!(
        (runs[0].kind, runs[0].outcome),
        (RunKind::Full, RunOutcome::Failed),
        "{:?}",
        runs[0]
    );
    assert_eq!(
        engine.space().cookie(CONNECTOR).await.unwrap(),
        None,
        "no cookie survives a failed full import"
    );

    // The next ordinary cycle is a full import, and it reconciles.
    let runs = engine.run_cycle(false).await.unwrap();
    assert_eq!(
        (runs[0].kind, runs[0].outcome),
        (RunKind::Full, RunOutcome::Succeeded),
        "{:?}",
        runs[0]
    );
    let all = synced_users(&cloud).await;
    unique_anchors(&all);
    assert_eq!(upns(&all), expected, "every user reached the cloud");
    assert!(engine.space().cookie(CONNECTOR).await.unwrap().is_some());
}
