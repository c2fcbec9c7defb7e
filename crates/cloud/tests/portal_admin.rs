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
    let (status, html, _) = ga
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
    assert_eq!(status, StatusCode::OK);
    assert_valid(&html, "assign results");
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
                ("back", "/admin/licenses/assign?sku=DIRBRIDGE_PREMIUM"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some("/admin/licenses/assign?sku=DIRBRIDGE_PREMIUM")
    );
    let (_, html, _) = ga
        .post(
            "/admin/licenses/assign",
            &[
                ("csrf", &csrf),
                ("sku", "DIRBRIDGE_PREMIUM"),
                ("user[]", &bob),
            ],
        )
        .await;
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
    for hidden in ["nav-licenses", "nav-policy", "nav-onprem", "nav-audit"] {
        assert!(!html.contains(hidden), "{hidden} offered: {html}");
    }
    for page in [
        "/admin/licenses",
        "/admin/policy",
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
    let csrf = pa.csrf().await;
    let (status, html, _) = pa
        .post(
            &format!("/admin/users/{carl}/reset-password"),
            &[("csrf", &csrf), ("password", "New-Carl-Pass-w0rd!")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"reset-outcome\">succeeded"), "{html}");
    cloud.sign_in(&carl, "New-Carl-Pass-w0rd!").await;
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
