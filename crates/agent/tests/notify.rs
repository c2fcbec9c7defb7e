//! Change notification in `agent run` against the real directories (testkit) and the real cloud
//! in-process: with a day-long schedule, only notification can explain a change reaching the
//! cloud; a directory that refuses notification leaves the connector to the schedule, with an
//! event that says why and how to fix it; the setting turns it off.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use agent::connector::ConnectorConfig;
use agent::events::{ids, Event, EventLog};
use agent::service::{self, ServiceOptions};
use common::{openldap_connector, save_openldap_connector, uniq, Cloud};
use dirbridge_agent as agent;
use reqwest::Method;
use serde_json::json;
use testkit::slapd::Slapd;

/// Generous bounds for behaviour; nothing here asserts how fast.
const WAIT: Duration = Duration::from_secs(90);

fn upn(login: &str) -> String {
    format!("{login}@dirbridge.test")
}

async fn set_delta_interval(cloud: &Cloud, secs: u32) {
    cloud
        .admin(
            Method::PATCH,
            "/api/v1/sync/settings",
            Some(json!({ "deltaIntervalSecs": secs })),
        )
        .await
        .ok();
}

/// Polls the event log until an event matches (bounded).
async fn event(log: &EventLog, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(e) = log.read(None).unwrap().into_iter().find(|e| pred(e)) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no event: {what}; events: {:#?}",
            log.read(None).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the cloud until the user's mobile phone is `phone` (bounded); returns how long it took.
async fn until_mobile(cloud: &Cloud, upn: &str, phone: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        if let Some(u) = cloud.find_user(upn).await {
            if u["mobilePhone"] == phone {
                return t0.elapsed();
            }
        }
        assert!(t0.elapsed() < WAIT, "{upn} never got mobile {phone}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cloud, a registered agent with an OpenLDAP connector on a new OU (`ou_name`), and one user
/// in it (login `prefix…`); the delta interval set when given.
struct OpenLdapAgent {
    cloud: Cloud,
    dir: tempfile::TempDir,
    engine: agent::sync::Engine,
    login: String,
    user: testkit::samba::Credentials,
}

async fn openldap_agent(
    slapd: &Slapd,
    delta_interval: Option<u32>,
    ou_name: &str,
    prefix: &str,
) -> OpenLdapAgent {
    let cloud = Cloud::start().await;
    if let Some(secs) = delta_interval {
        set_delta_interval(&cloud, secs).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou(ou_name).unwrap();
    save_openldap_connector(dir.path(), slapd, &openldap_connector(slapd, &[&ou]));
    let login = uniq(prefix);
    let user = slapd.create_user(&ou, &login, "Initial-Pass-1").unwrap();
    OpenLdapAgent {
        cloud,
        dir,
        engine,
        login,
        user,
    }
}

/// Waits (bounded) until the agent's start-up cycle brought `login` to the cloud.
async fn first_sync(cloud: &Cloud, login: &str) {
    let deadline = Instant::now() + WAIT;
    while cloud.find_user(&upn(login)).await.is_none() {
        assert!(Instant::now() < deadline, "the first cycle never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn runs_finished(log: &EventLog) -> usize {
    log.read(None)
        .unwrap()
        .iter()
        .filter(|e| e.code == "sync.run.finished")
        .count()
}

#[tokio::test]
async fn openldap_change_reaches_the_cloud_by_notification_with_a_day_long_schedule() {
    let slapd = Slapd::shared();
    let OpenLdapAgent {
        cloud,
        dir,
        mut engine,
        login,
        user,
    } = openldap_agent(slapd, Some(86_400), "notifyAgent", "nt").await;
    let log = EventLog::open(dir.path());

    let driver = async {
        // The start-up cycle, and the watcher.
        first_sync(&cloud, &login).await;
        let started = event(&log, "notification started", |e| {
            e.code == "sync.notify.started"
        })
        .await;
        assert_eq!(started.event_id, Some(ids::NOTIFY_STARTED));
        let before = runs_finished(&log);
        for phone in ["+47 400 00 001", "+47 400 00 002"] {
            // The directory's administrator changes an attribute; nothing else happens.
            slapd.admin_replace(&user.dn, "mobile", &[phone]).unwrap();
            let took = until_mobile(&cloud, &upn(&login), phone).await;
            eprintln!("openldap: change in the cloud after {took:?}");
        }
        assert!(runs_finished(&log) > before, "delta cycles ran");
    };
    let cycles = service::run_with(&mut engine, driver, ServiceOptions::default())
        .await
        .unwrap();
    assert!(cycles >= 3, "start-up cycle plus woken deltas: {cycles}");
    eprintln!("cycles: {cycles}");
    let events = log.read(None).unwrap();
    assert!(
        !events.iter().any(|e| e.code == "sync.notify.fallback"),
        "{events:#?}"
    );
}

#[tokio::test]
async fn ad_change_reaches_the_cloud_by_notification_with_a_day_long_schedule() {
    let samba = testkit::samba::Samba::shared();
    common::grant_deleted_objects_read(samba).await;
    let cloud = Cloud::start().await;
    set_delta_interval(&cloud, 86_400).await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = samba.create_ou("notifyAgent").unwrap();
    common::save_ad_connector(dir.path(), samba, &common::ad_connector(samba, &[&ou]));
    let login = uniq("na");
    let user = samba.create_user(&ou, &login, "Initial-Pass-1").unwrap();
    let log = EventLog::open(dir.path());

    let driver = async {
        first_sync(&cloud, &login).await;
        let started = event(&log, "notification started", |e| {
            e.code == "sync.notify.started"
        })
        .await;
        assert_eq!(started.event_id, Some(ids::NOTIFY_STARTED));
        assert_eq!(started.details["root"], samba.base_dn(), "{started:?}");
        for phone in ["+47 900 00 001", "+47 900 00 002"] {
            samba.admin_replace(&user.dn, "mobile", &[phone]).unwrap();
            let took = until_mobile(&cloud, &upn(&login), phone).await;
            eprintln!("samba: change in the cloud after {took:?}");
        }
    };
    let cycles = service::run_with(&mut engine, driver, ServiceOptions::default())
        .await
        .unwrap();
    assert!(cycles >= 3, "start-up cycle plus woken deltas: {cycles}");
    eprintln!("cycles: {cycles}");
}

#[tokio::test]
async fn a_refused_notification_falls_back_to_the_schedule_with_the_fix() {
    let slapd = Slapd::shared();
    // The shortest schedule the cloud allows: here the schedule is what syncs.
    let OpenLdapAgent {
        cloud,
        dir,
        mut engine,
        login,
        user,
    } = openldap_agent(slapd, Some(5), "notifyRefused", "nr").await;
    let log = EventLog::open(dir.path());

    let driver = async {
        let fallback = event(&log, "the fallback", |e| e.code == "sync.notify.fallback").await;
        assert_eq!(fallback.event_id, Some(ids::NOTIFY_FALLBACK));
        assert_eq!(fallback.level, agent::events::Level::Warning);
        assert!(
            fallback.message.contains("sync schedule")
                && fallback.message.contains("olcOverlay=syncprov"),
            "{}",
            fallback.message
        );
        assert_eq!(
            fallback.details["diagnostic"], "critical control unavailable in context",
            "{fallback:?}"
        );
        first_sync(&cloud, &login).await;
        // Polling still brings changes.
        slapd
            .admin_replace(&user.dn, "mobile", &["+47 500 00 001"])
            .unwrap();
        let took = until_mobile(&cloud, &upn(&login), "+47 500 00 001").await;
        eprintln!("polling fallback: change in the cloud after {took:?}");
    };
    // slapd's cn=config database has no syncprov overlay: a root where the real server refuses.
    let options = ServiceOptions {
        notify_roots: Some(vec!["cn=config".into()]),
        ..ServiceOptions::default()
    };
    service::run_with(&mut engine, driver, options)
        .await
        .unwrap();
    let events = log.read(None).unwrap();
    assert!(
        !events.iter().any(|e| e.code == "sync.notify.started"),
        "{events:#?}"
    );
}

#[tokio::test]
async fn the_setting_turns_notification_off() {
    let slapd = Slapd::shared();
    let OpenLdapAgent {
        cloud,
        dir,
        mut engine,
        login,
        ..
    } = openldap_agent(slapd, None, "notifyOff", "no").await;
    let toml = dir.path().join("agent.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str("change-notification = false\n");
    std::fs::write(&toml, text).unwrap();
    let log = EventLog::open(dir.path());

    let driver = async {
        first_sync(&cloud, &login).await;
    };
    service::run(&mut engine, driver).await.unwrap();
    let events = log.read(None).unwrap();
    let off = events
        .iter()
        .find(|e| e.code == "sync.notify.off")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(off.event_id, Some(ids::NOTIFY_OFF));
    assert!(
        !events
            .iter()
            .any(|e| e.code.starts_with("sync.notify.") && e.code != "sync.notify.off"),
        "{events:#?}"
    );
    // The registration is still readable with the extra key.
    agent::identity::load(dir.path()).unwrap();
}

#[tokio::test]
async fn a_dropped_watch_reconnects_catches_up_and_keeps_waking_the_agent() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    set_delta_interval(&cloud, 86_400).await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("notifyDrop").unwrap();
    let ldaps_port: u16 = slapd
        .ldaps_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = testkit::proxy::CutProxy::start(ldaps_port).await.unwrap();
    let cfg = ConnectorConfig {
        // The server's certificate names 127.0.0.1: TLS through the proxy verifies as usual.
        url: format!("ldaps://127.0.0.1:{}", proxy.port),
        ..openldap_connector(slapd, &[&ou])
    };
    save_openldap_connector(dir.path(), slapd, &cfg);
    let login = uniq("nd");
    let user = slapd.create_user(&ou, &login, "Initial-Pass-1").unwrap();
    let log = EventLog::open(dir.path());

    let driver = async {
        first_sync(&cloud, &login).await;
        event(&log, "notification started", |e| {
            e.code == "sync.notify.started"
        })
        .await;
        proxy.cut();
        let dropped = event(&log, "the drop", |e| e.code == "sync.notify.disconnected").await;
        assert_eq!(dropped.event_id, Some(ids::NOTIFY_DISCONNECTED));
        assert!(
            dropped.message.contains("retrying in"),
            "{}",
            dropped.message
        );
        let back = event(&log, "the reconnect", |e| {
            e.code == "sync.notify.reconnected"
        })
        .await;
        assert_eq!(back.event_id, Some(ids::NOTIFY_RECONNECTED));
        // The catch-up cycle: a run after the reconnect, with nothing changed.
        event(&log, "a cycle after the reconnect", |_| {
            let all = log.read(None).unwrap();
            let at = all.iter().position(|e| e.id == back.id).unwrap();
            all[at..].iter().any(|e| e.code == "sync.run.finished")
        })
        .await;
        slapd
            .admin_replace(&user.dn, "mobile", &["+47 400 00 003"])
            .unwrap();
        until_mobile(&cloud, &upn(&login), "+47 400 00 003").await;
    };
    service::run_with(&mut engine, driver, ServiceOptions::default())
        .await
        .unwrap();
}

// ---------------------------------------------------------------- the deletion threshold

/// Users in scope for the threshold test: `n` in `ou` (login, DN), made by `create`.
fn threshold_users(
    n: usize,
    mut create: impl FnMut(&str) -> testkit::samba::Credentials,
) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let login = uniq("dt");
            let u = create(&login);
            (login, u.dn)
        })
        .collect()
}

/// Waits (bounded) until every one of `logins` is gone from the cloud.
async fn until_gone(cloud: &Cloud, logins: &[(String, String)]) {
    let deadline = Instant::now() + WAIT;
    for (login, _) in logins {
        while cloud.find_user(&upn(login)).await.is_some() {
            assert!(Instant::now() < deadline, "{login} never left the cloud");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// With `agent run` going (change notification on, a 5 s schedule), deletes arrive in quick
/// cycles: two batches of 3 (first moved out of scope, then deleted), each under the threshold
/// of 5 and together over it, must stop at the sixth with the count of the window, and
/// `allow-deletes` releases them.
async fn deletes_in_quick_batches_stop_at_the_threshold_of_the_window(
    cloud: &Cloud,
    engine: &mut agent::sync::Engine,
    admin: &mut ldap::Connection,
    users: Vec<(String, String)>,
    out_ou: &str,
) {
    assert_eq!(users.len(), 13, "12 to remove, one to stay");
    cloud.set_threshold(5).await;
    set_delta_interval(cloud, 5).await;
    let log = engine.events().clone();
    // The threshold events after index `from` of the log.
    let stops = |from: usize| {
        log.read(None)
            .unwrap()
            .into_iter()
            .skip(from)
            .filter(|e| e.code == "sync.deletion_threshold")
            .collect::<Vec<_>>()
    };
    let driver = async {
        let mut mark = 0;
        for (login, _) in &users {
            first_sync(cloud, login).await;
        }
        let (moved, deleted) = users[..12].split_at(6);
        for (how, batch) in [("moved", moved), ("deleted", deleted)] {
            let (first, second) = batch.split_at(3);
            for (_, dn) in first {
                if how == "moved" {
                    let rdn = dn.split(',').next().unwrap();
                    admin.rename(dn, rdn, Some(out_ou)).await.unwrap();
                } else {
                    admin.delete(dn).await.unwrap();
                }
            }
            until_gone(cloud, first).await;
            assert!(stops(mark).is_empty(), "3 deletes are under the threshold");
            for (_, dn) in second {
                if how == "moved" {
                    let rdn = dn.split(',').next().unwrap();
                    admin.rename(dn, rdn, Some(out_ou)).await.unwrap();
                } else {
                    admin.delete(dn).await.unwrap();
                }
            }
            // The sixth delete of the window stops the export, however the cycles sliced them.
            let deadline = Instant::now() + WAIT;
            let stop = loop {
                if let Some(e) = stops(mark).into_iter().next() {
                    break e;
                }
                assert!(Instant::now() < deadline, "{how}: never stopped");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert_eq!(stop.details["deletesInWindow"], 6, "{how}: {stop:?}");
            assert!(
                stop.message.contains("6 deletes within 1 h"),
                "{how}: {}",
                stop.message
            );
            let mut left = 0;
            for (login, _) in second {
                left += usize::from(cloud.find_user(&upn(login)).await.is_some());
            }
            assert!(left > 0, "{how}: the stop kept at least one");
            let runs = cloud
                .admin(Method::GET, "/api/v1/sync/runs?limit=1", None)
                .await
                .ok();
            assert_eq!(runs[0]["outcome"], "stoppedDeletionThreshold", "{runs}");
            assert!(
                runs[0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("6 deletes within 1 h"),
                "{runs}"
            );

            // Released once by an administrator: the rest go, and the window starts again.
            cloud.allow_deletes().await;
            until_gone(cloud, second).await;
            // The stops do not come back for what was released: a cycle after it runs clean.
            let seen = log.read(None).unwrap().len();
            let deadline = Instant::now() + WAIT;
            while !log.read(None).unwrap()[seen..]
                .iter()
                .any(|e| e.code == "sync.run.finished")
            {
                assert!(
                    Instant::now() < deadline,
                    "{how}: no cycle after the release"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                stops(seen).is_empty(),
                "{how}: stopped again after the release"
            );
            while cloud
                .admin(Method::GET, "/api/v1/sync/settings", None)
                .await
                .ok()["allowDeletesOnce"]
                == true
            {
                assert!(
                    Instant::now() < deadline,
                    "{how}: the release was never used"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            mark = log.read(None).unwrap().len();
        }
        assert!(
            cloud.find_user(&upn(&users[12].0)).await.is_some(),
            "one stays"
        );
    };
    service::run_with(engine, driver, ServiceOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn openldap_deletes_in_quick_cycles_stop_at_the_threshold_of_the_window() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = slapd.create_ou("notifyThr").unwrap();
    let out = slapd.create_ou("notifyThrOut").unwrap();
    save_openldap_connector(dir.path(), slapd, &openldap_connector(slapd, &[&ou]));
    let users = threshold_users(13, |login| {
        slapd.create_user(&ou, login, "Initial-Pass-1").unwrap()
    });
    let root = slapd.admin();
    let mut admin = common::admin_conn(
        &slapd.ldaps_url(),
        slapd.ca_cert_pem(),
        &root.dn,
        &root.password,
    )
    .await;
    deletes_in_quick_batches_stop_at_the_threshold_of_the_window(
        &cloud,
        &mut engine,
        &mut admin,
        users,
        &out,
    )
    .await;
}

#[tokio::test]
async fn ad_deletes_in_quick_cycles_stop_at_the_threshold_of_the_window() {
    let samba = testkit::samba::Samba::shared();
    common::grant_deleted_objects_read(samba).await;
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(dir.path()).await;
    let ou = samba.create_ou("notifyThr").unwrap();
    let out = samba.create_ou("notifyThrOut").unwrap();
    common::save_ad_connector(dir.path(), samba, &common::ad_connector(samba, &[&ou]));
    let users = threshold_users(13, |login| {
        samba.create_user(&ou, login, "Initial-Pass-1").unwrap()
    });
    let a = samba.admin();
    let mut admin =
        common::admin_conn(&samba.ldaps_url(), samba.ca_cert_pem(), &a.dn, &a.password).await;
    deletes_in_quick_batches_stop_at_the_threshold_of_the_window(
        &cloud,
        &mut engine,
        &mut admin,
        users,
        &out,
    )
    .await;
}

/// Issue 21: a watched OU renamed away and back. slapd 2.5 hung every later write when a
/// persistent search stayed open on the OU while it was renamed and syncrepl searches kept
/// hitting the missing base; the watcher now ends its search when the root leaves, reads the
/// root again with a long backoff (shortened here), says so, and resumes once it is back.
#[tokio::test]
async fn a_watched_ou_renamed_away_and_back_is_reported_and_watched_again_without_wedging_slapd() {
    let slapd = Slapd::start_fresh().expect("fresh slapd");
    let OpenLdapAgent {
        cloud,
        dir,
        mut engine,
        login,
        user,
    } = openldap_agent(&slapd, Some(86_400), "notifyRenamed", "nm").await;
    let ou = user.dn.split_once(',').unwrap().1.to_string();
    let rdn = ou.split_once(',').unwrap().0.to_string();
    let log = EventLog::open(dir.path());
    let answers = |what: &str| {
        assert!(
            slapd.answers_within(Duration::from_secs(10)),
            "slapd stopped answering {what}"
        );
    };
    // A write as the rootdn, bounded: the operation a wedged slapd never answers.
    let write = |phone: &str| {
        slapd
            .admin_replace_within(&user.dn, "mobile", &[phone], Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("slapd did not answer a write: {e:#}"));
    };

    let driver = async {
        first_sync(&cloud, &login).await;
        event(&log, "notification started", |e| {
            e.code == "sync.notify.started"
        })
        .await;
        let away = slapd
            .admin_rename(&ou, &format!("{rdn}-away"))
            .expect("rename away");
        let missing = event(&log, "the root reported missing", |e| {
            e.code == "sync.notify.rootMissing"
        })
        .await;
        assert_eq!(missing.event_id, Some(ids::NOTIFY_ROOT_MISSING));
        assert_eq!(missing.details["root"], ou.as_str(), "{missing:?}");
        assert!(
            missing.message.contains("no longer exists")
                && missing.message.contains("--include-ou"),
            "{}",
            missing.message
        );
        answers("while the OU was away");
        // Several re-checks on the missing root pass; slapd keeps answering.
        event(&log, "a second check of the missing root", |_| {
            log.read(None)
                .unwrap()
                .iter()
                .filter(|e| e.code == "sync.notify.rootMissing")
                .count()
                >= 2
        })
        .await;
        answers("after the re-checks");
        slapd.admin_rename(&away, &rdn).expect("rename back");
        answers("after the OU came back");
        write("+47 400 00 021");
        let back = event(&log, "watching again", |e| {
            e.code == "sync.notify.reconnected"
        })
        .await;
        assert_eq!(back.details["root"], ou.as_str(), "{back:?}");
        // The watch works again: a change reaches the cloud with a day-long schedule.
        write("+47 400 00 022");
        until_mobile(&cloud, &upn(&login), "+47 400 00 022").await;
        answers("at the end");
    };
    let options = ServiceOptions {
        notify_missing_backoff: Some(ldap::notify::Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(2),
        }),
        ..ServiceOptions::default()
    };
    service::run_with(&mut engine, driver, options)
        .await
        .unwrap();
}
