//! Self-service password reset end to end over HTTP: method registration, the anonymous reset
//! flow with codes delivered by a real SMTP server (aiosmtpd from `testkit::smtp`), security
//! questions, throttles and lockouts on a manual clock, the refusal classes, writeback with no
//! agent connected, and no secret left in the database files.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::Cloud;
use reqwest::Method;
use serde_json::{json, Value};

const MARKER: &str = "Marker-Pa55word-7f3c";
const HOUR: i64 = 3600;

struct Env {
    c: Cloud,
    smtp: testkit::smtp::Smtp,
}

async fn env() -> Env {
    env_on(false).await
}

/// With `postgres`, the cloud runs on a fresh PostgreSQL instead of SQLite.
async fn env_on(postgres: bool) -> Env {
    env_with(postgres, |_| {}).await
}

/// [`env_on`] with `tweak` applied to the cloud's configuration.
async fn env_with(postgres: bool, tweak: impl FnOnce(&mut dirbridge_cloud::config::Config)) -> Env {
    let pg = postgres.then(|| testkit::postgres::Postgres::start().expect("start PostgreSQL"));
    let mut config = common::unlimited();
    let smtp =
        common::mail_through_sink(&mut config, "Contoso password reset <sspr@contoso.test>").await;
    tweak(&mut config);
    let c = Cloud::start_with(config, pg).await;
    c.admin(Method::POST, "/api/v1/licenses/trial", None)
        .await
        .ok();
    Env { c, smtp }
}

/// A licensed cloud user with a password and the given registration: contact methods set by
/// the administrator, security answers by the person (only they may).
async fn licensed_user(c: &Cloud, local: &str, methods: Value) -> String {
    c.user(
        local,
        json!({"usageLocation": "NO", "password": "First-Pass-w0rd"}),
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
    if methods.is_null() {
        return upn;
    }
    let mut contacts = methods;
    let answers = contacts
        .as_object_mut()
        .unwrap()
        .remove("securityQuestions");
    if !contacts.as_object().unwrap().is_empty() {
        c.admin(
            Method::PUT,
            &format!("/api/v1/users/{upn}/authentication-methods"),
            Some(contacts),
        )
        .await
        .ok();
    }
    if let Some(q) = answers {
        let me = c.sign_in(&upn, "First-Pass-w0rd").await;
        c.call(
            Method::PUT,
            "/api/v1/me/authentication-methods",
            Some(&me),
            Some(proved(json!({ "securityQuestions": q }), "First-Pass-w0rd")),
        )
        .await
        .ok();
    }
    upn
}

/// `body` with the fresh verification a change of one's own methods needs: `password`.
fn proved(mut body: Value, password: &str) -> Value {
    body["verification"] = json!({"method": "password", "password": password});
    body
}

fn question(i: usize) -> String {
    tenant::policy::predefined_questions()[i].to_string()
}

/// The answer registered for question `i` in these tests.
fn answer(i: usize) -> String {
    format!("Answer Number {i}")
}

fn questions(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"question": question(i), "answer": answer(i)}))
            .collect(),
    )
}

async fn start(c: &Cloud, upn: &str) -> common::Reply {
    c.call(
        Method::POST,
        "/api/v1/sspr/start",
        None,
        Some(json!({"userPrincipalName": upn})),
    )
    .await
}

async fn session(c: &Cloud, upn: &str) -> (String, Value) {
    let v = start(c, upn).await.ok();
    (v["sessionId"].as_str().unwrap().to_string(), v)
}

async fn anon(c: &Cloud, method: Method, path: &str, body: Option<Value>) -> common::Reply {
    c.call(method, path, None, body).await
}

/// A call on the reset session `sid`, whose secret travels in its header, never in the path.
async fn in_session(
    c: &Cloud,
    method: Method,
    path: &str,
    sid: &str,
    body: Option<Value>,
) -> common::Reply {
    c.sspr(method, path, sid, body).await
}

/// The subject of the notice a person gets when their reset methods change.
const METHODS_NOTICE: &str = "Your password reset methods were changed";
/// The subject of the notice a person gets when an administrator clears their reset lockout.
const LOCKOUT_NOTICE: &str = "Your password reset lockout was cleared";

/// Polls the Maildir (with a deadline) for the first message to `to` with `subject`.
async fn mail_titled(smtp: &testkit::smtp::Smtp, to: &str, subject: &str) -> testkit::smtp::Mail {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = smtp
            .messages_to(to)
            .unwrap()
            .into_iter()
            .find(|m| m.subject == subject)
        {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message {subject:?} for {to} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the Maildir (with a deadline) for message number `seen` to `to`, not counting the
/// notices of changed methods.
async fn mail(smtp: &testkit::smtp::Smtp, to: &str, seen: usize) -> testkit::smtp::Mail {
    mail_of(smtp, to, seen, false).await
}

/// Notice of changed methods number `seen` to `to`.
async fn methods_notice(smtp: &testkit::smtp::Smtp, to: &str, seen: usize) -> testkit::smtp::Mail {
    mail_of(smtp, to, seen, true).await
}

async fn mail_of(
    smtp: &testkit::smtp::Smtp,
    to: &str,
    seen: usize,
    notices: bool,
) -> testkit::smtp::Mail {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = smtp
            .messages_to(to)
            .unwrap()
            .into_iter()
            .filter(|m| m.subject != LOCKOUT_NOTICE)
            .filter(|m| (m.subject == METHODS_NOTICE) == notices)
            .nth(seen);
        if let Some(m) = found {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message {} for {to} within 20 s",
            seen + 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn code_in(m: &testkit::smtp::Mail) -> String {
    let digits: Vec<char> = m.body.chars().collect();
    for w in digits.windows(8) {
        if w.iter().all(char::is_ascii_digit) {
            return w.iter().collect();
        }
    }
    panic!("no 8-digit code in {:?}", m.body);
}

/// Sends a code for the session and returns it from the SMTP server.
async fn emailed_code(env: &Env, sid: &str, to: &str, seen: usize) -> String {
    let r = in_session(&env.c, Method::POST, "/api/v1/sspr/email/send", sid, None).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    code_in(&mail(&env.smtp, to, seen).await)
}

async fn verify(c: &Cloud, sid: &str, body: Value) -> common::Reply {
    in_session(c, Method::POST, "/api/v1/sspr/verify", sid, Some(body)).await
}

/// The shape of a start answer with the session id and times taken out.
fn shape(v: &Value) -> Value {
    json!({
        "keys": v.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
        "sessionIdLength": v["sessionId"].as_str().unwrap().len(),
        "expiresAt": v["expiresAt"],
        "methodsRequired": v["methodsRequired"],
        "methods": v["methods"],
        "questions": v["questions"].as_array().unwrap().len(),
    })
}

fn db_bytes(c: &Cloud) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(c.data_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            all.extend(std::fs::read(p).unwrap());
        }
    }
    all
}

fn assert_absent(hay: &[u8], needle: &str) {
    assert!(
        !hay.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "{needle:?} found in the database files"
    );
}

// ------------------------------------------------------------------ registration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_validated_and_shown_masked() {
    let env = env().await;
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all", "methods": ["email", "securityQuestions"]}))
        .await;
    let upn = licensed_user(c, "ada", Value::Null).await;
    let path = format!("/api/v1/users/{upn}/authentication-methods");
    let me = c.sign_in(&upn, "First-Pass-w0rd").await;
    let bad = |qs: Value| proved(json!({"securityQuestions": qs}), "First-Pass-w0rd");
    for (body, needle) in [
        (bad(questions(2)), "2 given; register 3 to 5"),
        (
            bad(json!([
                {"question": question(0), "answer": "aaa"},
                {"question": "What is your shoe size?", "answer": "bbb"},
                {"question": question(2), "answer": "ccc"}
            ])),
            "not one of the tenant's questions",
        ),
        (
            bad(json!([
                {"question": question(0), "answer": "Secret Word"},
                {"question": question(1), "answer": "secret  word"},
                {"question": question(2), "answer": "ccc"}
            ])),
            "same answer",
        ),
        (
            bad(json!([
                {"question": question(0), "answer": "ab"},
                {"question": question(1), "answer": "bbb"},
                {"question": question(2), "answer": "ccc"}
            ])),
            "is 2 characters",
        ),
        (
            proved(json!({"email": "not-an-email"}), "First-Pass-w0rd"),
            "email",
        ),
    ] {
        let r = c
            .call(
                Method::PUT,
                "/api/v1/me/authentication-methods",
                Some(&me),
                Some(body),
            )
            .await;
        assert_eq!(r.status.as_u16(), 400, "{}", r.body);
        assert!(r.error_message().contains(needle), "{}", r.body);
        assert!(!r.body.to_string().to_lowercase().contains("secret word"));
    }
    c.admin(
        Method::PUT,
        &path,
        Some(json!({"email": "ada.lovelace@mail.contoso.test", "mobilePhone": "+47 912 34 567"})),
    )
    .await
    .ok();
    let v = c
        .call(
            Method::PUT,
            "/api/v1/me/authentication-methods",
            Some(&me),
            Some(proved(
                json!({"securityQuestions": questions(3)}),
                "First-Pass-w0rd",
            )),
        )
        .await
        .ok();
    assert_eq!(v["email"], "a***********@m***********.test");
    assert_eq!(v["mobilePhone"], "******4567");
    assert_eq!(
        v["methods"],
        json!(["email", "mobilePhone", "securityQuestions"])
    );
    assert_eq!(v["securityQuestions"][0], question(0));
    assert!(!v.to_string().contains(&answer(0)));
    assert_eq!(c.get(&path).await, v);

    // A Password Administrator may register for a plain user, not for a Global Administrator;
    // a user may register their own.
    let helpdesk = c.admin_with_role("pa", "passwordAdministrator").await;
    let r = c.call(Method::GET, &path, Some(&helpdesk), None).await;
    assert!(r.status.is_success(), "{}", r.body);
    let admin_path = format!("/api/v1/users/{}/authentication-methods", c.upn("admin"));
    let r = c
        .call(
            Method::PUT,
            &admin_path,
            Some(&helpdesk),
            Some(json!({"email": "x@y.test"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.body);
    let mine = c
        .call(
            Method::PUT,
            "/api/v1/me/authentication-methods",
            Some(&me),
            Some(proved(json!({"mobilePhone": null}), "First-Pass-w0rd")),
        )
        .await
        .ok();
    assert_eq!(mine["mobilePhone"], Value::Null);
    assert_eq!(mine["methods"], json!(["email", "securityQuestions"]));
    // Administrators cannot register security questions.
    let r = c
        .admin(
            Method::PUT,
            "/api/v1/me/authentication-methods",
            Some(proved(
                json!({"securityQuestions": questions(3)}),
                common::ADMIN_PASSWORD,
            )),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.error_message().contains("administrators"), "{}", r.body);
}

/// An administrator may set a person's contact methods (and remove their questions), never
/// their security answers or an authenticator secret; every change of a person's methods, by
/// anyone, is mailed to them (at the addresses before and after the change and at `mail`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_cannot_plant_answers_and_every_change_of_methods_is_mailed() {
    let env = env().await;
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all", "methods": ["email", "securityQuestions"]}))
        .await;
    c.user(
        "ada",
        json!({"usageLocation": "NO", "password": "First-Pass-w0rd", "mail": "ada@corp.contoso.test"}),
    )
    .await;
    let ada = c.upn("ada");
    let path = format!("/api/v1/users/{ada}/authentication-methods");
    let helpdesk = c.admin_with_role("pa", "passwordAdministrator").await;
    let pa = c.upn("pa");

    // Answers: refused for a Password Administrator and a Global Administrator alike, and
    // nothing is stored.
    for token in [&helpdesk, &c.admin_token] {
        let r = c
            .call(
                Method::PUT,
                &path,
                Some(token),
                Some(json!({"securityQuestions": questions(3)})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 403, "{}", r.body);
        assert!(
            r.error_message()
                .contains("/api/v1/me/authentication-methods"),
            "{}",
            r.body
        );
    }
    // No field takes an authenticator secret.
    let r = c
        .call(
            Method::PUT,
            &path,
            Some(&helpdesk),
            Some(json!({"authenticatorApp": {"secret": "JBSWY3DPEHPK3PXP"}})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert_eq!(c.get(&path).await["methods"], json!([]));
    assert!(env.smtp.messages().unwrap().is_empty());

    // A contact method: allowed, and mailed to the new address and to the account's mail.
    c.call(
        Method::PUT,
        &path,
        Some(&helpdesk),
        Some(json!({"email": "ada.private@mail.contoso.test"})),
    )
    .await
    .ok();
    for to in ["ada.private@mail.contoso.test", "ada@corp.contoso.test"] {
        let m = methods_notice(&env.smtp, to, 0).await;
        assert!(
            m.body.contains(&ada) && m.body.contains("email"),
            "{}",
            m.body
        );
        assert!(
            m.body.contains(&pa),
            "the notice names the administrator: {}",
            m.body
        );
    }
    // The person registers their own answers: told too.
    let me = c.sign_in(&ada, "First-Pass-w0rd").await;
    c.call(
        Method::PUT,
        "/api/v1/me/authentication-methods",
        Some(&me),
        Some(proved(
            json!({"securityQuestions": questions(3)}),
            "First-Pass-w0rd",
        )),
    )
    .await
    .ok();
    let m = methods_notice(&env.smtp, "ada.private@mail.contoso.test", 1).await;
    assert!(
        m.body.contains("security questions") && m.body.contains("by you"),
        "{}",
        m.body
    );
    assert!(!m.body.contains(&answer(0)), "{}", m.body);
    // An administrator may remove the questions (the person registers again), and moving the
    // email tells the old address as well as the new one.
    c.call(
        Method::PUT,
        &path,
        Some(&helpdesk),
        Some(json!({"securityQuestions": null, "email": "attacker@mail.evil.test"})),
    )
    .await
    .ok();
    let m = methods_notice(&env.smtp, "ada.private@mail.contoso.test", 2).await;
    assert!(
        m.body.contains("email") && m.body.contains("security questions"),
        "{}",
        m.body
    );
    methods_notice(&env.smtp, "attacker@mail.evil.test", 0).await;
    assert_eq!(c.get(&path).await["methods"], json!(["email"]));
}

/// A stolen token alone cannot move a person's reset methods (issue 20): every change of one's
/// own methods carries a fresh verification — the current password (the only one before
/// anything is registered), or a method registered before, here the security questions —
/// wrong ones are refused and counted like failed sign-ins, and the old and the new address
/// are both told of a moved email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_method_changes_need_a_fresh_verification() {
    own_method_changes(env().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_method_changes_need_a_fresh_verification_on_postgres() {
    own_method_changes(env_on(true).await).await;
}

async fn own_method_changes(env: Env) {
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all", "methods": ["email", "securityQuestions"]}))
        .await;
    let ada = licensed_user(c, "ada", Value::Null).await;
    let me = c.sign_in(&ada, "First-Pass-w0rd").await;
    let put = |body: Value| {
        let me = me.clone();
        async move {
            c.call(
                Method::PUT,
                "/api/v1/me/authentication-methods",
                Some(&me),
                Some(body),
            )
            .await
        }
    };
    let mine = || async {
        c.call(
            Method::GET,
            "/api/v1/me/authentication-methods",
            Some(&me),
            None,
        )
        .await
        .ok()
    };
    let first = json!({"email": "ada.old@mail.contoso.test"});

    // No verification, a wrong password, or a method not registered: refused, nothing stored.
    let r = put(first.clone()).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    assert!(r.error_message().contains("current password"), "{}", r.body);
    let r = put(proved(first.clone(), "Not-The-Pass-w0rd")).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    let mut by_answers = first.clone();
    by_answers["verification"] = json!({"method": "securityQuestions", "answers": questions(3)});
    let r = put(by_answers).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert_eq!(mine().await["methods"], json!([]));
    assert!(env.smtp.messages().unwrap().is_empty());

    // The current password proves the first registration.
    let v = put(proved(first, "First-Pass-w0rd")).await.ok();
    assert_eq!(v["methods"], json!(["email"]));
    methods_notice(&env.smtp, "ada.old@mail.contoso.test", 0).await;
    put(proved(
        json!({"securityQuestions": questions(3)}),
        "First-Pass-w0rd",
    ))
    .await
    .ok();

    // The registered questions prove a change too; a wrong answer does not.
    let answers = |wrong: bool| {
        let mut a = questions(3);
        if wrong {
            a[1]["answer"] = json!("Not The Answer");
        }
        json!({"method": "securityQuestions", "answers": a})
    };
    let mut moved = json!({"email": "ada.newer@mail.contoso.test"});
    moved["verification"] = answers(true);
    let r = put(moved.clone()).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    assert!(!r.body.to_string().contains(&answer(0)));
    assert_eq!(mine().await["email"], "a******@m***********.test");
    moved["verification"] = answers(false);
    let v = put(moved).await.ok();
    assert_eq!(v["email"], "a********@m***********.test");
    // Both the old and the new address are told of the move.
    let old = methods_notice(&env.smtp, "ada.old@mail.contoso.test", 2).await;
    assert!(old.body.contains("email"), "{}", old.body);
    methods_notice(&env.smtp, "ada.newer@mail.contoso.test", 0).await;

    // Wrong passwords count like failed sign-ins: after the sign-in limit even the right
    // password is refused, and so is a sign-in.
    for _ in 0..10 {
        let r = put(proved(
            json!({"mobilePhone": "+47 912 34 567"}),
            "Wrong-Pass-w0rd",
        ))
        .await;
        assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    }
    let r = put(proved(
        json!({"mobilePhone": "+47 912 34 567"}),
        "First-Pass-w0rd",
    ))
    .await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.body);
    let r = c
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"userPrincipalName": ada, "password": "First-Pass-w0rd"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.body);
    assert_eq!(mine().await["mobilePhone"], Value::Null);
    let audit = c
        .get("/api/v1/audit?action=me.authenticationMethods.update")
        .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["result"] == "failure"),
        "refused changes are audited: {audit}"
    );
}

/// An administrator who may reset a person's password can lift their reset lockout: audited,
/// and the person is mailed; someone without that right cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_clears_a_reset_lockout_and_the_person_is_told() {
    clear_lockout(env().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_clears_a_reset_lockout_on_postgres() {
    clear_lockout(env_on(true).await).await;
}

async fn clear_lockout(env: Env) {
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all"})).await;
    let to = "ada@mail.contoso.test";
    let ada = licensed_user(c, "ada", json!({"email": to})).await;
    let (sid, _) = session(c, &ada).await;
    let good = emailed_code(&env, &sid, to, 0).await;
    let wrong = if good == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..5 {
        verify(c, &sid, json!({"method": "email", "code": wrong})).await;
    }
    assert_eq!(start(c, &ada).await.status.as_u16(), 429);

    let path = format!("/api/v1/users/{ada}/sspr-lockout/clear");
    let plain = c.user("bob", json!({"password": "Bobs-Pass-w0rd"})).await;
    let bob = c
        .sign_in(
            plain["userPrincipalName"].as_str().unwrap(),
            "Bobs-Pass-w0rd",
        )
        .await;
    let r = c.call(Method::POST, &path, Some(&bob), None).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.body);
    assert_eq!(start(c, &ada).await.status.as_u16(), 429);

    let helpdesk = c.admin_with_role("pa", "passwordAdministrator").await;
    let v = c
        .call(Method::POST, &path, Some(&helpdesk), None)
        .await
        .ok();
    assert_eq!(v["wasLocked"], true);
    // Reset works again at once, with a fresh count of failures.
    let (sid, _) = session(c, &ada).await;
    let code = emailed_code(&env, &sid, to, 1).await;
    verify(c, &sid, json!({"method": "email", "code": code}))
        .await
        .ok();
    let m = mail_titled(&env.smtp, to, LOCKOUT_NOTICE).await;
    assert!(
        m.body.contains(&c.upn("pa")) && m.body.contains(&ada),
        "{}",
        m.body
    );
    let audit = c.get("/api/v1/audit?action=user.ssprLockout.clear").await;
    let items = audit["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|r| r["result"] == "success" && r["actor"] == c.upn("pa").as_str()),
        "{audit}"
    );
    assert!(items.iter().any(|r| r["result"] == "failure"), "{audit}");
}

// ------------------------------------------------------------------ no enumeration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_answers_the_same_for_unknown_out_of_scope_and_known_users() {
    let env = env().await;
    let c = &env.c;
    let g = c
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": "sspr-users"})),
        )
        .await
        .ok();
    let gid = g["id"].as_str().unwrap().to_string();
    c.set_policy(
        json!({"enabledFor": "group", "groupId": gid, "methods": ["email", "securityQuestions"]}),
    )
    .await;
    let reg = json!({"email": "ada@mail.contoso.test", "securityQuestions": questions(3)});
    let ada = licensed_user(c, "ada", reg.clone()).await;
    let bob = licensed_user(c, "bob", json!({"email": "bob@mail.contoso.test"})).await;
    let ada_id = c.get(&format!("/api/v1/users/{ada}")).await["id"].clone();
    c.admin(
        Method::POST,
        &format!("/api/v1/groups/{gid}/members"),
        Some(json!({"kind": "user", "id": ada_id})),
    )
    .await
    .ok();

    // Known and in scope, known and out of scope, unknown: one shape, from the tenant's policy.
    let mut shapes = Vec::new();
    let mut views = Vec::new();
    for upn in [ada.clone(), bob.clone(), c.upn("nobody"), c.upn("admin")] {
        let r = start(c, &upn).await;
        assert_eq!(r.status.as_u16(), 200, "{upn}: {}", r.body);
        shapes.push(shape(&r.body));
        // The session's progress, and a wrong set of answers, look the same too.
        let sid = r.body["sessionId"].as_str().unwrap();
        let mut v = in_session(c, Method::GET, "/api/v1/sspr/session", sid, None)
            .await
            .ok();
        v["questions"] = json!(v["questions"].as_array().unwrap().len());
        views.push(v);
        let answers: Vec<Value> = r.body["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| json!({"question": q, "answer": "not the answer"}))
            .collect();
        let wrong = verify(
            c,
            sid,
            json!({"method": "securityQuestions", "answers": answers}),
        )
        .await;
        assert_eq!(wrong.status.as_u16(), 401, "{upn}: {}", wrong.body);
        assert_eq!(
            wrong.error_message(),
            "One or more answers are not correct. Try again."
        );
    }
    for (s, v) in shapes[1..].iter().zip(&views[1..]) {
        assert_eq!(s, &shapes[0]);
        assert_eq!(v, &views[0]);
    }
    assert_eq!(views[0]["methodsRequired"], 1);
    // A domain no tenant has gets a decoy too (with the default policy's offer: which domains
    // have a tenant is public in DNS anyway).
    let r = start(c, "someone@unknown-domain.example").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(shape(&r.body)["keys"], shapes[0]["keys"]);
    assert_eq!(shapes[0]["methods"], json!(["email", "securityQuestions"]));
    assert_eq!(shapes[0]["questions"], 3);

    // Asking again for an unknown UPN gives questions from one stable set, like a real account.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (_, v) = session(c, &c.upn("nobody")).await;
        for q in v["questions"].as_array().unwrap() {
            seen.insert(q.as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // Sending a code answers the same, and only the real account gets a message.
    for upn in [&ada, &bob, &c.upn("nobody")] {
        let (sid, _) = session(c, upn).await;
        let r = in_session(c, Method::POST, "/api/v1/sspr/email/send", &sid, None).await;
        assert_eq!(r.status.as_u16(), 202, "{}", r.body);
        assert_eq!(
            r.body["message"],
            "If this account has an email address registered for password reset, a code was sent to it. It is valid for 5 minutes."
        );
    }
    mail(&env.smtp, "ada@mail.contoso.test", 0).await;
    mail(&env.smtp, "bob@mail.contoso.test", 0).await;

    // Before verification nobody is told anything about the account.
    let (sid, _) = session(c, &bob).await;
    let v = in_session(c, Method::GET, "/api/v1/sspr/session", &sid, None)
        .await
        .ok();
    assert_eq!(v["complete"], false);
    assert_eq!(v["canReset"], false);
    assert!(v.get("refusal").is_none(), "{v}");
    let r = in_session(
        c,
        Method::POST,
        "/api/v1/sspr/password",
        &sid,
        Some(json!({"newPassword": MARKER})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 403);
    assert!(r.body["error"].get("class").is_none(), "{}", r.body);
    // Malformed and unknown session ids are the same 404.
    for sid in ["nope", &"A".repeat(43)] {
        let r = in_session(c, Method::GET, "/api/v1/sspr/session", sid, None).await;
        assert_eq!(r.status.as_u16(), 404);
    }
}

// ------------------------------------------------------------------ email codes

/// The reset session's secret travels in the `X-Dirbridge-Sspr-Session` header, never in a
/// URL: the old paths with the secret in them are gone (404, nothing sent), a call without the
/// header is refused with what to do, and no reset route of the API document has a place for
/// it in its path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_secret_travels_in_a_header_never_in_the_url() {
    let env = env().await;
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all"})).await;
    let to = "ada@mail.contoso.test";
    let ada = licensed_user(c, "ada", json!({"email": to})).await;
    let (sid, _) = session(c, &ada).await;

    for (method, path, body) in [
        (Method::GET, format!("/api/v1/sspr/{sid}"), None),
        (Method::POST, format!("/api/v1/sspr/{sid}/email/send"), None),
        (
            Method::POST,
            format!("/api/v1/sspr/{sid}/verify"),
            Some(json!({"method": "email", "code": "00000000"})),
        ),
        (
            Method::POST,
            format!("/api/v1/sspr/{sid}/password"),
            Some(json!({"newPassword": MARKER})),
        ),
        (Method::GET, format!("/api/v1/sspr/{sid}/result"), None),
    ] {
        let r = anon(c, method.clone(), &path, body).await;
        assert_eq!(
            r.status.as_u16(),
            404,
            "{method} with the secret in the path: {}",
            r.body
        );
    }
    let r = anon(c, Method::POST, "/api/v1/sspr/email/send", None).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    assert!(
        r.error_message().contains("X-Dirbridge-Sspr-Session"),
        "{}",
        r.body
    );

    // In the header: the flow works, and the old-path send sent nothing (one code mail only).
    let code = emailed_code(&env, &sid, to, 0).await;
    let codes = env
        .smtp
        .messages_to(to)
        .unwrap()
        .into_iter()
        .filter(|m| m.subject != METHODS_NOTICE)
        .count();
    assert_eq!(codes, 1);
    let p = verify(c, &sid, json!({"method": "email", "code": code}))
        .await
        .ok();
    assert_eq!(p["canReset"], true, "{p}");

    let doc = c.call(Method::GET, "/openapi.json", None, None).await.ok();
    let paths: Vec<&String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("/api/v1/sspr"))
        .collect();
    assert!(paths.len() >= 7, "{paths:?}");
    for p in paths {
        assert!(
            !p.contains("session}") && (!p.contains('{') || p == "/api/v1/sspr/{method}/send"),
            "a reset path with room for the secret: {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_code_arrives_by_smtp_verifies_and_resets_a_cloud_password_once() {
    let env = env().await;
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all"})).await;
    let to = "ada@mail.contoso.test";
    let ada = licensed_user(c, "ada", json!({"email": to})).await;
    let (sid, v) = session(c, &ada).await;
    assert_eq!(v["methods"], json!(["email"]));
    assert_eq!(v["methodsRequired"], 1);

    let code = emailed_code(&env, &sid, to, 0).await;
    let m = mail(&env.smtp, to, 0).await;
    assert_eq!(m.subject, "Your password reset code");
    assert_eq!(m.sender, "sspr@contoso.test");
    let r = verify(c, &sid, json!({"method": "email", "code": code})).await;
    let p = r.ok();
    assert_eq!(p["verified"], json!(["email"]));
    assert_eq!(p["complete"], true);
    assert_eq!(p["canReset"], true, "{p}");

    // The code is used up.
    let r = verify(c, &sid, json!({"method": "email", "code": code})).await;
    assert_eq!(r.status.as_u16(), 401);

    let r = in_session(
        c,
        Method::POST,
        "/api/v1/sspr/password",
        &sid,
        Some(json!({"newPassword": MARKER})),
    )
    .await;
    let res = r.ok();
    assert_eq!(res["outcome"], "succeeded", "{res}");
    assert_eq!(res["message"], "Your password has been changed.");
    assert!(res["trackingId"].as_str().unwrap().len() > 10);
    c.sign_in(&ada, MARKER).await;
    let notice = mail(&env.smtp, to, 1).await;
    assert_eq!(notice.subject, "Your account was reset");

    // The session cannot be used again; its result stays readable until it expires.
    let again = in_session(
        c,
        Method::POST,
        "/api/v1/sspr/password",
        &sid,
        Some(json!({"newPassword": "Other-Pa55word-1"})),
    )
    .await;
    assert_eq!(again.status.as_u16(), 409, "{}", again.body);
    let r = in_session(c, Method::POST, "/api/v1/sspr/email/send", &sid, None).await;
    assert_eq!(r.status.as_u16(), 404);
    let last = in_session(c, Method::GET, "/api/v1/sspr/result", &sid, None)
        .await
        .ok();
    assert_eq!(last["outcome"], "succeeded");

    // Sessions last 15 minutes.
    c.clock.advance(15 * 60);
    let r = in_session(c, Method::GET, "/api/v1/sspr/result", &sid, None).await;
    assert_eq!(r.status.as_u16(), 404);

    // Nothing secret reached the database files.
    let db = db_bytes(c);
    for secret in [MARKER, code.as_str(), sid.as_str()] {
        assert_absent(&db, secret);
    }
}

// ------------------------------------------------------------------ SMS and voice

/// A cloud whose SMS gateway (`text`: form body, basic auth from a secret file, 201 with
/// "queued") and voice gateway (`voice`: JSON body, bearer token) are a real HTTP receiver.
struct Gateways {
    env: Env,
    sink: testkit::http_sink::HttpSink,
    _dir: tempfile::TempDir,
}

async fn gateways(text: bool, voice: bool) -> Gateways {
    let sink = testkit::http_sink::HttpSink::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("sms-secret");
    std::fs::write(&secret_file, "gateway-Pa55\n").unwrap();
    let text_gw: dirbridge_cloud::sms::Gateway = toml::from_str(&format!(
        r#"
        url = "{}"
        body = {{ To = "{{phone}}", Body = "{{message}}" }}
        auth = "basic"
        username = "AC123"
        secret_file = "{}"
        success_statuses = [201]
        success_body_contains = "queued"
        "#,
        sink.url("/sms"),
        secret_file.display()
    ))
    .unwrap();
    let voice_gw: dirbridge_cloud::sms::Gateway = toml::from_str(&format!(
        r#"
        url = "{}"
        format = "json"
        body = {{ to = "{{phone}}", say = "{{message}}" }}
        auth = "bearer"
        secret_file = "{}"
        "#,
        sink.url("/voice"),
        secret_file.display()
    ))
    .unwrap();
    sink.answer(201, r#"{"status":"queued"}"#);
    let env = env_with(false, |config| {
        config.sms.text = text.then_some(text_gw);
        config.sms.voice = voice.then_some(voice_gw);
    })
    .await;
    Gateways {
        env,
        sink,
        _dir: dir,
    }
}

async fn send_code(c: &Cloud, sid: &str, method: &str) -> common::Reply {
    in_session(
        c,
        Method::POST,
        &format!("/api/v1/sspr/{method}/send"),
        sid,
        None,
    )
    .await
}

/// The 8-digit code in a text message or a spoken message (read digit by digit).
fn code_said(message: &str) -> String {
    let digits: String = message.chars().filter(char::is_ascii_digit).collect();
    assert!(digits.len() >= 8, "no code in {message:?}");
    digits[..8].to_string()
}

/// An error answer without its tracking id (which differs from request to request).
fn without_tracking_id(r: &common::Reply) -> (u16, Value) {
    let mut v = r.body.clone();
    if let Some(e) = v.get_mut("error").and_then(Value::as_object_mut) {
        e.remove("trackingId");
    }
    (r.status.as_u16(), v)
}

/// Codes by text message (form body, basic auth from a secret file) and by voice call (JSON
/// body, bearer token) reach a real HTTP receiver and verify only their own method, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_and_voice_codes_go_through_the_http_gateway() {
    let g = gateways(true, true).await;
    let (c, sink) = (&g.env.c, &g.sink);
    c.set_policy(json!({"enabledFor": "all", "methods": ["mobilePhone", "officePhone"], "methodsRequired": 2}),
    )
    .await;
    let ada = licensed_user(
        c,
        "ada",
        json!({"mobilePhone": "+47 912 34 567", "officePhone": "+47 22 33 44 55"}),
    )
    .await;
    let (sid, v) = session(c, &ada).await;
    assert_eq!(v["methods"], json!(["mobilePhone", "officePhone"]));

    let r = send_code(c, &sid, "mobilePhone").await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    let req = sink.wait_for(0, Duration::from_secs(10)).unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/sms");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("AC123:gateway-Pa55");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(&req.body).unwrap();
    assert_eq!(form["To"], "+4791234567");
    let sms_code = code_said(&form["Body"]);

    // A texted code does not verify the office phone; it verifies the mobile phone once.
    let r = verify(c, &sid, json!({"method": "officePhone", "code": sms_code})).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    let p = verify(c, &sid, json!({"method": "mobilePhone", "code": sms_code}))
        .await
        .ok();
    assert_eq!(p["verified"], json!(["mobilePhone"]));
    let r = verify(c, &sid, json!({"method": "mobilePhone", "code": sms_code})).await;
    assert_eq!(r.status.as_u16(), 401, "a code is used once: {}", r.body);

    // The voice call: JSON, bearer token, the code read digit by digit.
    sink.answer(200, "{}");
    assert_eq!(send_code(c, &sid, "officePhone").await.status.as_u16(), 202);
    let req = sink.wait_for(1, Duration::from_secs(10)).unwrap();
    assert_eq!(req.target, "/voice");
    assert_eq!(req.header("authorization"), Some("Bearer gateway-Pa55"));
    let body: Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body["to"], "+4722334455");
    let voice_code = code_said(body["say"].as_str().unwrap());
    let p = verify(
        c,
        &sid,
        json!({"method": "officePhone", "code": voice_code}),
    )
    .await
    .ok();
    assert_eq!(p["canReset"], true, "{p}");

    // Nothing secret in the database: not the codes, not the gateway secret.
    let db = db_bytes(c);
    for s in [sms_code.as_str(), voice_code.as_str(), "gateway-Pa55"] {
        assert_absent(&db, s);
    }
}

/// A failing gateway tells nobody who has a phone: the send that meets the failure is answered
/// like every send (the message leaves in the background), and from then on, for a minute,
/// every send on that channel is refused with the same clear 503 — for an account with the
/// phone, one without it and an unknown name alike — and counts nothing against the person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gateway_answers_the_same_with_or_without_a_phone_and_counts_nothing() {
    let g = gateways(true, false).await;
    let sink = &g.sink;
    g.env
        .c
        .set_policy(
            json!({"enabledFor": "all", "methods": ["mobilePhone", "email"], "methodsRequired": 1}),
        )
        .await;
    let c = &g.env.c;
    let ada = licensed_user(c, "ada", json!({"mobilePhone": "+47 912 34 567"})).await;
    let bob = licensed_user(c, "bob", json!({"email": "bob@mail.contoso.test"})).await;
    let (with_phone, _) = session(c, &ada).await;
    let (without_phone, _) = session(c, &bob).await;
    let (nobody, _) = session(c, &c.upn("nobody")).await;

    // The gateway fails. The sends before the failure is seen are answered alike (Bob's first,
    // as Ada's failure is told to the sends after it); only Ada's reaches the gateway.
    sink.answer(500, "{}");
    let b = send_code(c, &without_phone, "mobilePhone").await;
    let a = send_code(c, &with_phone, "mobilePhone").await;
    assert_eq!(a.status.as_u16(), 202, "{}", a.body);
    assert_eq!((a.status, &a.body), (b.status, &b.body));
    sink.wait_for(0, Duration::from_secs(10)).unwrap();
    // Once the failure is seen, every account's send is refused with the same answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let r = send_code(c, &nobody, "mobilePhone").await;
        if r.status.as_u16() == 503 {
            break r;
        }
        assert_eq!(r.status.as_u16(), 202, "{}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "the failure was never told"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        refused.error_code(),
        "serviceUnavailable",
        "{}",
        refused.body
    );
    assert!(
        refused.error_message().contains("Nothing was counted"),
        "{}",
        refused.body
    );
    for sid in [&with_phone, &without_phone] {
        let r = send_code(c, sid, "mobilePhone").await;
        assert_eq!(without_tracking_id(&r), without_tracking_id(&refused));
    }
    // More refused sends than the 10 allowed in 10 minutes: none of them counted.
    for _ in 0..11 {
        assert_eq!(
            send_code(c, &with_phone, "mobilePhone")
                .await
                .status
                .as_u16(),
            503
        );
    }
    assert_eq!(
        sink.requests().len(),
        1,
        "a refused send reached the gateway"
    );

    // A minute later the gateway is tried again: accepted status but not the expected text is a
    // failure too, told to the sends after it.
    c.clock.advance(dirbridge_cloud::sms::RETRY_AFTER_SECS);
    sink.answer(201, r#"{"status":"failed"}"#);
    assert_eq!(
        send_code(c, &with_phone, "mobilePhone")
            .await
            .status
            .as_u16(),
        202
    );
    sink.wait_for(1, Duration::from_secs(10)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while send_code(c, &nobody, "mobilePhone").await.status.as_u16() != 503 {
        assert!(
            std::time::Instant::now() < deadline,
            "the failure was never told"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Working again: the code arrives and verifies.
    c.clock.advance(dirbridge_cloud::sms::RETRY_AFTER_SECS);
    sink.answer(201, r#"{"status":"queued"}"#);
    let r = send_code(c, &with_phone, "mobilePhone").await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.body);
    let req = sink.wait_for(2, Duration::from_secs(10)).unwrap();
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(&req.body).unwrap();
    let p = verify(
        c,
        &with_phone,
        json!({"method": "mobilePhone", "code": code_said(&form["Body"])}),
    )
    .await
    .ok();
    assert_eq!(p["canReset"], true, "{p}");
}

/// A phone is a method a person can use only where its gateway is set up: with an SMS gateway
/// and none for voice, the office phone is neither offered nor counted, so a person whose
/// second method is the office phone has too few methods (told once verified), where the
/// mobile phone counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_count_as_methods_only_with_their_gateway() {
    let g = gateways(true, false).await;
    let (env, sink) = (&g.env, &g.sink);
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all", "methods": ["email", "mobilePhone", "officePhone"], "methodsRequired": 2}),
    )
    .await;
    let ada = licensed_user(
        c,
        "ada",
        json!({"email": "ada@mail.contoso.test", "officePhone": "+47 22 33 44 55"}),
    )
    .await;
    let (sid, v) = session(c, &ada).await;
    assert_eq!(v["methods"], json!(["email", "mobilePhone"]));
    let r = send_code(c, &sid, "officePhone").await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    let code = emailed_code(env, &sid, "ada@mail.contoso.test", 0).await;
    let p = verify(c, &sid, json!({"method": "email", "code": code}))
        .await
        .ok();
    assert_eq!(p["methods"], json!(["email", "mobilePhone"]), "{p}");
    assert_eq!(p["complete"], true, "{p}");
    assert_eq!(p["refusal"]["class"], "notEnoughMethods", "{p}");

    // The mobile phone, whose gateway is set up, is a second method.
    let bob = licensed_user(
        c,
        "bob",
        json!({"email": "bob@mail.contoso.test", "mobilePhone": "+47 912 34 567"}),
    )
    .await;
    let (sid, _) = session(c, &bob).await;
    let code = emailed_code(env, &sid, "bob@mail.contoso.test", 0).await;
    let p = verify(c, &sid, json!({"method": "email", "code": code}))
        .await
        .ok();
    assert_eq!(p["complete"], false, "{p}");
    assert!(p.get("refusal").is_none(), "{p}");
    assert_eq!(send_code(c, &sid, "mobilePhone").await.status.as_u16(), 202);
    let req = sink.wait_for(0, Duration::from_secs(10)).unwrap();
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(&req.body).unwrap();
    let p = verify(
        c,
        &sid,
        json!({"method": "mobilePhone", "code": code_said(&form["Body"])}),
    )
    .await
    .ok();
    assert_eq!(p["canReset"], true, "{p}");
}

/// Phone codes have their own budget, apart from the emails': 10 per 10 minutes for text
/// messages and voice calls together, and using up one budget leaves the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_codes_have_their_own_send_budget() {
    let g = gateways(true, true).await;
    let c = &g.env.c;
    c.set_policy(json!({"enabledFor": "all", "methods": ["email", "mobilePhone", "officePhone"], "methodsRequired": 1}),
    )
    .await;
    let ada = licensed_user(
        c,
        "ada",
        json!({"email": "ada@mail.contoso.test", "mobilePhone": "+47 912 34 567", "officePhone": "+47 22 33 44 55"}),
    )
    .await;
    let (sid, _) = session(c, &ada).await;
    for _ in 0..10 {
        assert_eq!(send_code(c, &sid, "email").await.status.as_u16(), 202);
    }
    assert_eq!(send_code(c, &sid, "email").await.status.as_u16(), 429);
    for i in 0..10 {
        let m = if i % 2 == 0 {
            "mobilePhone"
        } else {
            "officePhone"
        };
        let r = send_code(c, &sid, m).await;
        assert_eq!(r.status.as_u16(), 202, "send {i}: {}", r.body);
    }
    for m in ["mobilePhone", "officePhone"] {
        let r = send_code(c, &sid, m).await;
        assert_eq!(r.status.as_u16(), 429, "{}", r.body);
        assert!(r.error_message().contains("Too many codes"), "{}", r.body);
    }
}

// ------------------------------------------------------------------ authenticator app

/// The code an authenticator app shows at `now`, from the `otpauth://` URI it scanned.
fn app_code(uri: &str, now: i64) -> String {
    let t = totp_rs::Totp::from_url(uri).expect("a valid otpauth URI");
    t.generate(now as u64).to_string()
}

/// An authenticator app is registered in two steps (a secret shown once after a fresh
/// verification, then a first code), verifies a reset with each code once, one step either side,
/// is never the only method a reset rests on, and its secret is never in the database in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticator_app_registers_verifies_each_code_once_and_is_never_the_only_method() {
    authenticator_app(env().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticator_app_works_the_same_on_postgres() {
    authenticator_app(env_on(true).await).await;
}

async fn authenticator_app(env: Env) {
    use tenant::clock::Clock;
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all", "methods": ["email", "authenticatorApp"]}))
        .await;
    let ada = licensed_user(c, "ada", Value::Null).await;
    let me = c.sign_in(&ada, "First-Pass-w0rd").await;
    let begin_path = "/api/v1/me/authentication-methods/authenticator-app";
    let confirm_path = "/api/v1/me/authentication-methods/authenticator-app/confirm";

    // Beginning needs a fresh verification; then the secret is shown once.
    let r = c
        .call(Method::POST, begin_path, Some(&me), Some(json!({})))
        .await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    let setup = c
        .call(
            Method::POST,
            begin_path,
            Some(&me),
            Some(json!({"verification": {"method": "password", "password": "First-Pass-w0rd"}})),
        )
        .await
        .ok();
    let uri = setup["otpauthUri"].as_str().unwrap().to_string();
    let secret = setup["secret"].as_str().unwrap().to_string();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&secret),
        "{uri}"
    );
    assert_eq!(setup["digits"], 6);
    assert_eq!(setup["period"], 30);
    assert_eq!(setup["algorithm"], "SHA1");
    // Not registered until confirmed; a wrong first code does not confirm it.
    let mine = c
        .call(
            Method::GET,
            "/api/v1/me/authentication-methods",
            Some(&me),
            None,
        )
        .await
        .ok();
    assert_eq!(mine["methods"], json!([]));
    let now = c.clock.now();
    let good = app_code(&uri, now);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    let r = c
        .call(
            Method::POST,
            confirm_path,
            Some(&me),
            Some(json!({"code": wrong})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    let v = c
        .call(
            Method::POST,
            confirm_path,
            Some(&me),
            Some(json!({"code": good})),
        )
        .await
        .ok();
    assert_eq!(v["methods"], json!(["authenticatorApp"]));
    assert!(!v.to_string().contains(&secret));
    let r = c
        .call(
            Method::POST,
            confirm_path,
            Some(&me),
            Some(json!({"code": good})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 409, "nothing waits any more: {}", r.body);

    // The only method registered: verified, but not enough for a reset.
    let (sid, v) = session(c, &ada).await;
    assert_eq!(v["methods"], json!(["email", "authenticatorApp"]));
    // The code that confirmed the app is used up.
    let r = verify(c, &sid, json!({"method": "authenticatorApp", "code": good})).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    c.clock.advance(30);
    let code = app_code(&uri, c.clock.now());
    let p = verify(c, &sid, json!({"method": "authenticatorApp", "code": code}))
        .await
        .ok();
    assert_eq!(p["verified"], json!(["authenticatorApp"]));
    assert_eq!(p["canReset"], false, "{p}");
    assert_eq!(p["refusal"]["class"], "notEnoughMethods", "{p}");

    // With an email as well, the app counts beside it. The proof of the change is the app.
    c.clock.advance(30);
    let to = "ada@mail.contoso.test";
    let v = c
        .call(
            Method::PUT,
            "/api/v1/me/authentication-methods",
            Some(&me),
            Some(json!({
                "email": to,
                "verification": {"method": "authenticatorApp", "code": app_code(&uri, c.clock.now())},
            })),
        )
        .await
        .ok();
    assert_eq!(v["methods"], json!(["email", "authenticatorApp"]));
    // The code of the step before the current one is accepted too (a slow typist).
    c.clock.advance(60);
    let (sid, _) = session(c, &ada).await;
    let code = app_code(&uri, c.clock.now() - 30);
    let p = verify(c, &sid, json!({"method": "authenticatorApp", "code": code}))
        .await
        .ok();
    assert_eq!(p["complete"], false, "the app alone is not enough: {p}");
    // A second session cannot reuse that code.
    let (sid2, _) = session(c, &ada).await;
    let r = verify(
        c,
        &sid2,
        json!({"method": "authenticatorApp", "code": code}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    let mail_code = emailed_code(&env, &sid, to, 0).await;
    let p = verify(c, &sid, json!({"method": "email", "code": mail_code}))
        .await
        .ok();
    assert_eq!(p["canReset"], true, "{p}");

    // Removing it needs a proof as well; an administrator cannot give it a secret.
    c.clock.advance(30);
    let r = c
        .call(
            Method::PUT,
            "/api/v1/me/authentication-methods",
            Some(&me),
            Some(json!({"authenticatorApp": null})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    let v = c
        .call(
            Method::PUT,
            "/api/v1/me/authentication-methods",
            Some(&me),
            Some(proved(json!({"authenticatorApp": null}), "First-Pass-w0rd")),
        )
        .await
        .ok();
    assert_eq!(v["methods"], json!(["email"]));
    let notice = methods_notice(&env.smtp, to, 1).await;
    assert!(notice.body.contains("authenticator app"), "{}", notice.body);

    // The secret never reached the database in clear.
    let db = db_bytes(c);
    assert_absent(&db, &secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_expire_and_five_wrong_codes_lock_known_and_unknown_accounts_alike() {
    codes_and_lockouts(env().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_and_lockouts_work_the_same_on_postgres() {
    codes_and_lockouts(env_on(true).await).await;
}

async fn codes_and_lockouts(env: Env) {
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all"})).await;
    let to = "ada@mail.contoso.test";
    let ada = licensed_user(c, "ada", json!({"email": to})).await;

    // A code lives 5 minutes.
    let (sid, _) = session(c, &ada).await;
    let code = emailed_code(&env, &sid, to, 0).await;
    c.clock.advance(5 * 60);
    let r = verify(c, &sid, json!({"method": "email", "code": code})).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    assert!(r.error_message().contains("expired"));

    // Four more failures (five in the hour) lock the account out for 24 hours.
    let (sid, _) = session(c, &ada).await;
    let good = emailed_code(&env, &sid, to, 1).await;
    let wrong = if good == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..3 {
        let r = verify(c, &sid, json!({"method": "email", "code": wrong})).await;
        assert_eq!(r.status.as_u16(), 401);
    }
    let r = verify(c, &sid, json!({"method": "email", "code": wrong})).await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.body);
    assert_eq!(r.error_code(), "tooManyRequests");
    let r = verify(c, &sid, json!({"method": "email", "code": good})).await;
    assert_eq!(
        r.status.as_u16(),
        429,
        "the right code is refused while locked"
    );
    assert_eq!(start(c, &ada).await.status.as_u16(), 429);

    // An unknown UPN behaves the same: five failures, then locked.
    let nobody = c.upn("nobody");
    let (sid, _) = session(c, &nobody).await;
    let r = in_session(c, Method::POST, "/api/v1/sspr/email/send", &sid, None).await;
    assert_eq!(r.status.as_u16(), 202);
    for i in 0..5 {
        let r = verify(c, &sid, json!({"method": "email", "code": "12345678"})).await;
        assert_eq!(
            r.status.as_u16(),
            if i < 4 { 401 } else { 429 },
            "{}",
            r.body
        );
    }
    assert_eq!(start(c, &nobody).await.status.as_u16(), 429);

    // The lockout ends after 24 hours.
    c.clock.advance(24 * HOUR);
    let (sid, _) = session(c, &ada).await;
    let code = emailed_code(&env, &sid, to, 2).await;
    verify(c, &sid, json!({"method": "email", "code": code}))
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_emails_per_ten_minutes() {
    let env = env().await;
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all"})).await;
    let ada = licensed_user(c, "ada", json!({"email": "ada@mail.contoso.test"})).await;
    let (sid, _) = session(c, &ada).await;
    let send = || in_session(c, Method::POST, "/api/v1/sspr/email/send", &sid, None);
    for _ in 0..10 {
        assert_eq!(send().await.status.as_u16(), 202);
    }
    let r = send().await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.body);
    assert!(r.error_message().contains("Too many codes"));
    c.clock.advance(10 * 60);
    assert_eq!(send().await.status.as_u16(), 202);
}

// ------------------------------------------------------------------ security questions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_questions_asked_are_fixed_per_account_known_or_not_and_verify() {
    let env = env().await;
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all", "methods": ["email", "securityQuestions"], "questionsToRegister": 4, "questionsToAnswer": 3}),
    )
    .await;
    let ada = licensed_user(c, "ada", json!({"securityQuestions": questions(4)})).await;
    let registered: Vec<String> = (0..4).map(question).collect();
    // An account that registered more questions than the policy asks (4 for 3) and an unknown
    // UPN (whose decoy pretends exactly the policy's 3) look alike over repeated starts: each
    // is always asked the same set.
    let nobody = c.upn("nobody");
    let mut decoys = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (_, v) = session(c, &nobody).await;
        decoys.insert(v["questions"].to_string());
    }
    assert_eq!(decoys.len(), 1, "{decoys:?}");
    let mut subsets = std::collections::BTreeSet::new();
    let mut last = None;
    for _ in 0..6 {
        let (sid, v) = session(c, &ada).await;
        let asked: Vec<String> = v["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q.as_str().unwrap().to_string())
            .collect();
        assert_eq!(asked.len(), 3);
        assert!(asked.iter().all(|q| registered.contains(q)), "{asked:?}");
        subsets.insert(asked.clone());
        last = Some((sid, asked));
    }
    assert_eq!(subsets.len(), 1, "the questions asked varied: {subsets:?}");

    let (sid, asked) = last.unwrap();
    let index = |q: &String| registered.iter().position(|r| r == q).unwrap();
    let mut answers: Vec<Value> = asked
        .iter()
        .map(|q| json!({"question": q, "answer": format!("  {}  ", answer(index(q)).to_uppercase())}))
        .collect();
    // One wrong answer fails the whole set.
    answers[1]["answer"] = json!("wrong answer");
    let r = verify(
        c,
        &sid,
        json!({"method": "securityQuestions", "answers": answers}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    answers[1]["answer"] = json!(answer(index(&asked[1])));
    // Answers to questions the session did not ask are refused as malformed.
    let mut other = answers.clone();
    other[0]["question"] = json!(question(10));
    let r = verify(
        c,
        &sid,
        json!({"method": "securityQuestions", "answers": other}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    let p = verify(
        c,
        &sid,
        json!({"method": "securityQuestions", "answers": answers}),
    )
    .await
    .ok();
    assert_eq!(p["verified"], json!(["securityQuestions"]));
    assert_eq!(p["canReset"], true, "{p}");

    let db = db_bytes(c);
    for i in 0..4 {
        assert_absent(&db, &answer(i));
        assert_absent(&db, &answer(i).to_lowercase());
    }
}

// ------------------------------------------------------------------ refusal classes

/// Verifies `upn`'s email in a new session and returns (session id, progress).
async fn verified(env: &Env, upn: &str, to: &str, seen: usize) -> (String, Value) {
    let (sid, _) = session(&env.c, upn).await;
    let code = emailed_code(env, &sid, to, seen).await;
    let p = verify(&env.c, &sid, json!({"method": "email", "code": code}))
        .await
        .ok();
    (sid, p)
}

async fn refused_class(c: &Cloud, sid: &str) -> String {
    let r = in_session(
        c,
        Method::POST,
        "/api/v1/sspr/password",
        sid,
        Some(json!({"newPassword": MARKER})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.body);
    assert_eq!(r.error_code(), "forbidden");
    r.body["error"]["class"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_in_scope_not_licensed_and_not_enough_methods_are_told_after_verification() {
    let env = env().await;
    let c = &env.c;
    let g = c
        .admin(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"displayName": "sspr"})),
        )
        .await
        .ok();
    let gid = g["id"].as_str().unwrap().to_string();
    c.set_policy(json!({"enabledFor": "group", "groupId": gid}))
        .await;

    // Not in scope.
    let bob = licensed_user(c, "bob", json!({"email": "bob@mail.test"})).await;
    let (sid, p) = verified(&env, &bob, "bob@mail.test", 0).await;
    assert_eq!(p["complete"], true);
    assert_eq!(p["canReset"], false);
    assert_eq!(p["refusal"]["class"], "userNotInScope", "{p}");
    assert_eq!(refused_class(c, &sid).await, "userNotInScope");

    // In scope, not licensed.
    c.user("carol", json!({"usageLocation": "NO"})).await;
    let carol = c.upn("carol");
    c.admin(
        Method::PUT,
        &format!("/api/v1/users/{carol}/authentication-methods"),
        Some(json!({"email": "carol@mail.test"})),
    )
    .await
    .ok();
    for u in [&bob, &carol] {
        let id = c.get(&format!("/api/v1/users/{u}")).await["id"].clone();
        c.admin(
            Method::POST,
            &format!("/api/v1/groups/{gid}/members"),
            Some(json!({"kind": "user", "id": id})),
        )
        .await
        .ok();
    }
    let (sid, p) = verified(&env, &carol, "carol@mail.test", 0).await;
    assert_eq!(p["refusal"]["class"], "userNotLicensed", "{p}");
    assert_eq!(refused_class(c, &sid).await, "userNotLicensed");

    // Two methods required, only email registered.
    c.set_policy(json!({"methodsRequired": 2, "methods": ["email", "securityQuestions"]}))
        .await;
    let (sid, v) = session(c, &bob).await;
    assert_eq!(v["methodsRequired"], 2);
    let before = in_session(c, Method::GET, "/api/v1/sspr/session", &sid, None)
        .await
        .ok();
    assert!(before.get("refusal").is_none());
    let code = emailed_code(&env, &sid, "bob@mail.test", 1).await;
    let p = verify(c, &sid, json!({"method": "email", "code": code}))
        .await
        .ok();
    assert_eq!(p["refusal"]["class"], "notEnoughMethods", "{p}");
    assert_eq!(refused_class(c, &sid).await, "notEnoughMethods");

    // SSPR switched off for the tenant.
    c.set_policy(json!({"enabledFor": "none", "groupId": null, "methodsRequired": 1}))
        .await;
    let (sid, p) = verified(&env, &bob, "bob@mail.test", 2).await;
    assert_eq!(p["refusal"]["class"], "ssprDisabled", "{p}");
    assert_eq!(refused_class(c, &sid).await, "ssprDisabled");
}

// ------------------------------------------------------------------ writeback

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_prem_reset_without_a_connected_agent_is_agent_unavailable() {
    let env = env().await;
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all"})).await;
    // A synced user.
    let tenant_id = c.get("/api/v1/tenant").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let now = common::START;
    let user = proto::User {
        id: "erin-id".into(),
        tenant_id: tenant_id.clone(),
        user_principal_name: c.upn("erin"),
        display_name: "Erin".into(),
        given_name: None,
        surname: None,
        mail: None,
        mobile_phone: None,
        office_phone: None,
        usage_location: Some("NO".into()),
        account_enabled: true,
        source: proto::Source::OnPremises,
        roles: vec![],
        on_premises: Some(proto::OnPremises {
            immutable_id: "AQIDBAUGBwgJCgsMDQ4PEA==".into(),
            ..Default::default()
        }),
        created_at: now,
        updated_at: now,
    };
    c.store.insert_user(&user, None).await.unwrap();
    let erin = licensed_user_existing(c, "erin").await;
    let to = "erin@mail.test";
    c.admin(
        Method::PUT,
        &format!("/api/v1/users/{erin}/authentication-methods"),
        Some(json!({"email": to})),
    )
    .await
    .ok();

    // Writeback off in the policy: told after verification.
    let (sid, p) = verified(&env, &erin, to, 0).await;
    assert_eq!(p["refusal"]["class"], "writebackNotEnabled", "{p}");
    assert_eq!(refused_class(c, &sid).await, "writebackNotEnabled");

    // Policy on, but no agent has writeback enabled: the same class, and the session becomes
    // usable once the administrator fixes it.
    c.set_policy(json!({"writebackEnabled": true})).await;
    let (sid, p) = verified(&env, &erin, to, 1).await;
    assert_eq!(p["refusal"]["class"], "writebackNotEnabled", "{p}");
    assert_eq!(refused_class(c, &sid).await, "writebackNotEnabled");

    // An agent with writeback enabled, not connected: agentUnavailable, with no admin detail.
    enable_writeback_agent(c).await;
    let p = in_session(c, Method::GET, "/api/v1/sspr/session", &sid, None)
        .await
        .ok();
    assert_eq!(p["canReset"], true, "{p}");
    let r = in_session(
        c,
        Method::POST,
        "/api/v1/sspr/password",
        &sid,
        Some(json!({"newPassword": MARKER})),
    )
    .await;
    let res = r.ok();
    assert_eq!(res["outcome"], "agentUnavailable", "{res}");
    assert_eq!(res["errorClass"], "onPremConnectivityError");
    assert!(res.get("adminDetail").is_none(), "{res}");
    assert!(res["message"]
        .as_str()
        .unwrap()
        .contains("cannot be reached"));
    let last = in_session(c, Method::GET, "/api/v1/sspr/result", &sid, None)
        .await
        .ok();
    assert_eq!(last["outcome"], "agentUnavailable");
    let again = in_session(
        c,
        Method::POST,
        "/api/v1/sspr/password",
        &sid,
        Some(json!({"newPassword": MARKER})),
    )
    .await;
    assert_eq!(again.status.as_u16(), 409, "{}", again.body);
    // Unlock without reset is refused unless the policy allows it.
    let (sid, _) = verified(&env, &erin, to, 2).await;
    let r = in_session(
        c,
        Method::POST,
        "/api/v1/sspr/password",
        &sid,
        Some(json!({"unlockOnly": true})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    c.set_policy(json!({"allowUnlockWithoutReset": true})).await;
    let r = in_session(
        c,
        Method::POST,
        "/api/v1/sspr/password",
        &sid,
        Some(json!({"unlockOnly": true})),
    )
    .await
    .ok();
    assert_eq!(r["outcome"], "agentUnavailable", "{r}");

    assert_absent(&db_bytes(c), MARKER);
}

async fn licensed_user_existing(c: &Cloud, local: &str) -> String {
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

/// Registers an agent and enables writeback on it (it never connects).
async fn enable_writeback_agent(c: &Cloud) {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let token = c
        .admin(Method::POST, "/api/v1/agents/tokens", None)
        .await
        .ok()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let reg = c
        .call(
            Method::POST,
            "/api/v1/agents/register",
            None,
            Some(json!({
                "registrationToken": token,
                "name": "dc01-agent",
                "version": "0.1.0",
                "signingPublicKey": b64(signing.verifying_key().as_bytes()),
                "sealingPublicKey": b64(&[9u8; 32]),
            })),
        )
        .await
        .ok();
    let id = reg["agentId"].as_str().unwrap();
    c.admin(
        Method::PUT,
        &format!("/api/v1/agents/{id}/writeback"),
        Some(json!({
            "sealingPublicKey": b64(&[9u8; 32]),
            "connector": "corp",
            "directoryKind": "activeDirectory",
            "checkedRoots": ["OU=Staff,DC=corp,DC=example"],
        })),
    )
    .await
    .ok();
}

// ------------------------------------------------------------------ self-service change

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_says_the_same_for_unknown_users_and_wrong_passwords_and_is_throttled() {
    let env = env().await;
    let c = &env.c;
    c.set_policy(json!({"enabledFor": "all"})).await;
    let ada = licensed_user(c, "ada", Value::Null).await;
    let change = |upn: String, current: &'static str| {
        c.call(
            Method::POST,
            "/api/v1/sspr/change",
            None,
            Some(json!({"userPrincipalName": upn, "currentPassword": current, "newPassword": MARKER})),
        )
    };
    let wrong = change(ada.clone(), "Not-The-Pa55word").await.ok();
    let unknown = change(c.upn("nobody"), "Not-The-Pa55word").await.ok();
    assert_eq!(wrong["outcome"], "wrongCurrentPassword");
    assert_eq!(unknown["outcome"], wrong["outcome"]);
    assert_eq!(unknown["message"], wrong["message"]);

    let ok = change(ada.clone(), "First-Pass-w0rd").await.ok();
    assert_eq!(ok["outcome"], "succeeded", "{ok}");
    c.sign_in(&ada, MARKER).await;

    // Five wrong current passwords in an hour lock the account out of self-service.
    for _ in 0..4 {
        change(ada.clone(), "Not-The-Pa55word").await.ok();
    }
    let r = change(ada.clone(), MARKER).await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.body);
    assert_absent(&db_bytes(c), MARKER);
}
