//! `/my/security-info` in a real browser (Debian's headless Chromium over WebDriver): a person
//! registers and removes each reset method — email (whose reset code then arrives through a
//! real SMTP server), mobile and office phone (pre-filled from the account), security
//! questions from the policy's bank and the tenant's own, an authenticator app confirmed with a
//! code computed from the secret the page shows — each change with a fresh verification; a
//! wrong or missing verification is refused with the use case's words and changes nothing; the
//! old and the new address get the change notice; forged forms are refused. Every page is
//! checked with axe-core and html-validate.
// Polls with real deadlines (tests may read the clock; the product reads it through tenant::clock).
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::{Cloud, START};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::browser::Browser;

const FIRST: &str = "First-Pass-w0rd";
const CUSTOM_QUESTION: &str = "What was the name of our first team mascot?";
const NOTICE: &str = "Your password reset methods were changed";

struct Env {
    c: Cloud,
    smtp: testkit::smtp::Smtp,
}

async fn env() -> Env {
    let mut config = common::unlimited();
    let smtp =
        common::mail_through_sink(&mut config, "Contoso password reset <sspr@contoso.test>").await;
    let c = Cloud::start_with(config, None).await;
    c.admin(Method::POST, "/api/v1/licenses/trial", None)
        .await
        .ok();
    let mut p = c.get("/api/v1/policy").await["policy"].clone();
    p["enabledFor"] = json!("all");
    p["methods"] = json!([
        "email",
        "mobilePhone",
        "officePhone",
        "securityQuestions",
        "authenticatorApp"
    ]);
    p["requireRegistrationAtSignIn"] = json!(false);
    // The tenant's own question next to the predefined ones.
    p["securityQuestions"]
        .as_array_mut()
        .unwrap()
        .push(json!(CUSTOM_QUESTION));
    c.admin(Method::PUT, "/api/v1/policy", Some(p)).await.ok();
    Env { c, smtp }
}

/// A licensed cloud user with password [`FIRST`], an account mail and mobile phone (what the
/// directory would hold), no reset methods.
async fn person(c: &Cloud, local: &str) -> String {
    c.user(
        local,
        json!({
            "usageLocation": "NO",
            "password": FIRST,
            "mail": format!("{local}@corp.contoso.test"),
            "mobilePhone": "+47 912 34 567",
        }),
    )
    .await;
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

/// Sets the value of the input or select `selector` (replacing what is there).
async fn set_value(b: &Browser, selector: &str, value: &str) {
    b.execute(
        "document.querySelector(arguments[0]).value = arguments[1]",
        vec![json!(selector), json!(value)],
    )
    .await
    .unwrap();
}

async fn value_of(b: &Browser, selector: &str) -> String {
    b.execute(
        "return document.querySelector(arguments[0]).value",
        vec![json!(selector)],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap()
    .to_string()
}

async fn sign_in(b: &Browser, c: &Cloud, upn: &str) {
    b.goto(&c.base).await.unwrap();
    b.type_into("#username", upn).await.unwrap();
    b.type_into("#password", FIRST).await.unwrap();
    submit(b, "button[type=submit]").await;
    b.wait_for("#security-info-link").await.unwrap();
}

/// Opens the page of `method` from the list (its add or change link).
async fn open(b: &Browser, c: &Cloud, method: &str) {
    b.goto(&format!("{}/my/security-info", c.base))
        .await
        .unwrap();
    b.wait_for("#security-info-methods").await.unwrap();
    submit(b, &format!("#add-{method}, #change-{method}")).await;
    b.wait_for("#edit-heading, #app-heading").await.unwrap();
}

/// How the person confirms it is them on a form.
enum Proof<'a> {
    Password(&'a str),
    App(String),
    Questions,
}

async fn prove(b: &Browser, proof: Proof<'_>) {
    match proof {
        Proof::Password(p) => {
            if b.find("#verify-by-password").await.is_ok() {
                b.click("#verify-by-password").await.unwrap();
            }
            b.type_into("#verify-password", p).await.unwrap();
        }
        Proof::App(code) => {
            b.click("#verify-by-app").await.unwrap();
            b.type_into("#verify-code", &code).await.unwrap();
        }
        Proof::Questions => {
            b.click("#verify-by-questions").await.unwrap();
            let n = b
                .find_all("input[name^=verify_answer_]")
                .await
                .unwrap()
                .len();
            assert_eq!(n, 3, "every registered question is asked");
            for i in 1..=n {
                let q = b
                    .text(&format!("label[for=verify-answer-{i}]"))
                    .await
                    .unwrap();
                b.type_into(&format!("#verify-answer-{i}"), &answer_to(&q))
                    .await
                    .unwrap();
            }
        }
    }
}

/// Saves (`op` save) or removes the method on its page, with `proof`.
async fn save(b: &Browser, proof: Proof<'_>, button: &str) {
    prove(b, proof).await;
    submit(b, button).await;
}

async fn notice(b: &Browser) -> String {
    wait_for_text(b, "#security-info-notice").await
}

/// The answer registered for `question` in these tests (each question its own).
fn answer_to(question: &str) -> String {
    let tail: String = question.chars().rev().take(30).collect();
    format!("A {tail}")
}

fn question(i: usize) -> String {
    tenant::policy::predefined_questions()[i].to_string()
}

/// What the API says the person registered.
async fn registered(c: &Cloud, upn: &str) -> Value {
    c.get(&format!("/api/v1/users/{upn}/authentication-methods"))
        .await
}

/// The code an authenticator app shows at `now` for the base32 `secret` the page showed, with
/// the page's parameters (SHA1, 6 digits, 30 s).
fn app_code(secret: &str, now: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("a base32 secret");
    let t = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(secret)
        .with_account_name("ada")
        .build()
        .expect("a TOTP");
    t.generate(now as u64).to_string()
}

/// Polls the Maildir (with a deadline) for notice number `seen` of changed methods to `to`.
async fn methods_notice(smtp: &testkit::smtp::Smtp, to: &str, seen: usize) -> testkit::smtp::Mail {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = smtp
            .messages_to(to)
            .unwrap()
            .into_iter()
            .filter(|m| m.subject == NOTICE)
            .nth(seen);
        if let Some(m) = found {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notice {} for {to} within 20 s",
            seen + 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the Maildir (with a deadline) for the first 8-digit reset code to `to`.
async fn emailed_code(smtp: &testkit::smtp::Smtp, to: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = smtp.messages_to(to).unwrap().into_iter().find_map(|m| {
            let chars: Vec<char> = m.body.chars().collect();
            chars
                .windows(8)
                .find(|w| w.iter().all(char::is_ascii_digit))
                .map(|w| w.iter().collect::<String>())
        });
        if let Some(code) = found {
            return code;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reset code for {to} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------ every method

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_registers_and_removes_each_method() {
    let mut env = env().await;
    let upn = person(&env.c, "ada").await;
    let private = "ada.private@mail.contoso.test";
    let b = browser("security_info_methods").await;
    sign_in(&b, &env.c, &upn).await;
    submit(&b, "#security-info-link").await;
    b.wait_for("#security-info-methods").await.unwrap();
    for m in [
        "email",
        "mobilePhone",
        "officePhone",
        "securityQuestions",
        "authenticatorApp",
    ] {
        assert!(b.find(&format!("#add-{m}")).await.is_ok(), "{m} offered");
    }
    assert_clean(&b, "security info, nothing registered").await;

    // Email: the account's address is offered; the person types another. Nothing registered
    // yet, so the current password is the one proof, and the field says so.
    open(&b, &env.c, "email").await;
    assert_eq!(value_of(&b, "#value").await, "ada@corp.contoso.test");
    assert!(b.find("#verify-by-app").await.is_err());
    assert_clean(&b, "add email").await;
    set_value(&b, "#value", private).await;
    save(&b, Proof::Password(FIRST), "#save").await;
    assert!(notice(&b).await.contains("Email: saved."));
    assert!(b
        .current_url()
        .await
        .unwrap()
        .ends_with("/my/security-info?saved=email"));
    let shown = b.text("#value-email").await.unwrap();
    assert_eq!(shown, tenant::sspr::mask_email(private), "masked");
    assert!(!b.source().await.unwrap().contains(private));
    assert_clean(&b, "security info with an email").await;
    let m = methods_notice(&env.smtp, private, 0).await;
    assert!(
        m.body.contains("email") && m.body.contains("by you"),
        "{}",
        m.body
    );

    // The registered address receives a reset code: the reset page verifies with it.
    b.goto(&format!("{}/sspr", env.c.base)).await.unwrap();
    b.type_into("#username", &upn).await.unwrap();
    submit(&b, "form[action='/sspr/start'] button").await;
    submit(&b, "#send-email").await;
    let code = emailed_code(&env.smtp, private).await;
    b.type_into("#code-email", &code).await.unwrap();
    submit(&b, "#verify-email").await;
    b.wait_for("#new-password").await.unwrap();

    // Mobile phone, pre-filled from the account; a change of a phone is mailed too.
    open(&b, &env.c, "mobilePhone").await;
    assert_eq!(value_of(&b, "#value").await, "+47 912 34 567");
    save(&b, Proof::Password(FIRST), "#save").await;
    assert_eq!(
        wait_for_text(&b, "#value-mobilePhone").await,
        tenant::sspr::mask_phone("+47 912 34 567")
    );
    let m = methods_notice(&env.smtp, private, 1).await;
    assert!(m.body.contains("mobile phone"), "{}", m.body);
    assert!(
        !m.body.contains("912"),
        "no value in the notice: {}",
        m.body
    );

    // Office phone, typed.
    open(&b, &env.c, "officePhone").await;
    assert_eq!(value_of(&b, "#value").await, "");
    b.type_into("#value", "+47 22 33 44 55").await.unwrap();
    save(&b, Proof::Password(FIRST), "#save").await;
    assert_eq!(
        wait_for_text(&b, "#value-officePhone").await,
        tenant::sspr::mask_phone("+47 22 33 44 55")
    );

    // Security questions: two predefined ones and the tenant's own.
    open(&b, &env.c, "securityQuestions").await;
    assert_eq!(wait_for_text(&b, "#questions-min").await, "3");
    let options = b.find_all("#question-1 option").await.unwrap().len();
    assert_eq!(
        options,
        tenant::policy::predefined_questions().len() + 2,
        "the bank, the tenant's question and the placeholder"
    );
    assert_clean(&b, "register questions").await;
    let chosen = [question(0), question(3), CUSTOM_QUESTION.to_string()];
    for (i, q) in chosen.iter().enumerate() {
        set_value(&b, &format!("#question-{}", i + 1), q).await;
        b.type_into(&format!("#answer-{}", i + 1), &answer_to(q))
            .await
            .unwrap();
    }
    save(&b, Proof::Password(FIRST), "#save").await;
    let shown = wait_for_text(&b, "#value-securityQuestions").await;
    assert!(shown.contains(CUSTOM_QUESTION), "{shown}");
    assert!(!b
        .source()
        .await
        .unwrap()
        .contains(&answer_to(CUSTOM_QUESTION)));

    // Authenticator app, proved by the questions this time: the QR code and the values for
    // "can't scan", then the first code of the app.
    open(&b, &env.c, "authenticatorApp").await;
    assert!(b.find("#verify-by-questions").await.is_ok());
    assert_clean(&b, "authenticator app, before setup").await;
    save(&b, Proof::Questions, "#save").await;
    b.wait_for("#qr-code").await.unwrap();
    let secret = b.text("#app-secret").await.unwrap();
    assert_eq!(b.text("#app-account").await.unwrap(), upn);
    assert_eq!(b.text("#app-algorithm").await.unwrap(), "SHA1");
    assert_eq!(b.text("#app-digits").await.unwrap(), "6");
    assert_eq!(b.text("#app-period").await.unwrap(), "30");
    assert!(b
        .current_url()
        .await
        .unwrap()
        .ends_with("/my/security-info/authenticatorApp"));
    assert_clean(&b, "authenticator app setup").await;
    b.save(
        &testkit::browser::screenshots_dir(),
        "portal-security-info-authenticator",
    )
    .await
    .unwrap();
    // A wrong first code: refused, the app not registered; the right one registers it.
    b.type_into("#app-code", "000000").await.unwrap();
    submit(&b, "#confirm-app").await;
    let said = wait_for_text(&b, "#security-info-error").await;
    assert!(said.contains("not the current code"), "{said}");
    assert_clean(&b, "authenticator app, wrong first code").await;
    b.type_into("#app-code", &app_code(&secret, START))
        .await
        .unwrap();
    submit(&b, "#confirm-app").await;
    assert!(notice(&b).await.contains("Authenticator app: saved."));
    assert!(
        !b.source().await.unwrap().contains(&secret),
        "never shown again"
    );
    assert_clean(&b, "security info, every method").await;
    b.save(&testkit::browser::screenshots_dir(), "portal-security-info")
        .await
        .unwrap();
    assert_eq!(
        registered(&env.c, &upn).await["methods"],
        json!([
            "email",
            "mobilePhone",
            "officePhone",
            "securityQuestions",
            "authenticatorApp"
        ])
    );

    // Removing: the office phone with a later code of the app, the rest with the password.
    env.c.set_time(START + 60).await;
    open(&b, &env.c, "officePhone").await;
    assert_clean(&b, "change office phone").await;
    save(&b, Proof::App(app_code(&secret, START + 60)), "#remove").await;
    assert!(notice(&b).await.contains("Office phone: removed."));
    for m in [
        "authenticatorApp",
        "securityQuestions",
        "mobilePhone",
        "email",
    ] {
        open(&b, &env.c, m).await;
        save(&b, Proof::Password(FIRST), "#remove").await;
        assert!(notice(&b).await.contains("removed."), "{m}");
        assert!(b.find(&format!("#add-{m}")).await.is_ok(), "{m} removed");
    }
    assert_eq!(registered(&env.c, &upn).await["methods"], json!([]));
    // Ten changes, each told; the last, the removal of the email, to the address it had.
    let last = methods_notice(&env.smtp, private, 9).await;
    assert!(last.body.contains("email"), "{}", last.body);
}

// ------------------------------------------------------------------ refused changes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_a_correct_fresh_verification_is_refused() {
    let env = env().await;
    let upn = person(&env.c, "bob").await;
    let b = browser("security_info_refused").await;
    sign_in(&b, &env.c, &upn).await;

    // A wrong password: the use case's words, nothing stored, nobody mailed.
    open(&b, &env.c, "email").await;
    set_value(&b, "#value", "bob.private@mail.contoso.test").await;
    save(&b, Proof::Password("Not-The-Pass-w0rd"), "#save").await;
    let said = wait_for_text(&b, "#security-info-error").await;
    assert!(
        said.contains("password given is not correct, so your reset methods were not changed"),
        "{said}"
    );
    assert_clean(&b, "wrong password refused").await;
    assert_eq!(registered(&env.c, &upn).await["methods"], json!([]));

    // With questions registered the person may choose: no proof at all is refused too, and so
    // are wrong answers.
    open(&b, &env.c, "securityQuestions").await;
    for i in 0..3 {
        set_value(&b, &format!("#question-{}", i + 1), &question(i)).await;
        b.type_into(&format!("#answer-{}", i + 1), &answer_to(&question(i)))
            .await
            .unwrap();
    }
    save(&b, Proof::Password(FIRST), "#save").await;
    notice(&b).await;
    open(&b, &env.c, "email").await;
    b.click("#verify-by-questions").await.unwrap();
    submit(&b, "#save").await;
    let said = wait_for_text(&b, "#security-info-error").await;
    assert!(
        said.contains("the security questions given is not correct"),
        "{said}"
    );
    b.click("#verify-by-password").await.unwrap();
    submit(&b, "#save").await;
    let said = wait_for_text(&b, "#security-info-error").await;
    assert!(said.contains("needs a fresh verification"), "{said}");
    assert_clean(&b, "no verification refused").await;
    assert_eq!(
        registered(&env.c, &upn).await["methods"],
        json!(["securityQuestions"])
    );
    // The refusals are audited.
    let audit = env.c.get("/api/v1/audit").await.to_string();
    assert!(audit.contains("me.authenticationMethods.verify"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_email_tells_the_old_and_the_new_address() {
    let env = env().await;
    let upn = person(&env.c, "cleo").await;
    let (old, new) = ("cleo.old@mail.contoso.test", "cleo.new@mail.contoso.test");
    let b = browser("security_info_moved_email").await;
    sign_in(&b, &env.c, &upn).await;
    open(&b, &env.c, "email").await;
    set_value(&b, "#value", old).await;
    save(&b, Proof::Password(FIRST), "#save").await;
    notice(&b).await;
    methods_notice(&env.smtp, old, 0).await;

    open(&b, &env.c, "email").await;
    assert_eq!(
        value_of(&b, "#value").await,
        "",
        "no pre-fill over a registered email"
    );
    assert!(wait_for_text(&b, "#current-value").await.starts_with("c*"));
    set_value(&b, "#value", new).await;
    save(&b, Proof::Password(FIRST), "#save").await;
    notice(&b).await;
    for to in [old, new, "cleo@corp.contoso.test"] {
        let m = methods_notice(&env.smtp, to, if to == new { 0 } else { 1 }).await;
        assert!(
            m.body.contains(&upn) && m.body.contains("email"),
            "{to}: {}",
            m.body
        );
        assert!(
            !m.body.contains(new),
            "no address in the notice: {}",
            m.body
        );
    }
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
    let upn = person(&env.c, "fred").await;
    let token = env.c.sign_in(&upn, FIRST).await;
    let http = raw_client();
    for (path, extra) in [
        (
            "/my/security-info/email",
            ("value", "attacker@mail.evil.test"),
        ),
        ("/my/security-info/authenticatorApp", ("op", "save")),
        (
            "/my/security-info/authenticatorApp/confirm",
            ("code", "123456"),
        ),
    ] {
        let r = http
            .post(format!("{}{path}", env.c.base))
            .header("cookie", format!("__Host-dirbridge-session={token}"))
            .form(&[
                ("csrf", "0".repeat(64).as_str()),
                extra,
                ("verify_method", "password"),
                ("verify_password", FIRST),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let html = r.text().await.unwrap();
        assert!(html.contains("did not come from this site"), "{html}");
    }
    assert_eq!(registered(&env.c, &upn).await["methods"], json!([]));
    // No session: the sign-in page, nothing done.
    let r = http
        .post(format!("{}/my/security-info/email", env.c.base))
        .form(&[("csrf", "x"), ("value", "attacker@mail.evil.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/");

    // In the browser: the refusal page passes the checks too.
    let b = browser("security_info_csrf").await;
    sign_in(&b, &env.c, &upn).await;
    open(&b, &env.c, "email").await;
    set_value(&b, "form[action$=email] input[name=csrf]", "forged").await;
    save(&b, Proof::Password(FIRST), "#save").await;
    let said = b.source().await.unwrap();
    assert!(said.contains("did not come from this site"), "{said}");
    assert_clean(&b, "CSRF refusal").await;
    assert_eq!(registered(&env.c, &upn).await["methods"], json!([]));
    assert!(env.smtp.messages().unwrap().is_empty(), "nobody mailed");
}
