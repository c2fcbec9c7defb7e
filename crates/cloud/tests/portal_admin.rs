//! The admin portal (/admin) over HTTP as a browser sends it: the seed's licence walkthrough
//! (trial, bulk assignment with the exact usage-location error, fixing it on the spot), the
//! policy switched on for a group, role-limited administrators, CSRF refusal, and every admin
//! page valid for html-validate.

mod common;

use common::Cloud;
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::browser::html_errors;

const INVALID_USAGE_LOCATION: &str =
    "License assignment cannot be done for user with invalid usage location.";

/// A client that neither follows redirects nor keeps cookies.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Session<'a> {
    cloud: &'a Cloud,
    token: String,
}

impl Session<'_> {
    fn cookie(&self) -> String {
        format!("__Host-dirbridge-session={}", self.token)
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = http()
            .get(format!("{}{path}", self.cloud.base))
            .header("cookie", self.cookie())
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// The CSRF token of this session's forms, read from a page as a browser would.
    async fn csrf(&self) -> String {
        let (_, html) = self.get("/admin").await;
        html.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a form with a CSRF token")
            .to_string()
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let r = http()
            .post(format!("{}{path}", self.cloud.base))
            .header("cookie", self.cookie())
            .form(form)
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status(), r.text().await.unwrap(), location)
    }
}

#[track_caller]
fn assert_valid(html: &str, what: &str) {
    let errors = html_errors(html).expect("html-validate");
    assert!(
        errors.is_empty(),
        "{what}: html-validate:\n{}\n{html}",
        errors.join("\n")
    );
}

#[tokio::test]
async fn a_global_administrator_starts_the_trial_assigns_licences_fixes_a_usage_location_and_switches_the_policy_on(
) {
    let cloud = Cloud::start().await;
    let ga = Session {
        cloud: &cloud,
        token: cloud.admin_token.clone(),
    };
    let (ann, bob) = (cloud.upn("ann"), cloud.upn("bob"));
    cloud.user("ann", json!({"usageLocation": "NO"})).await;
    cloud.user("bob", json!({})).await;
    let csrf = ga.csrf().await;

    let (status, html) = ga.get("/admin").await;
    assert_eq!(status, StatusCode::OK);
    for link in [
        "nav-users",
        "nav-licenses",
        "nav-policy",
        "nav-onprem",
        "nav-audit",
    ] {
        assert!(html.contains(&format!("id=\"{link}\"")), "{link}: {html}");
    }
    assert_valid(&html, "admin home");

    let (status, _, location) = ga
        .post("/admin/licenses/trial", &[("csrf", &csrf), ("sku", "")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, html) = ga.get(location.as_deref().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("The trial started."), "{html}");
    assert!(html.contains("DIRBRIDGE_PREMIUM"), "{html}");
    assert_valid(&html, "licences page");

    let (status, html) = ga.get("/admin/licenses/assign").await;
    assert_eq!(status, StatusCode::OK);
    assert_valid(&html, "assign page");
    let (status, _, location) = ga
        .post(
            "/admin/licenses/assign",
            &[
                ("csrf", &csrf),
                ("sku", "DIRBRIDGE_PREMIUM"),
                ("user[]", &ann),
                ("user[]", &bob),
            ],
        )
        .await;
    // The results are a page of their own: reloading it shows them again and assigns nothing.
    assert_eq!(status, StatusCode::SEE_OTHER);
    let results = location.unwrap();
    let (status, html) = ga.get(&results).await;
    assert_eq!(status, StatusCode::OK);
    assert_valid(&html, "assign results");
    let assignments = || async {
        cloud.get("/api/v1/audit?action=license.assign").await["items"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(assignments().await, 2);
    let (status, again) = ga.get(&results).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again
            .split("id=\"assign-results\"")
            .nth(1)
            .map(|s| s.split("</ul>").next()),
        html.split("id=\"assign-results\"")
            .nth(1)
            .map(|s| s.split("</ul>").next()),
        "a reload shows the same results"
    );
    assert_eq!(assignments().await, 2, "a reload assigns nothing");
    let bob_line = html
        .split("<li")
        .find(|l| l.contains(&format!("data-user=\"{bob}\"")))
        .expect("a result for bob");
    assert!(bob_line.contains(INVALID_USAGE_LOCATION), "{bob_line}");
    assert!(
        bob_line.contains("usage-location"),
        "a form to set it: {bob_line}"
    );
    let ann_line = html
        .split("<li")
        .find(|l| l.contains(&format!("data-user=\"{ann}\"")))
        .expect("a result for ann");
    assert!(
        ann_line.contains("DIRBRIDGE_PREMIUM assigned."),
        "{ann_line}"
    );

    // Set it right there, and come back to the assignment.
    let (status, _, location) = ga
        .post(
            &format!("/admin/users/{bob}/usage-location"),
            &[
                ("csrf", &csrf),
                ("usage_location", "se"),
                ("back", "/admin/licenses/assign?product=DIRBRIDGE_PREMIUM"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some("/admin/licenses/assign?product=DIRBRIDGE_PREMIUM")
    );
    let (_, html) = ga
        .get("/admin/licenses/assign?product=DIRBRIDGE_PREMIUM")
        .await;
    assert!(
        html.contains("<option value=\"DIRBRIDGE_PREMIUM\" selected>"),
        "the product stays picked: {html}"
    );
    assert!(
        html.contains(&format!("value=\"{bob}\"")),
        "bob offered: {html}"
    );
    // Searching keeps the product picked, and does not narrow the users to those who hold it.
    assert!(
        html.contains("name=\"product\" value=\"DIRBRIDGE_PREMIUM\""),
        "{html}"
    );
    let (_, html) = ga
        .get("/admin/licenses/assign?product=DIRBRIDGE_PREMIUM&upn=bob")
        .await;
    assert!(
        html.contains(&format!("value=\"{bob}\"")),
        "bob found: {html}"
    );
    let (_, _, location) = ga
        .post(
            "/admin/licenses/assign",
            &[
                ("csrf", &csrf),
                ("sku", "DIRBRIDGE_PREMIUM"),
                ("user[]", &bob),
            ],
        )
        .await;
    let (_, html) = ga.get(&location.unwrap()).await;
    assert!(html.contains("DIRBRIDGE_PREMIUM assigned."), "{html}");
    let licences = cloud.get(&format!("/api/v1/users/{bob}/licenses")).await;
    assert_eq!(licences[0]["skuId"], "DIRBRIDGE_PREMIUM", "{licences}");

    // The user's page shows the licence, the usage location and the history.
    let (status, html) = ga.get(&format!("/admin/users/{bob}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("SE"), "{html}");
    assert!(html.contains("user.update"), "{html}");
    assert_valid(&html, "user page");

    // The policy, on for a group: a rule broken is named with the API's message.
    let group = cloud
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": "SSPR pilots"})),
        )
        .await
        .ok();
    let gid = group["id"].as_str().unwrap();
    let (status, html) = ga.get("/admin/policy").await;
    assert_eq!(status, StatusCode::OK);
    assert_valid(&html, "policy page");
    let base = [
        ("csrf", csrf.as_str()),
        ("enabled_for", "group"),
        ("methods[]", "email"),
        ("methods_required", "1"),
        ("questions_to_register", "0"),
        ("questions_to_answer", "0"),
        ("reconfirm_days", "180"),
        ("notify_users", "1"),
        ("writeback_enabled", "1"),
    ];
    let (status, html, _) = ga.post("/admin/policy", &base).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no group picked: {html}");
    assert!(html.contains("id=\"admin-error\""), "{html}");
    assert_valid(&html, "policy page with an error");
    let mut with_group = base.to_vec();
    with_group.push(("group_id", gid));
    let (status, html, _) = ga.post("/admin/policy", &with_group).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    let policy = cloud.get("/api/v1/policy").await;
    assert_eq!(policy["policy"]["enabledFor"], "group", "{policy}");
    assert_eq!(policy["policy"]["groupId"], gid, "{policy}");

    // The other pages are valid too.
    for page in [
        "/admin/users",
        "/admin/users/new",
        "/admin/on-premises",
        "/admin/audit",
    ] {
        let (status, html) = ga.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {html}");
        assert_valid(&html, page);
    }
    // A tracking id shown anywhere leads to its records.
    let audit = cloud.get("/api/v1/audit?action=license.assign").await;
    let tid = audit["items"][0]["trackingId"].as_str().unwrap();
    let (_, html) = ga.get(&format!("/admin/audit?tracking_id={tid}")).await;
    assert!(html.contains("license.assign"), "{html}");
}

#[tokio::test]
async fn a_password_administrator_is_offered_only_its_operations_and_gets_403_pages_elsewhere() {
    let cloud = Cloud::start().await;
    let pa = Session {
        cloud: &cloud,
        token: cloud
            .admin_with_role("helpdesk", "passwordAdministrator")
            .await,
    };
    cloud
        .user("carl", json!({"password": "Carl-Pass-w0rd!"}))
        .await;
    let (status, html) = pa.get("/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"nav-users\""), "{html}");
    for hidden in [
        "nav-policy",
        "nav-licenses",
        "nav-onprem",
        "nav-audit",
        "nav-apps",
        "nav-roles",
    ] {
        assert!(!html.contains(hidden), "{hidden} offered: {html}");
    }
    // A User Administrator may read the policy (GET /api/v1/policy), not change it: the page
    // shows it read-only.
    let ua = Session {
        cloud: &cloud,
        token: cloud.admin_with_role("people", "userAdministrator").await,
    };
    let (status, html) = ua.get("/admin/policy").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"policy-read-only\""), "{html}");
    assert!(
        html.contains("<fieldset class=\"settings\" disabled>"),
        "{html}"
    );
    assert!(
        !html.contains("id=\"policy-form\"") && !html.contains("save-policy"),
        "{html}"
    );
    assert_valid(&html, "policy read-only");
    let csrf = pa.csrf().await;
    let (status, html, _) = pa
        .post(
            "/admin/policy",
            &[
                ("csrf", csrf.as_str()),
                ("enabled_for", "all"),
                ("methods[]", "email"),
                ("methods_required", "1"),
                ("questions_to_register", "0"),
                ("questions_to_answer", "0"),
                ("reconfirm_days", "0"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("needs one of these roles"), "{html}");
    assert_eq!(
        cloud.get("/api/v1/policy").await["policy"]["enabledFor"],
        "none"
    );
    for page in [
        "/admin/policy",
        "/admin/licenses",
        "/admin/licenses/assign",
        "/admin/on-premises",
        "/admin/audit",
    ] {
        let (status, html) = pa.get(page).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
        assert!(html.contains("needs one of these roles"), "{page}: {html}");
        assert_valid(&html, page);
    }
    // On a user's page: reset offered; usage location, disable, delete and sessions not.
    let carl = cloud.upn("carl");
    let (status, html) = pa.get(&format!("/admin/users/{carl}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"reset-password\""), "{html}");
    for hidden in [
        "save-usage-location",
        "id=\"disable\"",
        "id=\"delete\"",
        "revoke-sessions",
        "user-licenses",
    ] {
        assert!(!html.contains(hidden), "{hidden} offered: {html}");
    }
    let (status, html, location) = pa
        .post(
            &format!("/admin/users/{carl}/reset-password"),
            &[("csrf", &csrf), ("password", "New-Carl-Pass-w0rd!")],
        )
        .await;
    // The result is a page of its own: a reload shows it again and resets nothing.
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    let result = location.unwrap();
    assert!(
        !result.contains("New-Carl"),
        "no password in the URL: {result}"
    );
    let resets = || async {
        cloud.get("/api/v1/audit?action=user.resetPassword").await["items"]
            .as_array()
            .unwrap()
            .len()
    };
    for _ in 0..2 {
        let (status, html) = pa.get(&result).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"reset-outcome\">succeeded"), "{html}");
        assert_valid(&html, "reset result");
        assert_eq!(resets().await, 1);
    }
    cloud.sign_in(&carl, "New-Carl-Pass-w0rd!").await;
    // Another session is not shown this session's result.
    let ga = Session {
        cloud: &cloud,
        token: cloud.admin_token.clone(),
    };
    let (_, html) = ga.get(&result).await;
    assert!(!html.contains("id=\"reset-outcome\">succeeded"), "{html}");
    assert!(html.contains("no longer kept"), "{html}");
    // Nor is it kept for long: after ten minutes the page sends the reader to the audit log.
    cloud.clock.advance(601);
    let (status, html) = pa.get(&result).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("no longer kept"), "{html}");
    assert!(html.contains("href=\"/admin/audit?tracking_id="), "{html}");
    // A forbidden form answers 403 and changes nothing.
    let (status, _, _) = pa
        .post(
            &format!("/admin/users/{carl}/usage-location"),
            &[("csrf", &csrf), ("usage_location", "NO")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(cloud.find_user(&carl).await.unwrap()["usageLocation"].is_null());
}

#[tokio::test]
async fn a_form_without_the_session_csrf_token_is_refused_and_changes_nothing() {
    let cloud = Cloud::start().await;
    let ga = Session {
        cloud: &cloud,
        token: cloud.admin_token.clone(),
    };
    for forged in ["", "0000"] {
        let (status, html, _) = ga.post("/admin/licenses/trial", &[("csrf", forged)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
        assert!(html.contains("nothing was done"), "{html}");
    }
    let subs = cloud.get("/api/v1/licenses").await;
    assert!(
        subs.as_array()
            .unwrap()
            .iter()
            .all(|s| s["subscriptions"].as_array().is_none_or(|v| v.is_empty())),
        "{subs}"
    );
    // No session: the sign-in page, not an admin page.
    let r = http()
        .get(format!("{}/admin/users", cloud.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // A signed-in account without an admin role: 403.
    cloud
        .user("dora", json!({"password": "Dora-Pass-w0rd!"}))
        .await;
    let dora = Session {
        cloud: &cloud,
        token: cloud.sign_in(&cloud.upn("dora"), "Dora-Pass-w0rd!").await,
    };
    let (status, _) = dora.get("/admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Whether the app's client secret `secret` authenticates it (introspection answers only a
/// confidential client that proves itself).
async fn secret_works(cloud: &Cloud, client_id: &str, secret: &str) -> bool {
    let r = http()
        .post(format!(
            "{}/t/{}/oauth2/introspect",
            cloud.base, cloud.domain
        ))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    r.status() == StatusCode::OK
}

fn client_secret_in(html: &str) -> Option<String> {
    html.split("id=\"client-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .map(str::to_string)
}

#[tokio::test]
async fn a_global_administrator_registers_an_app_sees_its_secret_once_rolls_it_and_deletes_the_app()
{
    let cloud = Cloud::start().await;
    let ga = Session {
        cloud: &cloud,
        token: cloud.admin_token.clone(),
    };
    let csrf = ga.csrf().await;
    let group = cloud
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": "Grafana users"})),
        )
        .await
        .ok();
    let gid = group["id"].as_str().unwrap();

    let (status, html) = ga.get("/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"nav-apps\""), "{html}");
    let (status, html) = ga.get("/admin/apps").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_valid(&html, "apps page");

    // A refusal is the API's rule, and keeps what was typed.
    let form = |redirect: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("name", "Grafana".to_string()),
            ("client_type", "confidential".into()),
            ("redirect_uris", redirect.into()),
            ("scopes[]", "openid".into()),
            ("scopes[]", "groups".into()),
            ("access", "group".into()),
            ("group_id", gid.to_string()),
            ("access_token_secs", "600".into()),
            ("id_token_secs", "600".into()),
            ("refresh_token_secs", "86400".into()),
            ("alg", "RS256".into()),
            ("skip_consent", "1".into()),
        ]
    };
    let refused = form("");
    let borrowed: Vec<(&str, &str)> = refused.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, html, _) = ga.post("/admin/apps", &borrowed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("at least one redirect URI"), "{html}");
    assert!(html.contains("value=\"Grafana\""), "{html}");
    assert_valid(&html, "apps page with an error");

    let good = form("https://grafana.example.com/login/generic_oauth");
    let borrowed: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, html, _) = ga.post("/admin/apps", &borrowed).await;
    assert_eq!(status, StatusCode::CREATED, "{html}");
    assert_valid(&html, "a registered app with its secret");
    let secret = client_secret_in(&html).expect("the client secret on the answer");
    let client_id = html
        .split("id=\"client-id\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_string();
    let app = cloud.get(&format!("/api/v1/apps/{client_id}")).await;
    assert_eq!(app["name"], "Grafana", "{app}");
    assert_eq!(app["accessGroupId"], gid, "{app}");
    assert_eq!(app["skipConsent"], true, "{app}");
    assert_eq!(app["idTokenSigningAlg"], "RS256", "{app}");
    assert_eq!(app["accessTokenLifetimeSecs"], 600, "{app}");
    assert_eq!(app["allowedScopes"], json!(["openid", "groups"]), "{app}");
    assert!(secret_works(&cloud, &client_id, &secret).await);

    // The secret is never shown again: not on the app's page, the list, or the API.
    let link = format!("/admin/apps/{client_id}");
    let (status, page) = ga.get(&link).await;
    assert_eq!(status, StatusCode::OK);
    assert_valid(&page, "app page");
    let (_, list) = ga.get("/admin/apps").await;
    assert!(list.contains(&client_id), "{list}");
    for shown in [&page, &list, &app.to_string()] {
        assert!(!shown.contains(&secret), "the secret shown again: {shown}");
        assert!(client_secret_in(shown).is_none(), "{shown}");
    }

    // A new secret, shown once; both work until the old one is removed.
    let (status, html, _) = ga
        .post(&format!("{link}/secrets"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{html}");
    let second = client_secret_in(&html).expect("the new secret");
    assert_ne!(second, secret);
    let (_, page) = ga.get(&link).await;
    assert!(!page.contains(&second), "{page}");
    assert!(secret_works(&cloud, &client_id, &second).await);
    let first_id = app["secrets"][0]["id"].as_str().unwrap();
    let (status, _, location) = ga
        .post(
            &format!("{link}/secrets/{first_id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = ga.get(location.as_deref().unwrap()).await;
    assert!(page.contains("The client secret was removed"), "{page}");
    assert!(!secret_works(&cloud, &client_id, &secret).await);
    assert!(secret_works(&cloud, &client_id, &second).await);

    // Settings: everyone may use it now, consent asked again.
    let mut edit = form("https://grafana.example.com/login/generic_oauth");
    edit.retain(|(k, _)| !["client_type", "skip_consent"].contains(k));
    edit.iter_mut()
        .filter(|(k, _)| *k == "access")
        .for_each(|(_, v)| *v = "all".into());
    let borrowed: Vec<(&str, &str)> = edit.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, html, location) = ga.post(&link, &borrowed).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    let (_, page) = ga.get(location.as_deref().unwrap()).await;
    assert!(page.contains("settings were saved"), "{page}");
    let app = cloud.get(&format!("/api/v1/apps/{client_id}")).await;
    assert!(app["accessGroupId"].is_null(), "{app}");
    assert_eq!(app["skipConsent"], false, "{app}");

    // Delete: gone from the API, its secret no longer works.
    let (status, _, location) = ga.post(&format!("{link}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/admin/apps?done=deleted"));
    let gone = cloud
        .admin(Method::GET, &format!("/api/v1/apps/{client_id}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(!secret_works(&cloud, &client_id, &second).await);
    let audit = cloud.get("/api/v1/audit?action=app.create").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2, "{audit}");
}

#[tokio::test]
async fn only_the_roles_the_api_lets_manage_apps_are_offered_the_apps_page() {
    let cloud = Cloud::start().await;
    for role in [
        "userAdministrator",
        "passwordAdministrator",
        "licenseAdministrator",
    ] {
        let s = Session {
            cloud: &cloud,
            token: cloud.admin_with_role(role, role).await,
        };
        let (_, home) = s.get("/admin").await;
        assert!(!home.contains("nav-apps"), "{role}: {home}");
        let (status, html) = s.get("/admin/apps").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {html}");
        assert!(html.contains("needs one of these roles"), "{html}");
        assert_valid(&html, "apps page refused");
        let csrf = s.csrf().await;
        let (status, _, _) = s
            .post(
                "/admin/apps",
                &[
                    ("csrf", csrf.as_str()),
                    ("name", "Sneaky"),
                    ("redirect_uris", "https://sneaky.example/cb"),
                    ("access_token_secs", "600"),
                    ("id_token_secs", "600"),
                    ("refresh_token_secs", "86400"),
                    ("alg", "ES256"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    let apps = cloud.get("/api/v1/apps").await;
    assert_eq!(apps, json!([]), "{apps}");
}

#[tokio::test]
async fn groups_show_nested_members_and_only_a_global_administrator_assigns_roles() {
    let cloud = Cloud::start().await;
    let ga = Session {
        cloud: &cloud,
        token: cloud.admin_token.clone(),
    };
    let (ann, bob) = (cloud.upn("ann"), cloud.upn("bob"));
    cloud.user("ann", json!({})).await;
    cloud.user("bob", json!({})).await;
    let c = &cloud;
    let group = |name: &'static str| async move {
        c.admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": name})),
        )
        .await
        .ok()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (outer, inner) = (group("Staff").await, group("Engineers").await);
    for (g, kind, id) in [
        (&outer, "user", &ann),
        (&outer, "group", &inner),
        (&inner, "user", &bob),
    ] {
        cloud
            .admin(
                Method::POST,
                &format!("/api/v1/groups/{g}/members"),
                Some(json!({"kind": kind, "id": id})),
            )
            .await
            .ok();
    }

    let (status, html) = ga.get("/admin/groups").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"nav-groups\"") && html.contains("id=\"nav-roles\""));
    assert!(
        html.contains("Staff") && html.contains("Engineers"),
        "{html}"
    );
    assert_valid(&html, "groups page");
    let (status, html) = ga.get(&format!("/admin/groups/{outer}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_valid(&html, "group page");
    let line = |who: &str| {
        html.split("<li")
            .find(|l| l.contains(&format!(">{who}</a>")))
            .unwrap_or_else(|| panic!("{who} listed: {html}"))
            .to_string()
    };
    assert!(line(&ann).contains("data-depth=\"0\""), "{html}");
    assert!(line("Engineers").contains("data-depth=\"0\""), "{html}");
    assert!(
        line(&bob).contains("data-depth=\"1\""),
        "bob is a nested member: {html}"
    );

    // Roles: a Global Administrator gives ann the Password Administrator role.
    let csrf = ga.csrf().await;
    let (status, html) = ga.get(&format!("/admin/roles?user={ann}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_valid(&html, "roles page");
    let (status, _, location) = ga
        .post(
            "/admin/roles",
            &[
                ("csrf", &csrf),
                ("user", &ann),
                ("roles[]", "passwordAdministrator"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = ga.get(location.as_deref().unwrap()).await;
    assert!(html.contains("The roles were saved."), "{html}");
    assert!(
        html.contains("value=\"passwordAdministrator\" checked"),
        "{html}"
    );
    let roles = &cloud.find_user(&ann).await.unwrap()["roles"];
    assert_eq!(*roles, json!(["passwordAdministrator"]), "{roles}");
    // The API's own rule: nobody drops their own Global Administrator role.
    let me = cloud.upn("admin");
    let (status, html, _) = ga
        .post("/admin/roles", &[("csrf", &csrf), ("user", &me)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(
        html.contains("cannot remove your own Global Administrator role"),
        "{html}"
    );
    assert_valid(&html, "roles page with an error");

    // A User Administrator sees the groups, but role assignment answers 403 pages.
    let ua = Session {
        cloud: &cloud,
        token: cloud.admin_with_role("uadmin", "userAdministrator").await,
    };
    let (_, home) = ua.get("/admin").await;
    assert!(
        home.contains("nav-groups") && !home.contains("nav-roles"),
        "{home}"
    );
    let (status, _) = ua.get(&format!("/admin/groups/{inner}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, html) = ua.get(&format!("/admin/roles?user={bob}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("needs one of these roles"), "{html}");
    assert_valid(&html, "roles page refused");
    let csrf = ua.csrf().await;
    let (status, _, _) = ua
        .post(
            "/admin/roles",
            &[
                ("csrf", &csrf),
                ("user", &bob),
                ("roles[]", "globalAdministrator"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(cloud.find_user(&bob).await.unwrap()["roles"], json!([]));
}
