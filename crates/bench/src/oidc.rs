//! The OpenID Connect provider under load: an app's sign-in of a synced person (authorize → the
//! sign-in form with the directory's password, checked by the agent → code → token endpoint)
//! beside the raw bind of the same person, then the token endpoint (refresh grants, each chain
//! rotating its own refresh token) and userinfo as requests per second over several
//! connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};
use testkit::oidc_rp::{pkce, query, Ua};

use crate::cloud::Cloud;
use crate::directory::{Directory, Person};
use crate::report::{quantile, Row};

/// Where the provider sends the browser back: never contacted (the user agent stops there).
const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct Client {
    id: String,
    secret: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    authorization_endpoint: String,
}

/// Tokens of one sign-in.
struct Grant {
    access: String,
    refresh: String,
}

pub async fn oidc(
    directory: &Directory,
    cloud: &Cloud,
    people: &[Person],
    sign_ins: usize,
    connections: usize,
    secs: u64,
    case: &str,
) -> Result<Vec<Row>> {
    if people.is_empty() {
        bail!("no synced people to sign in as");
    }
    let client = register(cloud).await?;
    let http = reqwest::Client::new();

    // Sign-ins through the app's flow, each beside the raw bind.
    let (mut flow_s, mut raw_s) = (Vec::new(), Vec::new());
    let mut grants = Vec::new();
    for i in 0..sign_ins.max(connections) {
        let p = &people[i % people.len()];
        let t = Instant::now();
        let grant = sign_in(cloud, &http, &client, p)
            .await
            .with_context(|| format!("app sign-in {i} as {}", p.upn))?;
        if i < sign_ins {
            flow_s.push(t.elapsed().as_secs_f64());
            raw_s.push(directory.raw_bind(p)?.as_secs_f64());
        }
        grants.push(grant);
    }
    let ms = |v: &[f64], q: f64| quantile(v, q) * 1000.0;
    let raw_tool = directory.raw_bind_tool();
    let mut rows = vec![Row {
        result: format!(
            "app sign-in p50 {:.0} ms, p95 {:.0}; {raw_tool} p50 {:.0} ms, p95 {:.0}; Δp50 {:+.0} ms",
            ms(&flow_s, 0.5),
            ms(&flow_s, 0.95),
            ms(&raw_s, 0.5),
            ms(&raw_s, 0.95),
            ms(&flow_s, 0.5) - ms(&raw_s, 0.5),
        ),
        values: json!({ "signIns": sign_ins, "flowSeconds": flow_s, "rawSeconds": raw_s }),
        ..Row::new(
            "oidc",
            format!(
                "{case}: {sign_ins} app sign-ins (authorize, sign-in form, code, token) over {} synced users beside {raw_tool}",
                people.len()
            ),
        )
    }];

    // The token endpoint: each connection rotates its own grant's refresh token.
    let grants: Vec<_> = grants.into_iter().take(connections).collect();
    let access: Vec<String> = grants.iter().map(|g| g.access.clone()).collect();
    let client = Arc::new(client);
    let (n, lat) = load(connections, secs, |c, stop| {
        let (http, client) = (http.clone(), client.clone());
        let mut refresh = grants[c].refresh.clone();
        async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r: Value = http
                    .post(&client.token_endpoint)
                    .basic_auth(&client.id, Some(&client.secret))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                lat.push(t.elapsed().as_secs_f64());
                refresh = r["refresh_token"]
                    .as_str()
                    .context("a refresh grant without a new refresh token")?
                    .to_string();
            }
            Ok(lat)
        }
    })
    .await?;
    rows.push(rate_row(
        format!("{case}: token endpoint, refresh grants (rotating), {connections} connections, {secs} s"),
        n,
        secs,
        &lat,
    ));

    // userinfo with the access tokens.
    let (n, lat) = load(connections, secs, |c, stop| {
        let (http, client, token) = (http.clone(), client.clone(), access[c].clone());
        async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                http.get(&client.userinfo_endpoint)
                    .bearer_auth(&token)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                lat.push(t.elapsed().as_secs_f64());
            }
            Ok(lat)
        }
    })
    .await?;
    rows.push(rate_row(
        format!("{case}: userinfo, {connections} connections, {secs} s"),
        n,
        secs,
        &lat,
    ));
    Ok(rows)
}

fn rate_row(case: String, n: usize, secs: u64, lat: &[f64]) -> Row {
    let rate = n as f64 / secs as f64;
    Row {
        result: format!(
            "{rate:.0} requests/s; p50 {:.1} ms, p99 {:.1} ms",
            quantile(lat, 0.5) * 1000.0,
            quantile(lat, 0.99) * 1000.0
        ),
        values: json!({ "requests": n, "seconds": secs, "requestsPerSecond": rate, "latencySeconds": lat }),
        ..Row::new("oidc", case)
    }
}

/// `connections` loops made by `each(connection, stop)` for `secs` seconds: how many requests
/// they made and each one's latency. The first failure ends the benchmark.
async fn load<F, Fut>(connections: usize, secs: u64, each: F) -> Result<(usize, Vec<f64>)>
where
    F: Fn(usize, Arc<AtomicBool>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<f64>>> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..connections)
        .map(|c| tokio::spawn(each(c, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all.len(), all))
}

/// A confidential app for everyone, without a consent page; its endpoints from discovery.
async fn register(cloud: &Cloud) -> Result<Client> {
    let app = cloud
        .client()
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "Bench", "redirectUris": [REDIRECT], "skipConsent": true})),
        )
        .await?;
    let issuer = app["issuer"].as_str().context("no issuer")?;
    let meta: Value = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    let s = |v: &Value, k: &str| -> Result<String> {
        Ok(v[k]
            .as_str()
            .with_context(|| format!("no {k}"))?
            .to_string())
    };
    Ok(Client {
        id: s(&app["app"], "id")?,
        secret: s(&app, "clientSecret")?,
        token_endpoint: s(&meta, "token_endpoint")?,
        userinfo_endpoint: s(&meta, "userinfo_endpoint")?,
        authorization_endpoint: s(&meta, "authorization_endpoint")?,
    })
}

/// One sign-in of `p` to the app, from the person's own address: the tokens.
async fn sign_in(
    cloud: &Cloud,
    http: &reqwest::Client,
    client: &Client,
    p: &Person,
) -> Result<Grant> {
    let (verifier, challenge) = pkce();
    let mut url = reqwest::Url::parse(&client.authorization_endpoint)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile offline_access")
        .append_pair("state", "bench")
        .append_pair("nonce", "bench")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut ua = Ua::from_address(&cloud.url, &p.address);
    let first = ua.get(url.as_str()).await;
    let back = ua.drive(first, &p.upn, &p.password, "allow").await;
    let code = query(&back)
        .remove("code")
        .with_context(|| format!("no code in {back}"))?;
    let r = http
        .post(&client.token_endpoint)
        .basic_auth(&client.id, Some(&client.secret))
        .header("x-forwarded-for", &p.address)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!("the token endpoint answered {status}: {body}");
    }
    Ok(Grant {
        access: body["access_token"]
            .as_str()
            .context("no access token")?
            .to_string(),
        refresh: body["refresh_token"]
            .as_str()
            .context("no refresh token")?
            .to_string(),
    })
}
