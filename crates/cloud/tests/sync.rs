//! Agents and directory sync end to end over HTTP: enrolment, signed agent requests, batches,
//! matching, sync errors, run history and the admins' sync settings.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use base64::Engine;
use common::{Cloud, Reply, START};
use ed25519_dalek::{Signer, SigningKey};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A registered agent: its id and signing key.
struct TestAgent {
    id: String,
    key: SigningKey,
}

async fn token(c: &Cloud, body: Option<Value>) -> String {
    c.admin(Method::POST, "/api/v1/agents/tokens", body)
        .await
        .ok()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn registration(token: &str, key: &SigningKey) -> Value {
    json!({
        "registrationToken": token,
        "name": "dc01-agent",
        "version": "0.1.0",
        "signingPublicKey": b64(key.verifying_key().as_bytes()),
        "sealingPublicKey": b64(&[7u8; 32]),
    })
}

async fn register(c: &Cloud) -> TestAgent {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let t = token(c, None).await;
    let r = c
        .call(
            Method::POST,
            "/api/v1/agents/register",
            None,
            Some(registration(&t, &key)),
        )
        .await
        .ok();
    assert_eq!(r["tenantDomains"][0], c.domain.as_str());
    TestAgent {
        id: r["agentId"].as_str().unwrap().to_string(),
        key,
    }
}

/// A signed agent request with an explicit timestamp and nonce.
async fn signed_with(
    c: &Cloud,
    agent: &TestAgent,
    method: Method,
    path: &str,
    body: Option<&Value>,
    ts: i64,
    nonce: &str,
) -> Reply {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let hash = hex::encode(Sha256::digest(&bytes));
    let input = proto::sync::signing_input(method.as_str(), path, ts, nonce, &hash);
    let sig = agent.key.sign(input.as_bytes());
    let mut req = c
        .http
        .request(method, format!("{}{}", c.base, path))
        .header(proto::sync::HEADER_AGENT, &agent.id)
        .header(proto::sync::HEADER_TIMESTAMP, ts.to_string())
        .header(proto::sync::HEADER_NONCE, nonce)
        .header(proto::sync::HEADER_SIGNATURE, b64(&sig.to_bytes()));
    if body.is_some() {
        req = req.header("content-type", "application/json").body(bytes);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        body: if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        },
        tracking_id: None,
    }
}

async fn signed(
    c: &Cloud,
    agent: &TestAgent,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let nonce = uuid::Uuid::new_v4().to_string();
    signed_with(c, agent, method, path, body.as_ref(), c.clock_now(), &nonce).await
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}
impl ClockNow for Cloud {
    fn clock_now(&self) -> i64 {
        use tenant::clock::Clock;
        self.clock.now()
    }
}

fn user_obj(c: &Cloud, anchor: &str, local: &str, extra: Value) -> Value {
    let mut attrs = json!({
        "userPrincipalName": c.upn(local),
        "displayName": format!("{local} display"),
        "givenName": local,
        "accountEnabled": true,
        "distinguishedName": format!("CN={local},OU=Staff,DC=corp,DC=example"),
        "samAccountName": local,
    });
    for (k, v) in extra.as_object().unwrap() {
        attrs[k] = v.clone();
    }
    json!({"anchor": anchor, "kind": "user", "attributes": attrs})
}

fn group_obj(anchor: &str, name: &str, members: &[&str]) -> Value {
    json!({
        "anchor": anchor,
        "kind": "group",
        "attributes": {
            "displayName": name,
            "accountEnabled": false,
            "distinguishedName": format!("CN={name},OU=Groups,DC=corp,DC=example"),
        },
        "members": members,
    })
}

async fn batch(
    c: &Cloud,
    a: &TestAgent,
    run: &str,
    seq: u32,
    upserts: Vec<Value>,
    deletes: Vec<&str>,
) -> Value {
    signed(
        c,
        a,
        Method::POST,
        "/api/v1/agent/sync/batches",
        Some(json!({"runId": run, "seq": seq, "upserts": upserts, "deletes": deletes})),
    )
    .await
    .ok()
}

async fn get_user(c: &Cloud, local: &str) -> Reply {
    c.admin(
        Method::GET,
        &format!("/api/v1/users/{}", c.upn(local)),
        None,
    )
    .await
}

async fn group_by_name(c: &Cloud, name: &str) -> Value {
    let page = c.get(&format!("/api/v1/groups?namePrefix={name}")).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["displayName"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

// ------------------------------------------------------------------ enrolment

#[tokio::test]
async fn registration_token_registers_once_and_expires() {
    let c = Cloud::start().await;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);

    let t = token(&c, None).await;
    let r = c
        .call(
            Method::POST,
            "/api/v1/agents/register",
            None,
            Some(registration(&t, &key)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Once only.
    let again = c
        .call(
            Method::POST,
            "/api/v1/agents/register",
            None,
            Some(registration(&t, &key)),
        )
        .await;
    assert_eq!(again.status, 401);
    assert!(
        again.error_message().contains("already used"),
        "{}",
        again.body
    );

    // Unknown.
    let unknown = c
        .call(
            Method::POST,
            "/api/v1/agents/register",
            None,
            Some(registration("not-a-token", &key)),
        )
        .await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.error_message().contains("not valid"));

    // Expired: a 60 s token used after 61 s.
    let short = token(&c, Some(json!({"lifetimeSecs": 60}))).await;
    c.clock.advance(61);
    let late = c
        .call(
            Method::POST,
            "/api/v1/agents/register",
            None,
            Some(registration(&short, &key)),
        )
        .await;
    assert_eq!(late.status, 401);
    assert!(late.error_message().contains("expired"), "{}", late.body);

    // A bad key is refused before the token is spent.
    let t2 = token(&c, None).await;
    let mut bad = registration(&t2, &key);
    bad["signingPublicKey"] = json!(b64(&[1u8; 31]));
    let r = c
        .call(Method::POST, "/api/v1/agents/register", None, Some(bad))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("signingPublicKey"), "{}", r.body);
    let ok = c
        .call(
            Method::POST,
            "/api/v1/agents/register",
            None,
            Some(registration(&t2, &key)),
        )
        .await;
    assert_eq!(ok.status, 201);

    // Lifetime out of range; only a Global Administrator makes tokens.
    let r = c
        .admin(
            Method::POST,
            "/api/v1/agents/tokens",
            Some(json!({"lifetimeSecs": 5})),
        )
        .await;
    assert_eq!(r.status, 400);
    let helpdesk = c.admin_with_role("helpdesk", "userAdministrator").await;
    let r = c
        .call(Method::POST, "/api/v1/agents/tokens", Some(&helpdesk), None)
        .await;
    assert_eq!(r.status, 403);

    // Listed, and the admin actions are audited.
    let agents = c.get("/api/v1/agents").await;
    assert_eq!(agents.as_array().unwrap().len(), 2);
    assert_eq!(agents[0]["name"], "dc01-agent");
    let audit = c.get("/api/v1/audit?action=agent.token.create").await;
    assert!(!audit["items"].as_array().unwrap().is_empty(), "{audit}");
}

#[tokio::test]
async fn agent_health_follows_heartbeats_and_runs() {
    let mut c = Cloud::start().await;
    let a = register(&c).await;
    let r = signed(
        &c,
        &a,
        Method::POST,
        "/api/v1/agent/heartbeat",
        Some(json!({"version": "0.2.0", "status": "idle"})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let list = c.get("/api/v1/agents").await;
    assert_eq!(list[0]["health"], "healthy");
    assert_eq!(list[0]["version"], "0.2.0");
    assert_eq!(list[0]["status"], "idle");

    // Three missed heartbeats: unreachable.
    c.set_time(START + 181).await;
    assert_eq!(c.get("/api/v1/agents").await[0]["health"], "unreachable");

    // A failed run: degraded while heartbeats continue.
    signed(
        &c,
        &a,
        Method::POST,
        "/api/v1/agent/heartbeat",
        Some(json!({"version": "0.2.0"})),
    )
    .await
    .ok();
    let run = json!({"runId": "r-fail", "connector": "corp.example", "kind": "delta", "outcome": "failed",
        "startedAt": START + 100, "finishedAt": START + 110, "added": 0, "updated": 0, "deleted": 0,
        "errors": 0, "pendingDeletes": 0, "message": "cannot bind"});
    let r = signed(&c, &a, Method::POST, "/api/v1/agent/sync/runs", Some(run)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let list = c.get("/api/v1/agents").await;
    assert_eq!(list[0]["health"], "degraded");
    assert!(list[0]["status"].as_str().unwrap().contains("cannot bind"));
}

// ------------------------------------------------------------------ signed requests

#[tokio::test]
async fn signed_requests_are_verified_fresh_and_used_once() {
    let c = Cloud::start().await;
    let a = register(&c).await;
    let now = c.clock_now();

    let good = signed_with(
        &c,
        &a,
        Method::GET,
        "/api/v1/agent/config",
        None,
        now,
        "nonce-0001",
    )
    .await;
    assert_eq!(good.status, 200, "{}", good.body);
    assert_eq!(good.body["deletionThreshold"], 500);
    assert_eq!(good.body["staging"], false);
    assert_eq!(good.body["deltaIntervalSecs"], 15);
    assert_eq!(good.body["fullIntervalSecs"], 86400);

    // Replay of the same nonce.
    let replay = signed_with(
        &c,
        &a,
        Method::GET,
        "/api/v1/agent/config",
        None,
        now,
        "nonce-0001",
    )
    .await;
    assert_eq!(replay.status, 401);
    assert!(replay.error_message().contains("nonce"), "{}", replay.body);

    // Stale and future timestamps.
    for ts in [now - 301, now + 301] {
        let r = signed_with(
            &c,
            &a,
            Method::GET,
            "/api/v1/agent/config",
            None,
            ts,
            &format!("nonce-ts-{ts}"),
        )
        .await;
        assert_eq!(r.status, 401);
        assert!(r.error_message().contains("clock"), "{}", r.body);
    }

    // Signed by another key.
    let impostor = TestAgent {
        id: a.id.clone(),
        key: SigningKey::generate(&mut rand::rngs::OsRng),
    };
    let r = signed(&c, &impostor, Method::GET, "/api/v1/agent/config", None).await;
    assert_eq!(r.status, 401);
    assert!(r.error_message().contains("signature"), "{}", r.body);

    // A body changed after signing.
    let body = json!({"version": "1"});
    let hash = hex::encode(Sha256::digest(serde_json::to_vec(&body).unwrap()));
    let input = proto::sync::signing_input(
        "POST",
        "/api/v1/agent/heartbeat",
        now,
        "nonce-body-1",
        &hash,
    );
    let sig = a.key.sign(input.as_bytes());
    let r = c
        .http
        .post(format!("{}/api/v1/agent/heartbeat", c.base))
        .header(proto::sync::HEADER_AGENT, &a.id)
        .header(proto::sync::HEADER_TIMESTAMP, now.to_string())
        .header(proto::sync::HEADER_NONCE, "nonce-body-1")
        .header(proto::sync::HEADER_SIGNATURE, b64(&sig.to_bytes()))
        .body(r#"{"version": "2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Unknown agent, no headers.
    let ghost = TestAgent {
        id: "no-such-agent".into(),
        key: SigningKey::generate(&mut rand::rngs::OsRng),
    };
    assert_eq!(
        signed(&c, &ghost, Method::GET, "/api/v1/agent/config", None)
            .await
            .status,
        401
    );
    let r = c
        .call(Method::GET, "/api/v1/agent/config", None, None)
        .await;
    assert_eq!(r.status, 401);

    // Revoked: refused, saying so.
    let r = c
        .admin(Method::DELETE, &format!("/api/v1/agents/{}", a.id), None)
        .await;
    assert_eq!(r.status, 204);
    let r = signed(&c, &a, Method::GET, "/api/v1/agent/config", None).await;
    assert_eq!(r.status, 403);
    assert!(r.error_message().contains("revoked"), "{}", r.body);
    assert_eq!(c.get("/api/v1/agents").await[0]["health"], "revoked");
    let r = c.admin(Method::DELETE, "/api/v1/agents/nope", None).await;
    assert_eq!(r.status, 404);
}

// ------------------------------------------------------------------ batches

async fn creates_users_and_groups_and_replays(c: &Cloud) {
    let a = register(c).await;
    let upserts = vec![
        user_obj(
            c,
            "QUFBQQ==",
            "ada",
            json!({"country": "NO", "mail": format!("ada@{}", c.domain)}),
        ),
        user_obj(c, "QkJCQg==", "bob", json!({"country": "Narnia"})),
        group_obj(
            "R1JQMQ==",
            "Engineering",
            &["QUFBQQ==", "QkJCQg==", "R1JQMg=="],
        ),
        group_obj("R1JQMg==", "Platform", &["QUFBQQ=="]),
    ];
    let first = batch(c, &a, "run-1", 0, upserts.clone(), vec![]).await;
    assert_eq!(first["added"], 4, "{first}");
    assert_eq!(first["errors"], json!([]));

    let ada = get_user(c, "ada").await.ok();
    assert_eq!(ada["source"], "onPremises");
    assert_eq!(ada["usageLocation"], "NO");
    assert_eq!(ada["displayName"], "ada display");
    assert_eq!(ada["onPremises"]["immutableId"], "QUFBQQ==");
    assert_eq!(ada["onPremises"]["samAccountName"], "ada");
    assert_eq!(
        ada["onPremises"]["distinguishedName"],
        "CN=ada,OU=Staff,DC=corp,DC=example"
    );
    let owned: Vec<&str> = ada["onPremises"]["ownedAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(owned.contains(&"usageLocation") && owned.contains(&"userPrincipalName"));
    let bob = get_user(c, "bob").await.ok();
    assert_eq!(bob["usageLocation"], Value::Null);
    assert!(!bob["onPremises"]["ownedAttributes"]
        .as_array()
        .unwrap()
        .contains(&json!("usageLocation")));

    let eng = group_by_name(c, "Engineering").await;
    assert_eq!(eng["source"], "onPremises");
    let members = c
        .get(&format!(
            "/api/v1/groups/{}/members",
            eng["id"].as_str().unwrap()
        ))
        .await;
    let n = members
        .as_array()
        .map(Vec::len)
        .unwrap_or_else(|| members["items"].as_array().unwrap().len());
    assert_eq!(n, 3, "{members}");

    // The same (run, seq) again: the first answer, nothing new.
    let replay = batch(c, &a, "run-1", 0, upserts.clone(), vec![]).await;
    assert_eq!(replay, first);
    let users = c.get("/api/v1/users?source=onPremises").await;
    assert_eq!(users["items"].as_array().unwrap().len(), 2);

    // A new batch with the same objects: unchanged.
    let again = batch(c, &a, "run-2", 0, upserts, vec![]).await;
    assert_eq!(again["unchanged"], 4, "{again}");
    assert_eq!(again["added"], 0);
}

#[tokio::test]
async fn batch_creates_users_and_groups_with_members_and_replay_changes_nothing() {
    let c = Cloud::start().await;
    creates_users_and_groups_and_replays(&c).await;
}

#[tokio::test]
async fn batch_applies_on_postgres() {
    let c = Cloud::start_postgres().await;
    creates_users_and_groups_and_replays(&c).await;
}

#[tokio::test]
async fn hard_match_updates_and_deletes_remove() {
    let c = Cloud::start().await;
    let a = register(&c).await;
    batch(
        &c,
        &a,
        "r1",
        0,
        vec![
            user_obj(&c, "QUFBQQ==", "ada", json!({})),
            group_obj("R1JQMQ==", "Team", &["QUFBQQ=="]),
        ],
        vec![],
    )
    .await;
    let before = get_user(&c, "ada").await.ok();

    // Renamed on-prem: same anchor, new UPN and name.
    let r = batch(
        &c,
        &a,
        "r2",
        0,
        vec![user_obj(
            &c,
            "QUFBQQ==",
            "ada.lovelace",
            json!({"displayName": "Ada Lovelace", "accountEnabled": false}),
        )],
        vec![],
    )
    .await;
    assert_eq!(r["updated"], 1, "{r}");
    let after = get_user(&c, "ada.lovelace").await.ok();
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["displayName"], "Ada Lovelace");
    assert_eq!(after["accountEnabled"], false);
    assert_eq!(get_user(&c, "ada").await.status, 404);

    // Deletes remove the user and the group.
    let r = batch(
        &c,
        &a,
        "r3",
        0,
        vec![],
        vec!["QUFBQQ==", "R1JQMQ==", "bm90LWtub3du"],
    )
    .await;
    assert_eq!(r["deleted"], 2, "{r}");
    assert_eq!(get_user(&c, "ada.lovelace").await.status, 404);
    assert_eq!(group_by_name(&c, "Team").await, Value::Null);
}

#[tokio::test]
async fn soft_match_links_a_cloud_user_and_never_an_admin() {
    let c = Cloud::start().await;
    let r = c
        .admin(
            Method::PATCH,
            "/api/v1/tenant",
            Some(json!({"softMatchEnabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let carol = c.user("carol", json!({})).await;
    c.user("boss", json!({"roles": ["userAdministrator"]}))
        .await;
    let a = register(&c).await;

    let r = batch(
        &c,
        &a,
        "r1",
        0,
        vec![
            user_obj(&c, "Q0FST0w=", "carol", json!({})),
            user_obj(&c, "Qk9TUw==", "boss", json!({})),
        ],
        vec![],
    )
    .await;
    assert_eq!(r["updated"], 1, "{r}");
    assert_eq!(r["errors"][0]["code"], "softMatchRefusedAdmin", "{r}");
    assert_eq!(r["errors"][0]["anchor"], "Qk9TUw==");

    let linked = get_user(&c, "carol").await.ok();
    assert_eq!(linked["id"], carol["id"]);
    assert_eq!(linked["source"], "onPremises");
    assert_eq!(linked["onPremises"]["immutableId"], "Q0FST0w=");
    let boss = get_user(&c, "boss").await.ok();
    assert_eq!(boss["source"], "cloud");

    let errors = c.get("/api/v1/sync/errors").await;
    let list = errors.as_array().unwrap();
    assert_eq!(list.len(), 1, "{errors}");
    assert_eq!(list[0]["code"], "softMatchRefusedAdmin");
    assert_eq!(list[0]["agentId"], a.id.as_str());
    assert_eq!(
        list[0]["distinguishedName"],
        "CN=boss,OU=Staff,DC=corp,DC=example"
    );

    // The directory owns the synced user's attributes now.
    let r = c
        .admin(
            Method::PATCH,
            &format!("/api/v1/users/{}", c.upn("carol")),
            Some(json!({"displayName": "Someone"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("managed on-premises"),
        "{}",
        r.body
    );

    // The error clears once the object applies cleanly (here: under another UPN).
    let r = batch(
        &c,
        &a,
        "r2",
        0,
        vec![user_obj(&c, "Qk9TUw==", "boss2", json!({}))],
        vec![],
    )
    .await;
    assert_eq!(r["added"], 1, "{r}");
    assert_eq!(c.get("/api/v1/sync/errors").await, json!([]));
}

#[tokio::test]
async fn bad_objects_are_per_object_errors_and_the_rest_applies() {
    let c = Cloud::start().await;
    let r = c
        .admin(
            Method::PATCH,
            "/api/v1/tenant",
            Some(json!({"softMatchEnabled": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.user("taken", json!({})).await;
    let a = register(&c).await;
    let mut bad_suffix = user_obj(&c, "QkFEMQ==", "x", json!({}));
    bad_suffix["attributes"]["userPrincipalName"] = json!("x@corp.example");
    let mut bad_upn = user_obj(&c, "QkFEMg==", "x", json!({}));
    bad_upn["attributes"]["userPrincipalName"] = json!(format!("a b@{}", c.domain));
    let r = batch(
        &c,
        &a,
        "r1",
        0,
        vec![
            bad_suffix,
            bad_upn,
            user_obj(&c, "VEFLRU4=", "taken", json!({})),
            user_obj(&c, "R09PRA==", "good", json!({})),
            user_obj(&c, "R09PRA==", "good-twin", json!({})),
            group_obj("R1JQ", "G", &["R09PRA==", "bWlzc2luZw=="]),
        ],
        vec![],
    )
    .await;
    let codes: Vec<(&str, &str)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["anchor"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert!(codes.contains(&("QkFEMQ==", "upnSuffixNotVerified")), "{r}");
    assert!(codes.contains(&("QkFEMg==", "invalidUpn")), "{r}");
    assert!(codes.contains(&("VEFLRU4=", "duplicateUpn")), "{r}");
    assert!(codes.contains(&("R09PRA==", "duplicateAnchor")), "{r}");
    assert!(codes.contains(&("R1JQ", "unresolvedMember")), "{r}");
    assert_eq!(r["added"], 2, "{r}");
    assert_eq!(get_user(&c, "good").await.status, 200);
    assert_eq!(get_user(&c, "good-twin").await.status, 404);
    let g = group_by_name(&c, "G").await;
    let members = c
        .get(&format!(
            "/api/v1/groups/{}/members",
            g["id"].as_str().unwrap()
        ))
        .await;
    assert!(members
        .to_string()
        .contains(get_user(&c, "good").await.ok()["id"].as_str().unwrap()));
    assert_eq!(
        c.get("/api/v1/sync/errors").await.as_array().unwrap().len(),
        5
    );

    // Too many objects: refused whole.
    let many: Vec<&str> = vec!["x"; proto::sync::BULK_BATCH_OBJECTS + 1];
    let r = signed(
        &c,
        &a,
        Method::POST,
        "/api/v1/agent/sync/batches",
        Some(json!({"runId": "big", "seq": 0, "upserts": [], "deletes": many})),
    )
    .await;
    assert_eq!(r.status, 400);
    // Malformed body: a clear 400.
    let r = signed(
        &c,
        &a,
        Method::POST,
        "/api/v1/agent/sync/batches",
        Some(json!({"runId": "x"})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("seq") || r.error_message().contains("upserts"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_full_batch_of_500_applies() {
    let c = Cloud::start().await;
    let a = register(&c).await;
    let mut upserts: Vec<Value> = (0..450)
        .map(|i| {
            user_obj(
                &c,
                &format!("dTA{i:04}"),
                &format!("user{i}"),
                json!({"country": "US"}),
            )
        })
        .collect();
    for g in 0..50 {
        let members: Vec<String> = (0..9).map(|k| format!("dTA{:04}", g * 9 + k)).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        upserts.push(group_obj(
            &format!("ZzA{g:04}"),
            &format!("group{g}"),
            &refs,
        ));
    }
    let r = batch(&c, &a, "big", 0, upserts, vec![]).await;
    assert_eq!(r["added"], 500, "{}", r["errors"]);
    // The answer lets the agent send bulk batches from now on.
    assert_eq!(r["maxBatchObjects"], proto::sync::BULK_BATCH_OBJECTS);
    let m = c
        .get(&format!(
            "/api/v1/groups/{}/members",
            group_by_name(&c, "group7").await["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        m.as_array()
            .map(Vec::len)
            .unwrap_or_else(|| m["items"].as_array().unwrap().len()),
        9
    );
}

#[tokio::test]
async fn a_bulk_batch_applies_once_and_its_replay_gets_the_same_answer() {
    let c = Cloud::start().await;
    let a = register(&c).await;
    let n = proto::sync::BULK_BATCH_OBJECTS;
    let upserts: Vec<Value> = (0..n)
        .map(|i| {
            user_obj(
                &c,
                &format!("YnVsaw{i:05}"),
                &format!("bulk{i}"),
                json!({"country": "US"}),
            )
        })
        .collect();
    let first = batch(&c, &a, "bulk", 1, upserts.clone(), vec![]).await;
    assert_eq!(first["added"], n, "{}", first["errors"]);
    assert_eq!(first["errors"], json!([]));
    let replay = batch(&c, &a, "bulk", 1, upserts, vec![]).await;
    assert_eq!(replay, first, "a replay is answered with the first answer");
    let u = get_user(&c, &format!("bulk{}", n - 1)).await.ok();
    assert_eq!(
        u["onPremises"]["immutableId"],
        format!("YnVsaw{:05}", n - 1),
        "{u}"
    );
}

// ------------------------------------------------------------------ runs and settings

#[tokio::test]
async fn runs_are_listed_newest_first_and_settings_are_controlled() {
    let c = Cloud::start().await;
    let a = register(&c).await;

    let settings = c.get("/api/v1/sync/settings").await;
    assert_eq!(settings["deletionThreshold"], 500);
    let r = c.admin(Method::PATCH, "/api/v1/sync/settings", Some(json!({"deletionThreshold": 50, "staging": true, "deltaIntervalSecs": 30, "fullIntervalSecs": 7200}))).await.ok();
    assert_eq!(r["deletionThreshold"], 50);
    for bad in [
        json!({"deltaIntervalSecs": 4}),
        json!({"fullIntervalSecs": 60}),
        json!({}),
        json!({"bogus": 1}),
    ] {
        let r = c
            .admin(Method::PATCH, "/api/v1/sync/settings", Some(bad.clone()))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let helpdesk = c.admin_with_role("helpdesk", "userAdministrator").await;
    let r = c
        .call(
            Method::PATCH,
            "/api/v1/sync/settings",
            Some(&helpdesk),
            Some(json!({"staging": false})),
        )
        .await;
    assert_eq!(r.status, 403);
    let cfg = signed(&c, &a, Method::GET, "/api/v1/agent/config", None)
        .await
        .ok();
    assert_eq!(cfg["staging"], true);
    assert_eq!(cfg["deltaIntervalSecs"], 30);

    // A run stopped by the threshold, then allow-deletes, then a run exporting deletes.
    let run = |id: &str, outcome: &str, started: i64, deleted: u32| {
        json!({"runId": id, "connector": "corp.example", "kind": "delta",
        "outcome": outcome, "startedAt": started, "finishedAt": started + 5, "added": 1, "updated": 0, "deleted": deleted,
        "errors": 0, "pendingDeletes": 80, "message": null})
    };
    signed(
        &c,
        &a,
        Method::POST,
        "/api/v1/agent/sync/runs",
        Some(run("r1", "stoppedDeletionThreshold", START, 0)),
    )
    .await;
    let r = c
        .admin(Method::POST, "/api/v1/sync/allow-deletes", None)
        .await
        .ok();
    assert_eq!(r["allowDeletesOnce"], true);
    assert_eq!(
        signed(&c, &a, Method::GET, "/api/v1/agent/config", None)
            .await
            .ok()["allowDeletesOnce"],
        true
    );
    let r = signed(
        &c,
        &a,
        Method::POST,
        "/api/v1/agent/sync/runs",
        Some(run("r2", "succeeded", START + 60, 80)),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        c.get("/api/v1/sync/settings").await["allowDeletesOnce"],
        false
    );

    let runs = c.get("/api/v1/sync/runs").await;
    assert_eq!(runs[0]["runId"], "r2");
    assert_eq!(runs[1]["runId"], "r1");
    assert_eq!(runs[0]["agentId"], a.id.as_str());
    assert_eq!(
        c.get("/api/v1/sync/runs?limit=1")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let audit = c.get("/api/v1/audit?action=sync.allowDeletes").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
}

// ------------------------------------------------------------------ push socket

/// Opens the push WebSocket, signed by `agent` unless `sign` is false, with the signature
/// over `signed_path` (the real path unless a test breaks it on purpose).
async fn ws_connect(
    c: &Cloud,
    agent: &TestAgent,
    sign: bool,
    signed_path: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}{}",
        c.base.replacen("http://", "ws://", 1),
        proto::sync::AGENT_WS_PATH
    );
    let mut req = url.as_str().into_client_request().unwrap();
    if sign {
        let ts = c.clock_now();
        let nonce = uuid::Uuid::new_v4().to_string();
        let hash = hex::encode(Sha256::digest(b""));
        let input = proto::sync::signing_input("GET", signed_path, ts, &nonce, &hash);
        let sig = agent.key.sign(input.as_bytes());
        let h = req.headers_mut();
        h.insert(proto::sync::HEADER_AGENT, agent.id.parse().unwrap());
        h.insert(
            proto::sync::HEADER_TIMESTAMP,
            ts.to_string().parse().unwrap(),
        );
        h.insert(proto::sync::HEADER_NONCE, nonce.parse().unwrap());
        h.insert(
            proto::sync::HEADER_SIGNATURE,
            b64(&sig.to_bytes()).parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected WebSocket error: {e}"),
    }
}

async fn sync_run(c: &Cloud, body: Option<Value>) -> Reply {
    c.admin(Method::POST, "/api/v1/sync/run", body).await
}

#[tokio::test]
async fn push_socket_is_signed_and_carries_sync_now() {
    use futures_util::StreamExt;
    let c = Cloud::start().await;
    let a = register(&c).await;

    // No agent connected: 409 saying what to do.
    let r = sync_run(&c, Some(json!({"full": true}))).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.error_message().contains("dirbridge agent run"),
        "{}",
        r.body
    );

    // Unsigned and badly signed upgrades are refused before upgrading.
    assert_eq!(
        ws_connect(&c, &a, false, proto::sync::AGENT_WS_PATH)
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        ws_connect(&c, &a, true, "/api/v1/agent/config").await.err(),
        Some(401)
    );
    let other = TestAgent {
        id: a.id.clone(),
        key: SigningKey::generate(&mut rand::rngs::OsRng),
    };
    assert_eq!(
        ws_connect(&c, &other, true, proto::sync::AGENT_WS_PATH)
            .await
            .err(),
        Some(401)
    );

    // A signed agent connects and receives what the admin asks for.
    let mut socket = ws_connect(&c, &a, true, proto::sync::AGENT_WS_PATH)
        .await
        .expect("signed upgrade accepted");
    let r = sync_run(&c, Some(json!({"full": true}))).await.ok();
    assert_eq!(r["agents"], 1);
    let msg = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
        .await
        .expect("a push within 10 s")
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(v, json!({"type": "syncNow", "full": true}));
    // No body means a delta.
    let r = sync_run(&c, None).await.ok();
    assert_eq!(r["agents"], 1);
    let msg = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(v, json!({"type": "syncNow", "full": false}));
    let audit = c.get("/api/v1/audit").await;
    assert!(audit.to_string().contains("sync.run"), "{audit}");

    // Disconnected: forgotten, so asking again is a 409.
    drop(socket);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = sync_run(&c, None).await;
        if r.status == 409 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still connected: {}",
            r.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Revoked: refused before upgrading.
    let r = c
        .admin(Method::DELETE, &format!("/api/v1/agents/{}", a.id), None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        ws_connect(&c, &a, true, proto::sync::AGENT_WS_PATH)
            .await
            .err(),
        Some(403)
    );
}

/// Group licences follow memberships a sync batch changes, nested groups included, each batch
/// recomputing only the users it touches.
#[tokio::test]
async fn group_licences_follow_synced_memberships_through_nested_groups() {
    let c = Cloud::start().await;
    c.admin(Method::POST, "/api/v1/licenses/trial", None)
        .await
        .ok();
    c.admin(
        Method::PATCH,
        "/api/v1/tenant",
        Some(json!({"defaultUsageLocation": "NO"})),
    )
    .await
    .ok();
    let a = register(&c).await;
    let (ada, bob, outer, inner) = ("QUFBQQ==", "QkJCQg==", "R1JQMQ==", "R1JQMg==");
    let users = || {
        vec![
            user_obj(&c, ada, "ada", json!({})),
            user_obj(&c, bob, "bob", json!({})),
        ]
    };
    let mut upserts = users();
    upserts.push(group_obj(outer, "Outer", &[inner]));
    upserts.push(group_obj(inner, "Inner", &[ada]));
    batch(&c, &a, "r1", 0, upserts, vec![]).await;
    let outer_id = group_by_name(&c, "Outer").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.admin(
        Method::POST,
        &format!("/api/v1/groups/{outer_id}/licenses"),
        Some(json!({"skuId": "DIRBRIDGE_PREMIUM"})),
    )
    .await
    .ok();
    let licensed = |local: &'static str| {
        let c = &c;
        async move {
            let v = c
                .get(&format!("/api/v1/users/{}/licenses", c.upn(local)))
                .await;
            v.as_array()
                .unwrap()
                .iter()
                .any(|l| l["state"] == "active" && l["source"]["type"] == "group")
        }
    };
    assert!(licensed("ada").await);
    assert!(!licensed("bob").await);

    // Bob joins Inner, inside the licensed Outer: he gets the licence.
    batch(
        &c,
        &a,
        "r2",
        0,
        vec![group_obj(inner, "Inner", &[ada, bob])],
        vec![],
    )
    .await;
    assert!(licensed("ada").await && licensed("bob").await);
    // Ada leaves: she loses it, Bob keeps it.
    batch(
        &c,
        &a,
        "r3",
        0,
        vec![group_obj(inner, "Inner", &[bob])],
        vec![],
    )
    .await;
    assert!(!licensed("ada").await);
    assert!(licensed("bob").await);
    // Inner is deleted on-prem: Bob loses it too.
    batch(&c, &a, "r4", 0, vec![], vec![inner]).await;
    assert!(!licensed("bob").await);
}

/// A signed request to the push socket that is not a WebSocket upgrade is refused with the
/// JSON error document (axum's own refusal was `text/plain`; found by schemathesis).
#[tokio::test]
async fn push_socket_without_an_upgrade_answers_the_json_error_document() {
    let c = Cloud::start().await;
    let a = register(&c).await;
    let nonce = uuid::Uuid::new_v4().to_string();
    let ts = c.clock_now();
    let input = proto::sync::signing_input(
        "GET",
        proto::sync::AGENT_WS_PATH,
        ts,
        &nonce,
        &hex::encode(Sha256::digest(b"")),
    );
    let resp = c
        .http
        .get(format!("{}{}", c.base, proto::sync::AGENT_WS_PATH))
        .header(proto::sync::HEADER_AGENT, &a.id)
        .header(proto::sync::HEADER_TIMESTAMP, ts.to_string())
        .header(proto::sync::HEADER_NONCE, &nonce)
        .header(
            proto::sync::HEADER_SIGNATURE,
            b64(&a.key.sign(input.as_bytes()).to_bytes()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalidRequestBody", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket upgrade"),
        "{body}"
    );
    // Unsigned: the signature is checked first, as before.
    let r = c
        .call(Method::GET, proto::sync::AGENT_WS_PATH, None, None)
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
}

/// A sync setting sent as `null` is refused, not read as "unchanged" (the document says each
/// field is absent or a value; found by schemathesis).
#[tokio::test]
async fn sync_settings_refuse_null_fields() {
    let c = Cloud::start().await;
    for field in [
        "deletionThreshold",
        "deletionWindowSecs",
        "staging",
        "deltaIntervalSecs",
        "fullIntervalSecs",
    ] {
        let mut body = json!({"staging": true});
        body[field] = Value::Null;
        let r = c
            .admin(Method::PATCH, "/api/v1/sync/settings", Some(body.clone()))
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.error_code(), "invalidRequestBody", "{body}: {}", r.body);
    }
    assert_eq!(c.get("/api/v1/sync/settings").await["staging"], false);
}
