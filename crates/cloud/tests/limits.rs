//! The per-address limits on sign-in and reset starts, through a real server that knows each
//! request's peer address (as `dirbridge cloud serve` does).

mod common;

use common::Cloud;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn cloud(sign_in: u32, sspr_start: u32, trust_loopback: bool) -> Cloud {
    let mut config = common::unlimited();
    config.limits.sign_in_per_minute = sign_in;
    config.limits.sspr_start_per_minute = sspr_start;
    if trust_loopback {
        config.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    }
    Cloud::start_with(config, None).await
}

async fn sign_in(c: &Cloud, upn: &str, password: &str, forwarded: Option<&str>) -> StatusCode {
    let mut req = c
        .http
        .post(format!("{}/api/v1/auth/token", c.base))
        .json(&json!({"userPrincipalName": upn, "password": password}));
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn refused_sign_ins_from_one_address_are_limited_across_accounts_and_successes_are_free() {
    // The admin's own sign-in in the harness was a success: it used nothing.
    let c = cloud(4, 0, false).await;
    c.user(
        "ann",
        json!({"usageLocation": "NO", "password": "Ann-Pass-w0rd-1"}),
    )
    .await;
    // Successes do not count: many in a row all pass.
    for _ in 0..6 {
        assert_eq!(
            sign_in(&c, &c.upn("ann"), "Ann-Pass-w0rd-1", None).await,
            StatusCode::OK
        );
    }
    // Four wrong passwords, each against another account (the per-account throttle never
    // trips), use the address's budget.
    for i in 0..4 {
        let upn = c.upn(&format!("nobody{i}"));
        assert_eq!(
            sign_in(&c, &upn, "guess", None).await,
            StatusCode::UNAUTHORIZED
        );
    }
    // The fifth attempt from this address is refused before any password is checked, whatever
    // account it names, and says when to come back.
    let resp = c
        .http
        .post(format!("{}/api/v1/auth/token", c.base))
        .json(&json!({"userPrincipalName": c.upn("ann"), "password": "Ann-Pass-w0rd-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15).contains(&wait), "retry after {wait} s");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "tooManyRequests");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("network address"));
    // A client cannot escape by claiming another address: the peer is not a trusted proxy.
    assert_eq!(
        sign_in(&c, &c.upn("ann"), "Ann-Pass-w0rd-1", Some("198.51.100.23")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other endpoints are not limited.
    assert!(c
        .admin(Method::GET, "/api/v1/users", None)
        .await
        .status
        .is_success());
    // The refusals are counted in the metrics under their route.
    let metrics = c
        .http
        .get(format!("{}/metrics", c.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("route=\"/api/v1/auth/token\",status=\"429\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let c = cloud(2, 0, true).await;
    for _ in 0..2 {
        assert_eq!(
            sign_in(&c, &c.upn("x"), "guess", Some("203.0.113.7")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&c, &c.upn("y"), "guess", Some("203.0.113.7")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not affected.
    assert_eq!(
        sign_in(&c, &c.upn("y"), "guess", Some("203.0.113.8")).await,
        StatusCode::UNAUTHORIZED
    );
    // The proxy's own requests (no header) are a client of their own.
    assert_eq!(
        sign_in(&c, &c.upn("z"), "guess", None).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn reset_starts_count_every_request() {
    let c = cloud(0, 3, false).await;
    let start = |upn: String| {
        let c = &c;
        async move {
            c.call(
                Method::POST,
                "/api/v1/sspr/start",
                None,
                Some(json!({"userPrincipalName": upn})),
            )
            .await
        }
    };
    for i in 0..3 {
        let r = start(c.upn(&format!("someone{i}"))).await;
        assert!(r.status.is_success(), "{}: {}", r.status, r.body);
    }
    let r = start(c.upn("someone9")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.error_message().contains("password reset requests"));
    // The API document says so.
    let doc: serde_json::Value = c
        .http
        .get(format!("{}/openapi.json", c.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["/api/v1/sspr/start", "/api/v1/auth/token"] {
        let d = doc["paths"][path]["post"]["responses"]["429"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(d.contains("network address"), "{path}: {d}");
    }
    // Sign-in has its own budget (off here): unaffected.
    assert_eq!(
        sign_in(&c, &c.upn("someone0"), "guess", None).await,
        StatusCode::UNAUTHORIZED
    );
}

/// Failed sign-ins are counted per account in the database, with no bound on how many
/// accounts have a count: a spray over many accounts from many addresses (here 40 over HTTP,
/// plus 10,100 accounts' counts as other instances would have recorded them) never refuses an
/// account that has no failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spray_over_many_accounts_and_addresses_never_refuses_an_innocent_account() {
    let c = cloud(4, 0, true).await;
    c.user(
        "ann",
        json!({"usageLocation": "NO", "password": "Ann-Pass-w0rd-1"}),
    )
    .await;
    for a in 0..20 {
        for k in 0..2 {
            let upn = c.upn(&format!("spray{a}-{k}"));
            let from = format!("203.0.113.{a}");
            assert_eq!(
                sign_in(&c, &upn, "guess", Some(&from)).await,
                StatusCode::UNAUTHORIZED
            );
        }
    }
    let now = common::START;
    for i in 0..10_100 {
        let refused = c
            .store
            .reserve_sign_in_attempt(
                &format!("sprayed-account-{i}"),
                now,
                &dirbridge_cloud::app::sign_in::LOCKOUT,
            )
            .await
            .unwrap();
        assert_eq!(refused, None);
    }
    assert_eq!(
        sign_in(&c, &c.upn("ann"), "Ann-Pass-w0rd-1", Some("198.51.100.1")).await,
        StatusCode::OK
    );
}

async fn change(c: &Cloud, upn: &str, current: &str) -> common::Reply {
    c.call(
        Method::POST,
        "/api/v1/sspr/change",
        None,
        Some(json!({"userPrincipalName": upn, "currentPassword": current, "newPassword": "New-Pass-w0rd-22"})),
    )
    .await
}

/// `sspr/change` checks a password, so it shares the sign-in throttle: wrong current passwords
/// count as failed sign-ins and the other way round, and a locked-out account's password cannot
/// be confirmed (or changed) through it, known account or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_shares_the_per_account_sign_in_lockout() {
    let mut c = cloud(0, 0, false).await;
    c.admin(Method::POST, "/api/v1/licenses/trial", None)
        .await
        .ok();
    let mut policy = c.get("/api/v1/policy").await["policy"].clone();
    policy["enabledFor"] = json!("all");
    c.admin(Method::PUT, "/api/v1/policy", Some(policy))
        .await
        .ok();
    c.user(
        "ann",
        json!({"usageLocation": "NO", "password": "Ann-Pass-w0rd-1"}),
    )
    .await;
    let ann = c.upn("ann");
    c.admin(
        Method::POST,
        &format!("/api/v1/users/{ann}/licenses"),
        Some(json!({"skuId": "DIRBRIDGE_PREMIUM"})),
    )
    .await
    .ok();
    for (upn, password) in [
        (ann.clone(), "Ann-Pass-w0rd-1"),
        (c.upn("nobody"), "Any-Pass-w0rd-1"),
    ] {
        // 7 wrong sign-ins and 3 wrong changes: 10 failures for the account.
        for _ in 0..7 {
            assert_eq!(
                sign_in(&c, &upn, "guess", None).await,
                StatusCode::UNAUTHORIZED
            );
        }
        for _ in 0..3 {
            let r = change(&c, &upn, "guess").await;
            assert_eq!(r.body["outcome"], "wrongCurrentPassword", "{}", r.body);
        }
        assert_eq!(
            sign_in(&c, &upn, password, None).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{upn}"
        );
        // Locked: the right current password is not confirmed, nothing changes.
        let r = change(&c, &upn, password).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{upn}: {}", r.body);
        assert!(r.error_message().contains("failed sign-ins"), "{}", r.body);
    }
    // Once the window is over, the old password still works: it was never changed.
    c.set_time(common::START + 16 * 60).await;
    assert_eq!(
        sign_in(&c, &ann, "Ann-Pass-w0rd-1", None).await,
        StatusCode::OK
    );
}

/// Wrong current passwords on `sspr/change` use the same per-address budget as refused
/// sign-ins, across accounts.
#[tokio::test]
async fn change_shares_the_per_address_limit_of_sign_in() {
    let c = cloud(4, 0, false).await;
    for i in 0..4 {
        let r = change(&c, &c.upn(&format!("nobody{i}")), "guess").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["outcome"], "wrongCurrentPassword");
    }
    let r = change(&c, &c.upn("nobody9"), "guess").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.error_message().contains("network address"), "{}", r.body);
    assert_eq!(
        sign_in(&c, &c.upn("admin"), common::ADMIN_PASSWORD, None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A sign-in with an optional `Cookie` header: the status and the `Set-Cookie` it got.
async fn sign_in_with(
    c: &Cloud,
    upn: &str,
    password: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>) {
    let mut req = c
        .http
        .post(format!("{}/api/v1/auth/token", c.base))
        .json(&json!({"userPrincipalName": upn, "password": password}));
    if let Some(v) = cookie {
        req = req.header("cookie", format!("theme=dark; {v}"));
    }
    let resp = req.send().await.unwrap();
    let set = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.status(), set)
}

/// A password spray from one address does not lock out browsers that signed in there before:
/// their known-device cookie exempts them from the per-address limit, for their own account
/// only, and never from the per-account throttle. A cookie that is forged or names another
/// account is worth nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_device_signs_in_during_a_spray_from_its_address() {
    let c = cloud(4, 0, false).await;
    for who in ["ann", "bob"] {
        c.user(
            who,
            json!({"usageLocation": "NO", "password": "Right-Pass-w0rd-1"}),
        )
        .await;
    }
    let (ann, bob) = (c.upn("ann"), c.upn("bob"));
    let (status, set) = sign_in_with(&c, &ann, "Right-Pass-w0rd-1", None).await;
    assert_eq!(status, StatusCode::OK);
    let set = set.expect("a known-device cookie with the successful sign-in");
    for attribute in [
        "; Path=/",
        "; Secure",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(set.starts_with("__Host-dirbridge-device="), "{set}");
    assert!(
        !set.to_lowercase().contains("ann"),
        "the cookie names no account: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    // A failed sign-in gets no cookie.
    assert_eq!(
        sign_in_with(&c, &ann, "guess", None).await,
        (StatusCode::UNAUTHORIZED, None)
    );

    // The spray uses up the address's budget: everyone else from it is refused...
    for i in 0..3 {
        assert_eq!(
            sign_in(&c, &c.upn(&format!("victim{i}")), "Spring2026!", None).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&c, &bob, "Right-Pass-w0rd-1", None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...but the known device signs in to its account, and gets a fresh cookie.
    let (status, again) = sign_in_with(&c, &ann, "Right-Pass-w0rd-1", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(again.is_some());
    // Not for another account, and not with a forged cookie.
    assert_eq!(
        sign_in_with(&c, &bob, "Right-Pass-w0rd-1", Some(&cookie))
            .await
            .0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let forged = format!("{}0", &cookie[..cookie.len() - 1]);
    let forged = if forged == cookie {
        format!("{}1", &cookie[..cookie.len() - 1])
    } else {
        forged
    };
    assert_eq!(
        sign_in_with(&c, &ann, "Right-Pass-w0rd-1", Some(&forged))
            .await
            .0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The per-account throttle still holds for the known device: 10 failures lock it.
    for _ in 0..10 {
        assert_eq!(
            sign_in_with(&c, &ann, "guess", Some(&cookie)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in_with(&c, &ann, "Right-Pass-w0rd-1", Some(&cookie))
            .await
            .0,
        StatusCode::TOO_MANY_REQUESTS
    );
}
