//! Change notification in `agent run` against the real directories (testkit) and the real cloud
//! in-process: with a day-long schedule, only notification can explain a change reaching the
//! cloud; a directory that refuses notification leaves the connector to the schedule, with an
//! event that says why and how to fix it; the setting turns it off.

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
        if let Some(u) = cloud.user(upn).await {
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
    while cloud.user(&upn(login)).await.is_none() {
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
