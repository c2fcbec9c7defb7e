//! The web portal in a real browser (Debian's headless Chromium over WebDriver): sign-in, the
//! account page and sign-out through the same sign-in as the API, the security headers, CSRF,
//! and every page checked with axe-core and html-validate.

mod common;

use common::Cloud;
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::browser::{html_errors, Browser};

const PASSWORD: &str = "Portal-Pass-w0rd!";

async fn browser(test: &str) -> Browser {
    let mut b = Browser::start().await.expect("start Chromium");
    b.keep_on_failure(test);
    b
}

/// A client that neither follows redirects nor keeps cookies: the test reads both itself.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser's cookie jar and forms, by hand: GETs a page, takes its CSRF token, POSTs a form
/// with the cookies collected so far (the client neither follows redirects nor keeps cookies).
#[derive(Default)]
struct Forms {
    cookies: Vec<String>,
}

impl Forms {
    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap().to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            self.cookies.push(pair);
        }
    }

    /// GETs `page`, then POSTs `fields` and its CSRF token to `action`: the status and HTML.
    async fn post(
        &mut self,
        cloud: &Cloud,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let http = raw_client();
        let r = http
            .get(format!("{}{page}", cloud.base))
            .header("cookie", self.cookies.join("; "))
            .send()
            .await
            .unwrap();
        self.keep(&r);
        let html = r.text().await.unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no CSRF token on {page}: {html}"))
            .to_owned();
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let r = http
            .post(format!("{}{action}", cloud.base))
            .header("cookie", self.cookies.join("; "))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_page_headers(r.headers());
        self.keep(&r);
        (r.status(), r.text().await.unwrap())
    }
}

impl Forms {
    /// A browser signed in through the form as `upn`.
    async fn signed_in(cloud: &Cloud, upn: &str, password: &str) -> Forms {
        let mut me = Forms::default();
        let (status, html) = me
            .post(
                cloud,
                "/",
                "/signin",
                &[("username", upn), ("password", password)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
        me
    }
}

/// Signs in through the form as a browser would (the pre-session CSRF cookie from `GET /`,
/// then the POST): the answer's status and HTML.
async fn post_sign_in(cloud: &Cloud, upn: &str, password: &str) -> (StatusCode, String) {
    Forms::default()
        .post(
            cloud,
            "/",
            "/signin",
            &[("username", upn), ("password", password)],
        )
        .await
}

#[track_caller]
fn assert_page_headers(headers: &reqwest::header::HeaderMap) {
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
}

async fn assert_page_is_clean(b: &Browser, html: &str, what: &str) {
    let markup = html_errors(html).expect("html-validate");
    assert!(
        markup.is_empty(),
        "{what}: html-validate:\n{}",
        markup.join("\n")
    );
    let a11y = b.axe_violations().await.expect("axe-core");
    assert!(a11y.is_empty(), "{what}: axe-core:\n{}", a11y.join("\n"));
}

#[tokio::test]
async fn sign_in_page_is_accessible_valid_and_sent_with_the_security_headers() {
    let cloud = Cloud::start().await;
    let r = raw_client().get(&cloud.base).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_page_headers(r.headers());
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csrf_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-dirbridge-csrf="))
        .expect("a pre-session CSRF cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(csrf_cookie.contains(attr), "{csrf_cookie}");
    }
    let html = r.text().await.unwrap();
    assert!(html.contains("name=\"csrf\""), "{html}");

    let css = raw_client()
        .get(format!("{}/assets/portal.css", cloud.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));

    let b = browser("sign_in_page").await;
    b.goto(&cloud.base).await.unwrap();
    assert_eq!(b.title().await.unwrap(), "Sign in · dirbridge");
    assert_page_is_clean(&b, &html, "sign-in page").await;
}

#[tokio::test]
async fn a_cloud_user_signs_in_sees_the_account_and_signs_out_in_a_real_browser() {
    let cloud = Cloud::start().await;
    let upn = cloud.upn("ada");
    cloud
        .user(
            "ada",
            json!({"displayName": "Ada Lovelace", "password": PASSWORD}),
        )
        .await;

    let b = browser("sign_in_and_out").await;
    b.goto(&cloud.base).await.unwrap();
    b.type_into("#username", &upn).await.unwrap();
    b.type_into("#password", PASSWORD).await.unwrap();
    b.click("button[type=submit]").await.unwrap();
    b.wait_for("#upn").await.unwrap();
    assert!(
        b.current_url().await.unwrap().ends_with("/my"),
        "{}",
        b.current_url().await.unwrap()
    );
    assert_eq!(b.text("#upn").await.unwrap(), upn);
    assert_eq!(b.text("#display-name").await.unwrap(), "Ada Lovelace");
    let cookies = b.cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "__Host-dirbridge-session")
        .expect("a session cookie");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["secure"], true, "{session}");
    assert_eq!(session["sameSite"], "Lax", "{session}");
    assert!(
        cookies
            .iter()
            .any(|c| c["name"] == "__Host-dirbridge-device"),
        "the browser is a known device for the account after sign-in: {cookies:?}"
    );
    assert!(
        !cookies.iter().any(|c| c["name"] == "__Host-dirbridge-csrf"),
        "the pre-session CSRF cookie is cleared at sign-in: {cookies:?}"
    );
    // The session is the API's: the token works as a bearer token and was audited as a sign-in.
    let token = session["value"].as_str().unwrap();
    let me = cloud
        .call(Method::GET, "/api/v1/me", Some(token), None)
        .await
        .ok();
    assert_eq!(me["userPrincipalName"], upn.as_str());

    // The account page, as the browser got it, passes the checks.
    let html = raw_client()
        .get(format!("{}/my", cloud.base))
        .header("cookie", format!("__Host-dirbridge-session={token}"))
        .send()
        .await
        .unwrap();
    assert_page_headers(html.headers());
    let html = html.text().await.unwrap();
    assert!(html.contains("Ada Lovelace"), "{html}");
    assert_page_is_clean(&b, &html, "account page").await;

    b.click("form.signout button").await.unwrap();
    b.wait_for("#username").await.unwrap();
    assert!(
        !b.current_url().await.unwrap().ends_with("/my"),
        "signed out, back at the sign-in page"
    );
    assert!(b.find("#username").await.is_ok());
    let r = cloud
        .call(Method::GET, "/api/v1/me", Some(token), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "sign-out revoked the token"
    );
    b.goto(&format!("{}/my", cloud.base)).await.unwrap();
    assert!(
        b.find("#username").await.is_ok(),
        "/my without a session leads to sign-in"
    );
}

#[tokio::test]
async fn a_wrong_password_shows_the_apis_message_with_a_support_code() {
    let cloud = Cloud::start().await;
    let upn = cloud.upn("grace");
    cloud.user("grace", json!({"password": PASSWORD})).await;

    let b = browser("wrong_password").await;
    b.goto(&cloud.base).await.unwrap();
    b.type_into("#username", &upn).await.unwrap();
    b.type_into("#password", "not-her-password").await.unwrap();
    b.click("button[type=submit]").await.unwrap();
    b.wait_for("#signin-error").await.unwrap();
    b.save(&testkit::browser::screenshots_dir(), "signin-error")
        .await
        .unwrap();
    // The same words as POST /api/v1/auth/token gives for a wrong password.
    let api = cloud
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"userPrincipalName": upn, "password": "not-her-password"})),
        )
        .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert_eq!(b.text("#signin-error").await.unwrap(), api.error_message());
    let code = b.text("footer code").await.unwrap();
    assert_eq!(code.len(), 36, "a tracking id as the support code: {code}");
    // The form keeps the user name, never the password.
    let value = b
        .execute("return document.getElementById('username').value", vec![])
        .await
        .unwrap();
    assert_eq!(value, upn.as_str());
    let value = b
        .execute("return document.getElementById('password').value", vec![])
        .await
        .unwrap();
    assert_eq!(value, "");
    assert!(!b.source().await.unwrap().contains("not-her-password"));
    // The page as the server sent it (the browser's DOM is not the markup).
    let (status, html) = post_sign_in(&cloud, &upn, "not-her-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains(api.error_message()), "{html}");
    assert_page_is_clean(&b, &html, "sign-in error page").await;

    // Audit: the failure was recorded as a sign-in, as for the API.
    let audit = cloud.get("/api/v1/audit?action=signIn").await;
    let failures = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"] == upn.as_str() && r["result"] == "failure")
        .count();
    assert_eq!(failures, 3, "{audit}");
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused_and_change_nothing() {
    let cloud = Cloud::start().await;
    let upn = cloud.upn("nils");
    cloud.user("nils", json!({"password": PASSWORD})).await;
    let http = raw_client();

    // Sign-in posted from elsewhere: no pre-session cookie, or a token that is not its own.
    let zeros = "0".repeat(64);
    for (cookie, csrf) in [
        (None, "x"),
        (Some("__Host-dirbridge-csrf=abc"), zeros.as_str()),
    ] {
        let mut req = http.post(format!("{}/signin", cloud.base)).form(&[
            ("csrf", csrf),
            ("username", upn.as_str()),
            ("password", PASSWORD),
        ]);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let sets_session = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("__Host-dirbridge-session="));
        assert!(!sets_session, "no session for a forged sign-in");
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("did not come from this site"));
    }

    // Sign-out posted from elsewhere with the victim's cookie (sent by the browser) but without
    // the token only this site's page has: the session stays.
    let token = cloud.sign_in(&upn, PASSWORD).await;
    let r = http
        .post(format!("{}/signout", cloud.base))
        .header("cookie", format!("__Host-dirbridge-session={token}"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let me = cloud
        .call(Method::GET, "/api/v1/me", Some(&token), None)
        .await;
    assert_eq!(
        me.status,
        StatusCode::OK,
        "the forged sign-out revoked nothing"
    );
}

#[tokio::test]
async fn revoking_a_users_tokens_ends_their_browser_session() {
    let cloud = Cloud::start().await;
    let upn = cloud.upn("ingrid");
    let user = cloud.user("ingrid", json!({"password": PASSWORD})).await;

    let b = browser("revoked_session").await;
    b.goto(&cloud.base).await.unwrap();
    b.type_into("#username", &upn).await.unwrap();
    b.type_into("#password", PASSWORD).await.unwrap();
    b.click("button[type=submit]").await.unwrap();
    b.wait_for("#upn").await.unwrap();
    assert!(b.current_url().await.unwrap().ends_with("/my"));

    let id = user["id"].as_str().unwrap();
    cloud
        .admin(
            Method::POST,
            &format!("/api/v1/users/{id}/revoke-tokens"),
            None,
        )
        .await
        .ok();
    b.goto(&format!("{}/my", cloud.base)).await.unwrap();
    assert!(
        b.find("#username").await.is_ok(),
        "a revoked session leads back to sign-in"
    );
}

/// A browser session ends after `[portal] idle_timeout_secs` without use (each use moves it
/// on), while an API token of the same account and age keeps working.
#[tokio::test]
async fn a_portal_session_ends_after_half_an_hour_without_use_an_api_token_does_not() {
    let cloud = Cloud::start().await;
    let upn = cloud.upn("ola");
    cloud.user("ola", json!({"password": PASSWORD})).await;
    let api = cloud.sign_in(&upn, PASSWORD).await;
    let me = Forms::signed_in(&cloud, &upn, PASSWORD).await;
    let account = |me: &Forms| {
        let cookies = me.cookies.join("; ");
        let url = format!("{}/my", cloud.base);
        async move {
            raw_client()
                .get(url)
                .header("cookie", cookies)
                .send()
                .await
                .unwrap()
        }
    };
    // Used every 29 minutes: the session goes on past an hour.
    for _ in 0..3 {
        cloud.clock.advance(29 * 60);
        let r = account(&me).await;
        assert_eq!(r.status(), StatusCode::OK, "still signed in");
    }
    cloud.clock.advance(30 * 60);
    let r = account(&me).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "ended after 30 idle minutes"
    );
    assert_eq!(r.headers()["location"], "/");
    // The API token, as old and as idle, still works: the idle limit is the browser's.
    let r = cloud
        .call(Method::GET, "/api/v1/me", Some(&api), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The reset page's start and the change-password form fall under the same per-address limits
/// as their API twins (`/api/v1/sspr/start`, `/api/v1/sspr/change`): every start counts, a
/// refused current password counts, each over its budget answered with a page.
#[tokio::test]
async fn the_reset_start_and_change_password_forms_share_the_apis_address_limits() {
    let mut config = common::unlimited();
    config.limits.sspr_start_per_minute = 2;
    config.limits.sign_in_per_minute = 3;
    let cloud = Cloud::start_with(config, None).await;
    for i in 0..2 {
        let who = cloud.upn(&format!("nobody{i}"));
        let (status, _) = Forms::default()
            .post(&cloud, "/sspr", "/sspr/start", &[("username", &who)])
            .await;
        assert!(status.is_success() || status.is_redirection(), "{status}");
    }
    let who = cloud.upn("nobody9");
    let (status, html) = Forms::default()
        .post(&cloud, "/sspr", "/sspr/start", &[("username", &who)])
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{html}");
    assert!(html.contains("password reset requests"), "{html}");
    assert!(html_errors(&html).unwrap().is_empty());

    // Change password: one sign-in token used by nobody (successes are free), then two
    // refused current passwords, and the third refusal is over the budget.
    let upn = cloud.upn("ola");
    cloud.user("ola", json!({"password": PASSWORD})).await;
    let mut me = Forms::signed_in(&cloud, &upn, PASSWORD).await;
    let wrong = [
        ("current_password", "not-the-password-1"),
        ("new_password", "Another-Pass-w0rd!"),
        ("confirm_password", "Another-Pass-w0rd!"),
    ];
    for _ in 0..3 {
        let (status, html) = me
            .post(&cloud, "/my/password", "/my/password", &wrong)
            .await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{html}");
    }
    let (status, html) = me
        .post(&cloud, "/my/password", "/my/password", &wrong)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{html}");
    assert!(html.contains("from your network address"), "{html}");
}

#[tokio::test]
async fn the_per_address_limit_on_the_sign_in_form_answers_with_a_page() {
    let mut config = common::unlimited();
    config.limits.sign_in_per_minute = 2;
    let cloud = Cloud::start_with(config, None).await;
    let upn = cloud.upn("ola");
    cloud.user("ola", json!({"password": PASSWORD})).await;
    for _ in 0..2 {
        let (status, _) = post_sign_in(&cloud, &upn, "wrong-password-1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The third refused attempt from this address is over the budget: the limit answers
    // before the form's handler, still as a page with the page headers (checked inside).
    let (status, html) = post_sign_in(&cloud, &upn, "wrong-password-1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(html.contains("from your network address"), "{html}");
    assert!(html_errors(&html).unwrap().is_empty());
}
