//! The seed's administrator walkthrough in Chromium, against a real Samba AD DC and the real
//! agent: a Global Administrator starts the trial, bulk-assigns the premium licence (one user
//! has no usage location: the exact error, fixed on the spot), switches the reset policy on for
//! a group, sees the synced users and the agent healthy with writeback on, and resets a synced
//! user's password from the user page (written back: the new password binds on Samba); then a
//! Password Administrator is not offered the licence or policy pages, and their
//! URLs answer 403 pages. Every admin page visited passes axe-core and html-validate.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{ad_connector, save_ad_connector, uniq, Cloud};
use dirbridge_agent as agent;
use ldap::{CaBundle, ConnectOptions, Connection, SecretString};
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::browser::{html_errors, screenshots_dir, Browser};
use testkit::samba::Samba;

const PATIENCE: Duration = Duration::from_secs(60);
const INVALID_USAGE_LOCATION: &str =
    "License assignment cannot be done for user with invalid usage location.";

async fn with_agent(data: &Path, body: impl Future<Output = ()>) {
    let mut engine = agent::sync::Engine::open(data).await.expect("engine");
    agent::service::run(&mut engine, body).await.expect("agent");
}

/// The browser's session cookie, for fetching a page as the browser got it.
async fn session_cookie(b: &Browser) -> String {
    let cookies = b.cookies().await.unwrap();
    let c = cookies
        .iter()
        .find(|c| c["name"] == "__Host-dirbridge-session")
        .expect("a session cookie");
    format!("__Host-dirbridge-session={}", c["value"].as_str().unwrap())
}

/// The current page passes axe-core, and its HTML as the server sends it (fetched again with
/// the browser's session: every page checked is a GET) passes html-validate; `status` is the
/// status that fetch answers.
async fn assert_clean(b: &Browser, what: &str) -> StatusCode {
    let url = b.current_url().await.unwrap();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&url)
        .header("cookie", session_cookie(b).await)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let html = r.text().await.unwrap();
    let markup = html_errors(&html).expect("html-validate");
    assert!(
        markup.is_empty(),
        "{what} ({url}): html-validate:\n{}",
        markup.join("\n")
    );
    let a11y = b.axe_violations().await.expect("axe-core");
    assert!(
        a11y.is_empty(),
        "{what} ({url}): axe-core:\n{}",
        a11y.join("\n")
    );
    status
}

/// Opens `path` of the cloud and waits for `selector`.
async fn open(b: &Browser, cloud: &Cloud, path: &str, selector: &str) {
    cloud.tick();
    b.goto(&format!("{}{path}", cloud.base)).await.unwrap();
    if b.wait_for(selector).await.is_err() {
        panic!("{path}: no {selector}: {}", b.source().await.unwrap());
    }
}

/// Clicks `selector` (a submit button or a link) and waits for the next page (a new document)
/// to show `then`.
async fn submit(b: &Browser, cloud: &Cloud, selector: &str, then: &str) {
    b.execute("document.documentElement.dataset.left = '1';", vec![])
        .await
        .unwrap();
    cloud.tick();
    b.click(selector).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = b
            .execute(
                "return document.readyState === 'complete' && !document.documentElement.dataset.left;",
                vec![],
            )
            .await;
        if left.is_ok_and(|v| v == json!(true)) {
            break;
        }
        assert!(Instant::now() < deadline, "{selector} led nowhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if b.wait_for(then).await.is_err() {
        panic!("after {selector}: no {then}: {}", b.source().await.unwrap());
    }
}

async fn set_checked(b: &Browser, selector: &str, on: bool) {
    let checked = b
        .execute(
            "return document.querySelector(arguments[0]).checked;",
            vec![json!(selector)],
        )
        .await
        .unwrap();
    if checked.as_bool() != Some(on) {
        b.click(selector).await.unwrap();
    }
}

async fn sign_in(b: &Browser, cloud: &Cloud, upn: &str, password: &str) {
    open(b, cloud, "/", "#username").await;
    b.type_into("#username", upn).await.unwrap();
    b.type_into("#password", password).await.unwrap();
    submit(b, cloud, "button[type=submit]", "#upn").await;
}

/// The line of `who` in the bulk assignment's results.
async fn result_of(b: &Browser, who: &str) -> String {
    b.text(&format!("#assign-results li[data-user=\"{who}\"]"))
        .await
        .unwrap_or_else(|_| panic!("no result for {who}"))
}

async fn binds(samba: &Samba, dn: &str, password: &str) -> bool {
    let mut c = Connection::connect(&ConnectOptions::new(
        samba.ldaps_url(),
        CaBundle::Pem(samba.ca_cert_pem().to_owned()),
    ))
    .await
    .expect("connect");
    c.simple_bind(dn, &SecretString::from(password.to_owned()))
        .await
        .is_ok()
}

#[tokio::test]
async fn the_seed_administrator_walkthrough_in_chromium_with_samba_and_the_agent() {
    let samba = Samba::shared();
    let cloud = Cloud::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(data.path()).await;
    let ou = samba.create_ou("adminPortal").unwrap();
    save_ad_connector(data.path(), samba, &ad_connector(samba, &[&ou]));
    let fay = samba
        .create_user(&ou, &uniq("fay"), "Portal7-Fay-Initial-9")
        .unwrap();
    engine.run_cycle(true).await.expect("full sync");
    drop(engine);
    assert!(
        cloud.find_user(&fay.login).await.is_some(),
        "{} synced",
        fay.login
    );
    let (ann, bob) = (cloud.upn("ann"), cloud.upn("bob"));
    cloud.user("ann", json!({"usageLocation": "NO"})).await;
    cloud.user("bob", json!({})).await;
    let pilots = cloud
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": "SSPR pilots"})),
        )
        .await
        .ok();
    let pilots = pilots["id"].as_str().unwrap().to_string();

    let mut b = Browser::start().await.expect("Chromium");
    b.keep_on_failure("portal_admin_walkthrough");
    let shots = screenshots_dir();

    // Sign in as the Global Administrator, open the admin portal.
    sign_in(&b, &cloud, &cloud.upn("admin"), common::ADMIN_PASSWORD).await;
    open(&b, &cloud, "/admin", "#admin-areas").await;
    assert_eq!(assert_clean(&b, "admin home").await, StatusCode::OK);

    // Licences: start the trial.
    submit(&b, &cloud, "#nav-licenses", "#start-trial").await;
    assert_clean(&b, "licences").await;
    submit(&b, &cloud, "#start-trial", "#admin-notice").await;
    assert_eq!(b.text("#admin-notice").await.unwrap(), "The trial started.");
    assert!(b.text("#skus").await.unwrap().contains("DIRBRIDGE_PREMIUM"));
    assert_clean(&b, "licences after the trial").await;
    b.save(&shots, "portal-admin-licenses").await.unwrap();

    // Mark ann and bob, assign: bob has no usage location.
    submit(&b, &cloud, "#assign-link", "#assign-form").await;
    assert_clean(&b, "assign").await;
    for who in [&ann, &bob] {
        set_checked(&b, &format!("#assign-users input[value=\"{who}\"]"), true).await;
    }
    submit(
        &b,
        &cloud,
        "#assign-form button[type=submit]",
        "#assign-results",
    )
    .await;
    assert_clean(&b, "assign results").await;
    assert!(
        result_of(&b, &bob).await.contains(INVALID_USAGE_LOCATION),
        "{}",
        b.source().await.unwrap()
    );
    assert!(result_of(&b, &ann)
        .await
        .contains("DIRBRIDGE_PREMIUM assigned."));
    b.save(&shots, "portal-admin-assign-results").await.unwrap();

    // Set bob's usage location right there, and assign again.
    let form = b
        .execute(
            "return document.querySelector(arguments[0]).closest('li').querySelector('form').id;",
            vec![json!(format!("#assign-results li[data-user=\"{bob}\"] a"))],
        )
        .await
        .unwrap();
    let form = form.as_str().unwrap().to_string();
    b.type_into(&format!("#{form}-value"), "SE").await.unwrap();
    submit(
        &b,
        &cloud,
        &format!("#{form} button[type=submit]"),
        "#assign-form",
    )
    .await;
    set_checked(&b, &format!("#assign-users input[value=\"{bob}\"]"), true).await;
    submit(
        &b,
        &cloud,
        "#assign-form button[type=submit]",
        "#assign-results",
    )
    .await;
    assert!(result_of(&b, &bob)
        .await
        .contains("DIRBRIDGE_PREMIUM assigned."));
    let licences = cloud.get(&format!("/api/v1/users/{bob}/licenses")).await;
    assert_eq!(licences[0]["skuId"], "DIRBRIDGE_PREMIUM", "{licences}");
    assert_eq!(cloud.find_user(&bob).await.unwrap()["usageLocation"], "SE");

    // The reset policy, on for a group, with writeback.
    submit(&b, &cloud, "#nav-policy", "#policy-form").await;
    assert_clean(&b, "policy").await;
    b.click("#scope-group").await.unwrap();
    b.click(&format!("#group-id option[value=\"{pilots}\"]"))
        .await
        .unwrap();
    set_checked(&b, "#method-email", true).await;
    set_checked(&b, "#writeback-enabled", true).await;
    submit(&b, &cloud, "#save-policy", "#admin-notice, #admin-error").await;
    assert_eq!(
        b.text("#admin-notice").await.unwrap_or_default(),
        "The policy was saved.",
        "{}",
        b.source().await.unwrap()
    );
    assert_clean(&b, "policy saved").await;
    let policy = cloud.get("/api/v1/policy").await["policy"].clone();
    assert_eq!(policy["enabledFor"], "group", "{policy}");
    assert_eq!(policy["groupId"], pilots.as_str(), "{policy}");
    assert_eq!(policy["writebackEnabled"], true, "{policy}");

    // The agent's side of writeback (`dirbridge agent writeback enable`): the trial is on now.
    agent::enable::enable(
        data.path(),
        None,
        &agent::enable::CloudAdmin {
            upn: cloud.upn("admin"),
            password: SecretString::from(common::ADMIN_PASSWORD.to_string()),
        },
    )
    .await
    .expect("writeback enable");

    let new_password = "Portal7-Fay-Reset-9";
    with_agent(data.path(), async {
        // On-premises: the agent healthy, writeback on and connected.
        let deadline = Instant::now() + PATIENCE;
        loop {
            open(&b, &cloud, "/admin/on-premises", "#agents").await;
            let row = b.text("#agents tbody tr").await.unwrap_or_default();
            if row.contains("healthy") && row.contains("on (corp), connected") {
                break;
            }
            assert!(Instant::now() < deadline, "the agent: {row}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(b
            .text("#writeback-status")
            .await
            .unwrap()
            .contains("is available"));
        assert_clean(&b, "on-premises").await;
        b.save(&shots, "portal-admin-on-premises").await.unwrap();

        // The synced users of the Samba AD.
        open(&b, &cloud, "/admin/users?source=onPremises", "#users").await;
        assert!(b.text("#users").await.unwrap().contains(&fay.login));
        assert_clean(&b, "synced users").await;

        // Reset fay's password from her page: written back by the agent.
        let link = format!("#users a[href=\"/admin/users/{}\"]", fay.login);
        submit(&b, &cloud, &link, "#reset-form").await;
        assert_eq!(
            b.text("#user-source").await.unwrap(),
            "Synced from the on-premises directory"
        );
        assert_clean(&b, "synced user").await;
        b.type_into("#new-password", new_password).await.unwrap();
        submit(&b, &cloud, "#reset-password", "#reset-result").await;
        assert_eq!(
            b.text("#reset-outcome").await.unwrap(),
            "succeeded",
            "{}",
            b.source().await.unwrap()
        );
        let tracking = b.text("#reset-tracking").await.unwrap();
        assert!(!tracking.is_empty());
        assert!(!b.current_url().await.unwrap().contains(new_password));
        assert_clean(&b, "reset result").await;
        b.save(&shots, "portal-admin-reset-result").await.unwrap();
        let audit = cloud
            .get(&format!("/api/v1/audit?trackingId={tracking}"))
            .await;
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == "writeback.adminReset" && r["result"] == "success"),
            "{audit}"
        );
    })
    .await;
    assert!(
        binds(samba, &fay.dn, new_password).await,
        "the new password binds on Samba"
    );
    assert!(!binds(samba, &fay.dn, "Portal7-Fay-Initial-9").await);

    // A Password Administrator: no licence or policy pages; their URLs answer 403 pages.
    cloud
        .admin_with_role("helpdesk", "passwordAdministrator")
        .await;
    submit(&b, &cloud, "form.signout button", "#username").await;
    sign_in(&b, &cloud, &cloud.upn("helpdesk"), "Sec0nd-Pass-word!").await;
    open(&b, &cloud, "/admin", "#admin-areas").await;
    assert_clean(&b, "password administrator's home").await;
    let nav = b.text(".admin-nav").await.unwrap();
    assert!(nav.contains("Users"), "{nav}");
    assert!(b.find("#nav-licenses").await.is_err(), "{nav}");
    assert!(b.find("#nav-policy").await.is_err(), "{nav}");
    for path in ["/admin/licenses", "/admin/licenses/assign", "/admin/policy"] {
        open(&b, &cloud, path, "h1").await;
        assert!(
            b.source()
                .await
                .unwrap()
                .contains("needs one of these roles"),
            "{path}"
        );
        assert_eq!(
            assert_clean(&b, path).await,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // A policy save sent anyway answers a 403 page and changes nothing.
    open(&b, &cloud, "/admin", "#admin-areas").await;
    cloud.tick();
    b.execute(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/admin/policy'; \
         const c = document.createElement('input'); c.name = 'csrf'; \
         c.value = document.querySelector('form.signout input[name=csrf]').value; f.append(c); \
         const s = document.createElement('input'); s.name = 'enabled_for'; s.value = 'all'; f.append(s); \
         document.body.append(f); f.submit();",
        vec![],
    )
    .await
    .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !b
        .source()
        .await
        .unwrap_or_default()
        .contains("needs one of these roles")
    {
        assert!(Instant::now() < deadline, "{}", b.source().await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cloud.get("/api/v1/policy").await["policy"]["enabledFor"],
        "group"
    );
    b.save(&shots, "portal-admin-403").await.unwrap();
}
