//! The self-service reset pages (`/sspr`) in a real browser for synced people, with the
//! password written back by the real agent: a Samba AD user whose first new password the
//! domain's policy refuses sees the domain's reason and a support code on the same page, then
//! succeeds with a better one and binds with it on the DC; an OpenLDAP user locked out by
//! ppolicy unlocks without a new password ("I know my password but can't sign in"); a signed-in
//! AD user changes the password at `/my/password`, hearing the domain's reasons first. Every page
//! is checked with axe-core and html-validate. The cloud-only flows are in
//! crates/cloud/tests/portal_sspr.rs.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{uniq, Cloud};
use dirbridge_agent as agent;
use ldap::{CaBundle, ConnectOptions, Connection, SecretString};
use reqwest::Method;
use serde_json::json;
use testkit::browser::Browser;
use testkit::samba::Samba;
use testkit::slapd::Slapd;
use testkit::smtp::Smtp;

const INITIAL: &str = "Initial-Pass-1";
const MAIL_WAIT: Duration = Duration::from_secs(20);

/// A cloud sending mail to a real SMTP server, with the premium trial and a reset policy for
/// everyone by one emailed code, writeback on and unlock without reset allowed.
async fn cloud_with_mail() -> (Cloud, Smtp) {
    let (cloud, smtp) = Cloud::start_with_mail().await;
    cloud
        .admin(Method::POST, "/api/v1/licenses/trial", None)
        .await
        .ok();
    cloud
        .set_policy(json!({
            "enabledFor": "all",
            "methods": ["email"],
            "methodsRequired": 1,
            "writebackEnabled": true,
            "allowUnlockWithoutReset": true,
            "requireRegistrationAtSignIn": false,
        }))
        .await;
    (cloud, smtp)
}

/// Licenses the synced `upn` and gives it the reset email `to` (the administrator's notice of
/// that is mail 0 to `to`).
async fn prepare(cloud: &Cloud, upn: &str, to: &str) {
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/users/{upn}"),
            json!({"usageLocation": "NO"}),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{upn}/licenses"),
            json!({"skuId": "DIRBRIDGE_PREMIUM"}),
        ),
        (
            Method::PUT,
            format!("/api/v1/users/{upn}/authentication-methods"),
            json!({ "email": to }),
        ),
    ] {
        cloud.admin(method, &path, Some(body)).await.ok();
    }
}

/// `agent writeback enable` for the agent in `data` with the tenant administrator.
async fn enable_writeback(cloud: &Cloud, data: &Path) {
    agent::enable::enable(
        data,
        None,
        &agent::enable::CloudAdmin {
            upn: format!("admin@{}", cloud.domain),
            password: SecretString::from(common::ADMIN_PASSWORD.to_string()),
        },
    )
    .await
    .expect("writeback enable");
}

async fn binds(url: &str, ca_pem: &str, dn: &str, password: &str) -> bool {
    let mut c = Connection::connect(&ConnectOptions::new(url, CaBundle::Pem(ca_pem.to_owned())))
        .await
        .unwrap();
    c.simple_bind(dn, &SecretString::from(password.to_owned()))
        .await
        .is_ok()
}

async fn browser(test: &str) -> Browser {
    let mut b = Browser::start().await.expect("start Chromium");
    b.keep_on_failure(test);
    b
}

async fn assert_clean(b: &Browser, what: &str) {
    let problems = b
        .page_problems(what)
        .await
        .expect("axe-core and html-validate");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// From `/sspr` (or `/sspr/unlock` with `unlock`) through the emailed code: mail number
/// `mail` to `to` carries it.
async fn verify_by_email(
    b: &Browser,
    cloud: &Cloud,
    smtp: &Smtp,
    upn: &str,
    to: &str,
    mail: usize,
    unlock: bool,
) {
    let start = if unlock { "/sspr/unlock" } else { "/sspr" };
    b.goto(&format!("{}{start}", cloud.base)).await.unwrap();
    assert_clean(b, "start page").await;
    b.type_into("#username", upn).await.unwrap();
    b.submit("form[action='/sspr/start'] button").await.unwrap();
    b.wait_for("#sspr-intro").await.unwrap();
    b.submit("#send-email").await.unwrap();
    let notice = b.wait_for_text("#sspr-notice").await.unwrap();
    assert!(notice.contains("a code was sent"), "{notice}");
    let code = tokio::task::block_in_place(|| smtp.wait_for(to, mail, MAIL_WAIT))
        .expect("the code is emailed")
        .code(8)
        .expect("an 8-digit code in the mail");
    b.type_into("#code-email", &code).await.unwrap();
    b.submit("#verify-email").await.unwrap();
}

async fn set_new_password(b: &Browser, password: &str) {
    b.wait_for("#new-password").await.unwrap();
    b.type_into("#new-password", password).await.unwrap();
    b.type_into("#confirm-password", password).await.unwrap();
    b.submit("#set-password").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_ad_user_sees_the_domain_policys_reason_then_resets_with_a_better_password() {
    let (cloud, smtp) = cloud_with_mail().await;
    let samba = Samba::shared();
    let data = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(data.path()).await;
    let ou = samba.create_ou("portalSspr").unwrap();
    common::save_ad_connector(data.path(), samba, &common::ad_connector(samba, &[&ou]));
    let user = samba.create_user(&ou, &uniq("ps"), INITIAL).unwrap();
    let runs = engine.run_cycle(true).await.expect("full sync");
    assert_eq!(runs[0].added, 1, "{:?}", runs[0]);
    let to = format!("{}@mail.test", user.login.split('@').next().unwrap());
    prepare(&cloud, &user.login, &to).await;
    enable_writeback(&cloud, data.path()).await;
    let better = format!("Portal-{}-Better-7q", std::process::id());

    let driver = async {
        cloud.sync_now_when_connected().await;
        let b = browser("agent_portal_sspr_ad_refusal").await;
        verify_by_email(&b, &cloud, &smtp, &user.login, &to, 1, false).await;
        assert_clean(&b, "new password page").await;

        // Only lower-case letters: Samba's complexity rule refuses it, and the page says so.
        set_new_password(&b, "onlylowercaseletters").await;
        let error = b.wait_for_text("#sspr-error").await.unwrap();
        assert!(
            error.contains("not complex enough"),
            "the domain's reason: {error}"
        );
        assert!(
            !error.contains(&user.dn),
            "no DN shown to the person: {error}"
        );
        let support = b.text("#attempt-support").await.unwrap();
        assert!(!support.trim().is_empty(), "a support code for the refusal");
        assert_clean(&b, "new password page after the domain's refusal").await;
        b.save(
            &testkit::browser::screenshots_dir(),
            "portal-sspr-onprem-refusal",
        )
        .await
        .unwrap();

        // Another password on the same page, without verifying again.
        set_new_password(&b, &better).await;
        let done = b.wait_for_text("#sspr-result").await.unwrap();
        assert!(
            b.current_url().await.unwrap().ends_with("/sspr/result"),
            "{done}"
        );
        let code = b.text("#support-code").await.unwrap();
        assert!(!code.trim().is_empty());
        assert_ne!(code.trim(), support.trim(), "each attempt has its own id");
        assert!(b.find("#signin-link").await.is_ok());
        assert_clean(&b, "result page").await;
    };
    agent::service::run(&mut engine, driver).await.unwrap();
    let (url, ca) = (samba.ldaps_url(), samba.ca_cert_pem());
    assert!(binds(&url, ca, &user.dn, &better).await, "set on the DC");
    assert!(
        !binds(&url, ca, &user.dn, INITIAL).await,
        "the old one is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openldap_user_locked_out_by_ppolicy_unlocks_in_the_browser_and_keeps_the_password() {
    let (cloud, smtp) = cloud_with_mail().await;
    let slapd = Slapd::shared();
    let data = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(data.path()).await;
    let ou = slapd.create_ou("portalUnlock").unwrap();
    let cfg = common::openldap_connector(slapd, &[&ou]);
    common::save_openldap_connector(data.path(), slapd, &cfg);
    let login = uniq("pu");
    let user = slapd.create_user(&ou, &login, INITIAL).unwrap();
    let (url, ca) = (slapd.ldaps_url(), slapd.ca_cert_pem().to_string());
    // Locked for real: ppolicy's five wrong binds (a round again if slapd let the right one
    // through, which clears the count; see ldap/tests/writeback_ops.rs).
    let mut locked = false;
    for _round in 0..3 {
        for _ in 0..5 {
            assert!(!binds(&url, &ca, &user.dn, "Wrong-Pass-0").await);
        }
        if !binds(&url, &ca, &user.dn, INITIAL).await {
            locked = true;
            break;
        }
    }
    assert!(locked, "five wrong binds lock the account");
    let runs = engine.run_cycle(true).await.expect("full sync");
    assert_eq!(runs[0].added, 1, "{:?}", runs[0]);
    let upn = format!("{login}@dirbridge.test");
    let to = format!("{login}@mail.test");
    prepare(&cloud, &upn, &to).await;
    enable_writeback(&cloud, data.path()).await;

    let driver = async {
        cloud.sync_now_when_connected().await;
        let b = browser("agent_portal_sspr_unlock").await;
        b.goto(&cloud.base).await.unwrap();
        b.submit("#cant-access").await.unwrap();
        b.submit("#unlock-link").await.unwrap();
        b.wait_for("form[action='/sspr/start'] input[name=unlock]")
            .await
            .unwrap();
        verify_by_email(&b, &cloud, &smtp, &upn, &to, 1, true).await;
        // The unlock comes first; a new password stays possible below it.
        b.wait_for("form[action='/sspr/unlock'] #unlock")
            .await
            .unwrap();
        assert!(b.find("#new-password").await.is_ok());
        assert_clean(&b, "unlock page").await;
        b.submit("#unlock").await.unwrap();
        let done = b.wait_for_text("#sspr-result").await.unwrap();
        assert!(done.to_lowercase().contains("unlock"), "{done}");
        assert!(!b.text("#support-code").await.unwrap().trim().is_empty());
        assert_clean(&b, "unlock result page").await;
    };
    agent::service::run(&mut engine, driver).await.unwrap();
    assert!(
        binds(&url, &ca, &user.dn, INITIAL).await,
        "unlocked on-prem with the password the person knows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_ad_user_changes_the_password_in_the_browser_and_hears_the_domains_reason() {
    let (cloud, _smtp) = cloud_with_mail().await;
    let samba = Samba::shared();
    let data = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(data.path()).await;
    let ou = samba.create_ou("portalChange").unwrap();
    common::save_ad_connector(data.path(), samba, &common::ad_connector(samba, &[&ou]));
    let user = samba.create_user(&ou, &uniq("pc"), INITIAL).unwrap();
    let runs = engine.run_cycle(true).await.expect("full sync");
    assert_eq!(runs[0].added, 1, "{:?}", runs[0]);
    let to = format!("{}@mail.test", user.login.split('@').next().unwrap());
    prepare(&cloud, &user.login, &to).await;
    enable_writeback(&cloud, data.path()).await;
    let better = format!("Changed-{}-Better-8w", std::process::id());

    let driver = async {
        cloud.sync_now_when_connected().await;
        let b = browser("agent_portal_change_ad").await;
        b.goto(&cloud.base).await.unwrap();
        b.type_into("#username", &user.login).await.unwrap();
        b.type_into("#password", INITIAL).await.unwrap();
        cloud.tick();
        b.submit("button[type=submit]").await.unwrap();
        b.wait_for("#upn").await.unwrap();
        b.goto(&format!("{}/my/password", cloud.base))
            .await
            .unwrap();
        assert_clean(&b, "change password page").await;

        // Complexity, then history (the current password again: a change always enforces it).
        for (new, reason) in [
            ("onlylowercaseletters", "not complex enough"),
            (INITIAL, "used it recently"),
        ] {
            b.wait_for("#current-password").await.unwrap();
            b.type_into("#current-password", INITIAL).await.unwrap();
            b.type_into("#new-password", new).await.unwrap();
            b.type_into("#confirm-password", new).await.unwrap();
            b.submit("#change-password").await.unwrap();
            let error = b.wait_for_text("#change-error").await.unwrap();
            assert!(error.contains(reason), "{reason}: {error}");
            assert!(!b.text("#attempt-support").await.unwrap().trim().is_empty());
        }
        assert_clean(&b, "change password page after the domain's refusal").await;
        b.type_into("#current-password", INITIAL).await.unwrap();
        b.type_into("#new-password", &better).await.unwrap();
        b.type_into("#confirm-password", &better).await.unwrap();
        b.submit("#change-password").await.unwrap();
        b.wait_for("#change-result").await.unwrap();
        assert_clean(&b, "password changed page").await;
    };
    agent::service::run(&mut engine, driver).await.unwrap();
    let (url, ca) = (samba.ldaps_url(), samba.ca_cert_pem());
    assert!(
        binds(&url, ca, &user.dn, &better).await,
        "changed on the DC"
    );
    assert!(!binds(&url, ca, &user.dn, INITIAL).await);
}
