//! Two `dirbridge cloud serve` processes on one PostgreSQL (the testkit's cluster), hit at once
//! by concurrent clients, as behind a load balancer: seats, trials, tenant settings, the smart
//! lockout, the per-address limit and pushes to agents hold across both (issue 17).
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::agent_host::AgentHost;
use common::{Cloud, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::postgres::Postgres;
use testkit::proxy::Failover;
use testkit::samba::Samba;

/// One answer: status, body (JSON or null) and the tracking id header.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Value,
    tracking_id: String,
}

async fn call(
    url: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let http = reqwest::Client::new();
    let mut req = http.request(method, format!("{url}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the cloud answers");
    let status = resp.status();
    let tracking_id = resp
        .headers()
        .get("x-tracking-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.unwrap_or_default();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        tracking_id,
    }
}

async fn sign_in(url: &str, upn: &str, password: &str) -> Answer {
    call(
        url,
        Method::POST,
        "/api/v1/auth/token",
        None,
        Some(json!({"userPrincipalName": upn, "password": password})),
    )
    .await
}

async fn admin_token(cloud: &Cloud) -> String {
    let a = sign_in(&cloud.url, &cloud.admin, ADMIN_PASSWORD).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["accessToken"].as_str().unwrap().to_string()
}

/// Polls `check` (every 100 ms) until it gives `Some`, or panics after `within`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The database the instances share, in the testkit's cluster.
const DB: &str = "dirbridge";

/// Instance A and instance B on one fresh PostgreSQL; `env` for both `cloud serve`.
fn two_instances(env: &[(&str, &str)]) -> (Postgres, Cloud, Cloud) {
    let pg = Postgres::start().expect("start PostgreSQL");
    let url = pg.create_database(DB).expect("create the database");
    let a = Cloud::start_on(&url, env);
    let b = a.another_instance();
    (pg, a, b)
}

/// The per-address limit off, so only what a test looks at refuses anything.
const NO_ADDRESS_LIMITS: &[(&str, &str)] = &[
    ("DIRBRIDGE_LIMIT_SIGN_IN_PER_MINUTE", "0"),
    ("DIRBRIDGE_LIMIT_SSPR_START_PER_MINUTE", "0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seats_trials_and_tenant_settings_hold_across_two_instances() {
    let (_pg, a, b) = two_instances(NO_ADDRESS_LIMITS);
    let token = admin_token(&a).await;
    let urls = [a.url.clone(), b.url.clone()];

    // 12 seats, 2 of them taken: 200 parallel assignments over both instances for the last 10.
    let r = call(
        &a.url,
        Method::POST,
        "/api/v1/licenses/subscriptions",
        Some(&token),
        Some(json!({"skuId": "DIRBRIDGE_PREMIUM", "units": 12, "termDays": 30})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let creates: Vec<_> = (0..202)
        .map(|i| {
            let (u, t) = (urls[i % 2].clone(), token.clone());
            let upn = a.upn(&format!("seat{i}"));
            tokio::spawn(async move {
                let r = call(
                    &u,
                    Method::POST,
                    "/api/v1/users",
                    Some(&t),
                    Some(json!({"userPrincipalName": upn, "displayName": upn, "usageLocation": "NO"})),
                )
                .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
                upn
            })
        })
        .collect();
    let mut upns = Vec::new();
    for c in creates {
        upns.push(c.await.unwrap());
    }
    let assign = |i: usize| {
        let (u, t) = (urls[i % 2].clone(), token.clone());
        let path = format!("/api/v1/users/{}/licenses", upns[i]);
        async move {
            call(
                &u,
                Method::POST,
                &path,
                Some(&t),
                Some(json!({"skuId": "DIRBRIDGE_PREMIUM"})),
            )
            .await
        }
    };
    for i in 0..2 {
        assert_eq!(assign(i).await.status, StatusCode::CREATED);
    }
    let attempts: Vec<_> = (2..202).map(|i| tokio::spawn(assign(i))).collect();
    let (mut ok, mut no_seat) = (0, 0);
    for at in attempts {
        let r = at.await.unwrap();
        if r.status == StatusCode::CREATED {
            ok += 1;
        } else {
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("does not have any available licenses"),
                "{}: {}",
                r.status,
                r.body
            );
            no_seat += 1;
        }
    }
    assert_eq!((ok, no_seat), (10, 190));
    let summary = call(&b.url, Method::GET, "/api/v1/licenses", Some(&token), None).await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.body);
    assert!(
        summary.body.to_string().contains("DIRBRIDGE_PREMIUM"),
        "{}",
        summary.body
    );

    // Two trial starts at once, one on each instance: exactly one trial.
    let starts: Vec<_> = urls
        .iter()
        .map(|u| {
            let (u, t) = (u.clone(), token.clone());
            tokio::spawn(async move {
                call(&u, Method::POST, "/api/v1/licenses/trial", Some(&t), None).await
            })
        })
        .collect();
    let mut created = 0;
    for s in starts {
        let r = s.await.unwrap();
        match r.status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("already"),
                "{}",
                r.body
            ),
            s => panic!("trial start answered {s}: {}", r.body),
        }
    }
    assert_eq!(created, 1, "one trial of two concurrent starts");

    // Concurrent tenant PATCHes of different settings, one on each instance: both apply.
    for round in 0..10 {
        let location = ["SE", "DK"][round % 2];
        let soft = round % 2 == 0;
        let p1 = {
            let (u, t) = (a.url.clone(), token.clone());
            tokio::spawn(async move {
                call(
                    &u,
                    Method::PATCH,
                    "/api/v1/tenant",
                    Some(&t),
                    Some(json!({"defaultUsageLocation": location})),
                )
                .await
            })
        };
        let p2 = {
            let (u, t) = (b.url.clone(), token.clone());
            tokio::spawn(async move {
                call(
                    &u,
                    Method::PATCH,
                    "/api/v1/tenant",
                    Some(&t),
                    Some(json!({"softMatchEnabled": soft})),
                )
                .await
            })
        };
        for p in [p1, p2] {
            let r = p.await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
        let t = call(&a.url, Method::GET, "/api/v1/tenant", Some(&token), None).await;
        assert_eq!(t.body["defaultUsageLocation"], location, "{}", t.body);
        assert_eq!(t.body["softMatchEnabled"], soft, "{}", t.body);
    }

    // One domain claimed at once on both instances: one claim is made (201), the other finds
    // it made and gets the same challenge (200), and the tenant holds the domain once.
    let adds: Vec<_> = urls
        .iter()
        .map(|u| {
            let (u, t) = (u.clone(), token.clone());
            tokio::spawn(async move {
                call(
                    &u,
                    Method::POST,
                    "/api/v1/tenant/domains",
                    Some(&t),
                    Some(json!({"domain": "fabrikam.test"})),
                )
                .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for add in adds {
        answers.push(add.await.unwrap());
    }
    answers.sort_by_key(|a| a.status);
    let statuses: Vec<_> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CREATED],
        "{answers:?}"
    );
    assert_eq!(
        answers[0].body["verification"]["value"], answers[1].body["verification"]["value"],
        "{answers:?}"
    );
    let listed = call(
        &urls[1],
        Method::GET,
        "/api/v1/tenant/domains",
        Some(&token),
        None,
    )
    .await;
    let held = listed.body.as_array().unwrap().iter();
    let fabrikam = held.filter(|d| d["domain"] == "fabrikam.test").count();
    assert_eq!(fabrikam, 1, "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_address_limit_is_one_budget_over_both_instances() {
    let (_pg, a, b) = two_instances(&[("DIRBRIDGE_LIMIT_SIGN_IN_PER_MINUTE", "6")]);
    // Six refused sign-ins from this address, each for another account, three on each
    // instance: the address's budget of six for the minute is used up on both.
    for i in 0..6 {
        let url = [&a.url, &b.url][i % 2];
        let r = sign_in(url, &a.upn(&format!("nobody{i}")), "guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    for url in [&a.url, &b.url] {
        let r = sign_in(url, &a.admin, ADMIN_PASSWORD).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("network address"),
            "{}",
            r.body
        );
    }
}

/// A synced Samba user, a `dirbridge agent run` connected to instance A only, and 30 wrong
/// passwords sent at once over both instances: the account is locked after 10, only those 10
/// reached the directory (the agent bound for them), and the right password is refused too
/// while the lock lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_passwords_over_two_instances_reach_the_directory_at_most_ten_times() {
    let samba = Samba::shared();
    let (_pg, a, b) = two_instances(NO_ADDRESS_LIMITS);
    a.login();
    a.verify_domain_on_host("dirbridge.test");
    let ou = samba.create_ou("multiLockout").unwrap();
    let password = "Multi-OnPrem-1p";
    let user = samba
        .create_user(&ou, &format!("mlo{}", std::process::id()), password)
        .unwrap();
    let mut agent = AgentHost::register(&a, samba, "agent-a");
    agent.full_sync(&a);
    agent.start();

    // Through instance B once the agent (on A) is connected: the right password signs in.
    eventually(
        Duration::from_secs(60),
        "signed in through the agent",
        || {
            let (url, upn) = (b.url.clone(), user.login.clone());
            async move {
                let r = sign_in(&url, &upn, password).await;
                (r.status == StatusCode::OK).then_some(())
            }
        },
    )
    .await;

    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let (url, upn) = ([&a.url, &b.url][i % 2].clone(), user.login.clone());
            tokio::spawn(async move { sign_in(&url, &upn, &format!("Wrong-Guess-{i}")).await })
        })
        .collect();
    let mut answers = Vec::new();
    for g in guesses {
        answers.push(g.await.unwrap());
    }
    let refused: Vec<&Answer> = answers
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .collect();
    let locked = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((refused.len(), locked), (10, 20), "{answers:?}");

    // The directory saw exactly the 10 refused ones: one bind each, by the agent.
    let mut binds = 0;
    for r in &answers {
        let events = agent.events_for(&a, &r.tracking_id);
        let n = events.iter().filter(|e| e["eventId"] == 34002).count();
        if r.status == StatusCode::UNAUTHORIZED {
            assert_eq!(n, 1, "{events:?}");
        } else {
            assert_eq!(
                n, 0,
                "a locked-out attempt reached the directory: {events:?}"
            );
        }
        binds += n;
    }
    assert_eq!(binds, 10);

    // Locked on both instances, even for the right password.
    for url in [&a.url, &b.url] {
        let r = sign_in(url, &user.login, password).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("locked until"),
            "{}",
            r.body
        );
    }
}

/// `sync run` asked of instance A reaches an agent whose push socket is on instance B.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_run_on_one_instance_reaches_an_agent_connected_to_the_other() {
    let samba = Samba::shared();
    let (_pg, a, b) = two_instances(NO_ADDRESS_LIMITS);
    a.login();
    a.verify_domain_on_host("dirbridge.test");
    let token = admin_token(&a).await;
    // Cycles only when pushed (an hour between scheduled ones).
    let r = call(
        &a.url,
        Method::PATCH,
        "/api/v1/sync/settings",
        Some(&token),
        Some(json!({"deltaIntervalSecs": 3600})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut agent = AgentHost::register_at(&a, &b.url, samba, "agent-on-b");
    agent.start();

    let runs = || {
        let (url, t) = (a.url.clone(), token.clone());
        async move {
            let r = call(
                &url,
                Method::GET,
                "/api/v1/sync/runs?limit=1000",
                Some(&t),
                None,
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body.as_array().map(|v| {
                v.iter()
                    .map(|r| r["runs"].as_u64().unwrap_or(1))
                    .sum::<u64>()
            })
        }
    };
    // The agent's first cycle, at start.
    let first = eventually(Duration::from_secs(120), "the agent's first cycle", || {
        let runs = runs();
        async move { runs.await.filter(|&n| n >= 1) }
    })
    .await;

    // Asked on A, while the agent's socket is on B.
    let asked = eventually(
        Duration::from_secs(60),
        "sync run reaches the agent",
        || {
            let (url, t) = (a.url.clone(), token.clone());
            async move {
                let r = call(
                    &url,
                    Method::POST,
                    "/api/v1/sync/run",
                    Some(&t),
                    Some(json!({"full": false})),
                )
                .await;
                match r.status {
                    StatusCode::OK => Some(r.body),
                    StatusCode::CONFLICT => None,
                    s => panic!("sync run answered {s}: {}", r.body),
                }
            }
        },
    )
    .await;
    assert_eq!(asked["agents"], 1, "{asked}");
    eventually(Duration::from_secs(60), "a pushed cycle", || {
        let runs = runs();
        async move { runs.await.filter(|&n| n > first).map(|_| ()) }
    })
    .await;
}

fn port(cloud: &Cloud) -> u16 {
    cloud.url.rsplit(':').next().unwrap().parse().unwrap()
}

fn count(pg: &Postgres, sql: &str) -> u64 {
    pg.query_value(DB, sql).unwrap().parse().unwrap()
}

/// Instance A dies (SIGKILL) in the middle of two requests, behind a proxy that sends each new
/// connection to A, else B: a password reset that B took and A handed to an agent (frozen, so
/// it has not claimed it yet), and a sync batch A committed whose answer never left it. The
/// reset still runs, once, through B, and the agent's retry of the batch reaches B, which
/// answers it as already applied: no writeback and no batch is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_one_instance_mid_request_loses_no_writeback_and_no_batch() {
    let samba = Samba::shared();
    let mut env = NO_ADDRESS_LIMITS.to_vec();
    // Room for the agents to reconnect after the kill.
    env.push(("DIRBRIDGE_WRITEBACK_DEADLINE_SECS", "60"));
    let (pg, mut a, b) = two_instances(&env);
    let proxy = Failover::start(vec![port(&a), port(&b)]).await.unwrap();
    let lb = format!("http://127.0.0.1:{}", proxy.port);
    a.login();
    a.verify_domain_on_host("dirbridge.test");
    a.run(&["licenses", "trial"]).ok();
    a.run(&[
        "policy",
        "set",
        "--enabled-for",
        "all",
        "--writeback",
        "true",
    ])
    .ok();
    let ou = samba.create_ou("multiKill").unwrap();
    let user = samba
        .create_user(
            &ou,
            &format!("mki{}", std::process::id()),
            "Initial-Pass-1k",
        )
        .unwrap();
    let mut agent = AgentHost::register_at(&a, &lb, samba, "agent-x");
    agent.full_sync(&a);
    a.run(&["users", "update", &user.login, "--usage-location", "NO"])
        .ok();
    agent.enable_writeback(&a).ok();
    agent.start();
    let token = admin_token(&b).await;
    eventually(
        Duration::from_secs(60),
        "the agent connected (to A)",
        || {
            let (url, t) = (b.url.clone(), token.clone());
            async move {
                let r = call(&url, Method::GET, "/api/v1/writeback", Some(&t), None).await;
                (r.body["available"] == true).then_some(())
            }
        },
    )
    .await;

    // The agent is frozen; B takes a reset, which A (holding the agent's socket) dispatches.
    agent.signal("-STOP");
    let reset = {
        let (url, t) = (b.url.clone(), token.clone());
        let path = format!("/api/v1/users/{}/password", user.login);
        tokio::spawn(async move {
            call(
                &url,
                Method::POST,
                &path,
                Some(&t),
                Some(json!({"password": "After-Kill-2k"})),
            )
            .await
        })
    };
    eventually(Duration::from_secs(30), "the reset dispatched", || {
        let n = count(
            &pg,
            "SELECT count(*) FROM writeback_requests WHERE state = 'dispatched'",
        );
        async move { (n == 1).then_some(()) }
    })
    .await;

    // Meanwhile a second agent host's full sync: its first batch is applied by A, whose
    // answer is then lost.
    let newcomer = samba
        .create_user(
            &ou,
            &format!("mkn{}", std::process::id()),
            "Initial-Pass-1n",
        )
        .unwrap();
    let batches_before = count(&pg, "SELECT count(*) FROM sync_batches");
    let other = AgentHost::register_at(&a, &lb, samba, "agent-y");
    proxy.lose_answers_after("POST /api/v1/agent/sync/batches");
    let sync = tokio::task::spawn_blocking(move || other.full_sync_result());
    eventually(
        Duration::from_secs(120),
        "A applied the first batch",
        || {
            let n = count(&pg, "SELECT count(*) FROM sync_batches");
            let losing = proxy.losing();
            async move { (losing && n > batches_before).then_some(()) }
        },
    )
    .await;
    a.kill();
    agent.signal("-CONT");

    // The sync ends well, every batch once; the reset ran once, through B.
    let run = sync.await.unwrap();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let r = reset.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["outcome"], "succeeded", "{}", r.body);
    let tracking = r.body["trackingId"].as_str().unwrap().to_string();
    let ran = agent
        .events_for(&b, &tracking)
        .iter()
        .filter(|e| e["eventId"] == 31009)
        .count();
    assert_eq!(ran, 1, "the reset ran {ran} times");
    // What the second sync brought is there, once.
    let upn_key = newcomer.login.to_lowercase();
    assert_eq!(
        count(
            &pg,
            &format!("SELECT count(*) FROM users WHERE upn_key = '{upn_key}'")
        ),
        1
    );
    let runs = call(
        &b.url,
        Method::GET,
        "/api/v1/sync/runs?limit=1000",
        Some(&token),
        None,
    )
    .await;
    let failed: Vec<&Value> = runs
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] != "succeeded")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    // The new password works through B (the agent reconnected there).
    eventually(
        Duration::from_secs(60),
        "signed in with the new password",
        || {
            let (url, upn) = (b.url.clone(), user.login.clone());
            async move {
                let r = sign_in(&url, &upn, "After-Kill-2k").await;
                (r.status == StatusCode::OK).then_some(())
            }
        },
    )
    .await;
}
