//! The multi-instance soak: two `dirbridge cloud serve` processes on one PostgreSQL, as behind a
//! load balancer, under self-service reset starts and pass-through sign-ins at once for a
//! bounded time; each connection keeps to one instance, half of them on each. Reports the
//! error rate (any answer but 200, or no answer) and p50/p99 per kind of request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;

use crate::directory::Person;
use crate::report::{quantile, thousands, Row};

/// One request of the load: which kind, how long it took, its status (0: no answer).
struct Sample {
    sign_in: bool,
    secs: f64,
    status: u16,
}

/// `connections` connections for `secs` seconds over `urls` (two instances): even requests
/// start a reset for one of `upns` (each from its own address), odd ones sign `people` in
/// with the directory's password (each person from their own address).
pub async fn soak(
    urls: &[String],
    upns: &[String],
    people: &[Person],
    connections: usize,
    secs: u64,
    case: &str,
) -> Result<Vec<Row>> {
    if upns.is_empty() || people.is_empty() || urls.is_empty() {
        bail!("the soak needs synced people and an instance");
    }
    let (upns, people) = (Arc::new(upns.to_vec()), Arc::new(people.to_vec()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..connections {
        let url = urls[w % urls.len()].clone();
        let (upns, people) = (upns.clone(), people.clone());
        set.spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .http1_only()
                .timeout(Duration::from_secs(60))
                .build()?;
            let mut out = Vec::new();
            let mut i = w;
            while Instant::now() < deadline {
                let sign_in = i % 2 == 1;
                let req = if sign_in {
                    let p = &people[(i / 2) % people.len()];
                    http.post(format!("{url}/api/v1/auth/token"))
                        .header("x-forwarded-for", &p.address)
                        .json(&json!({"userPrincipalName": p.upn, "password": p.password}))
                } else {
                    http.post(format!("{url}/api/v1/sspr/start"))
                        .header(
                            "x-forwarded-for",
                            format!(
                                "10.{}.{}.{}",
                                128 + ((i >> 16) & 127),
                                (i >> 8) & 255,
                                i & 255
                            ),
                        )
                        .json(&json!({"userPrincipalName": upns[(i / 2) % upns.len()]}))
                };
                let t = Instant::now();
                let status = match req.send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                out.push(Sample {
                    sign_in,
                    secs: t.elapsed().as_secs_f64(),
                    status,
                });
                i += connections;
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    let wall = started.elapsed().as_secs_f64();
    let mut parts = Vec::new();
    let mut values = serde_json::Map::new();
    for (name, sign_in) in [("sign-in", true), ("sspr-start", false)] {
        let mine: Vec<&Sample> = all.iter().filter(|s| s.sign_in == sign_in).collect();
        let lat: Vec<f64> = mine.iter().map(|s| s.secs).collect();
        let errors = mine.iter().filter(|s| s.status != 200).count();
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        for s in &mine {
            *codes.entry(s.status.to_string()).or_default() += 1;
        }
        let rate = if mine.is_empty() {
            0.0
        } else {
            errors as f64 / mine.len() as f64
        };
        let (p50, p99) = (quantile(&lat, 0.5) * 1000.0, quantile(&lat, 0.99) * 1000.0);
        parts.push(format!(
            "{name}: {} ({:.0}/s), errors {:.2} %, p50 {p50:.1} ms, p99 {p99:.1} ms",
            thousands(mine.len() as u64),
            mine.len() as f64 / wall,
            rate * 100.0
        ));
        values.insert(
            name.to_string(),
            json!({"requests": mine.len(), "errors": errors, "errorRate": rate, "p50Ms": p50, "p99Ms": p99, "statuses": codes}),
        );
    }
    values.insert("seconds".into(), json!(wall));
    values.insert("connections".into(), json!(connections));
    values.insert("instances".into(), json!(urls.len()));
    Ok(vec![Row {
        result: format!("{wall:.0} s, {connections} connections: {}", parts.join("; ")),
        values: serde_json::Value::Object(values),
        ..Row::new(
            "multi-instance-soak",
            format!(
                "{case}: {} cloud instances on one PostgreSQL, SSPR starts + pass-through sign-ins of {} people",
                urls.len(),
                people.len()
            ),
        )
    }])
}
