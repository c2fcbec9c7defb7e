//! Pass-through sign-in: `POST /api/v1/auth/token` as a synced person with the password the
//! directory holds, beside a simple bind as the same person on the same server with the raw
//! tool (`ldapwhoami`; on Samba, which has no WhoAmI operation, `ldapsearch -b '' -s base`).

use std::time::Instant;

use anyhow::{bail, Result};
use reqwest::Method;
use serde_json::json;

use crate::cloud::Cloud;
use crate::directory::{Directory, Person};
use crate::report::{quantile, Row};

/// `sign_ins` sign-ins spread round-robin over `people` (successes do not count against the
/// per-account throttle, but a failure would: the first one stops the benchmark), each followed
/// by the raw bind of the same person. A first sign-in that is refused makes the row say
/// `not measured yet` with the cloud's answer.
pub async fn sign_in(
    directory: &Directory,
    cloud: &Cloud,
    people: &[Person],
    sign_ins: usize,
    case: &str,
) -> Result<Vec<Row>> {
    let raw_tool = directory.raw_bind_tool();
    let case = format!(
        "{case}: {sign_ins} sign-ins over {} synced users beside {raw_tool}",
        people.len()
    );
    let Some(first) = people.first() else {
        bail!("no synced people to sign in as");
    };
    let api = cloud.client();
    let http = reqwest::Client::new();
    let body = |p: &Person| json!({ "userPrincipalName": p.upn, "password": p.password });
    // The probe: pass-through sign-in may not exist yet in the binary under test.
    let probe = api
        .anonymous(
            &http,
            &first.address,
            Method::POST,
            "/api/v1/auth/token",
            Some(&body(first)),
        )
        .await?;
    if probe.status != 200 {
        return Ok(vec![Row::not_measured(
            "sign-in",
            case,
            format!(
                "POST /api/v1/auth/token as a synced user with the directory's password answered {}",
                probe.why()
            ),
        )]);
    }
    let (mut cloud_s, mut raw_s) = (Vec::new(), Vec::new());
    for i in 0..sign_ins {
        let p = &people[i % people.len()];
        let t = Instant::now();
        let a = api
            .anonymous(
                &http,
                &p.address,
                Method::POST,
                "/api/v1/auth/token",
                Some(&body(p)),
            )
            .await?;
        let took = t.elapsed();
        if a.status != 200 {
            bail!("sign-in {i} as {} answered {}", p.upn, a.why());
        }
        cloud_s.push(took.as_secs_f64());
        raw_s.push(directory.raw_bind(p)?.as_secs_f64());
    }
    let ms = |v: &[f64], q: f64| quantile(v, q) * 1000.0;
    let d = ms(&cloud_s, 0.5) - ms(&raw_s, 0.5);
    Ok(vec![Row {
        result: format!(
            "sign-in p50 {:.0} ms, p95 {:.0}; {raw_tool} p50 {:.0} ms, p95 {:.0}; Δp50 {d:+.0} ms",
            ms(&cloud_s, 0.5),
            ms(&cloud_s, 0.95),
            ms(&raw_s, 0.5),
            ms(&raw_s, 0.95),
        ),
        values: json!({ "signIns": sign_ins, "cloudSeconds": cloud_s, "rawSeconds": raw_s, "p50DifferenceMs": d }),
        ..Row::new("sign-in", case)
    }])
}
