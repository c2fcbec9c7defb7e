//! The password notices of issue 13, through a real SMTP server (aiosmtpd): the person is mailed
//! when their password is reset (by an administrator or self-service) or changed, every other
//! Global Administrator when an administrator's password is reset — each only while its policy
//! switch (`notifyUsersOnReset`, `notifyAdminsOnAdminReset`) is on — with the texts of
//! `[notifications]` in the cloud config, autoescaped.
// Polls with real deadlines (tests may read the clock; the product reads it through tenant::clock).
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::Cloud;
use dirbridge_cloud::config::MailTemplate;
use reqwest::Method;
use serde_json::{json, Value};

const FIRST: &str = "First-Pass-w0rd";
const RESET: &str = "Your account was reset";
const CHANGED: &str = "Your password was changed";
const METHODS: &str = "Your password reset methods were changed";

struct Env {
    c: Cloud,
    smtp: testkit::smtp::Smtp,
}

/// A cloud mailing through the SMTP sink, whose `password_changed` text comes from the config.
async fn env() -> Env {
    let mut config = common::unlimited();
    let smtp = common::mail_through_sink(&mut config, "Contoso <it@contoso.test>").await;
    config.notifications.password_changed = Some(MailTemplate {
        subject: "Your password was changed".into(),
        body: "Hello {{ display_name }}, the password of {{ user_principal_name }} changed at {{ at }}. Support code {{ tracking_id }}.".into(),
    });
    let c = Cloud::start_with(config, None).await;
    c.admin(Method::POST, "/api/v1/licenses/trial", None)
        .await
        .ok();
    c.set_policy(json!({"enabledFor": "all", "methods": ["email", "securityQuestions"]}))
        .await;
    Env { c, smtp }
}

/// A licensed cloud user with `extra` attributes, password [`FIRST`] and the account mail
/// `<local>@corp.contoso.test`.
async fn person(c: &Cloud, local: &str, extra: Value) -> String {
    let mut body = json!({
        "usageLocation": "NO",
        "password": FIRST,
        "mail": format!("{local}@corp.contoso.test"),
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    c.user(local, body).await;
    let upn = c.upn(local);
    c.admin(
        Method::POST,
        &format!("/api/v1/users/{upn}/licenses"),
        Some(json!({"skuId": "DIRBRIDGE_PREMIUM"})),
    )
    .await
    .ok();
    upn
}

async fn admin_resets(c: &Cloud, upn: &str, password: &str) {
    let r = c
        .admin(
            Method::POST,
            &format!("/api/v1/users/{upn}/password"),
            Some(json!({ "password": password })),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
}

/// Message number `seen` (0-based) to `to` titled `subject`, polled with a deadline.
async fn titled(
    smtp: &testkit::smtp::Smtp,
    to: &str,
    subject: &str,
    seen: usize,
) -> testkit::smtp::Mail {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = smtp
            .messages_to(to)
            .unwrap()
            .into_iter()
            .filter(|m| m.subject == subject)
            .nth(seen)
        {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message {} {subject:?} for {to} within 20 s",
            seen + 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(smtp: &testkit::smtp::Smtp, to: &str, subject: &str) -> usize {
    smtp.messages_to(to)
        .unwrap()
        .iter()
        .filter(|m| m.subject.starts_with(subject))
        .count()
}

/// Sends `to` a notice that is not switched off (an administrator registers an email for
/// `upn`, mailed to `to` and the account's mail) and waits for it: mails sent before it have
/// had their time, so a notice still missing afterwards was not sent.
async fn barrier(env: &Env, upn: &str, to: &str, seen: usize) {
    env.c
        .admin(
            Method::PUT,
            &format!("/api/v1/users/{upn}/authentication-methods"),
            Some(json!({ "email": to })),
        )
        .await
        .ok();
    titled(&env.smtp, to, METHODS, seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_is_told_of_a_reset_and_a_change_while_the_switch_is_on() {
    let env = env().await;
    let c = &env.c;
    let upn = person(c, "ada", json!({"displayName": "Ada <b>Lovelace</b>"})).await;
    let (private, corp) = ("ada.private@mail.contoso.test", "ada@corp.contoso.test");
    barrier(&env, &upn, private, 0).await;

    // Reset by an administrator: both addresses, naming the administrator.
    admin_resets(c, &upn, "Second-Pass-w0rd").await;
    for to in [private, corp] {
        let m = titled(&env.smtp, to, RESET, 0).await;
        assert!(
            m.body.contains(&format!(
                "{upn} was reset by the administrator {}",
                c.upn("admin")
            )),
            "{}",
            m.body
        );
    }
    // Changed by the person: the configured text, autoescaped.
    let r = c
        .call(
            Method::POST,
            "/api/v1/sspr/change",
            None,
            Some(json!({
                "userPrincipalName": upn,
                "currentPassword": "Second-Pass-w0rd",
                "newPassword": "Third-Pass-w0rd-77",
            })),
        )
        .await;
    assert_eq!(r.ok()["outcome"], "succeeded");
    let m = titled(&env.smtp, private, CHANGED, 0).await;
    assert!(
        m.body
            .starts_with("Hello Ada &lt;b&gt;Lovelace&lt;&#x2f;b&gt;, the password of"),
        "{}",
        m.body
    );
    assert!(!m.body.contains("Third-Pass"), "no password in a notice");

    // Switched off: neither is sent.
    c.set_policy(json!({"notifyUsersOnReset": false})).await;
    admin_resets(c, &upn, "Fourth-Pass-w0rd").await;
    c.call(
        Method::POST,
        "/api/v1/sspr/change",
        None,
        Some(json!({
            "userPrincipalName": upn,
            "currentPassword": "Fourth-Pass-w0rd",
            "newPassword": "Fifth-Pass-w0rd-88",
        })),
    )
    .await
    .ok();
    // Moving the reset email is told to the old address too: once that arrived, so had they.
    barrier(&env, &upn, "ada.newer@mail.contoso.test", 0).await;
    titled(&env.smtp, private, METHODS, 1).await;
    assert_eq!(count(&env.smtp, private, RESET), 1);
    assert_eq!(count(&env.smtp, private, CHANGED), 1);
    assert_eq!(count(&env.smtp, corp, RESET), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_administrators_are_told_when_an_administrators_password_is_reset() {
    let env = env().await;
    let c = &env.c;
    let gina = person(c, "gina", json!({"roles": ["globalAdministrator"]})).await;
    let uma = person(c, "uma", json!({"roles": ["userAdministrator"]})).await;
    let bob = person(c, "bob", json!({})).await;
    let to_gina = "gina@corp.contoso.test";
    let admin_notice = format!("An administrator's password was reset: {uma}");

    admin_resets(c, &uma, "Second-Pass-w0rd").await;
    let m = titled(&env.smtp, to_gina, &admin_notice, 0).await;
    assert!(
        m.body.contains(&format!(
            "({uma}) was reset by the administrator {}",
            c.upn("admin")
        )),
        "{}",
        m.body
    );
    // The person is told as a person.
    titled(&env.smtp, "uma@corp.contoso.test", RESET, 0).await;
    // Not for someone without a role, and not while the switch is off.
    admin_resets(c, &bob, "Second-Pass-w0rd").await;
    titled(&env.smtp, "bob@corp.contoso.test", RESET, 0).await;
    c.set_policy(json!({"notifyAdminsOnAdminReset": false}))
        .await;
    admin_resets(c, &uma, "Third-Pass-w0rd").await;
    titled(&env.smtp, "uma@corp.contoso.test", RESET, 1).await;
    barrier(&env, &gina, "gina.private@mail.contoso.test", 0).await;
    titled(&env.smtp, to_gina, METHODS, 0).await;
    assert_eq!(
        count(&env.smtp, to_gina, "An administrator's password was reset"),
        1
    );
}
