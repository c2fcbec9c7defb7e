//! Pass-through sign-in end to end against real servers: the real cloud in-process, the real
//! agent service (push socket, claim, report) and a real Samba AD DC or OpenLDAP slapd. A
//! synced user signs in at `POST /api/v1/auth/token` with the on-prem password; a wrong one is
//! the cloud's usual 401 and one more bad password in AD; disabled, must-change, expired
//! (password or account) and logon-hours-restricted accounts, and ppolicy's locked and
//! change-after-reset ones, are told what to do — each as the real server answers it; no agent
//! is a 503; the cloud's throttle stops forwarding guesses; no password lands in any file. None
//! of it needs writeback enabled, a premium SKU or the policy switch.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{openldap_connector, save_openldap_connector, uniq, Cloud, Reply};
use dirbridge_agent as agent;
use ldap::SecretString;
use proto::writeback::{events as ids, person_message, Outcome, SIGN_IN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::samba::{AdPasswordPolicy, Credentials, Samba};
use testkit::slapd::{PpolicySettings, Slapd};

/// Every password in this file contains it; no file the cloud or the agent wrote may.
const MARKER: &str = "Pt7-mark";
/// Long enough for anything that works to happen many times over.
const PATIENCE: Duration = Duration::from_secs(60);
/// 2020-01-01T00:00:00Z as an AD FILETIME (100 ns units since 1601): long past.
const LONG_AGO: u64 = 132_223_104_000_000_000;

fn password(tag: &str) -> String {
    format!("{MARKER}-{tag}-Pass-9")
}

fn upn(login: &str) -> String {
    format!("{login}@dirbridge.test")
}

async fn sign_in(cloud: &Cloud, upn: &str, password: &str) -> Reply {
    // Envelopes expire on the cloud clock: keep it on the real time.
    cloud.tick();
    cloud
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"userPrincipalName": upn, "password": password})),
        )
        .await
}

fn message(r: &Reply) -> String {
    r.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn tracking(r: &Reply) -> String {
    r.body["error"]["trackingId"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until `upn` is in the cloud (the service's first sync cycle).
async fn synced(cloud: &Cloud, upn: &str) {
    let deadline = Instant::now() + PATIENCE;
    while cloud.find_user(upn).await.is_none() {
        assert!(Instant::now() < deadline, "{upn} was never synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in until the agent has connected (503s do not count against the throttle).
async fn first_sign_in(cloud: &Cloud, upn: &str, password: &str) -> Reply {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = sign_in(cloud, upn, password).await;
        if r.status != StatusCode::SERVICE_UNAVAILABLE {
            return r;
        }
        assert!(Instant::now() < deadline, "no agent connected: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs `user` in with the right password, which the directory refuses: a 401 with the
/// sign-in words for `outcome`, and one 34002 event with that outcome and the directory's
/// diagnostic, which contains `diagnostic` (AD's `data XXX`).
async fn refused(
    cloud: &Cloud,
    data: &Path,
    user: &Credentials,
    outcome: Outcome,
    diagnostic: &str,
) -> Reply {
    let r = sign_in(cloud, &user.login, &user.password).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "unauthenticated", "{}", r.body);
    assert_eq!(
        message(&r),
        person_message(outcome, None, SIGN_IN),
        "{outcome:?}"
    );
    let ev = sign_in_events(data, &tracking(&r));
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].event_id, Some(ids::SIGN_IN_REFUSED), "{ev:?}");
    assert_eq!(ev[0].details["outcome"], json!(outcome), "{ev:?}");
    let said = ev[0].details["diagnostic"].as_str().unwrap_or_default();
    assert!(said.contains(diagnostic), "{ev:?}");
    r
}

/// The agent's sign-in events (34xxx) for `tracking_id`.
fn sign_in_events(data: &Path, tracking_id: &str) -> Vec<agent::events::Event> {
    agent::events::EventLog::open(data)
        .query(None, Some(tracking_id))
        .unwrap()
        .into_iter()
        .filter(|e| e.event_id.is_some_and(|id| (34001..=34003).contains(&id)))
        .collect()
}

/// All sign-in attempts (34xxx events) the agent logged for `user` (a DN).
fn attempts_for(data: &Path, user: &str) -> usize {
    agent::events::EventLog::open(data)
        .read(None)
        .unwrap()
        .into_iter()
        .filter(|e| e.event_id.is_some_and(|id| (34001..=34003).contains(&id)))
        .filter(|e| e.details["user"].as_str() == Some(user))
        .count()
}

/// The audit record of the sign-in with this tracking id.
async fn audit(cloud: &Cloud, tracking_id: &str) -> Value {
    let page = cloud
        .admin(
            Method::GET,
            &format!("/api/v1/audit?trackingId={tracking_id}"),
            None,
        )
        .await
        .ok();
    page["items"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["action"] == "signIn").cloned())
        .unwrap_or_else(|| panic!("no signIn audit record for {tracking_id}: {page}"))
}

/// Files under `dir` that contain the marker.
fn marker_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap_or_default()
                .windows(MARKER.len())
                .any(|w| w == MARKER.as_bytes())
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// AD's count of bad passwords for `dn` (0 when unset).
async fn bad_pwd_count(samba: &Samba, dn: &str) -> u32 {
    let a = samba.admin();
    let mut c =
        common::admin_conn(&samba.ldaps_url(), samba.ca_cert_pem(), &a.dn, &a.password).await;
    c.read(dn, &["badPwdCount"])
        .await
        .unwrap()
        .text("badPwdCount")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A new enabled AD user in `ou` whose password is `password(name)`; `login` is its UPN.
fn ad_user(samba: &Samba, ou: &str, name: &str) -> Credentials {
    let login = uniq(&format!("pt{}", &name[..1]));
    samba.create_user(ou, &login, &password(name)).unwrap()
}

/// A new OpenLDAP user in `ou` whose password is `password(name)`; `login` is its UPN (the
/// testkit's is the DN).
fn openldap_user(slapd: &Slapd, ou: &str, name: &str) -> Credentials {
    let uid = uniq(&format!("pt{}", &name[..1]));
    let user = slapd.create_user(ou, &uid, &password(name)).unwrap();
    Credentials {
        login: upn(&uid),
        ..user
    }
}

/// Runs the agent service in `data` while `body` runs; stops it when `body` ends.
async fn with_agent(data: &Path, body: impl Future<Output = ()>) {
    let mut engine = agent::sync::Engine::open(data).await.expect("engine");
    agent::service::run(&mut engine, body).await.expect("agent");
}

// ---------------------------------------------------------------- AD

/// A domain of its own: badPwdCount only moves with a lockout threshold, and the user
/// accounts are changed here. The threshold (20) is above the cloud's throttle (10): the
/// cloud stops guessing before the directory would lock the account.
#[tokio::test]
async fn ad_synced_users_sign_in_with_the_on_prem_password() {
    let samba = Samba::start_fresh().expect("fresh Samba");
    samba
        .set_password_policy(&AdPasswordPolicy {
            lockout_threshold: Some(20),
            lockout_duration: Some(Duration::from_secs(1800)),
            ..AdPasswordPolicy::default()
        })
        .unwrap();
    let cloud = Cloud::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(data.path()).await;
    let ou = samba.create_ou("passThrough").unwrap();
    common::save_ad_connector(data.path(), &samba, &common::ad_connector(&samba, &[&ou]));
    let [ann, ben, cat, dan, eli, fay, gus] =
        ["ann", "ben", "cat", "dan", "eli", "fay", "gus"].map(|n| ad_user(&samba, &ou, n));
    engine.run_cycle(true).await.expect("full sync");
    drop(engine);
    for user in [&ann, &ben, &cat, &dan, &eli, &fay, &gus] {
        synced(&cloud, &user.login).await;
    }

    // Writeback is not available (no premium SKU, policy off, no agent enabled): pass-through
    // does not need it.
    let wb = cloud
        .admin(Method::GET, "/api/v1/writeback", None)
        .await
        .ok();
    assert_eq!(wb["available"], false, "{wb}");

    // No agent running: 503, with the next step; the attempt is not counted.
    let r = sign_in(&cloud, &ann.login, &ann.password).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(message(&r).contains("dirbridge agents list"), "{}", r.body);
    assert_eq!(r.body["error"]["code"], "serviceUnavailable");
    assert_eq!(attempts_for(data.path(), &ann.dn), 0);

    with_agent(data.path(), async {
        // The right password: a token that works.
        let r = first_sign_in(&cloud, &ann.login, &ann.password).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let token = r.body["accessToken"].as_str().unwrap().to_string();
        let me = cloud
            .call(Method::GET, "/api/v1/me", Some(&token), None)
            .await
            .ok();
        assert_eq!(me["userPrincipalName"], ann.login);

        // A wrong password: the cloud's usual answer, and exactly one more bad password in AD.
        let before = bad_pwd_count(&samba, &ann.dn).await;
        let r = sign_in(&cloud, &ann.login, &password("wrong")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(message(&r), "The user name or password is incorrect.");
        assert_eq!(bad_pwd_count(&samba, &ann.dn).await, before + 1);
        // One event for the attempt, with tracking id, user and outcome; the audit record
        // carries the same tracking id and says pass-through.
        let t = tracking(&r);
        let ev = sign_in_events(data.path(), &t);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].event_id, Some(ids::SIGN_IN_REFUSED));
        assert_eq!(ev[0].details["user"], ann.dn.as_str());
        assert_eq!(ev[0].details["outcome"], "wrongPassword");
        let a = audit(&cloud, &t).await;
        assert_eq!(a["result"], "failure", "{a}");
        let details = a["details"].as_str().unwrap();
        assert!(
            details.contains("passThrough") && details.contains("wrongPassword"),
            "{a}"
        );

        // Each refusal below is what Samba answers to the right password.
        // Disabled on-prem: told so.
        samba
            .admin_replace(&ben.dn, "userAccountControl", &["514"])
            .unwrap();
        let r = refused(
            &cloud,
            data.path(),
            &ben,
            Outcome::AccountDisabled,
            "data 533",
        )
        .await;
        assert!(message(&r).contains("disabled"), "{}", r.body);

        // Must change at next logon: told to change it through self-service change.
        samba.admin_replace(&cat.dn, "pwdLastSet", &["0"]).unwrap();
        let r = refused(
            &cloud,
            data.path(),
            &cat,
            Outcome::MustChangePassword,
            "data 773",
        )
        .await;
        assert!(message(&r).contains("/api/v1/sspr/change"), "{}", r.body);

        // Password expired: last set in 2020, longer ago than the domain's maximum password
        // age (42 days; Samba ignores any maximum under a day). Also self-service change.
        samba.set_password_last_set(&eli.dn, LONG_AGO).unwrap();
        let r = refused(
            &cloud,
            data.path(),
            &eli,
            Outcome::PasswordExpired,
            "data 532",
        )
        .await;
        assert!(message(&r).contains("/api/v1/sspr/change"), "{}", r.body);

        // Account expired (accountExpires in the past): whom to ask. With a wrong password
        // the answer says nothing about the account (Samba checks the password first: 52e).
        let expired = LONG_AGO.to_string();
        samba
            .admin_replace(&fay.dn, "accountExpires", &[&expired])
            .unwrap();
        let r = refused(
            &cloud,
            data.path(),
            &fay,
            Outcome::AccountExpired,
            "data 701",
        )
        .await;
        assert!(message(&r).contains("administrator"), "{}", r.body);
        let r = sign_in(&cloud, &fay.login, &password("wrong")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(message(&r), "The user name or password is incorrect.");

        // No logon hours at all (21 zero bytes, one bit an hour of the week).
        let never = "\0".repeat(21);
        samba
            .admin_replace(&gus.dn, "logonHours", &[&never])
            .unwrap();
        let r = refused(
            &cloud,
            data.path(),
            &gus,
            Outcome::LogonRestricted,
            "data 530",
        )
        .await;
        assert!(message(&r).contains("permitted hours"), "{}", r.body);

        // The throttle: 10 failures reach AD, the 11th is refused by the cloud and never
        // reaches the agent — not even with the right password.
        for i in 0..10 {
            let r = sign_in(&cloud, &dan.login, &password(&format!("guess{i}"))).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{i}: {}", r.body);
        }
        let r = sign_in(&cloud, &dan.login, &dan.password).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert_eq!(attempts_for(data.path(), &dan.dn), 10);
        assert_eq!(bad_pwd_count(&samba, &dan.dn).await, 10);
    })
    .await;

    // No password in any file the cloud or the agent wrote.
    let mut hits = marker_in(cloud.dir());
    hits.extend(marker_in(data.path()));
    assert!(hits.is_empty(), "a password in {hits:?}");
}

// ---------------------------------------------------------------- OpenLDAP

/// An instance of its own: the test changes the default policy (pwdMustChange).
#[tokio::test]
async fn openldap_synced_user_signs_in_and_locked_or_reset_accounts_are_told() {
    let slapd = &Slapd::start_fresh().expect("fresh slapd");
    let cloud = Cloud::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(data.path()).await;
    let ou = slapd.create_ou("passThroughOl").unwrap();
    // StartTLS: the user's bind goes over it too.
    let config = openldap_connector(slapd, &[&ou]);
    save_openldap_connector(data.path(), slapd, &config);
    let [eve, fay, gil] = ["eve", "fay", "gil"].map(|n| openldap_user(slapd, &ou, n));
    engine.run_cycle(true).await.expect("full sync");
    drop(engine);
    for user in [&eve, &fay, &gil] {
        synced(&cloud, &user.login).await;
    }

    with_agent(data.path(), async {
        let r = first_sign_in(&cloud, &eve.login, &eve.password).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = sign_in(&cloud, &eve.login, &password("wrong")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(message(&r), "The user name or password is incorrect.");
        let ev = sign_in_events(data.path(), &tracking(&r));
        assert_eq!(ev[0].details["outcome"], "wrongPassword", "{ev:?}");

        // Locked by ppolicy (pwdMaxFailure 5, straight at the directory): the right password
        // is answered with the lockout, from the ppolicy response control.
        for _ in 0..5 {
            let mut c = ldap::Connection::connect(&config.connect_options())
                .await
                .unwrap();
            assert!(c
                .simple_bind(&fay.dn, &SecretString::from("Wrong-Pass-0".to_string()))
                .await
                .is_err());
        }
        let r = refused(&cloud, data.path(), &fay, Outcome::AccountLockedOut, "").await;
        assert!(message(&r).contains("locked out"), "{}", r.body);

        // Reset by an administrator (pwdReset: TRUE) under a policy with pwdMustChange: slapd
        // accepts the bind with changeAfterReset in the response control, and the session it
        // grants may only change the password: no sign-in, told to change it.
        slapd.admin_replace(&gil.dn, "pwdReset", &["TRUE"]).unwrap();
        slapd
            .set_password_policy(&PpolicySettings {
                must_change: Some(true),
                ..PpolicySettings::default()
            })
            .unwrap();
        let r = refused(
            &cloud,
            data.path(),
            &gil,
            Outcome::MustChangePassword,
            "changeAfterReset",
        )
        .await;
        assert!(message(&r).contains("/api/v1/sspr/change"), "{}", r.body);
    })
    .await;

    let mut hits = marker_in(cloud.dir());
    hits.extend(marker_in(data.path()));
    assert!(hits.is_empty(), "a password in {hits:?}");
}

// ---------------------------------------------------------------- the portal

/// The portal's sign-in form is the API's sign-in: a synced user signs in in a real browser
/// with the on-prem password, checked by the agent against the real Samba AD; a wrong one gets
/// the cloud's usual words on the page.
#[tokio::test]
async fn a_synced_user_signs_in_to_the_portal_in_a_browser_with_the_on_prem_password() {
    let samba = Samba::shared();
    let cloud = Cloud::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(data.path()).await;
    let ou = samba.create_ou("portalSignIn").unwrap();
    common::save_ad_connector(data.path(), samba, &common::ad_connector(samba, &[&ou]));
    let ann = ad_user(samba, &ou, "ann");
    engine.run_cycle(true).await.expect("full sync");
    drop(engine);
    synced(&cloud, &ann.login).await;

    with_agent(data.path(), async {
        // The agent is connected once the API's sign-in works.
        let r = first_sign_in(&cloud, &ann.login, &ann.password).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        let mut b = testkit::browser::Browser::start().await.expect("Chromium");
        b.keep_on_failure("synced_user_portal_sign_in");
        b.goto(&cloud.base).await.unwrap();
        b.type_into("#username", &ann.login).await.unwrap();
        b.type_into("#password", &password("wrong")).await.unwrap();
        cloud.tick();
        b.click("button[type=submit]").await.unwrap();
        b.wait_for("#signin-error").await.unwrap();
        assert_eq!(
            b.text("#signin-error").await.unwrap(),
            "The user name or password is incorrect."
        );

        b.type_into("#password", &ann.password).await.unwrap();
        cloud.tick();
        b.click("button[type=submit]").await.unwrap();
        b.wait_for("#upn").await.unwrap();
        assert_eq!(b.text("#upn").await.unwrap(), ann.login);
        assert!(
            b.source().await.unwrap().contains("Synced from"),
            "the account page says the account is synced"
        );
    })
    .await;
}
