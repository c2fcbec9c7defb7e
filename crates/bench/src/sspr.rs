//! Self-service password reset with writeback, as a person uses it (`/api/v1/sspr/*`: start →
//! verify security questions → new password → result), and the tenant set up for it as the seed
//! says: a premium trial (plus a subscription when more people are needed than it covers), a
//! usage location and a licence on every person, the reset policy on with writeback,
//! `dirbridge agent writeback enable`, `dirbridge agent run`, then each person's questions
//! registered by the person (signed in by pass-through; an administrator may not set answers).
//! Also the load generator for `POST /api/v1/sspr/start`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cloud::{random_text, Agent, Api, Cloud};
use crate::directory::{Directory, Person};
use crate::procs::Server;
use crate::report::{quantile, thousands, Row};

const SKU: &str = "DIRBRIDGE_PREMIUM";
/// Units of the premium trial (`POST /api/v1/licenses/trial`).
const TRIAL_UNITS: usize = 100;
/// Answer `k` of every person's registered question `k` (3–40 characters).
fn answer(k: usize) -> String {
    format!("bench answer number {k}")
}
/// Goal of issue 6: a self-service reset's p50 within this of the raw modify's p50.
pub const WRITEBACK_P50_GOAL_MS: f64 = 10.0;

/// A tenant ready for self-service resets: the agent service running with writeback on.
pub struct Online {
    pub service: Server,
    /// The questions every person registered (policy order).
    pub questions: Vec<String>,
}

/// Licences, policy, questions for `people` (when `questions`), writeback enabled on `agent`,
/// and `agent run` started (its first cycle, a full import, waited out; the delta schedule
/// set to an hour and change notification off, so no cycle runs while the benchmarks time).
/// Returns once a reset of `warm_up` succeeds end to end.
pub async fn prepare(
    cloud: &Cloud,
    agent: &Agent,
    people: &[Person],
    warm_up: &Person,
    licensed_only: &[Person],
    questions: bool,
) -> Result<Online> {
    let api = cloud.client();
    api.call(
        Method::POST,
        "/api/v1/licenses/trial",
        Some(json!({ "skuId": SKU })),
    )
    .await
    .context("premium trial")?;
    let units = people.len() + 1 + licensed_only.len();
    if units > TRIAL_UNITS {
        api.call(
            Method::POST,
            "/api/v1/licenses/subscriptions",
            Some(json!({ "skuId": SKU, "units": units, "termDays": 30 })),
        )
        .await
        .context("premium subscription")?;
    }
    let view = api.call(Method::GET, "/api/v1/policy", None).await?;
    let mut policy = view["policy"].clone();
    policy["enabledFor"] = json!("all");
    policy["methods"] = json!(["email", "securityQuestions"]);
    policy["methodsRequired"] = json!(1);
    policy["questionsToRegister"] = json!(3);
    policy["questionsToAnswer"] = json!(3);
    policy["writebackEnabled"] = json!(true);
    policy["notifyUsersOnReset"] = json!(false);
    let chosen: Vec<String> = policy["securityQuestions"]
        .as_array()
        .context("the policy has no securityQuestions")?
        .iter()
        .take(3)
        .filter_map(|q| q.as_str().map(str::to_string))
        .collect();
    api.call(Method::PUT, "/api/v1/policy", Some(policy))
        .await
        .context("PUT /api/v1/policy")?;

    let everyone: Vec<Person> = people
        .iter()
        .chain([warm_up])
        .chain(licensed_only)
        .cloned()
        .collect();
    let licensing = api.clone();
    parallel(&everyone, 2, move |p| {
        let api = licensing.clone();
        async move { license(&api, &p).await }
    })
    .await?;

    agent.enable_writeback(cloud)?;
    cloud.set_delta_interval(3600).await?;
    let before = last_run_id(cloud).await?;
    // Change notification off: otherwise every password written (by a reset or by the raw
    // tool beside it) wakes a delta cycle that competes for the two cores with the next
    // measurement. `--agent-env DIRBRIDGE_AGENT_CHANGE_NOTIFICATION=true` turns it back on.
    let service = agent.service_logged(
        "agent-run-online.log",
        &[("DIRBRIDGE_AGENT_CHANGE_NOTIFICATION", "false")],
    )?;
    // The service's first cycle is a full import: wait until it is reported.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let runs = cloud.get("/api/v1/sync/runs?limit=1").await?;
        let r = &runs[0];
        if r["runId"].as_str() != before.as_deref() && !r["finishedAt"].is_null() {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agent service reported no sync run within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if questions {
        // Two at a time: a pass-through sign-in, then three Argon2id hashes in the cloud.
        let answering: Vec<Person> = people.iter().chain([warm_up]).cloned().collect();
        let register = Arc::new(chosen.clone());
        parallel(&answering, 2, move |p| {
            let api = api.clone();
            let chosen = register.clone();
            async move { register_answers(&api, &p, &chosen).await }
        })
        .await?;
    }
    let online = Online {
        service,
        questions: chosen,
    };
    if questions {
        // Until the agent's push socket is up, a reset ends as agentUnavailable.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let pw = new_password();
            match reset(&cloud.client(), &http, warm_up, &online.questions, &pw).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context("the warm-up reset did not succeed within 60 s"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
    Ok(online)
}

/// Registers `p`'s answers to `chosen` as `p` (only the person may): a pass-through sign-in,
/// retried while the agent's push socket is not up yet (503), then
/// `PUT /api/v1/me/authentication-methods` with the password as its fresh verification.
async fn register_answers(api: &Api, p: &Person, chosen: &[String]) -> Result<()> {
    let http = reqwest::Client::new();
    let body = json!({ "userPrincipalName": p.upn, "password": p.password });
    let deadline = Instant::now() + Duration::from_secs(60);
    let token = loop {
        let a = api
            .anonymous(
                &http,
                &p.address,
                Method::POST,
                "/api/v1/auth/token",
                Some(&body),
            )
            .await?;
        if a.status == 200 {
            break a.body["accessToken"]
                .as_str()
                .context("sign-in: no accessToken")?
                .to_string();
        }
        if a.status != 503 || Instant::now() > deadline {
            bail!("sign in as {}: {}", p.upn, a.why());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let qa: Vec<Value> = chosen
        .iter()
        .enumerate()
        .map(|(k, q)| json!({ "question": q, "answer": answer(k) }))
        .collect();
    api.with_token(&token)
        .call(
            Method::PUT,
            "/api/v1/me/authentication-methods",
            Some(json!({
                "securityQuestions": qa,
                "verification": { "method": "password", "password": p.password },
            })),
        )
        .await
        .with_context(|| format!("register the answers of {}", p.upn))?;
    Ok(())
}

async fn license(api: &Api, p: &Person) -> Result<()> {
    let u = api
        .call(Method::GET, &format!("/api/v1/users/{}", p.id), None)
        .await?;
    if u["usageLocation"].is_null() {
        api.call(
            Method::PATCH,
            &format!("/api/v1/users/{}", p.id),
            Some(json!({ "usageLocation": "NO" })),
        )
        .await?;
    }
    api.call(
        Method::POST,
        &format!("/api/v1/users/{}/licenses", p.id),
        Some(json!({ "skuId": SKU })),
    )
    .await?;
    Ok(())
}

async fn last_run_id(cloud: &Cloud) -> Result<Option<String>> {
    let runs = cloud.get("/api/v1/sync/runs?limit=1").await?;
    Ok(runs[0]["runId"].as_str().map(str::to_string))
}

/// Runs `work` for every item, `width` at a time; the first error wins.
async fn parallel<T, F, Fut>(items: &[T], width: usize, work: F) -> Result<()>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let items = Arc::new(items.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..width {
        let (items, next, work) = (items.clone(), next.clone(), work.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    return Ok::<(), anyhow::Error>(());
                };
                work(item.clone()).await?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// A new password every directory accepts (length, three character classes, no name parts).
pub fn new_password() -> String {
    format!("Wb-7{}x!", random_text(16))
}

/// How long each step of one reset took.
#[derive(Debug, Clone, Default)]
pub struct Steps {
    pub start: Duration,
    pub verify: Duration,
    /// `POST …/password`: the writeback itself (cloud → agent → directory → cloud).
    pub password: Duration,
    pub result: Duration,
    /// The writeback's tracking id, and when its request was sent and answered (ms since the
    /// epoch), to line up with the cloud's log and the agent's events.
    pub tracking_id: String,
    pub sent_ms: f64,
    pub answered_ms: f64,
}

impl Steps {
    pub fn total(&self) -> Duration {
        self.start + self.verify + self.password + self.result
    }
}

/// One self-service reset of `person` to `new_password`, step by step as a person's browser
/// would; fails unless the outcome is `succeeded`.
pub async fn reset(
    api: &Api,
    http: &reqwest::Client,
    person: &Person,
    questions: &[String],
    new_password: &str,
) -> Result<Steps> {
    let mut steps = Steps::default();
    let t = Instant::now();
    let from = person.address.as_str();
    let started = api
        .anonymous(
            http,
            from,
            Method::POST,
            "/api/v1/sspr/start",
            Some(&json!({ "userPrincipalName": person.upn })),
        )
        .await?;
    steps.start = t.elapsed();
    if started.status != 200 {
        bail!("start for {}: {}", person.upn, started.why());
    }
    let sid = started.body["sessionId"]
        .as_str()
        .context("start: no sessionId")?
        .to_string();
    let answers: Vec<Value> = started.body["questions"]
        .as_array()
        .context("start: no questions")?
        .iter()
        .filter_map(Value::as_str)
        .map(|q| {
            let k = questions.iter().position(|x| x == q).unwrap_or(usize::MAX);
            json!({ "question": q, "answer": answer(k) })
        })
        .collect();
    let t = Instant::now();
    let verified = api
        .in_session(
            http,
            from,
            Method::POST,
            "/api/v1/sspr/verify",
            &sid,
            Some(&json!({ "method": "securityQuestions", "answers": answers })),
        )
        .await?;
    steps.verify = t.elapsed();
    if verified.status != 200 || verified.body["canReset"] != true {
        bail!(
            "verify for {}: {} {}",
            person.upn,
            verified.why(),
            verified.body["refusal"]
        );
    }
    let t = Instant::now();
    steps.sent_ms = crate::cloud::epoch_ms();
    let done = api
        .in_session(
            http,
            from,
            Method::POST,
            "/api/v1/sspr/password",
            &sid,
            Some(&json!({ "newPassword": new_password })),
        )
        .await?;
    steps.password = t.elapsed();
    if done.status != 200 || done.body["outcome"] != "succeeded" {
        bail!("password for {}: {}", person.upn, done.why());
    }
    steps.answered_ms = done.at_ms;
    steps.tracking_id = done.body["trackingId"].as_str().unwrap_or("").to_string();
    let t = Instant::now();
    let result = api
        .in_session(http, from, Method::GET, "/api/v1/sspr/result", &sid, None)
        .await?;
    steps.result = t.elapsed();
    if result.status != 200 || result.body["outcome"] != "succeeded" {
        bail!("result for {}: {}", person.upn, result.why());
    }
    Ok(steps)
}

fn ms(d: &[f64], q: f64) -> f64 {
    quantile(d, q) * 1000.0
}

/// Sequential self-service resets, one person each, each followed by the raw modify of the
/// same person on the same server; p50/p95/p99 of both and the difference of the p50s.
pub async fn writeback_sequential(
    directory: &Directory,
    cloud: &Cloud,
    agent: &Agent,
    online: &Online,
    people: &mut [Person],
    case: &str,
) -> Result<Vec<Row>> {
    let api = cloud.client();
    let http = reqwest::Client::new();
    let (mut flows, mut writes, mut raws) = (Vec::new(), Vec::new(), Vec::new());
    let mut parts = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut timelines = Vec::new();
    for p in people.iter_mut() {
        let pw = new_password();
        let s = reset(&api, &http, p, &online.questions, &pw).await?;
        timelines.push(s.clone());
        p.password = pw;
        flows.push(s.total().as_secs_f64());
        writes.push(s.password.as_secs_f64());
        for (v, d) in parts
            .iter_mut()
            .zip([s.start, s.verify, s.password, s.result])
        {
            v.push(d.as_secs_f64());
        }
        raws.push(
            directory
                .raw_set_password(p, &new_password())?
                .as_secs_f64(),
        );
    }
    let raw_tool = match directory.kind {
        crate::directory::Kind::Samba => "ldapmodify unicodePwd",
        crate::directory::Kind::Openldap => "ldappasswd -s",
    };
    let n = people.len();
    let dp50 = ms(&flows, 0.5) - ms(&raws, 0.5);
    let dw50 = ms(&writes, 0.5) - ms(&raws, 0.5);
    let goal = format!("p50 within {WRITEBACK_P50_GOAL_MS:.0} ms of the raw modify");
    let flow = Row {
        result: format!(
            "reset p50 {:.0} ms, p95 {:.0}, p99 {:.0}; {raw_tool} p50 {:.0} ms, p95 {:.0}, p99 {:.0}; Δp50 {dp50:+.0} ms. Steps p50: start {:.0}, verify {:.0} (3 answers), password {:.0}, result {:.0} ms",
            ms(&flows, 0.5), ms(&flows, 0.95), ms(&flows, 0.99),
            ms(&raws, 0.5), ms(&raws, 0.95), ms(&raws, 0.99),
            ms(&parts[0], 0.5), ms(&parts[1], 0.5), ms(&parts[2], 0.5), ms(&parts[3], 0.5),
        ),
        values: json!({
            "resets": n, "flowSeconds": flows, "rawSeconds": raws,
            "startSeconds": parts[0], "verifySeconds": parts[1], "passwordSeconds": parts[2], "resultSeconds": parts[3],
            "p50DifferenceMs": dp50,
        }),
        ..Row::new("writeback", format!("{case}: {n} sequential SSPR resets (start → verify → password → result) beside {raw_tool}"))
    }
    .goal(goal.clone(), dp50 <= WRITEBACK_P50_GOAL_MS);
    let (where_text, where_values) = match breakdown(cloud, agent, &timelines) {
        Ok(b) => b,
        Err(e) => (format!("no breakdown: {e:#}"), Value::Null),
    };
    let step = Row {
        result: format!(
            "p50 {:.0} ms, p95 {:.0}, p99 {:.0}; {raw_tool} p50 {:.0} ms; Δp50 {dw50:+.0} ms. {where_text}",
            ms(&writes, 0.5),
            ms(&writes, 0.95),
            ms(&writes, 0.99),
            ms(&raws, 0.5),
        ),
        values: json!({ "resets": n, "p50DifferenceMs": dw50, "breakdownMs": where_values }),
        ..Row::new(
            "writeback",
            format!("{case}: the writeback step alone (POST …/password, same {n} resets)"),
        )
    }
    .goal(goal, dw50 <= WRITEBACK_P50_GOAL_MS);
    Ok(vec![flow, step])
}

/// Resets with `in_flight` at a time, one person each: resets per second over the whole set.
pub async fn writeback_throughput(
    cloud: &Cloud,
    online: &Online,
    people: &[Person],
    in_flight: usize,
    case: &str,
) -> Result<Vec<Row>> {
    let api = cloud.client();
    let questions = Arc::new(online.questions.clone());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let lat = latencies.clone();
    parallel(people, in_flight, move |p| {
        let (api, questions, lat) = (api.clone(), questions.clone(), lat.clone());
        async move {
            let http = reqwest::Client::new();
            let s = reset(&api, &http, &p, &questions, &new_password()).await?;
            lat.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(s.total().as_secs_f64());
            Ok(())
        }
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let lat = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let n = people.len();
    Ok(vec![Row {
        result: format!(
            "{:.1} resets/s ({n} resets in {secs:.1} s); each reset p50 {:.0} ms, p95 {:.0} ms",
            n as f64 / secs,
            ms(&lat, 0.5),
            ms(&lat, 0.95)
        ),
        values: json!({ "resets": n, "inFlight": in_flight, "seconds": secs, "flowSeconds": lat }),
        ..Row::new(
            "writeback",
            format!("{case}: throughput, {in_flight} resets in flight"),
        )
    }])
}

/// `POST /api/v1/sspr/start` from `connections` loopback connections (one client and one
/// connection each, requests back to back) until `max_secs` pass or `max_requests` are sent;
/// every other UPN names a synced person, the rest nobody (same domain). Throttles as
/// configured (the defaults).
pub async fn start_load(
    cloud: &Cloud,
    existing: &[String],
    connections: usize,
    max_secs: u64,
    max_requests: usize,
    spread: bool,
    case: &str,
) -> Result<Vec<Row>> {
    if existing.is_empty() {
        bail!("no synced people to start resets for");
    }
    let domain = existing[0]
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .context("a UPN without @")?;
    let existing = Arc::new(existing.to_vec());
    let sent = Arc::new(AtomicUsize::new(0));
    let tag = random_text(6).to_lowercase();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(max_secs);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..connections {
        let (existing, sent, domain, tag) =
            (existing.clone(), sent.clone(), domain.clone(), tag.clone());
        let url = format!("{}/api/v1/sspr/start", cloud.url);
        set.spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .http1_only()
                .timeout(Duration::from_secs(30))
                .build()?;
            let mut out: Vec<(f64, u16)> = Vec::new();
            loop {
                let i = sent.fetch_add(1, Ordering::Relaxed);
                if i >= max_requests || Instant::now() >= deadline {
                    return Ok::<_, anyhow::Error>(out);
                }
                let upn = if i % 2 == 0 {
                    existing[(i / 2) % existing.len()].clone()
                } else {
                    format!("nobody-{tag}-{w}-{i}@{domain}")
                };
                let mut req = http.post(&url).json(&json!({ "userPrincipalName": upn }));
                if spread {
                    // Each request from its own address of 10.128.0.0/9.
                    req = req.header(
                        "x-forwarded-for",
                        format!(
                            "10.{}.{}.{}",
                            128 + ((i >> 16) & 127),
                            (i >> 8) & 255,
                            i & 255
                        ),
                    );
                }
                let t = Instant::now();
                let status = match req.send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                out.push((t.elapsed().as_secs_f64(), status));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    let secs = started.elapsed().as_secs_f64();
    let lat: Vec<f64> = all.iter().map(|x| x.0).collect();
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    for (_, s) in &all {
        let k = if *s == 0 {
            "transport error".to_string()
        } else {
            s.to_string()
        };
        *codes.entry(k).or_default() += 1;
    }
    let mix: Vec<String> = codes
        .iter()
        .map(|(k, v)| format!("{k}: {}", thousands(*v)))
        .collect();
    let n = all.len();
    Ok(vec![Row {
        result: format!(
            "{:.0} requests/s ({} in {secs:.1} s, {connections} connections); p50 {:.1} ms, p99 {:.1} ms; status {}",
            n as f64 / secs,
            thousands(n as u64),
            ms(&lat, 0.5),
            ms(&lat, 0.99),
            mix.join(", ")
        ),
        values: json!({ "requests": n, "seconds": secs, "connections": connections, "statuses": codes, "p50Ms": ms(&lat, 0.5), "p99Ms": ms(&lat, 0.99) }),
        ..Row::new(
            "api-sspr-start",
            format!(
                "{case}: half synced UPNs, half unknown; {}",
                if spread {
                    "every request from its own address (X-Forwarded-For)"
                } else {
                    "all from one address"
                }
            ),
        )
    }])
}

/// Where a writeback's time goes, from three clocks on this host: the harness (request sent,
/// answer received), the cloud's log (`writeback request dispatched`, µs) and the agent's
/// events (31001 reset started, 31002 reset succeeded: their ids are UUIDv7, whose
/// first 48 bits are milliseconds since the epoch). p50 of each segment, in ms.
fn breakdown(cloud: &Cloud, agent: &Agent, timelines: &[Steps]) -> Result<(String, Value)> {
    let log = std::fs::read_to_string(&cloud.log)?;
    let mut dispatched = std::collections::HashMap::new();
    for line in log.lines() {
        if !line.contains("writeback request dispatched") {
            continue;
        }
        let (Some(ts), Some(id)) = (
            line.split_whitespace().next().and_then(rfc3339_ms),
            line.split("tracking_id=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next()),
        ) else {
            continue;
        };
        dispatched.insert(id.to_string(), ts);
    }
    let mut started = std::collections::HashMap::new();
    let mut finished = std::collections::HashMap::new();
    for e in agent.events()? {
        let (Some(t), Some(id)) = (e["trackingId"].as_str(), e["id"].as_str()) else {
            continue;
        };
        let Some(at) = uuid7_ms(id) else { continue };
        match e["eventId"].as_u64() {
            Some(31001) => {
                started.insert(t.to_string(), at);
            }
            Some(31002) => {
                finished.insert(t.to_string(), at);
            }
            _ => {}
        }
    }
    let names = [
        "cloud: checks, seal, queue, push",
        "push → agent starts (open, claim)",
        "agent in the directory",
        "result back to the person",
    ];
    let mut segs: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for s in timelines {
        let t = &s.tracking_id;
        let (Some(d), Some(a), Some(f)) = (dispatched.get(t), started.get(t), finished.get(t))
        else {
            continue;
        };
        for (v, x) in segs
            .iter_mut()
            .zip([d - s.sent_ms, a - d, f - a, s.answered_ms - f])
        {
            v.push(x / 1000.0);
        }
    }
    if segs[0].is_empty() {
        bail!("no reset found in both the cloud's log and the agent's events");
    }
    let text = names
        .iter()
        .zip(&segs)
        .map(|(n, v)| format!("{n} {:.0}", ms(v, 0.5)))
        .collect::<Vec<_>>()
        .join(", ");
    let values: serde_json::Map<String, Value> = names
        .iter()
        .zip(&segs)
        .map(|(n, v)| (n.to_string(), json!(ms(v, 0.5))))
        .collect();
    Ok((
        format!(
            "Where the time goes (p50 ms, {} resets; clocks 1 ms apart): {text}",
            segs[0].len()
        ),
        Value::Object(values),
    ))
}

/// `2026-11-26T02:04:04.099201Z` → milliseconds since the epoch.
fn rfc3339_ms(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + min * 60) as f64 + sec) * 1000.0)
}

/// The millisecond timestamp of a UUIDv7.
fn uuid7_ms(id: &str) -> Option<f64> {
    let hex: String = id.chars().filter(|c| *c != '-').take(12).collect();
    (id.len() == 36 && id.as_bytes().get(14) == Some(&b'7'))
        .then(|| u64::from_str_radix(&hex, 16).ok())
        .flatten()
        .map(|v| v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_the_log_and_the_event_ids_parse() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500.0));
        // date -d 2026-11-26T02:04:04Z +%s → 1795658644
        assert_eq!(
            rfc3339_ms("2026-11-26T02:04:04.099201Z").map(|v| v.round()),
            Some(1_795_658_644_099.0)
        );
        assert_eq!(
            uuid7_ms("01a21598-67e0-7000-8000-000000000000"),
            Some(0x01a2_1598_67e0_u64 as f64)
        );
        assert_eq!(uuid7_ms("01a21598-67e0-4000-8000-000000000000"), None);
    }
}
