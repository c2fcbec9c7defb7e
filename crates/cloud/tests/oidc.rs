//! The tenant's OpenID Connect provider over HTTP: app registrations, discovery and keys, the
//! authorization code flow with PKCE through the portal's sign-in and consent pages, tokens,
//! userinfo, refresh rotation, revocation, introspection, logout, and the refusals the specs
//! require (each with its error code). The independent client (openid-client) and the browser
//! are in tests/oidc_rp.rs.

mod common;
mod oidc_support;

use common::Cloud;
use dirbridge_cloud as cloud;
use oidc_support::{field, pkce, query, Ua, REDIRECT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "Oidc-Pass-w0rd!";

struct Registered {
    id: String,
    secret: Option<String>,
    issuer: String,
}

async fn register(cloud: &Cloud, body: Value) -> Registered {
    let r = cloud.admin(Method::POST, "/api/v1/apps", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    Registered {
        id: r.body["app"]["id"].as_str().unwrap().to_string(),
        secret: r.body["clientSecret"].as_str().map(String::from),
        issuer: r.body["issuer"].as_str().unwrap().to_string(),
    }
}

async fn confidential(cloud: &Cloud, extra: Value) -> Registered {
    let mut body = json!({
        "name": "Grafana",
        "redirectUris": [REDIRECT],
        "postLogoutRedirectUris": ["http://127.0.0.1:9/signed-out"],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    register(cloud, body).await
}

fn authorize_url(
    cloud: &Cloud,
    app: &str,
    challenge: Option<&str>,
    extra: &[(&str, &str)],
) -> String {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", app),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email groups offline_access"),
        ("state", "st-1"),
        ("nonce", "n-1"),
    ];
    if let Some(c) = challenge {
        q.push(("code_challenge", c));
        q.push(("code_challenge_method", "S256"));
    }
    q.extend_from_slice(extra);
    format!(
        "{}/t/{}/oauth2/authorize?{}",
        cloud.base,
        cloud.domain,
        serde_urlencoded::to_string(&q).unwrap()
    )
}

/// Signs `upn` in through the pages and consents: the code (and the state sent back).
async fn code_for(
    cloud: &Cloud,
    ua: &mut Ua,
    app: &str,
    challenge: Option<&str>,
    upn: &str,
) -> String {
    let got = ua.get(&authorize_url(cloud, app, challenge, &[])).await;
    let back = ua.drive(got, upn, PASSWORD, "allow").await;
    assert!(back.starts_with(REDIRECT), "{back}");
    let q = query(&back);
    assert_eq!(q.get("state").map(String::as_str), Some("st-1"), "{back}");
    q.get("code")
        .unwrap_or_else(|| panic!("no code: {back}"))
        .clone()
}

async fn token(
    cloud: &Cloud,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/t/{}/oauth2/token", cloud.base, cloud.domain))
        .form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    (r.status(), r.json().await.unwrap())
}

async fn redeem(
    cloud: &Cloud,
    app: &Registered,
    code: &str,
    verifier: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    token(
        cloud,
        &form,
        Some((&app.id, app.secret.as_deref().unwrap())),
    )
    .await
}

async fn userinfo(cloud: &Cloud, domain: &str, access: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}/t/{domain}/oauth2/userinfo", cloud.base))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn jwks(cloud: &Cloud) -> Vec<Value> {
    let r = reqwest::get(format!("{}/t/{}/oauth2/jwks", cloud.base, cloud.domain))
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["keys"]
        .as_array()
        .unwrap()
        .clone()
}

fn claims_of(jwt: &str) -> Value {
    use base64::Engine as _;
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

async fn ada(cloud: &Cloud) -> (String, String) {
    let u = cloud
        .user(
            "ada",
            json!({"password": PASSWORD, "mail": "ada@contoso.example", "givenName": "Ada"}),
        )
        .await;
    (u["id"].as_str().unwrap().to_string(), cloud.upn("ada"))
}

#[tokio::test]
async fn apps_are_registered_by_global_admins_and_the_secret_is_shown_once() {
    let cloud = Cloud::start().await;
    let app = confidential(&cloud, json!({"allowedScopes": ["profile"]})).await;
    let secret = app.secret.clone().unwrap();
    assert!(secret.starts_with("dbs_"), "{secret}");
    assert_eq!(app.issuer, format!("{}/t/{}", cloud.base, cloud.domain));

    let got = cloud.get(&format!("/api/v1/apps/{}", app.id)).await;
    assert_eq!(got["allowedScopes"], json!(["openid", "profile"]));
    assert_eq!(got["clientType"], "confidential");
    assert_eq!(got["secrets"].as_array().unwrap().len(), 1);
    assert!(!got.to_string().contains(&secret));
    let list = cloud.get("/api/v1/apps").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&secret));

    let patched = cloud
        .admin(
            Method::PATCH,
            &format!("/api/v1/apps/{}", app.id),
            Some(json!({"skipConsent": true, "accessTokenLifetimeSecs": 600})),
        )
        .await
        .ok();
    assert_eq!(patched["skipConsent"], true);
    assert_eq!(patched["accessTokenLifetimeSecs"], 600);

    for bad in [
        json!({"name": "x", "redirectUris": ["http://grafana.contoso.com/cb"]}),
        json!({"name": "x", "redirectUris": ["https://a/cb#f"]}),
        json!({"name": "x", "redirectUris": []}),
        json!({"name": "x", "redirectUris": ["https://a/cb"], "allowedScopes": ["admin"]}),
        json!({"name": "x", "redirectUris": ["https://a/cb"], "accessGroupId": "no-such-group"}),
    ] {
        let r = cloud
            .admin(Method::POST, "/api/v1/apps", Some(bad.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }

    // A second secret for rolling over; the first one removed.
    let r = cloud
        .admin(
            Method::POST,
            &format!("/api/v1/apps/{}/secrets", app.id),
            None,
        )
        .await
        .ok();
    assert!(r["clientSecret"].as_str().unwrap().starts_with("dbs_"));
    let first = got["secrets"][0]["id"].as_str().unwrap();
    let r = cloud
        .admin(
            Method::DELETE,
            &format!("/api/v1/apps/{}/secrets/{first}", app.id),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // A public app has no secret.
    let public = register(
        &cloud,
        json!({"name": "SPA", "clientType": "public", "redirectUris": ["com.contoso.app:/cb"]}),
    )
    .await;
    assert!(public.secret.is_none());

    // Only a Global Administrator manages apps.
    let user_admin = cloud.admin_with_role("uadmin", "userAdministrator").await;
    let r = cloud
        .call(Method::GET, "/api/v1/apps", Some(&user_admin), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = cloud
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(&user_admin),
            Some(json!({"name": "x", "redirectUris": ["https://a/cb"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let audit = cloud.get("/api/v1/audit").await.to_string();
    for action in [
        "app.create",
        "app.update",
        "app.addSecret",
        "app.removeSecret",
    ] {
        assert!(audit.contains(action), "{action}");
    }
    let r = cloud
        .admin(Method::DELETE, &format!("/api/v1/apps/{}", app.id), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = cloud
        .admin(Method::GET, &format!("/api/v1/apps/{}", app.id), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // No client secret is in the database files in clear.
    cloud.store.close().await;
    for entry in std::fs::read_dir(cloud.data_dir()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}

#[tokio::test]
async fn discovery_publishes_the_endpoints_and_rotated_keys_until_their_tokens_expire() {
    let mut cloud = Cloud::start().await;
    let iss = format!("{}/t/{}", cloud.base, cloud.domain);
    let d: Value = reqwest::get(format!("{iss}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], iss);
    assert_eq!(d["jwks_uri"], format!("{iss}/oauth2/jwks"));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        json!(["ES256", "RS256"])
    );
    let r = reqwest::get(format!(
        "{}/t/nowhere.example/.well-known/openid-configuration",
        cloud.base
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The first key is made on first use, sealed at rest, under a key file only the owner reads.
    let first = jwks(&cloud).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["alg"], "ES256");
    assert!(first[0].get("d").is_none());
    let tenant = cloud
        .store
        .get_tenant_by_domain(&cloud.domain)
        .await
        .unwrap()
        .unwrap();
    let stored = cloud.store.list_signing_keys(&tenant.id).await.unwrap();
    assert!(stored[0].sealed_private.starts_with("v1."));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cloud.data_dir().join("oidc-kek"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let rotated = cloud
        .admin(Method::POST, "/api/v1/apps/keys/rotate", None)
        .await
        .ok();
    let new_kid = rotated["keyIds"][0].as_str().unwrap().to_string();
    let both = jwks(&cloud).await;
    assert_eq!(both.len(), 2, "{both:?}");
    // Tokens are signed with the new key now.
    let app = confidential(&cloud, json!({"skipConsent": true})).await;
    ada(&cloud).await;
    let mut ua = Ua::new(&cloud.base);
    let code = code_for(&cloud, &mut ua, &app.id, None, &cloud.upn("ada")).await;
    let (_, t) = redeem(&cloud, &app, &code, None).await;
    let header: Value = {
        use base64::Engine as _;
        let h = t["id_token"].as_str().unwrap().split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header["kid"], new_kid.as_str());
    assert_eq!(header["alg"], "ES256");

    // A day later no token of the old key can be valid: it is no longer published.
    cloud
        .set_time(common::START + tenant::oidc::MAX_TOKEN_SECS + 1)
        .await;
    let after = jwks(&cloud).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["kid"], new_kid.as_str());
}

#[tokio::test]
async fn code_flow_with_pkce_gives_tokens_claims_userinfo_and_rotating_refresh_tokens() {
    code_flow(Cloud::start().await).await;
}

/// The same flow on PostgreSQL: apps, keys, codes and tokens live in the store.
#[tokio::test]
async fn code_flow_on_postgres() {
    code_flow(Cloud::start_postgres().await).await;
}

async fn code_flow(cloud: Cloud) {
    let (ada_id, upn) = ada(&cloud).await;
    let g = cloud
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": "Staff"})),
        )
        .await
        .ok();
    let outer = cloud
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": "Everyone"})),
        )
        .await
        .ok();
    let (gid, oid) = (g["id"].as_str().unwrap(), outer["id"].as_str().unwrap());
    cloud
        .admin(
            Method::POST,
            &format!("/api/v1/groups/{gid}/members"),
            Some(json!({"kind": "user", "id": ada_id})),
        )
        .await
        .ok();
    cloud
        .admin(
            Method::POST,
            &format!("/api/v1/groups/{oid}/members"),
            Some(json!({"kind": "group", "id": gid})),
        )
        .await
        .ok();
    let app = confidential(&cloud, json!({"accessGroupId": oid})).await;

    let (verifier, challenge) = pkce();
    let mut ua = Ua::new(&cloud.base);
    // Not signed in: the sign-in page, naming the app, with the portal's headers and the app's
    // origin allowed as a form target (the browser is sent there after the POST).
    let got = ua
        .get(&authorize_url(&cloud, &app.id, Some(&challenge), &[]))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.html.contains("Grafana"), "{}", got.html);
    let csp = got.csp.clone().unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9;"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    let back = ua.drive(got, &upn, PASSWORD, "allow").await;
    let q = query(&back);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], format!("{}/t/{}", cloud.base, cloud.domain));
    let code = q["code"].clone();
    assert!(code.starts_with("dbc_"));

    let (status, t) = redeem(&cloud, &app, &code, Some(&verifier)).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    let id = claims_of(t["id_token"].as_str().unwrap());
    let keys = jwks(&cloud).await;
    assert_eq!(
        tenant::oidc::keys::verify_jwt(&keys, t["id_token"].as_str().unwrap()),
        Some(id.clone())
    );
    assert_eq!(id["iss"], format!("{}/t/{}", cloud.base, cloud.domain));
    assert_eq!(id["aud"], app.id.as_str());
    assert_eq!(id["sub"], ada_id.as_str());
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["exp"], common::START + 3600);
    assert_eq!(id["email"], "ada@contoso.example");
    assert_eq!(id["groups"], json!(["Everyone", "Staff"]));

    let access = t["access_token"].as_str().unwrap();
    let (s, info) = userinfo(&cloud, &cloud.domain, access).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(info["preferred_username"], upn.as_str());
    assert_eq!(info["given_name"], "Ada");

    // Refresh: a new pair; the old refresh token is spent, and replaying it ends the grant.
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let secret = app.secret.clone().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let (s, t2) = token(&cloud, &form, Some((&app.id, &secret))).await;
    assert_eq!(s, StatusCode::OK, "{t2}");
    assert_ne!(t2["refresh_token"], t["refresh_token"]);
    let (s, e) = token(&cloud, &form, Some((&app.id, &secret))).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (s, _) = userinfo(&cloud, &cloud.domain, t2["access_token"].as_str().unwrap()).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a replayed refresh token revokes the whole grant"
    );
    let audit = cloud
        .get("/api/v1/audit?action=app.tokenReplay")
        .await
        .to_string();
    assert!(audit.contains("refresh token"), "{audit}");

    // A second sign-in from the same browser needs no password and no consent.
    let got = ua.get(&authorize_url(&cloud, &app.id, None, &[])).await;
    let back = got.location.clone().expect("straight back to the app");
    let code = query(&back)["code"].clone();
    // client_secret_post works as well as Basic.
    let (s, t3) = token(
        &cloud,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &app.id),
            ("client_secret", &secret),
        ],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t3}");

    // Introspection (own tokens only) and revocation.
    let intro = |token: String| {
        let (cloud_base, domain, id, secret) = (
            cloud.base.clone(),
            cloud.domain.clone(),
            app.id.clone(),
            secret.clone(),
        );
        async move {
            reqwest::Client::new()
                .post(format!("{cloud_base}/t/{domain}/oauth2/introspect"))
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let a3 = t3["access_token"].as_str().unwrap().to_string();
    let i = intro(a3.clone()).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], ada_id.as_str());
    let r = reqwest::Client::new()
        .post(format!("{}/t/{}/oauth2/revoke", cloud.base, cloud.domain))
        .basic_auth(&app.id, Some(&secret))
        .form(&[("token", t3["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        intro(a3.clone()).await["active"],
        false,
        "revoking the refresh token ends the grant"
    );
    assert_eq!(intro("dboa_unknown".into()).await["active"], false);

    let audit = cloud
        .get("/api/v1/audit?action=app.signIn")
        .await
        .to_string();
    assert!(audit.contains("Grafana"), "{audit}");
}

#[tokio::test]
async fn refusals_are_the_ones_the_specs_name() {
    let mut cloud = Cloud::start().await;
    let (_, upn) = ada(&cloud).await;
    let app = confidential(&cloud, json!({"skipConsent": true})).await;
    let secret = app.secret.clone().unwrap();
    let mut ua = Ua::new(&cloud.base);

    // Unregistered redirect URI (or unknown client): a page, never a redirect.
    for url in [
        authorize_url(&cloud, &app.id, None, &[]).replace("callback", "callback2"),
        authorize_url(&cloud, "no-such-client", None, &[]),
    ] {
        let got = ua.get(&url).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST);
        assert!(got.location.is_none());
        assert!(got.html.contains("Support code"), "{}", got.html);
    }
    // Other errors go back to the registered URI.
    let got = ua
        .get(
            &authorize_url(&cloud, &app.id, None, &[("response_type", "token")])
                .replace("response_type=code&", ""),
        )
        .await;
    let q = query(got.location.as_deref().unwrap());
    assert_eq!(q["error"], "unsupported_response_type");
    assert_eq!(q["state"], "st-1");
    let got = ua
        .get(&authorize_url(&cloud, &app.id, None, &[("prompt", "none")]))
        .await;
    assert_eq!(
        query(got.location.as_deref().unwrap())["error"],
        "login_required"
    );

    // Wrong client secret; unknown client.
    let (verifier, challenge) = pkce();
    let code = code_for(&cloud, &mut ua, &app.id, Some(&challenge), &upn).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (s, e) = token(&cloud, &form, Some((&app.id, "dbs_wrong"))).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (s, e) = token(&cloud, &form, Some(("nobody", &secret))).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    // PKCE mismatch: refused, and the code is spent.
    let (_, other_challenge) = pkce();
    let code = code_for(&cloud, &mut ua, &app.id, Some(&other_challenge), &upn).await;
    let (s, e) = redeem(&cloud, &app, &code, Some(&verifier)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{e}"
    );
    // A verifier without a challenge is refused too.
    let code = code_for(&cloud, &mut ua, &app.id, None, &upn).await;
    let (s, e) = redeem(&cloud, &app, &code, Some(&verifier)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Wrong redirect_uri at the token endpoint.
    let code = code_for(&cloud, &mut ua, &app.id, None, &upn).await;
    let (s, e) = token(
        &cloud,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
        ],
        Some((&app.id, &secret)),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Reused code: refused, and what its first use gave is revoked.
    let code = code_for(&cloud, &mut ua, &app.id, None, &upn).await;
    let (s, t) = redeem(&cloud, &app, &code, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = redeem(&cloud, &app, &code, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (s, _) = userinfo(&cloud, &cloud.domain, t["access_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Expired code: the clock moves past its lifetime (60 s).
    let code = code_for(&cloud, &mut ua, &app.id, None, &upn).await;
    cloud.set_time(common::START + 61).await;
    let (s, e) = redeem(&cloud, &app, &code, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(
        e["error_description"].as_str().unwrap().contains("expired"),
        "{e}"
    );

    // Public clients must use PKCE.
    let public = register(&cloud, json!({"name": "SPA", "clientType": "public", "redirectUris": [REDIRECT], "skipConsent": true})).await;
    let got = ua.get(&authorize_url(&cloud, &public.id, None, &[])).await;
    assert_eq!(
        query(got.location.as_deref().unwrap())["error"],
        "invalid_request"
    );
    let (verifier, challenge) = pkce();
    let code = code_for(&cloud, &mut ua, &public.id, Some(&challenge), &upn).await;
    let (s, t) = token(
        &cloud,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &public.id),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");

    // A token of another tenant: not valid here.
    let other = cloud::bootstrap::create_tenant(
        &cloud.store,
        &tenant::clock::ManualClock::new(common::START),
        &cloud::config::Config::default().domain_suffix,
        "fabrikam",
        "admin",
        common::ADMIN_PASSWORD,
    )
    .await
    .unwrap();
    let (s, _) = userinfo(
        &cloud,
        &other.tenant.initial_domain,
        t["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = userinfo(&cloud, &cloud.domain, t["access_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    // The other tenant's sign-in does not take this tenant's users.
    let fab = format!(
        "{}/t/{}/oauth2/authorize",
        cloud.base, other.tenant.initial_domain
    );
    let got = ua
        .get(&format!(
            "{fab}?client_id={}&redirect_uri={REDIRECT}&response_type=code&scope=openid",
            app.id
        ))
        .await;
    assert_eq!(
        got.status,
        StatusCode::BAD_REQUEST,
        "the app is not registered there"
    );
}

#[tokio::test]
async fn password_reset_and_disabling_end_the_apps_sessions() {
    let cloud = Cloud::start().await;
    let (ada_id, upn) = ada(&cloud).await;
    let app = confidential(&cloud, json!({"skipConsent": true})).await;
    let secret = app.secret.clone().unwrap();
    let mut ua = Ua::new(&cloud.base);
    let code = code_for(&cloud, &mut ua, &app.id, None, &upn).await;
    let (_, t) = redeem(&cloud, &app, &code, None).await;
    let refresh = t["refresh_token"].as_str().unwrap().to_string();

    cloud
        .admin(
            Method::POST,
            &format!("/api/v1/users/{ada_id}/password"),
            Some(json!({"password": "N3w-Oidc-Pass-word!"})),
        )
        .await
        .ok();
    let (s, e) = token(
        &cloud,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        Some((&app.id, &secret)),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{e}"
    );
    let (s, _) = userinfo(&cloud, &cloud.domain, t["access_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Disabled: tokens issued before stop working at once.
    let mut ua = Ua::new(&cloud.base);
    let got = ua.get(&authorize_url(&cloud, &app.id, None, &[])).await;
    let back = ua.drive(got, &upn, "N3w-Oidc-Pass-word!", "allow").await;
    let (_, t) = redeem(&cloud, &app, &query(&back)["code"], None).await;
    cloud
        .admin(
            Method::PATCH,
            &format!("/api/v1/users/{ada_id}"),
            Some(json!({"accountEnabled": false})),
        )
        .await
        .ok();
    let (s, _) = userinfo(&cloud, &cloud.domain, t["access_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Enabled again: what was issued before stays revoked.
    cloud
        .admin(
            Method::PATCH,
            &format!("/api/v1/users/{ada_id}"),
            Some(json!({"accountEnabled": true})),
        )
        .await
        .ok();
    let (s, _) = userinfo(&cloud, &cloud.domain, t["access_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, e) = token(
        &cloud,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
        Some((&app.id, &secret)),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn prompt_max_age_consent_group_access_and_logout_behave_as_specified() {
    let mut cloud = Cloud::start().await;
    let (_, upn) = ada(&cloud).await;
    let g = cloud
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": "Pilots"})),
        )
        .await
        .ok();
    let locked = confidential(
        &cloud,
        json!({"name": "Pilots only", "accessGroupId": g["id"]}),
    )
    .await;
    let app = confidential(&cloud, json!({})).await;
    let mut ua = Ua::new(&cloud.base);

    // Consent refused: access_denied to the app.
    let got = ua.get(&authorize_url(&cloud, &app.id, None, &[])).await;
    let back = ua.drive(got, &upn, PASSWORD, "deny").await;
    assert_eq!(query(&back)["error"], "access_denied");
    // Consent given once is remembered; prompt=consent asks again; prompt=none cannot.
    let got = ua.get(&authorize_url(&cloud, &app.id, None, &[])).await;
    assert!(got.html.contains("consent-allow"), "{}", got.html);
    let back = ua.drive(got, &upn, PASSWORD, "allow").await;
    assert!(query(&back).contains_key("code"));
    let got = ua.get(&authorize_url(&cloud, &app.id, None, &[])).await;
    assert!(query(got.location.as_deref().unwrap()).contains_key("code"));
    let got = ua
        .get(&authorize_url(
            &cloud,
            &app.id,
            None,
            &[("prompt", "consent")],
        ))
        .await;
    assert!(got.html.contains("consent-allow"));
    let got = ua
        .get(
            &authorize_url(&cloud, &app.id, None, &[("scope", "openid")])
                .replace("scope=openid+profile+email+groups+offline_access&", ""),
        )
        .await;
    assert!(
        query(got.location.as_deref().unwrap()).contains_key("code"),
        "a narrower request is covered"
    );

    // prompt=login and max_age ask for the password again.
    let got = ua
        .get(&authorize_url(
            &cloud,
            &app.id,
            None,
            &[("prompt", "login")],
        ))
        .await;
    assert!(got.html.contains("oauth2/signin"), "{}", got.html);
    cloud.set_time(common::START + 120).await;
    let got = ua
        .get(&authorize_url(&cloud, &app.id, None, &[("max_age", "60")]))
        .await;
    assert!(got.html.contains("oauth2/signin"));
    let back = ua.drive(got, &upn, PASSWORD, "allow").await;
    let code = query(&back)["code"].clone();
    let (_, t) = redeem(&cloud, &app, &code, None).await;
    assert_eq!(
        claims_of(t["id_token"].as_str().unwrap())["auth_time"],
        common::START + 120
    );

    // Not in the app's group: access_denied, audited.
    let got = ua.get(&authorize_url(&cloud, &locked.id, None, &[])).await;
    assert_eq!(
        query(got.location.as_deref().unwrap())["error"],
        "access_denied"
    );
    let audit = cloud
        .get("/api/v1/audit?action=app.signIn")
        .await
        .to_string();
    assert!(audit.contains("access_denied"), "{audit}");

    // RP-initiated logout: confirmed with a form, then back to the registered address.
    let logout = format!(
        "{}/t/{}/oauth2/logout?id_token_hint={}&post_logout_redirect_uri=http://127.0.0.1:9/signed-out&state=bye",
        cloud.base, cloud.domain, t["id_token"].as_str().unwrap()
    );
    let bad = ua.get(&logout.replace("signed-out", "elsewhere")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let page = ua.get(&logout).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let forged = ua
        .post(
            &format!("{}/t/{}/oauth2/logout", cloud.base, cloud.domain),
            &[("csrf", "forged"), ("client_id", &app.id)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let csrf = field(&page.html, "name=\"csrf\" value=\"");
    let done = ua
        .post(
            &format!("{}/t/{}/oauth2/logout", cloud.base, cloud.domain),
            &[
                ("csrf", &csrf),
                ("client_id", &app.id),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/signed-out"),
                ("state", "bye"),
            ],
        )
        .await;
    assert_eq!(
        done.location.as_deref(),
        Some("http://127.0.0.1:9/signed-out?state=bye")
    );
    let got = ua
        .get(&authorize_url(&cloud, &app.id, None, &[("prompt", "none")]))
        .await;
    assert_eq!(
        query(got.location.as_deref().unwrap())["error"],
        "login_required",
        "signed out"
    );
}

#[tokio::test]
async fn pages_are_valid_html() {
    let cloud = Cloud::start().await;
    let (_, upn) = ada(&cloud).await;
    let app = confidential(&cloud, json!({})).await;
    let mut ua = Ua::new(&cloud.base);
    let sign_in = ua.get(&authorize_url(&cloud, &app.id, None, &[])).await;
    let csrf = field(&sign_in.html, "name=\"csrf\" value=\"");
    let request = field(&sign_in.html, "name=\"request\" value=\"");
    let next = ua
        .post(
            &format!("{}/t/{}/oauth2/signin", cloud.base, cloud.domain),
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("username", &upn),
                ("password", PASSWORD),
            ],
        )
        .await;
    let consent = ua.get(next.location.as_deref().unwrap()).await;
    assert!(consent.html.contains("consent-allow"));
    let logout = ua
        .get(&format!(
            "{}/t/{}/oauth2/logout?client_id={}",
            cloud.base, cloud.domain, app.id
        ))
        .await;
    assert!(logout.html.contains("logout-confirm"));
    for (what, page) in [
        ("sign-in", &sign_in),
        ("consent", &consent),
        ("logout", &logout),
    ] {
        let errors = testkit::browser::html_errors(&page.html).expect("html-validate");
        assert!(errors.is_empty(), "{what}: {}", errors.join("\n"));
    }
}
