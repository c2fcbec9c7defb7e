//! The self-service password pages in a real browser (Debian's headless Chromium over
//! WebDriver): the reset flow at `/sspr` with an emailed code from a real SMTP server
//! (aiosmtpd), with security questions and with two methods; with codes by text message and
//! voice call read from a local HTTP receiver standing in for the SMS/voice gateway (and its
//! failure told on the page); with the authenticator app; a throttled person; forged forms;
//! change password at `/my/password`; the registration interrupt and reconfirmation at sign-in.
//! Every page is checked with axe-core and html-validate. The reset of a synced user through a
//! real agent and Samba AD (a policy refusal, then success; unlock only) is in
//! crates/agent/tests/portal_sspr.rs, where that fixture lives.
// Polls with real deadlines (tests may read the clock; the product reads it through tenant::clock).
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::Cloud;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::browser::Browser;

const FIRST: &str = "First-Pass-w0rd";
const NEW: &str = "Brand-new-Passphrase-47";

struct Env {
    c: Cloud,
    smtp: testkit::smtp::Smtp,
}

async fn env() -> Env {
    env_with(|_| {}).await
}

/// [`env`] with `tweak` applied to the cloud's configuration.
async fn env_with(tweak: impl FnOnce(&mut dirbridge_cloud::config::Config)) -> Env {
    let mut config = common::unlimited();
    let smtp =
        common::mail_through_sink(&mut config, "Contoso password reset <sspr@contoso.test>").await;
    tweak(&mut config);
    let c = Cloud::start_with(config, None).await;
    c.admin(Method::POST, "/api/v1/licenses/trial", None)
        .await
        .ok();
    c.set_policy(json!({
        "enabledFor": "all",
        "methods": ["email", "securityQuestions"],
        "requireRegistrationAtSignIn": false,
        "helpdeskEmail": "helpdesk@contoso.test",
    }))
    .await;
    Env { c, smtp }
}

fn question(i: usize) -> String {
    tenant::policy::predefined_questions()[i].to_string()
}

fn answer(q: &str) -> String {
    let i = (0..10)
        .find(|i| question(*i) == q)
        .expect("a registered question");
    format!("Answer Number {i}")
}

/// A licensed cloud user with password [`FIRST`], an email address for reset (set by the
/// administrator) and, with `questions`, three security answers (set by the person).
async fn person(c: &Cloud, local: &str, email: Option<&str>, questions: bool) -> String {
    c.user(local, json!({"usageLocation": "NO", "password": FIRST}))
        .await;
    let upn = c.upn(local);
    c.admin(
        Method::POST,
        &format!("/api/v1/users/{upn}/licenses"),
        Some(json!({"skuId": "DIRBRIDGE_PREMIUM"})),
    )
    .await
    .ok();
    if let Some(e) = email {
        c.admin(
            Method::PUT,
            &format!("/api/v1/users/{upn}/authentication-methods"),
            Some(json!({ "email": e })),
        )
        .await
        .ok();
    }
    if questions {
        let me = c.sign_in(&upn, FIRST).await;
        let qs: Vec<Value> = (0..3)
            .map(|i| json!({"question": question(i), "answer": format!("Answer Number {i}")}))
            .collect();
        c.call(
            Method::PUT,
            "/api/v1/me/authentication-methods",
            Some(&me),
            Some(json!({ "securityQuestions": qs, "verification": {"method": "password", "password": FIRST} })),
        )
        .await
        .ok();
    }
    upn
}

async fn browser(test: &str) -> Browser {
    let mut b = Browser::start().await.expect("start Chromium");
    b.keep_on_failure(test);
    b
}

/// The page as the browser has it, checked by axe-core (in the browser) and html-validate (on
/// its markup as served, [`Browser::served_html`]).
async fn assert_clean(b: &Browser, what: &str) {
    let problems = b
        .page_problems(what)
        .await
        .expect("axe-core and html-validate");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Clicks `selector`, which submits a form or follows a link, and waits for the next page.
async fn submit(b: &Browser, selector: &str) {
    b.submit(selector).await.unwrap();
}

async fn wait_for_text(b: &Browser, selector: &str) -> String {
    b.wait_for_text(selector).await.unwrap()
}

/// Polls the Maildir (with a deadline) for the code of message number `seen` to `to` that
/// carries a code.
async fn emailed_code(smtp: &testkit::smtp::Smtp, to: &str, seen: usize) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = smtp
            .messages_to(to)
            .unwrap()
            .into_iter()
            .filter_map(|m| code_in(&m.body))
            .nth(seen);
        if let Some(code) = found {
            return code;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no code {} for {to} within 20 s",
            seen + 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn code_in(body: &str) -> Option<String> {
    let chars: Vec<char> = body.chars().collect();
    chars
        .windows(8)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
}

/// Types the user name on `/sspr` and goes to the verification step.
async fn start_reset(b: &Browser, c: &Cloud, upn: &str) {
    b.goto(&format!("{}/sspr", c.base)).await.unwrap();
    b.type_into("#username", upn).await.unwrap();
    submit(b, "form[action='/sspr/start'] button").await;
    b.wait_for("#sspr-intro").await.unwrap();
}

async fn verify_by_email(b: &Browser, env: &Env, to: &str, seen: usize) {
    submit(b, "#send-email").await;
    let notice = wait_for_text(b, "#sspr-notice").await;
    assert!(notice.contains("a code was sent"), "{notice}");
    let code = emailed_code(&env.smtp, to, seen).await;
    b.type_into("#code-email", &code).await.unwrap();
    submit(b, "#verify-email").await;
}

async fn answer_questions(b: &Browser) {
    let n = b
        .find_all("#method-securityQuestions input[name^=answer]")
        .await
        .unwrap()
        .len();
    assert_eq!(n, 3, "the policy's three questions are asked");
    for i in 1..=n {
        let label = b.text(&format!("label[for=answer-{i}]")).await.unwrap();
        b.type_into(&format!("#answer-{i}"), &answer(&label))
            .await
            .unwrap();
    }
    submit(b, "#verify-securityQuestions").await;
}

async fn set_new_password(b: &Browser, password: &str) {
    b.wait_for("#new-password").await.unwrap();
    b.type_into("#new-password", password).await.unwrap();
    b.type_into("#confirm-password", password).await.unwrap();
    submit(b, "#set-password").await;
}

/// Signs in with the API: whether `password` is the account's password now.
async fn password_works(c: &Cloud, upn: &str, password: &str) -> bool {
    c.call(
        Method::POST,
        "/api/v1/auth/token",
        None,
        Some(json!({"userPrincipalName": upn, "password": password})),
    )
    .await
    .status
        == StatusCode::OK
}

#[track_caller]
fn assert_no_secret_in(url: &str) {
    assert!(
        url.ends_with("/sspr") || url.ends_with("/sspr/result") || url.ends_with("/sspr/unlock"),
        "no session secret in the URL: {url}"
    );
}

// ------------------------------------------------------------------ the reset flow

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_reset_with_an_emailed_code_from_the_sign_in_page() {
    let env = env().await;
    let c = &env.c;
    let to = "ada.private@mail.contoso.test";
    let upn = person(c, "ada", Some(to), false).await;

    let b = browser("sspr_email_reset").await;
    b.goto(&c.base).await.unwrap();
    submit(&b, "#cant-access").await;
    b.wait_for("form[action='/sspr/start']").await.unwrap();
    assert_eq!(
        b.title().await.unwrap(),
        "Get back into your account · dirbridge"
    );
    assert_clean(&b, "start page").await;
    b.type_into("#username", &upn).await.unwrap();
    submit(&b, "form[action='/sspr/start'] button").await;
    b.wait_for("#sspr-intro").await.unwrap();
    assert_no_secret_in(&b.current_url().await.unwrap());
    let cookies = b.cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "__Host-dirbridge-sspr")
        .expect("the reset session is in a cookie");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["secure"], true, "{session}");
    let secret = session["value"].as_str().unwrap().to_string();
    assert!(
        !b.source().await.unwrap().contains(&secret),
        "the page never shows the secret"
    );
    assert_eq!(
        b.find_all("#method-email, #method-securityQuestions")
            .await
            .unwrap()
            .len(),
        2,
        "each method the policy offers has its own form"
    );
    assert_clean(&b, "verification page").await;
    b.save(&testkit::browser::screenshots_dir(), "portal-sspr-verify")
        .await
        .unwrap();

    // A wrong code: the use case's words, on the same page.
    submit(&b, "#send-email").await;
    wait_for_text(&b, "#sspr-notice").await;
    b.type_into("#code-email", "00000000").await.unwrap();
    submit(&b, "#verify-email").await;
    let error = wait_for_text(&b, "#sspr-error").await;
    assert!(error.contains("The code is not correct"), "{error}");
    assert_clean(&b, "verification page with an error").await;

    // The code from the mail.
    let code = emailed_code(&env.smtp, to, 0).await;
    b.type_into("#code-email", &code).await.unwrap();
    submit(&b, "#verify-email").await;
    b.wait_for("#new-password").await.unwrap();
    assert_clean(&b, "new password page").await;

    // Typing shows a hint (the vendored script, allowed by the CSP).
    b.type_into("#new-password", "password").await.unwrap();
    let hint = wait_for_text(&b, "#password-hint").await;
    assert!(hint.starts_with("Weak"), "a hint while typing: {hint:?}");
    // Two different passwords: refused by the page, nothing done.
    b.type_into("#confirm-password", "passwordX").await.unwrap();
    submit(&b, "#set-password").await;
    let error = wait_for_text(&b, "#sspr-error").await;
    assert!(error.contains("not the same"), "{error}");
    // Too weak for the cloud's rule: its reason and the server's strength hint.
    set_new_password(&b, "password").await;
    let error = wait_for_text(&b, "#sspr-error").await;
    assert!(!error.is_empty());
    let hint = b.text("#password-hint").await.unwrap();
    assert!(hint.contains("easy to guess"), "{hint}");
    assert!(password_works(c, &upn, FIRST).await, "nothing changed yet");

    set_new_password(&b, NEW).await;
    let done = wait_for_text(&b, "#sspr-result").await;
    assert_eq!(done, "Your password has been changed.");
    assert!(b.current_url().await.unwrap().ends_with("/sspr/result"));
    let support = b.text("#support-code").await.unwrap();
    assert_eq!(
        support.len(),
        36,
        "the tracking id as support code: {support}"
    );
    assert_clean(&b, "result page").await;
    b.save(&testkit::browser::screenshots_dir(), "portal-sspr-done")
        .await
        .unwrap();
    assert!(password_works(c, &upn, NEW).await);
    assert!(!password_works(c, &upn, FIRST).await);
    assert!(
        !b.cookies()
            .await
            .unwrap()
            .iter()
            .any(|c| c["name"] == "__Host-dirbridge-sspr"),
        "the finished session's cookie is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_with_security_questions() {
    let env = env().await;
    let c = &env.c;
    let upn = person(c, "quinn", None, true).await;
    let b = browser("sspr_questions").await;
    start_reset(&b, c, &upn).await;
    answer_questions(&b).await;
    set_new_password(&b, NEW).await;
    assert_eq!(
        wait_for_text(&b, "#sspr-result").await,
        "Your password has been changed."
    );
    assert!(password_works(c, &upn, NEW).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_methods_are_asked_when_the_policy_wants_two() {
    let env = env().await;
    let c = &env.c;
    c.set_policy(json!({"methodsRequired": 2})).await;
    let to = "tess@mail.contoso.test";
    let upn = person(c, "tess", Some(to), true).await;
    let b = browser("sspr_two_methods").await;
    start_reset(&b, c, &upn).await;
    assert!(b.text("#sspr-intro").await.unwrap().contains("two"));
    verify_by_email(&b, &env, to, 0).await;
    // Still verifying: the email form is gone, the questions remain.
    let intro = wait_for_text(&b, "#sspr-intro").await;
    assert!(intro.contains("another"), "{intro}");
    assert!(b.find("#method-email").await.is_err());
    assert_clean(&b, "second verification step").await;
    answer_questions(&b).await;
    set_new_password(&b, NEW).await;
    assert_eq!(
        wait_for_text(&b, "#sspr-result").await,
        "Your password has been changed."
    );
    assert!(password_works(c, &upn, NEW).await);
}

/// The start step tells nothing: an unknown user name gets the same page, the same status and
/// the same forms as a real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_step_answers_the_same_for_an_unknown_user() {
    let env = env().await;
    let c = &env.c;
    let upn = person(c, "uma", Some("uma@mail.contoso.test"), false).await;
    let mut pages = Vec::new();
    for name in [upn.clone(), c.upn("nobody-here")] {
        let b = browser("sspr_no_enumeration").await;
        start_reset(&b, c, &name).await;
        // The same forms (the questions themselves are fixed per user name, real or decoy).
        let mut forms = Vec::new();
        for e in [
            "#method-email",
            "#sspr-intro",
            "#method-securityQuestions h2",
            "#verify-securityQuestions",
        ] {
            forms.push(b.text(e).await.unwrap());
        }
        let asked = b
            .find_all("#method-securityQuestions input[name^=answer]")
            .await
            .unwrap()
            .len();
        submit(&b, "#send-email").await;
        pages.push((forms, asked, wait_for_text(&b, "#sspr-notice").await));
    }
    assert_eq!(pages[0], pages[1]);

    // The same status and headers (a 303 to /sspr with a session cookie) for both names.
    let http = raw_client();
    let mut answers = Vec::new();
    for name in [upn.clone(), c.upn("nobody-here")] {
        let page = http.get(format!("{}/sspr", c.base)).send().await.unwrap();
        let cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with("__Host-dirbridge-csrf="))
            .unwrap();
        let html = page.text().await.unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_owned();
        let r = http
            .post(format!("{}/sspr/start", c.base))
            .header("cookie", cookie)
            .form(&[("csrf", csrf.as_str()), ("username", name.as_str())])
            .send()
            .await
            .unwrap();
        let set: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| {
                let v = v.to_str().unwrap();
                let (name, rest) = v.split_once('=').unwrap();
                let attrs = rest.split_once(';').map(|(_, a)| a).unwrap_or_default();
                format!("{name}; {attrs}")
            })
            .collect();
        answers.push((r.status(), r.headers()["location"].clone(), set));
    }
    assert_eq!(answers[0].0, StatusCode::SEE_OTHER);
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_person_sees_until_when_and_whom_to_ask() {
    let env = env().await;
    let c = &env.c;
    let upn = person(c, "theo", Some("theo@mail.contoso.test"), false).await;
    let b = browser("sspr_throttled").await;
    start_reset(&b, c, &upn).await;
    submit(&b, "#send-email").await;
    wait_for_text(&b, "#sspr-notice").await;
    // Five wrong codes within the hour lock the account out of reset for 24 hours.
    for _ in 0..4 {
        b.type_into("#code-email", "00000000").await.unwrap();
        submit(&b, "#verify-email").await;
        assert!(wait_for_text(&b, "#sspr-error")
            .await
            .contains("not correct"));
    }
    b.type_into("#code-email", "00000000").await.unwrap();
    submit(&b, "#verify-email").await;
    let said = wait_for_text(&b, "#sspr-result").await;
    assert!(said.contains("locked until"), "{said}");
    assert_eq!(
        b.text("#helpdesk-email").await.unwrap(),
        "helpdesk@contoso.test"
    );
    assert_eq!(b.text("#support-code").await.unwrap().len(), 36);
    assert_clean(&b, "throttled page").await;
    b.save(
        &testkit::browser::screenshots_dir(),
        "portal-sspr-throttled",
    )
    .await
    .unwrap();
    // Starting again is refused the same way, on the start page.
    start_reset_refused(&b, &upn).await;
}

async fn start_reset_refused(b: &Browser, upn: &str) {
    submit(b, "#restart").await;
    b.wait_for("#username").await.unwrap();
    b.type_into("#username", upn).await.unwrap();
    submit(b, "form[action='/sspr/start'] button").await;
    let said = wait_for_text(b, "#sspr-error").await;
    assert!(said.contains("locked until"), "{said}");
    assert!(b.find("#helpdesk-email").await.is_ok());
    assert_clean(b, "start page, throttled").await;
}

/// A client that neither follows redirects nor keeps cookies.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_forms_are_refused_and_change_nothing() {
    let env = env().await;
    let c = &env.c;
    let upn = person(c, "fred", Some("fred@mail.contoso.test"), false).await;
    let http = raw_client();
    // No CSRF cookie (a form posted from another site): 403, no session.
    let r = http
        .post(format!("{}/sspr/start", c.base))
        .form(&[("csrf", "forged"), ("username", upn.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        !r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("__Host-dirbridge-sspr=")),
        "no reset session for a forged form"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("did not come from this site"), "{html}");

    // Change password with another session's token: refused, the password unchanged.
    let token = c.sign_in(&upn, FIRST).await;
    let r = http
        .post(format!("{}/my/password", c.base))
        .header("cookie", format!("__Host-dirbridge-session={token}"))
        .form(&[
            ("csrf", "0".repeat(64).as_str()),
            ("current_password", FIRST),
            ("new_password", NEW),
            ("confirm_password", NEW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(password_works(c, &upn, FIRST).await);

    // In the browser: the page with the refusal passes the checks too.
    let b = browser("sspr_csrf").await;
    b.goto(&format!("{}/sspr", c.base)).await.unwrap();
    b.execute(
        "document.querySelector('input[name=csrf]').value = 'forged'",
        vec![],
    )
    .await
    .unwrap();
    b.type_into("#username", &upn).await.unwrap();
    submit(&b, "form[action='/sspr/start'] button").await;
    let said = wait_for_text(&b, "#sspr-error").await;
    assert!(said.contains("did not come from this site"), "{said}");
    assert_clean(&b, "CSRF refusal").await;
}

// ------------------------------------------------------------------ phones and the app

/// A cloud whose SMS gateway (`[sms.text]`, form body) and voice gateway (`[sms.voice]`, JSON
/// body) are a real HTTP receiver, and whose policy offers the phones and the authenticator
/// app besides email.
struct PhoneEnv {
    env: Env,
    sink: testkit::http_sink::HttpSink,
}

async fn phone_env(methods_required: u8) -> PhoneEnv {
    let sink = testkit::http_sink::HttpSink::start().unwrap();
    let text: dirbridge_cloud::sms::Gateway = toml::from_str(&format!(
        r#"
        url = "{}"
        body = {{ To = "{{phone}}", Body = "{{message}}" }}
        success_statuses = [201]
        success_body_contains = "queued"
        "#,
        sink.url("/sms")
    ))
    .unwrap();
    let voice: dirbridge_cloud::sms::Gateway = toml::from_str(&format!(
        r#"
        url = "{}"
        format = "json"
        body = {{ to = "{{phone}}", say = "{{message}}" }}
        "#,
        sink.url("/voice")
    ))
    .unwrap();
    sink.answer(201, r#"{"status":"queued"}"#);
    let env = env_with(|config| {
        config.sms.text = Some(text);
        config.sms.voice = Some(voice);
    })
    .await;
    env.c
        .set_policy(json!({
            "methods": ["email", "mobilePhone", "officePhone", "authenticatorApp"],
            "methodsRequired": methods_required,
        }))
        .await;
    PhoneEnv { env, sink }
}

/// A licensed person with password [`FIRST`] and the given phones (set by the administrator).
async fn phone_person(c: &Cloud, local: &str, phones: Value) -> String {
    let upn = person(c, local, None, false).await;
    c.admin(
        Method::PUT,
        &format!("/api/v1/users/{upn}/authentication-methods"),
        Some(phones),
    )
    .await
    .ok();
    upn
}

/// The code in gateway request number `seen` (from 0): a text message's `Body`, or a voice
/// call's `say` (read digit by digit).
fn code_sent(sink: &testkit::http_sink::HttpSink, seen: usize) -> String {
    let req = sink.wait_for(seen, Duration::from_secs(20)).unwrap();
    let message = if req.target == "/sms" {
        let form: std::collections::HashMap<String, String> =
            serde_urlencoded::from_str(&req.body).unwrap();
        form["Body"].clone()
    } else {
        let v: Value = serde_json::from_str(&req.body).unwrap();
        v["say"].as_str().unwrap().to_string()
    };
    let digits: String = message.chars().filter(char::is_ascii_digit).collect();
    assert!(digits.len() >= 8, "no code in {message:?}");
    digits[..8].to_string()
}

/// Asks for a code by `method` on the verification page, reads it from the gateway receiver
/// (its request number `seen`) and enters it.
async fn verify_by_phone(
    b: &Browser,
    sink: &testkit::http_sink::HttpSink,
    method: &str,
    seen: usize,
) {
    submit(b, &format!("#send-{method}")).await;
    let notice = wait_for_text(b, "#sspr-notice").await;
    assert!(notice.contains("code"), "{notice}");
    let code = code_sent(sink, seen);
    b.type_into(&format!("#code-{method}"), &code)
        .await
        .unwrap();
    submit(b, &format!("#verify-{method}")).await;
}

async fn assert_reset_done(b: &Browser, c: &Cloud, upn: &str) {
    set_new_password(b, NEW).await;
    assert_eq!(
        wait_for_text(b, "#sspr-result").await,
        "Your password has been changed."
    );
    assert!(password_works(c, upn, NEW).await);
}

/// The whole reset with a code texted to the mobile phone: the gateway first fails, and the
/// page says so clearly (for every account alike) and lets the person go on; once it works the
/// code comes from the gateway receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_reset_with_a_texted_code_after_a_gateway_failure() {
    let g = phone_env(1).await;
    let (c, sink) = (&g.env.c, &g.sink);
    let upn = phone_person(c, "sam", json!({"mobilePhone": "+47 912 34 567"})).await;
    let b = browser("sspr_sms_reset").await;
    start_reset(&b, c, &upn).await;
    assert_eq!(
        b.text("#heading-mobilePhone").await.unwrap(),
        "Text my mobile phone a code"
    );
    assert_eq!(b.text("#send-officePhone").await.unwrap(), "Call me");
    assert_clean(&b, "verification page with phones").await;

    // The gateway fails: the send that meets the failure reads like every send; the next ones
    // are refused with the clear message, on the same page with the other methods.
    sink.answer(500, "{}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let error = loop {
        submit(&b, "#send-mobilePhone").await;
        if b.find("#sspr-error").await.is_ok() {
            break b.text("#sspr-error").await.unwrap();
        }
        assert!(
            wait_for_text(&b, "#sspr-notice")
                .await
                .contains("text message"),
            "a send is answered by its notice or the gateway's failure"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway's failure was never told"
        );
    };
    assert!(error.contains("SMS gateway is not available"), "{error}");
    assert!(error.contains("Nothing was counted"), "{error}");
    assert!(b.find("#method-email").await.is_ok());
    assert_clean(&b, "gateway failure").await;
    b.save(
        &testkit::browser::screenshots_dir(),
        "portal-sspr-sms-failed",
    )
    .await
    .unwrap();

    // A minute later the gateway works again.
    c.clock.advance(dirbridge_cloud::sms::RETRY_AFTER_SECS);
    sink.answer(201, r#"{"status":"queued"}"#);
    let seen = sink.requests().len();
    verify_by_phone(&b, sink, "mobilePhone", seen).await;
    assert_eq!(sink.requests()[seen].target, "/sms");
    assert_reset_done(&b, c, &upn).await;
}

/// The whole reset with a code spoken in a voice call to the office phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_reset_with_a_voice_call_to_the_office_phone() {
    let g = phone_env(1).await;
    let (c, sink) = (&g.env.c, &g.sink);
    let upn = phone_person(c, "otto", json!({"officePhone": "+47 22 33 44 55"})).await;
    let b = browser("sspr_voice_reset").await;
    start_reset(&b, c, &upn).await;
    submit(&b, "#send-officePhone").await;
    let notice = wait_for_text(&b, "#sspr-notice").await;
    assert!(notice.contains("called"), "{notice}");
    assert_clean(&b, "voice call notice").await;
    let req = sink.wait_for(0, Duration::from_secs(20)).unwrap();
    assert_eq!(req.target, "/voice");
    let code = code_sent(sink, 0);
    b.type_into("#code-officePhone", &code).await.unwrap();
    submit(&b, "#verify-officePhone").await;
    assert_reset_done(&b, c, &upn).await;
}

/// A reset with two methods, a code from the registered authenticator app (generated here
/// with the registered secret) and a texted code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_with_the_authenticator_app_and_a_texted_code() {
    use tenant::clock::Clock;
    let g = phone_env(2).await;
    let (c, sink) = (&g.env.c, &g.sink);
    let upn = phone_person(c, "tina", json!({"mobilePhone": "+47 912 34 567"})).await;
    // Register the app as the person would: the secret shown once, confirmed by a first code.
    let me = c.sign_in(&upn, FIRST).await;
    let setup = c
        .call(
            Method::POST,
            "/api/v1/me/authentication-methods/authenticator-app",
            Some(&me),
            Some(json!({"verification": {"method": "password", "password": FIRST}})),
        )
        .await
        .ok();
    let app = totp_rs::Totp::from_url(setup["otpauthUri"].as_str().unwrap()).unwrap();
    let first = app.generate(c.clock.now() as u64).to_string();
    c.call(
        Method::POST,
        "/api/v1/me/authentication-methods/authenticator-app/confirm",
        Some(&me),
        Some(json!({"code": first})),
    )
    .await
    .ok();
    // The confirming code's step is used: the reset takes the next one.
    c.clock.advance(30);

    let b = browser("sspr_app_and_sms").await;
    start_reset(&b, c, &upn).await;
    assert!(b.text("#sspr-intro").await.unwrap().contains("two"));
    assert!(
        b.find("#send-authenticatorApp").await.is_err(),
        "the app's code is typed, not sent"
    );
    b.type_into("#code-authenticatorApp", &first).await.unwrap();
    submit(&b, "#verify-authenticatorApp").await;
    let error = wait_for_text(&b, "#sspr-error").await;
    assert!(error.contains("used already"), "{error}");
    let code = app.generate(c.clock.now() as u64).to_string();
    b.type_into("#code-authenticatorApp", &code).await.unwrap();
    submit(&b, "#verify-authenticatorApp").await;
    let intro = wait_for_text(&b, "#sspr-intro").await;
    assert!(intro.contains("another"), "{intro}");
    assert!(b.find("#method-authenticatorApp").await.is_err());
    assert_clean(&b, "second step after the app").await;
    verify_by_phone(&b, sink, "mobilePhone", 0).await;
    assert_reset_done(&b, c, &upn).await;
}

// ------------------------------------------------------------------ change password

async fn sign_in(b: &Browser, c: &Cloud, upn: &str, password: &str) {
    b.goto(&c.base).await.unwrap();
    b.type_into("#username", upn).await.unwrap();
    b.type_into("#password", password).await.unwrap();
    submit(b, "button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_person_changes_their_password() {
    let env = env().await;
    let c = &env.c;
    let upn = person(c, "cleo", Some("cleo@mail.contoso.test"), false).await;
    let b = browser("sspr_change").await;
    sign_in(&b, c, &upn, FIRST).await;
    b.wait_for("#change-password-link").await.unwrap();
    submit(&b, "#change-password-link").await;
    b.wait_for("#current-password").await.unwrap();
    assert_clean(&b, "change password page").await;

    // A wrong current password: the use case's words, nothing changed.
    b.type_into("#current-password", "not-the-password")
        .await
        .unwrap();
    b.type_into("#new-password", NEW).await.unwrap();
    b.type_into("#confirm-password", NEW).await.unwrap();
    submit(&b, "#change-password").await;
    let said = wait_for_text(&b, "#change-error").await;
    assert!(said.contains("current password is not correct"), "{said}");
    assert_clean(&b, "change password refused").await;

    b.type_into("#current-password", FIRST).await.unwrap();
    b.type_into("#new-password", NEW).await.unwrap();
    b.type_into("#confirm-password", NEW).await.unwrap();
    submit(&b, "#change-password").await;
    let said = wait_for_text(&b, "#change-result").await;
    assert!(said.contains("has been changed"), "{said}");
    assert_clean(&b, "password changed").await;
    b.save(
        &testkit::browser::screenshots_dir(),
        "portal-change-password",
    )
    .await
    .unwrap();
    assert!(password_works(c, &upn, NEW).await);
    assert!(!password_works(c, &upn, FIRST).await);
}

// ------------------------------------------------------------------ registration at sign-in

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_interrupts_for_registration_and_later_for_reconfirmation() {
    let mut env = env().await;
    env.c
        .set_policy(json!({"requireRegistrationAtSignIn": true, "reconfirmDays": 30}))
        .await;
    let upn = person(&env.c, "rita", None, false).await;
    let b = browser("sspr_registration_interrupt").await;
    sign_in(&b, &env.c, &upn, FIRST).await;
    let count = wait_for_text(&b, "#register-count").await;
    assert_eq!(count, "0 / 1");
    assert!(b.current_url().await.unwrap().ends_with("/my/register"));
    let go = b
        .execute(
            "return document.getElementById('register-go').getAttribute('href')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(go, "/my/security-info");
    assert_clean(&b, "registration interrupt").await;
    b.save(
        &testkit::browser::screenshots_dir(),
        "portal-register-interrupt",
    )
    .await
    .unwrap();
    submit(&b, "#register-skip").await;
    b.wait_for("#upn").await.unwrap();

    // Registered (as the security info page would), no interrupt; 30 days later, reconfirm.
    env.c
        .admin(
            Method::PUT,
            &format!("/api/v1/users/{upn}/authentication-methods"),
            Some(json!({"email": "rita@mail.contoso.test"})),
        )
        .await
        .ok();
    b.delete_cookies().await.unwrap();
    sign_in(&b, &env.c, &upn, FIRST).await;
    b.wait_for("#upn").await.unwrap();
    env.c.set_time(common::START + 31 * 86_400).await;
    b.delete_cookies().await.unwrap();
    sign_in(&b, &env.c, &upn, FIRST).await;
    b.wait_for("#reconfirm-ok").await.unwrap();
    assert!(b
        .text("#reconfirm-methods")
        .await
        .unwrap()
        .contains("r***@m"));
    assert_clean(&b, "reconfirmation").await;
    submit(&b, "#reconfirm-ok").await;
    b.wait_for("#upn").await.unwrap();
    // Confirmed: the next sign-in goes straight to the account.
    b.delete_cookies().await.unwrap();
    sign_in(&b, &env.c, &upn, FIRST).await;
    b.wait_for("#upn").await.unwrap();
    let audit = env.c.get("/api/v1/audit").await;
    assert!(
        audit
            .to_string()
            .contains("me.authenticationMethods.reconfirm"),
        "the reconfirmation is audited"
    );
}

/// A phone whose gateway the cloud has not set up is no method the person can use: with no
/// voice gateway, a person who registered only the office phone is asked to register at
/// sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_without_its_gateway_does_not_count_at_sign_in() {
    let env = env().await;
    env.c
        .set_policy(
            json!({"requireRegistrationAtSignIn": true, "methods": ["email", "officePhone"]}),
        )
        .await;
    let upn = phone_person(&env.c, "paul", json!({"officePhone": "+47 22 33 44 55"})).await;
    let b = browser("sspr_phone_without_gateway").await;
    sign_in(&b, &env.c, &upn, FIRST).await;
    assert_eq!(wait_for_text(&b, "#register-count").await, "0 / 1");
}
