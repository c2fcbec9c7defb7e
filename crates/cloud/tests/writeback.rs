//! Password writeback, cloud side, over HTTP with fake agents written here: signed WebSockets,
//! signed claims and results, envelopes opened with each agent's own HPKE key. Availability
//! refusals, dispatch to another agent when one does not claim, at most one execution, the
//! deadline, results only from the claiming agent, two cloud processes on one PostgreSQL, and
//! no password in the database files.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::{Cloud, Reply};
use dirbridge_cloud as cloud;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::StreamExt;
use hpke::{Deserializable as _, Kem as _, Serializable as _};
use proto::writeback::{SealedRequest, WritebackOperation};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tenant::clock::Clock;
use tenant::writeback::{Aead, Kdf, Kem};
use tokio::sync::mpsc;

/// Every password set here contains it; the database files must not.
const MARKER: &str = "Wbk-Marker-9q4Z";
const ANCHOR: &str = "AQIDBAUGBwgJCgsMDQ4PEA==";
/// Long enough for anything that works to happen many times over.
const PATIENCE: Duration = Duration::from_secs(60);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64d(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

type Pushes = mpsc::UnboundedSender<(usize, SealedRequest)>;

/// A registered agent: signing key, writeback sealing key, and its push socket when connected.
struct FakeAgent {
    index: usize,
    id: String,
    key: SigningKey,
    sealing: <Kem as hpke::Kem>::PrivateKey,
    sealing_public: String,
    /// The key it registered with (what the cloud seals to until writeback is enabled).
    registered: <Kem as hpke::Kem>::PrivateKey,
    socket: Option<tokio::task::JoinHandle<()>>,
}

impl FakeAgent {
    async fn register(c: &Cloud, index: usize) -> FakeAgent {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let token = c
            .admin(Method::POST, "/api/v1/agents/tokens", None)
            .await
            .ok()["token"]
            .as_str()
            .unwrap()
            .to_string();
        // Registered with one sealing key; enabling writeback rolls it to a fresh one.
        let (registered_private, registered) = Kem::gen_keypair();
        let r = c
            .call(
                Method::POST,
                "/api/v1/agents/register",
                None,
                Some(json!({
                    "registrationToken": token,
                    "name": format!("agent-{index}"),
                    "version": "0.1.0",
                    "signingPublicKey": b64(key.verifying_key().as_bytes()),
                    "sealingPublicKey": b64(&registered.to_bytes()),
                })),
            )
            .await
            .ok();
        let (sealing, public) = Kem::gen_keypair();
        FakeAgent {
            index,
            id: r["agentId"].as_str().unwrap().to_string(),
            key,
            sealing,
            sealing_public: b64(&public.to_bytes()),
            registered: registered_private,
            socket: None,
        }
    }

    fn headers(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        now: i64,
    ) -> Vec<(&'static str, String)> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let hash = hex::encode(Sha256::digest(body));
        let input = proto::sync::signing_input(method, path, now, &nonce, &hash);
        vec![
            (proto::sync::HEADER_AGENT, self.id.clone()),
            (proto::sync::HEADER_TIMESTAMP, now.to_string()),
            (proto::sync::HEADER_NONCE, nonce),
            (
                proto::sync::HEADER_SIGNATURE,
                b64(&self.key.sign(input.as_bytes()).to_bytes()),
            ),
        ]
    }

    /// A signed request to the cloud at `base`.
    async fn signed(
        &self,
        c: &Cloud,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let bytes = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        let mut req = c.http.request(method.clone(), format!("{base}{path}"));
        for (k, v) in self.headers(method.as_str(), path, &bytes, c.clock.now()) {
            req = req.header(k, v);
        }
        if !bytes.is_empty() {
            req = req.header("content-type", "application/json").body(bytes);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            tracking_id: None,
        }
    }

    async fn claim(&self, c: &Cloud, base: &str, tracking_id: &str) -> Value {
        self.signed(
            c,
            base,
            Method::POST,
            "/api/v1/agent/writeback/claim",
            Some(json!({"trackingId": tracking_id})),
        )
        .await
        .ok()
    }

    async fn report(&self, c: &Cloud, base: &str, tracking_id: &str, outcome: &str) -> Reply {
        self.signed(
            c,
            base,
            Method::POST,
            "/api/v1/agent/writeback/results",
            Some(json!({
                "trackingId": tracking_id,
                "outcome": outcome,
                "message": "server text the cloud must not relay",
                "eventId": 31010,
                "adminDetail": format!("done by agent {}", self.index),
            })),
        )
        .await
    }

    /// Opens the push socket on the cloud at `base`; every writeback push goes to `pushes`.
    async fn connect(&mut self, c: &Cloud, base: &str, pushes: Pushes) {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}{}",
            base.replacen("http://", "ws://", 1),
            proto::sync::AGENT_WS_PATH
        );
        let mut req = url.as_str().into_client_request().unwrap();
        for (k, v) in self.headers("GET", proto::sync::AGENT_WS_PATH, b"", c.clock.now()) {
            req.headers_mut().insert(k, v.parse().unwrap());
        }
        let (mut socket, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("signed upgrade accepted");
        let index = self.index;
        self.socket = Some(tokio::spawn(async move {
            while let Some(Ok(msg)) = socket.next().await {
                let Ok(text) = msg.to_text() else { continue };
                let Ok(push) = serde_json::from_str::<proto::sync::AgentPush>(text) else {
                    continue;
                };
                if let proto::sync::AgentPush::Writeback { request } = push {
                    let _ = pushes.send((index, request));
                }
            }
        }));
    }

    /// The agent process dies: its socket closes.
    fn vanish(&mut self) {
        if let Some(t) = self.socket.take() {
            t.abort();
        }
    }

    /// Opens an envelope as this agent would: `None` unless it is for this agent's key.
    fn open(&self, r: &SealedRequest) -> Option<WritebackOperation> {
        self.open_with(&self.sealing, r)
            .or_else(|| self.open_with(&self.registered, r))
    }

    fn open_with(
        &self,
        key: &<Kem as hpke::Kem>::PrivateKey,
        r: &SealedRequest,
    ) -> Option<WritebackOperation> {
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&b64d(&r.encapsulated_key)).ok()?;
        let aad = proto::writeback::associated_data(
            r.version,
            &r.tenant_id,
            &r.agent_id,
            &r.tracking_id,
            r.expires_at,
        );
        let plain = hpke::single_shot_open::<Aead, Kdf, Kem>(
            &hpke::OpModeR::Base,
            key,
            &enc,
            proto::writeback::INFO,
            &b64d(&r.ciphertext),
            aad.as_bytes(),
        )
        .ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.vanish();
    }
}

async fn start(deadline_secs: u64) -> Cloud {
    let config = cloud::config::Config {
        writeback_deadline_secs: deadline_secs,
        ..Default::default()
    };
    Cloud::start_with(config, None).await
}

/// The premium trial and the policy switch on.
async fn tenant_ready(c: &Cloud) {
    c.admin(
        Method::POST,
        "/api/v1/licenses/trial",
        Some(json!({"skuId": "DIRBRIDGE_PREMIUM"})),
    )
    .await
    .ok();
    policy_writeback(c, true).await;
}

async fn policy_writeback(c: &Cloud, on: bool) -> Value {
    let mut policy = c.get("/api/v1/policy").await["policy"].clone();
    policy["writebackEnabled"] = json!(on);
    c.admin(Method::PUT, "/api/v1/policy", Some(policy))
        .await
        .ok()
}

/// `ann` synced from on-premises by `agent` (anchor [`ANCHOR`]).
async fn sync_user(c: &Cloud, agent: &FakeAgent) -> String {
    let upn = c.upn("ann");
    agent
        .signed(
            c,
            &c.base,
            Method::POST,
            "/api/v1/agent/sync/batches",
            Some(json!({"runId": "r1", "seq": 0, "deletes": [], "upserts": [{
                "anchor": ANCHOR,
                "kind": "user",
                "attributes": {
                    "userPrincipalName": upn,
                    "displayName": "Ann",
                    "accountEnabled": true,
                    "distinguishedName": "CN=Ann,OU=Staff,DC=corp,DC=example",
                    "samAccountName": "ann",
                },
            }]})),
        )
        .await
        .ok();
    upn
}

async fn enable(c: &Cloud, agent: &FakeAgent) -> Reply {
    c.admin(
        Method::PUT,
        &format!("/api/v1/agents/{}/writeback", agent.id),
        Some(json!({
            "sealingPublicKey": agent.sealing_public,
            "connector": "corp",
            "directoryKind": "activeDirectory",
            "checkedRoots": ["OU=Staff,DC=corp,DC=example"],
        })),
    )
    .await
}

/// An admin reset sent now, answered later (the call waits for the writeback).
fn reset(c: &Cloud, base: &str, upn: &str, password: &str) -> tokio::task::JoinHandle<Reply> {
    let http = c.http.clone();
    let url = format!("{base}/api/v1/users/{upn}/password");
    let token = c.admin_token.clone();
    let body = json!({"password": password, "mustChange": true});
    tokio::spawn(async move {
        let resp = http
            .post(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            tracking_id: None,
        }
    })
}

async fn answer(call: tokio::task::JoinHandle<Reply>) -> Reply {
    tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the writeback call answered")
        .unwrap()
}

/// A ready tenant with a synced user and two writeback agents, both enabled and connected to
/// `c`; their pushes arrive on the receiver, tagged with the agent's index.
async fn two_connected_agents(
    c: &Cloud,
) -> (
    Vec<FakeAgent>,
    String,
    mpsc::UnboundedReceiver<(usize, SealedRequest)>,
) {
    tenant_ready(c).await;
    let mut agents = vec![
        FakeAgent::register(c, 0).await,
        FakeAgent::register(c, 1).await,
    ];
    let upn = sync_user(c, &agents[0]).await;
    for a in &agents {
        enable(c, a).await.ok();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    for a in agents.iter_mut() {
        a.connect(c, &c.base.clone(), tx.clone()).await;
    }
    wait_connected(c, &c.base, &[&agents[0], &agents[1]], true).await;
    (agents, upn, rx)
}

async fn next_push(
    rx: &mut mpsc::UnboundedReceiver<(usize, SealedRequest)>,
) -> (usize, SealedRequest) {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("a writeback push arrived")
        .unwrap()
}

/// Polls `GET /api/v1/writeback` on `base` until each agent's `connected` is as wanted.
async fn wait_connected(c: &Cloud, base: &str, agents: &[&FakeAgent], connected: bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s: Value = c
            .http
            .get(format!("{base}/api/v1/writeback"))
            .bearer_auth(&c.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ok = agents.iter().all(|a| {
            s["agents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["agentId"] == a.id.as_str() && x["connected"] == connected)
        });
        if ok {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "agents never became connected={connected}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn audit_for(c: &Cloud, tracking_id: &str) -> Value {
    let page = c.get("/api/v1/audit?action=writeback.adminReset").await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["trackingId"] == tracking_id)
        .cloned()
        .unwrap_or_else(|| panic!("no audit record with tracking id {tracking_id}: {page}"))
}

fn assert_no_marker_in_database_files(c: &Cloud) {
    let mut searched = 0;
    for suffix in ["", "-wal", "-shm"] {
        let f = c.data_dir().join(format!("dirbridge.db{suffix}"));
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        searched += 1;
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "the marker password is in {}",
            f.display()
        );
    }
    assert!(searched > 0, "no database file found to search");
}

// ------------------------------------------------------------------ tests

/// A sign-in sent now, answered later (the call waits for the agent).
fn sign_in(c: &Cloud, upn: &str, password: &str) -> tokio::task::JoinHandle<Reply> {
    let http = c.http.clone();
    let url = format!("{}/api/v1/auth/token", c.base);
    let body = json!({"userPrincipalName": upn, "password": password});
    tokio::spawn(async move {
        let resp = http.post(url).json(&body).send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            tracking_id: None,
        }
    })
}

/// Pass-through sign-in of a synced user needs an agent and nothing else (no premium SKU, no
/// policy switch, no writeback enabled): the password is sealed to the key the agent registered
/// with, and each outcome the agent reports becomes the right answer.
#[tokio::test]
async fn a_synced_users_sign_in_goes_to_any_agent_and_each_outcome_is_answered() {
    let c = start(3).await;
    let mut a = FakeAgent::register(&c, 0).await;
    let upn = sync_user(&c, &a).await;
    let password = format!("{MARKER}-signin");

    // No agent connected: 503 at once, with the next step.
    let r = answer(sign_in(&c, &upn, &password)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.error_code(), "serviceUnavailable");
    assert!(
        r.error_message().contains("dirbridge agents list"),
        "{}",
        r.body
    );
    assert_eq!(c.get("/api/v1/writeback").await["available"], false);

    let (tx, mut rx) = mpsc::unbounded_channel();
    a.connect(&c, &c.base.clone(), tx).await;
    wait_connected(&c, &c.base, &[&a], true).await;

    for (reported, status, words) in [
        ("succeeded", StatusCode::OK, ""),
        (
            "wrongPassword",
            StatusCode::UNAUTHORIZED,
            "The user name or password is incorrect.",
        ),
        (
            "passwordExpired",
            StatusCode::UNAUTHORIZED,
            "/api/v1/sspr/change",
        ),
        (
            "mustChangePassword",
            StatusCode::UNAUTHORIZED,
            "/api/v1/sspr/change",
        ),
        ("accountDisabled", StatusCode::UNAUTHORIZED, "disabled"),
        ("accountLockedOut", StatusCode::UNAUTHORIZED, "locked out"),
        (
            "directoryUnreachable",
            StatusCode::SERVICE_UNAVAILABLE,
            "dirbridge agents list",
        ),
        (
            "configurationError",
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again",
        ),
    ] {
        let call = sign_in(&c, &upn, &password);
        let (_, req) = next_push(&mut rx).await;
        match a.open(&req).expect("sealed to the registered key") {
            WritebackOperation::Verify {
                anchor,
                password: p,
            } => {
                assert_eq!(anchor, ANCHOR);
                assert_eq!(p, password);
            }
            other => panic!("not a sign-in check: {other:?}"),
        }
        assert_eq!(
            a.claim(&c, &c.base, &req.tracking_id).await["proceed"],
            true
        );
        let rep = a.report(&c, &c.base, &req.tracking_id, reported).await;
        assert_eq!(rep.status, StatusCode::NO_CONTENT, "{}", rep.body);
        let r = answer(call).await;
        assert_eq!(r.status, status, "{reported}: {}", r.body);
        if status == StatusCode::OK {
            assert!(r.body["accessToken"].is_string(), "{}", r.body);
        } else {
            assert!(r.error_message().contains(words), "{reported}: {}", r.body);
            assert!(!r.error_message().contains("server text"), "{}", r.body);
        }
        // Audited as signIn with the same tracking id, pass-through and the outcome.
        let page = c
            .get(&format!("/api/v1/audit?trackingId={}", req.tracking_id))
            .await;
        let rec = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["action"] == "signIn")
            .cloned()
            .unwrap_or_else(|| panic!("no signIn audit for {}: {page}", req.tracking_id));
        let details = rec["details"].as_str().unwrap();
        assert!(
            details.contains("passThrough") && details.contains(reported),
            "{rec}"
        );
    }

    // Claimed but never answered: at the deadline the outcome is unknown, a 503.
    let call = sign_in(&c, &upn, &password);
    let (_, req) = next_push(&mut rx).await;
    assert_eq!(
        a.claim(&c, &c.base, &req.tracking_id).await["proceed"],
        true
    );
    let r = answer(call).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_no_marker_in_database_files(&c);
}

#[tokio::test]
async fn writeback_is_refused_until_available_and_no_connected_agent_is_unavailable_at_once() {
    // A deadline far beyond the test's patience: an answer means it did not wait for it.
    let c = start(600).await;
    let a = FakeAgent::register(&c, 0).await;
    let upn = sync_user(&c, &a).await;
    let reset_body = json!({"password": format!("{MARKER}-1a")});
    let path = format!("/api/v1/users/{upn}/password");

    // No premium SKU: enabling is refused naming the SKU and the command that fixes it.
    let r = enable(&c, &a).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.error_code(), "licenseUnavailable");
    assert!(
        r.error_message().contains("DIRBRIDGE_PREMIUM"),
        "{}",
        r.body
    );
    assert!(
        r.error_message().contains("dirbridge licenses trial"),
        "{}",
        r.body
    );
    let s = c.get("/api/v1/writeback").await;
    assert_eq!(s["available"], false);
    assert!(
        s["reason"].as_str().unwrap().contains("DIRBRIDGE_PREMIUM"),
        "{s}"
    );
    assert_eq!(c.get("/api/v1/policy").await["writebackAvailable"], false);
    let r = c.admin(Method::POST, &path, Some(reset_body.clone())).await;
    assert_eq!(r.error_code(), "licenseUnavailable", "{}", r.body);

    // Trial, but the policy switch is off.
    c.admin(Method::POST, "/api/v1/licenses/trial", None)
        .await
        .ok();
    let r = c.admin(Method::POST, &path, Some(reset_body.clone())).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.error_message().contains("--writeback true"), "{}", r.body);

    // Policy on, no agent enabled: the message names the command to run on the agent host.
    let view = policy_writeback(&c, true).await;
    assert_eq!(view["writebackAvailable"], false);
    let r = c.admin(Method::POST, &path, Some(reset_body.clone())).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        r.error_message().contains("agent writeback enable"),
        "{}",
        r.body
    );

    // Enabled: the new sealing key replaces the registered one.
    let v = enable(&c, &a).await.ok();
    assert_eq!(v["enabled"], true, "{v}");
    assert_eq!(v["connected"], false, "{v}");
    assert_eq!(
        c.store
            .get_agent(&a.id)
            .await
            .unwrap()
            .unwrap()
            .sealing_public_key,
        a.sealing_public
    );
    assert_eq!(c.get("/api/v1/policy").await["writebackAvailable"], true);
    assert_eq!(c.get("/api/v1/writeback").await["available"], true);

    // Nobody connected: agentUnavailable at once, audited with the same tracking id.
    let r = tokio::time::timeout(
        PATIENCE,
        c.admin(Method::POST, &path, Some(reset_body.clone())),
    )
    .await
    .expect("answered without waiting for the deadline");
    let v = r.ok();
    assert_eq!(v["outcome"], "agentUnavailable", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("cannot be reached"),
        "{v}"
    );
    let tracking = v["trackingId"].as_str().unwrap();
    let audit = audit_for(&c, tracking).await;
    assert_eq!(audit["result"], "failure");
    assert_eq!(audit["target"], upn.as_str());
    assert!(
        audit["details"]
            .as_str()
            .unwrap()
            .contains("agentUnavailable"),
        "{audit}"
    );

    // Unlock of a synced user takes the same path.
    let v = c
        .admin(Method::POST, &format!("/api/v1/users/{upn}/unlock"), None)
        .await
        .ok();
    assert_eq!(v["outcome"], "agentUnavailable", "{v}");

    // A cloud-only user's reset is unchanged: set in the cloud, 204.
    c.user("bob", json!({})).await;
    let r = c
        .admin(
            Method::POST,
            &format!("/api/v1/users/{}/password", c.upn("bob")),
            Some(json!({"password": "Cloud-Pass-w0rd!"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // And a cloud-only user cannot be unlocked through writeback.
    let r = c
        .admin(
            Method::POST,
            &format!("/api/v1/users/{}/unlock", c.upn("bob")),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // The agent turns itself off: writeback is no longer available.
    let v = a
        .signed(&c, &c.base, Method::DELETE, "/api/v1/agent/writeback", None)
        .await
        .ok();
    assert_eq!(v["enabled"], false, "{v}");
    let v = a
        .signed(&c, &c.base, Method::GET, "/api/v1/agent/writeback", None)
        .await
        .ok();
    assert_eq!(v["enabled"], false, "{v}");
    assert_eq!(v["connector"], "corp", "{v}");
    assert_eq!(c.get("/api/v1/writeback").await["available"], false);
    assert_no_marker_in_database_files(&c);
}

#[tokio::test]
async fn an_unclaimed_request_goes_to_the_next_agent_and_runs_exactly_once() {
    let c = start(20).await;
    let (mut agents, upn, mut rx) = two_connected_agents(&c).await;

    let password = format!("{MARKER}-2b");
    let call = reset(&c, &c.base, &upn, &password);

    // The first agent is pushed the request and never claims it.
    let (first, env1) = next_push(&mut rx).await;
    let other = 1 - first;
    assert_eq!(env1.agent_id, agents[first].id);
    match agents[first].open(&env1) {
        Some(WritebackOperation::AdminReset {
            anchor,
            new_password,
            must_change,
        }) => {
            assert_eq!(anchor, ANCHOR);
            assert_eq!(new_password, password);
            assert!(must_change);
        }
        other => panic!("not the admin reset: {other:?}"),
    }
    assert!(
        agents[other].open(&env1).is_none(),
        "an envelope opens for the agent it was sealed to only"
    );
    // Results before any claim are refused.
    let r = agents[first]
        .report(&c, &c.base, &env1.tracking_id, "succeeded")
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    // After the claim window it goes to the other agent, sealed to that agent's key.
    let (second, env2) = next_push(&mut rx).await;
    assert_eq!(second, other, "the agent that let it lapse is excluded");
    assert_eq!(env2.tracking_id, env1.tracking_id);
    assert_eq!(env2.agent_id, agents[second].id);
    assert!(agents[second].open(&env2).is_some());
    let tracking = env2.tracking_id.clone();

    let v = agents[second].claim(&c, &c.base, &tracking).await;
    assert_eq!(v["proceed"], true, "{v}");
    let v = agents[second].claim(&c, &c.base, &tracking).await;
    assert_eq!(v["proceed"], false, "a request is claimed once: {v}");
    // The late claim of the first agent is refused: it never runs.
    let v = agents[first].claim(&c, &c.base, &tracking).await;
    assert_eq!(v["proceed"], false, "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("another agent"),
        "{v}"
    );
    // Results from the agent that does not hold the claim are refused.
    let r = agents[first]
        .report(&c, &c.base, &tracking, "succeeded")
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    let r = agents[second]
        .report(&c, &c.base, &tracking, "succeeded")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let v = answer(call).await.ok();
    assert_eq!(v["outcome"], "succeeded", "{v}");
    assert_eq!(v["trackingId"], tracking.as_str());
    assert_eq!(v["agentId"], agents[second].id.as_str());
    assert_eq!(v["message"], "Your password has been changed.");
    assert_eq!(v["eventId"], 31010);

    // Ended: no second result, no claim, no further push.
    let r = agents[second]
        .report(&c, &c.base, &tracking, "succeeded")
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let v = agents[first].claim(&c, &c.base, &tracking).await;
    assert_eq!(v["proceed"], false, "{v}");
    assert!(rx.try_recv().is_err(), "pushed again after it ended");
    let row = c
        .store
        .get_writeback_request(&tracking)
        .await
        .unwrap()
        .unwrap();
    assert!(row.envelopes.is_empty(), "envelopes are dropped when done");

    let audit = audit_for(&c, &tracking).await;
    assert_eq!(audit["result"], "success", "{audit}");
    assert_eq!(audit["target"], upn.as_str());
    assert!(
        audit["details"].as_str().unwrap().contains("done by agent"),
        "{audit}"
    );

    for a in agents.iter_mut() {
        a.vanish();
    }
    c.store.close().await;
    assert_no_marker_in_database_files(&c);
}

#[tokio::test]
async fn a_claimed_request_whose_agent_vanishes_ends_unknown_and_is_never_resent() {
    claimed_then_vanished(start(4).await).await;
}

#[tokio::test]
async fn a_claimed_request_whose_agent_vanishes_ends_unknown_on_postgres_too() {
    let pg = testkit::postgres::Postgres::start().expect("start PostgreSQL");
    let config = cloud::config::Config {
        writeback_deadline_secs: 4,
        ..Default::default()
    };
    claimed_then_vanished(Cloud::start_with(config, Some(pg)).await).await;
}

async fn claimed_then_vanished(c: Cloud) {
    let (mut agents, upn, mut rx) = two_connected_agents(&c).await;

    let call = reset(&c, &c.base, &upn, &format!("{MARKER}-3c"));
    let (i, env) = next_push(&mut rx).await;
    let tracking = env.tracking_id.clone();
    let v = agents[i].claim(&c, &c.base, &tracking).await;
    assert_eq!(v["proceed"], true, "{v}");
    let r = agents[1 - i]
        .report(&c, &c.base, &tracking, "succeeded")
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    agents[i].vanish();

    let v = answer(call).await.ok();
    assert_eq!(v["outcome"], "outcomeUnknown", "{v}");
    assert_eq!(v["trackingId"], tracking.as_str());
    assert_eq!(v["agentId"], agents[i].id.as_str());
    assert!(rx.try_recv().is_err(), "a claimed request was sent again");
    // Too late now: the claim ended with the deadline.
    let r = agents[1 - i]
        .report(&c, &c.base, &tracking, "succeeded")
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let row = c
        .store
        .get_writeback_request(&tracking)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, store::WritebackState::Expired);
    assert!(row.envelopes.is_empty());
    // Not a failure: nobody knows whether the password changed.
    let audit = audit_for(&c, &tracking).await;
    assert_eq!(audit["result"], "unknown", "{audit}");
    assert!(
        audit["details"]
            .as_str()
            .unwrap()
            .contains("outcomeUnknown"),
        "{audit}"
    );
    // The vanished agent's presence is gone.
    wait_connected(&c, &c.base, &[&agents[i]], false).await;
}

#[tokio::test]
async fn two_cloud_processes_on_one_postgres_share_the_queue() {
    let pg = testkit::postgres::Postgres::start().expect("start PostgreSQL");
    let url = pg.url();
    let config = cloud::config::Config {
        writeback_deadline_secs: 20,
        ..Default::default()
    };
    let c = Cloud::start_with(config.clone(), Some(pg)).await;

    // Instance B: its own store pool, state and dispatcher on the same database.
    let b_config = cloud::config::Config {
        database_url: Some(url),
        ..config
    };
    let b_store = cloud::open_store(&b_config).await.unwrap();
    let b_state = cloud::AppState::new(b_store, Arc::new(c.clock.clone()), b_config);
    let b_instance = b_state.writeback.instance_id.clone();
    let b_app = cloud::router(b_state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, b_app).await.unwrap() });

    tenant_ready(&c).await;
    let mut agent = FakeAgent::register(&c, 0).await;
    let upn = sync_user(&c, &agent).await;
    enable(&c, &agent).await.ok();
    let (tx, mut rx) = mpsc::unbounded_channel();
    agent.connect(&c, &b_base, tx).await;
    // A sees the agent connected (to B) through the database.
    wait_connected(&c, &c.base, &[&agent], true).await;

    // Submitted to A, dispatched by B, claimed on A, result sent to B, seen by A.
    let password = format!("{MARKER}-4d");
    let call = reset(&c, &c.base, &upn, &password);
    let (_, env) = next_push(&mut rx).await;
    assert!(agent.open(&env).is_some());
    let v = agent.claim(&c, &c.base, &env.tracking_id).await;
    assert_eq!(v["proceed"], true, "{v}");
    let r = agent
        .report(&c, &b_base, &env.tracking_id, "succeeded")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let v = answer(call).await.ok();
    assert_eq!(v["outcome"], "succeeded", "{v}");
    assert_eq!(v["trackingId"], env.tracking_id.as_str());

    // An unlock submitted to A runs the same way, as an unlock.
    let http = c.http.clone();
    let url = format!("{}/api/v1/users/{upn}/unlock", c.base);
    let token = c.admin_token.clone();
    let call = tokio::spawn(async move {
        let resp = http.post(url).bearer_auth(token).send().await.unwrap();
        let status = resp.status();
        Reply {
            status,
            body: resp.json().await.unwrap(),
            tracking_id: None,
        }
    });
    let (_, env) = next_push(&mut rx).await;
    assert!(matches!(
        agent.open(&env),
        Some(WritebackOperation::Unlock { anchor }) if anchor == ANCHOR
    ));
    assert_eq!(
        agent.claim(&c, &b_base, &env.tracking_id).await["proceed"],
        true
    );
    agent
        .report(&c, &b_base, &env.tracking_id, "succeeded")
        .await;
    let v = answer(call).await.ok();
    assert_eq!(v["outcome"], "succeeded", "{v}");
    assert_eq!(v["message"], "Your account is unlocked.");

    // B holds the presence row; when the agent leaves, it is gone for A too.
    assert_ne!(b_instance, "");
    agent.vanish();
    wait_connected(&c, &c.base, &[&agent], false).await;
}

/// An answer as a whole: status, headers (sorted) and body.
type WholeAnswer = (StatusCode, Vec<(String, String)>, Value);

/// A self-service change sent now, answered later, without its tracking id and date.
fn change(c: &Cloud, upn: &str, current: &str) -> tokio::task::JoinHandle<WholeAnswer> {
    let http = c.http.clone();
    let url = format!("{}/api/v1/sspr/change", c.base);
    let body = json!({"userPrincipalName": upn, "currentPassword": current, "newPassword": format!("{MARKER}-new")});
    tokio::spawn(async move {
        let resp = http.post(url).json(&body).send().await.unwrap();
        let status = resp.status();
        let mut headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "x-tracking-id" | "date"))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        headers.sort();
        let mut body: Value = resp.json().await.unwrap();
        body.as_object_mut().unwrap().remove("trackingId");
        (status, headers, body)
    })
}

/// `POST /api/v1/sspr/change` with a wrong current password answers for a synced account (the
/// agent reported it, with its event id) exactly as for a UPN no account has: the same status,
/// headers and fields, so the answer tells no account.
#[tokio::test]
async fn a_synced_accounts_wrong_current_password_answers_like_an_unknown_account() {
    let c = start(30).await;
    tenant_ready(&c).await;
    let mut policy = c.get("/api/v1/policy").await["policy"].clone();
    policy["enabledFor"] = json!("all");
    c.admin(Method::PUT, "/api/v1/policy", Some(policy))
        .await
        .ok();
    let mut a = FakeAgent::register(&c, 0).await;
    let upn = sync_user(&c, &a).await;
    c.admin(
        Method::PATCH,
        &format!("/api/v1/users/{upn}"),
        Some(json!({"usageLocation": "NO"})),
    )
    .await
    .ok();
    c.admin(
        Method::POST,
        &format!("/api/v1/users/{upn}/licenses"),
        Some(json!({"skuId": "DIRBRIDGE_PREMIUM"})),
    )
    .await
    .ok();
    enable(&c, &a).await.ok();
    let (tx, mut rx) = mpsc::unbounded_channel();
    a.connect(&c, &c.base.clone(), tx).await;
    wait_connected(&c, &c.base, &[&a], true).await;

    let call = change(&c, &upn, "Not-The-Pa55word");
    let (_, req) = next_push(&mut rx).await;
    assert!(
        matches!(a.open(&req), Some(WritebackOperation::Change { .. })),
        "not a change"
    );
    assert_eq!(
        a.claim(&c, &c.base, &req.tracking_id).await["proceed"],
        true
    );
    let rep = a
        .report(&c, &c.base, &req.tracking_id, "wrongCurrentPassword")
        .await;
    assert_eq!(rep.status, StatusCode::NO_CONTENT, "{}", rep.body);
    let real = tokio::time::timeout(PATIENCE, call).await.unwrap().unwrap();
    let unknown = tokio::time::timeout(PATIENCE, change(&c, &c.upn("nobody"), "Not-The-Pa55word"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(real.0, StatusCode::OK, "{:?}", real.2);
    assert_eq!(real.2["outcome"], "wrongCurrentPassword", "{:?}", real.2);
    assert_eq!(real, unknown);
    assert_no_marker_in_database_files(&c);
}

/// Issue 21 item 5: SIGTERM while a writeback is in flight. The cloud takes nothing new,
/// dispatches nothing more, answers the request an agent holds within the grace period
/// (`outcomeUnknown`, truthfully: it may have run), and stops serving — long before the
/// writeback deadline it used to wait for.
#[tokio::test]
async fn a_shutdown_answers_the_writebacks_in_flight_and_stops_within_the_grace_period() {
    let config = cloud::config::Config {
        writeback_deadline_secs: 600,
        shutdown_grace_secs: 2,
        ..common::unlimited()
    };
    let mut c = Cloud::start_with(config, None).await;
    let (mut agents, upn, mut rx) = two_connected_agents(&c).await;

    let call = reset(&c, &c.base, &upn, &format!("{MARKER}-sd"));
    let (i, env) = next_push(&mut rx).await;
    let tracking = env.tracking_id.clone();
    let v = agents[i].claim(&c, &c.base, &tracking).await;
    assert_eq!(v["proceed"], true, "{v}");

    c.shut_down();
    // Taken while draining (or just before, then never handed out): answered, not run.
    let late = reset(&c, &c.base, &upn, &format!("{MARKER}-late"));

    let v = answer(call).await.ok();
    assert_eq!(v["outcome"], "outcomeUnknown", "{v}");
    assert_eq!(v["trackingId"], tracking.as_str());
    assert!(
        v["adminDetail"]
            .as_str()
            .unwrap_or("")
            .contains("shut down"),
        "{v}"
    );
    let v = answer(late).await.ok();
    assert_eq!(v["outcome"], "agentUnavailable", "{v}");
    // The agent's late result is refused: the request ended.
    let row = c
        .store
        .get_writeback_request(&tracking)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, store::WritebackState::Expired);

    // The process would exit now: serving ended (bounded wait far below the 600 s deadline).
    let served = c.served.take().unwrap();
    let ended = tokio::time::timeout(PATIENCE, served).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the cloud did not stop serving: {ended:?}"
    );
    for a in agents.iter_mut() {
        a.vanish();
    }
}

/// A password set on-premises through writeback ends the sessions apps hold for the user
/// (their OpenID Connect access and refresh tokens), as a reset of a cloud user does.
#[tokio::test]
async fn a_written_back_password_reset_revokes_the_users_app_tokens() {
    let c = start(20).await;
    let (agents, upn, mut rx) = two_connected_agents(&c).await;
    let user = c.get(&format!("/api/v1/users/{upn}")).await;
    let app = c
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "Wiki", "redirectUris": ["https://wiki.contoso.example/cb"]})),
        )
        .await
        .ok();
    let now = tenant::clock::Clock::now(&c.clock);
    let token = store::AppTokenRecord {
        hash: "a-refresh-token-hash".into(),
        id: "t1".into(),
        tenant_id: user["tenantId"].as_str().unwrap().into(),
        app_id: app["app"]["id"].as_str().unwrap().into(),
        user_id: user["id"].as_str().unwrap().into(),
        grant_id: "g1".into(),
        kind: "refresh".into(),
        scopes: vec!["openid".into(), "offline_access".into()],
        auth_time: now,
        created_at: now,
        expires_at: now + 86_400,
        revoked: false,
    };
    c.store.insert_app_token(&token).await.unwrap();

    let call = reset(&c, &c.base, &upn, &format!("{MARKER}-oidc"));
    let (i, env) = next_push(&mut rx).await;
    assert_eq!(
        agents[i].claim(&c, &c.base, &env.tracking_id).await["proceed"],
        true
    );
    let r = agents[i]
        .report(&c, &c.base, &env.tracking_id, "succeeded")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(answer(call).await.ok()["outcome"], "succeeded");
    let after = c
        .store
        .app_token_by_hash(&token.hash)
        .await
        .unwrap()
        .unwrap();
    assert!(
        after.revoked,
        "the app's refresh token outlived the new password"
    );
}
