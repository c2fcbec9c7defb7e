//! The provider driven by two independent relying parties — openid-client (panva, in
//! `tools/web-check/oidc-rp.mjs`) and Authlib (Python, in `tools/oidc-rp/authlib_rp.py`) —
//! with the user signing in and consenting in Chromium:
//! discovery, code + PKCE, the ID token's validation (signature, iss, aud, exp, iat, nonce,
//! at_hash), userinfo, refresh rotation and replay, introspection, revocation, logout.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;
mod oidc_support;

use common::Cloud;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::browser::Browser;
use testkit::oidc_rp::{Kind, RelyingParty};

const PASSWORD: &str = "Rp-Pass-w0rd!";

/// The provider's clock at real time: the relying party checks `iat` and `exp` against its own.
async fn cloud_now() -> Cloud {
    let mut cloud = Cloud::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    cloud.set_time(now).await;
    cloud
}

async fn register(cloud: &Cloud, rp: &RelyingParty, extra: Value) -> Value {
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
    r.body
}

/// axe-core on the page as the browser shows it (the markup as sent is checked by
/// tests/oidc.rs `pages_are_valid_html`).
async fn assert_clean(b: &Browser, what: &str) {
    let a11y = b.axe_violations().await.expect("axe-core");
    assert!(a11y.is_empty(), "{what}: axe-core:\n{}", a11y.join("\n"));
}

#[tokio::test]
async fn openid_client_signs_a_cloud_user_in_through_chromium_and_validates_the_tokens() {
    signs_a_cloud_user_in_through_chromium(Kind::OpenIdClient).await;
}

#[tokio::test]
async fn authlib_signs_a_cloud_user_in_through_chromium_and_validates_the_tokens() {
    signs_a_cloud_user_in_through_chromium(Kind::Authlib).await;
}

async fn signs_a_cloud_user_in_through_chromium(kind: Kind) {
    let cloud = cloud_now().await;
    let user = cloud
        .user("ada", json!({"password": PASSWORD, "mail": "ada@contoso.example", "displayName": "Ada Lovelace"}))
        .await;
    let g = cloud
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": "Wiki Editors"})),
        )
        .await
        .ok();
    cloud
        .admin(
            Method::POST,
            &format!("/api/v1/groups/{}/members", g["id"].as_str().unwrap()),
            Some(json!({"kind": "user", "id": user["id"]})),
        )
        .await
        .ok();
    let mut rp = RelyingParty::start_kind(kind)
        .await
        .expect("start the relying party");
    let app = register(&cloud, &rp, json!({})).await;
    rp.configure(
        app["issuer"].as_str().unwrap(),
        app["app"]["id"].as_str().unwrap(),
        app["clientSecret"].as_str(),
        None,
    )
    .await
    .expect("the relying party's discovery");

    let mut b = Browser::start().await.expect("start Chromium");
    b.keep_on_failure(&format!("oidc_rp_cloud_user_{kind:?}"));
    b.goto(&format!("{}/login", rp.base)).await.unwrap();
    b.wait_for("#username").await.unwrap();
    assert!(b.text("#signin-app").await.unwrap().contains("Wiki"));
    assert_clean(&b, "app sign-in page").await;
    b.type_into("#username", &cloud.upn("ada")).await.unwrap();
    b.type_into("#password", PASSWORD).await.unwrap();
    b.click("button[type=submit]").await.unwrap();
    b.wait_for("#consent-allow").await.unwrap();
    assert_clean(&b, "consent page").await;
    let scopes = b.text("#consent-scopes").await.unwrap();
    assert!(scopes.contains("Your email address"), "{scopes}");
    b.click("#consent-allow").await.unwrap();
    let result = b.wait_for("#result").await.map(|_| ());
    if result.is_err() {
        panic!("no result: {}", b.source().await.unwrap());
    }
    let r: Value = serde_json::from_str(&b.text("#result").await.unwrap()).unwrap();
    assert_eq!(r["claims"]["sub"], user["id"]);
    assert_eq!(r["claims"]["email"], "ada@contoso.example");
    assert_eq!(r["claims"]["groups"], json!(["Wiki Editors"]));
    assert_eq!(r["header"]["alg"], "ES256");
    assert_eq!(r["userinfo"]["preferred_username"], cloud.upn("ada"));
    assert_eq!(r["userinfo"]["name"], "Ada Lovelace");
    assert_eq!(r["refreshedSub"], user["id"]);
    assert_eq!(r["rotated"], true);
    assert_eq!(r["replay"], "invalid_grant");
    assert_eq!(r["introspectedActive"], true);
    assert_eq!(r["activeAfterRevocation"], false);

    // RP-initiated logout: confirmed on the provider's page, back at the app with its state.
    b.goto(&format!("{}/logout", rp.base)).await.unwrap();
    b.wait_for("#logout-confirm").await.unwrap();
    assert_clean(&b, "logout page").await;
    b.click("#logout-confirm").await.unwrap();
    b.wait_for("#signed-out").await.unwrap();
    assert_eq!(b.text("#signed-out").await.unwrap(), "rp-logout");
    // Signed out of the provider too: the next sign-in asks for the password.
    b.goto(&format!("{}/login", rp.base)).await.unwrap();
    b.wait_for("#username").await.unwrap();
}

#[tokio::test]
async fn openid_client_as_a_public_client_with_rs256_tokens() {
    public_client_with_rs256_tokens(Kind::OpenIdClient).await;
}

#[tokio::test]
async fn authlib_as_a_public_client_with_rs256_tokens() {
    public_client_with_rs256_tokens(Kind::Authlib).await;
}

async fn public_client_with_rs256_tokens(kind: Kind) {
    let cloud = cloud_now().await;
    let user = cloud.user("bob", json!({"password": PASSWORD})).await;
    let mut rp = RelyingParty::start_kind(kind)
        .await
        .expect("start the relying party");
    let app = register(
        &cloud,
        &rp,
        json!({"clientType": "public", "idTokenSigningAlg": "RS256", "skipConsent": true}),
    )
    .await;
    assert!(app.get("clientSecret").is_none());
    rp.configure(
        app["issuer"].as_str().unwrap(),
        app["app"]["id"].as_str().unwrap(),
        None,
        Some("openid profile offline_access"),
    )
    .await
    .unwrap();
    // The browser's part without a browser: the test's user agent follows the redirects.
    let mut ua = oidc_support::Ua::new(&cloud.base);
    let login = ua.get(&format!("{}/login", rp.base)).await;
    let authorize = ua.get(login.location.as_deref().unwrap()).await;
    let callback = ua
        .drive(authorize, &cloud.upn("bob"), PASSWORD, "allow")
        .await;
    assert!(callback.starts_with(&rp.redirect_uri()), "{callback}");
    let page = reqwest::get(&callback).await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"result\""), "{page}");
    let r = rp.result().await.unwrap();
    assert_eq!(r["header"]["alg"], "RS256");
    assert_eq!(r["claims"]["sub"], user["id"]);
    assert_eq!(r["rotated"], true);
    let keys = reqwest::get(format!("{}/oauth2/jwks", app["issuer"].as_str().unwrap()))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let algs: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(algs.contains(&"RS256"), "{algs:?}");
}
