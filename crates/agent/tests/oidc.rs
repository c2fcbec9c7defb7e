//! Apps sign synced users in through the tenant's OpenID Connect provider with the on-premises
//! password, checked by pass-through by the real agent against a real Samba AD DC or OpenLDAP
//! slapd. The relying party is openid-client (panva), an independent implementation that
//! validates the tokens (testkit::oidc_rp); the AD user signs in and consents in Chromium.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{openldap_connector, save_openldap_connector, uniq, Cloud};
use dirbridge_agent as agent;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::oidc_rp::{Kind, RelyingParty};
use testkit::samba::Samba;
use testkit::slapd::Slapd;

const PATIENCE: Duration = Duration::from_secs(60);
const MARKER: &str = "Oidc7-mark";

fn password(tag: &str) -> String {
    format!("{MARKER}-{tag}-Pass-9")
}

async fn synced(cloud: &Cloud, upn: &str) {
    let deadline = Instant::now() + PATIENCE;
    while cloud.find_user(upn).await.is_none() {
        assert!(Instant::now() < deadline, "{upn} was never synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until an agent checks passwords (the API's sign-in stops answering 503).
async fn agent_connected(cloud: &Cloud, upn: &str, password: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        cloud.tick();
        let r = cloud
            .call(
                Method::POST,
                "/api/v1/auth/token",
                None,
                Some(json!({"userPrincipalName": upn, "password": password})),
            )
            .await;
        if r.status != StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            return;
        }
        assert!(Instant::now() < deadline, "no agent connected: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn with_agent(data: &Path, body: impl Future<Output = ()>) {
    let mut engine = agent::sync::Engine::open(data).await.expect("engine");
    agent::service::run(&mut engine, body).await.expect("agent");
}

/// Registers an app for `rp` and gives it the client: the app's registration.
async fn connect(cloud: &Cloud, rp: &mut RelyingParty, extra: Value) -> Value {
    let mut body = json!({
        "name": "Wiki",
        "redirectUris": [rp.redirect_uri()],
        "postLogoutRedirectUris": [rp.post_logout_uri()],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = cloud.admin(Method::POST, "/api/v1/apps", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let app = r.body;
    rp.configure(
        app["issuer"].as_str().unwrap(),
        app["app"]["id"].as_str().unwrap(),
        app["clientSecret"].as_str(),
        None,
    )
    .await
    .expect("the relying party's discovery");
    app
}

/// `upn` signs in to a new app with relying party `kind`, the browser's part played by the
/// test's user agent (cookies, redirects, the forms): what the relying party validated.
async fn sign_in_with(cloud: &Cloud, kind: Kind, upn: &str, password: &str) -> Value {
    let mut rp = RelyingParty::start_kind(kind).await.expect("relying party");
    connect(cloud, &mut rp, json!({"skipConsent": true})).await;
    let mut ua = testkit::oidc_rp::Ua::new(&cloud.base);
    let login = ua.get(&format!("{}/login", rp.base)).await;
    let authorize = ua.get(login.location.as_deref().unwrap()).await;
    cloud.tick();
    let callback = ua.drive(authorize, upn, password, "allow").await;
    assert!(
        callback.starts_with(&rp.redirect_uri()),
        "{kind:?}: {callback}"
    );
    let page = reqwest::get(&callback).await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"result\""), "{kind:?}: {page}");
    rp.result().await.unwrap()
}

#[tokio::test]
async fn a_synced_ad_user_signs_in_to_an_app_with_openid_client_in_chromium() {
    let samba = Samba::shared();
    let cloud = Cloud::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(data.path()).await;
    let ou = samba.create_ou("oidcSignIn").unwrap();
    common::save_ad_connector(data.path(), samba, &common::ad_connector(samba, &[&ou]));
    let login = uniq("oidc");
    let ann = samba.create_user(&ou, &login, &password("ann")).unwrap();
    // Nested on-prem groups: the groups claim resolves them.
    let (inner_name, outer_name) = (uniq("wikiEd"), uniq("staff"));
    let inner = samba.create_group(&ou, &inner_name).unwrap();
    let outer = samba.create_group(&ou, &outer_name).unwrap();
    samba.add_member(&inner, &ann.dn).unwrap();
    samba.add_member(&outer, &inner).unwrap();
    engine.run_cycle(true).await.expect("full sync");
    drop(engine);
    synced(&cloud, &ann.login).await;
    let mut groups = Vec::new();
    for name in [&inner_name, &outer_name] {
        let g = cloud
            .group(name)
            .await
            .unwrap_or_else(|| panic!("{name} not synced"));
        groups.push(g["displayName"].as_str().unwrap().to_string());
    }
    groups.sort();

    with_agent(data.path(), async {
        agent_connected(&cloud, &ann.login, &ann.password).await;
        let mut rp = RelyingParty::start().await.expect("relying party");
        connect(&cloud, &mut rp, json!({})).await;

        let mut b = testkit::browser::Browser::start().await.expect("Chromium");
        b.keep_on_failure("oidc_synced_ad_user");
        b.goto(&format!("{}/login", rp.base)).await.unwrap();
        b.wait_for("#username").await.unwrap();
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
        b.wait_for("#consent-allow").await.unwrap();
        cloud.tick();
        b.click("#consent-allow").await.unwrap();
        if b.wait_for("#result").await.is_err() {
            panic!("no result: {}", b.source().await.unwrap());
        }
        let r: Value = serde_json::from_str(&b.text("#result").await.unwrap()).unwrap();
        let user = cloud.find_user(&ann.login).await.unwrap();
        assert_eq!(r["claims"]["sub"], user["id"]);
        assert_eq!(r["claims"]["preferred_username"], ann.login.as_str());
        assert_eq!(r["claims"]["groups"], json!(groups));
        assert_eq!(r["userinfo"]["sub"], user["id"]);
        assert_eq!(r["rotated"], true);
        assert_eq!(r["replay"], "invalid_grant");

        // The second, independent relying party (Authlib) validates the same user's tokens.
        let r = sign_in_with(&cloud, Kind::Authlib, &ann.login, &ann.password).await;
        assert_eq!(r["claims"]["sub"], user["id"]);
        assert_eq!(r["claims"]["groups"], json!(groups));
        assert_eq!(r["replay"], "invalid_grant");
    })
    .await;
}

#[tokio::test]
async fn a_synced_openldap_user_signs_in_to_an_app_with_the_directory_password() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut engine = cloud.agent(data.path()).await;
    let ou = slapd.create_ou("oidcSignInOl").unwrap();
    save_openldap_connector(data.path(), slapd, &openldap_connector(slapd, &[&ou]));
    let uid = uniq("oidc");
    slapd.create_user(&ou, &uid, &password("eve")).unwrap();
    let upn = format!("{uid}@dirbridge.test");
    engine.run_cycle(true).await.expect("full sync");
    drop(engine);
    synced(&cloud, &upn).await;

    with_agent(data.path(), async {
        agent_connected(&cloud, &upn, &password("eve")).await;
        let user = cloud.find_user(&upn).await.unwrap();
        for kind in Kind::ALL {
            let r = sign_in_with(&cloud, kind, &upn, &password("eve")).await;
            assert_eq!(r["claims"]["sub"], user["id"], "{kind:?}");
            assert_eq!(
                r["userinfo"]["preferred_username"],
                upn.as_str(),
                "{kind:?}"
            );
            assert_eq!(r["activeAfterRevocation"], false, "{kind:?}");
        }
    })
    .await;

    // No password in anything the cloud or the agent wrote.
    for dir in [cloud.dir(), data.path()] {
        for entry in walk(dir) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                "a password in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
