//! The agent's client of the cloud's agent API. Every request after registration is signed as
//! `proto::sync` says: `signing_input(method, path, timestamp, nonce, sha256(body))` signed with
//! the agent's Ed25519 key, sent with the agent id, timestamp, a random 16-byte hex nonce and
//! the base64 signature. Connection errors and 5xx answers are retried a bounded number of
//! times with backoff; every other failure is a typed [`LinkError`].

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use proto::sync::{
    signing_input, AgentRegistered, AgentRegistration, AgentSyncSettings, BatchResult, Heartbeat,
    SyncRun, HEADER_AGENT, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use proto::writeback::{ClaimAnswer, ClaimRequest, WritebackResult};
use rand::RngCore;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// What went wrong talking to the cloud.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error("cloud unreachable at {url} ({reason}); check the URL and that this host may reach it over HTTPS")]
    Unreachable { url: String, reason: String },
    #[error("agent revoked: re-register with a new token (`dirbridge agent register`)")]
    Revoked,
    #[error("the cloud did not accept this agent's signature ({message}); check the host clock, or re-register")]
    Unauthorized { message: String },
    #[error("the cloud refused the registration token: {message}")]
    TokenRefused { message: String },
    #[error("the cloud refused the request: {message} ({code}, HTTP {status})")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the cloud answered with an error: {message} (HTTP {status})")]
    Server { status: u16, message: String },
    #[error("unexpected answer from the cloud: {0}")]
    Protocol(String),
}

impl LinkError {
    /// Worth trying again later (network or server trouble), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LinkError::Unreachable { .. } | LinkError::Server { .. }
        )
    }
}

/// Where the time for signatures comes from (tests may move it).
pub type Clock = Arc<dyn Fn() -> proto::Epoch + Send + Sync>;

/// A signed client for one agent.
#[derive(Clone)]
pub struct Link {
    http: reqwest::Client,
    base: String,
    agent_id: String,
    key: SigningKey,
    clock: Clock,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("base", &self.base)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

fn client() -> Result<reqwest::Client, LinkError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| LinkError::Protocol(e.to_string()))
}

/// `POST /api/v1/agents/register` (unsigned: the token is the credential). Not retried beyond
/// connection errors: the token is single-use.
pub async fn register(base: &str, body: &AgentRegistration) -> Result<AgentRegistered, LinkError> {
    let http = client()?;
    let url = format!("{base}/api/v1/agents/register");
    let resp = http
        .post(&url)
        .json(body)
        .send()
        .await
        .map_err(|e| unreachable(base, &e))?;
    match decode(resp).await {
        // A registration is not signed: a 401 is about the token (unknown, expired, used),
        // never the clock.
        Err(LinkError::Unauthorized { message }) => Err(LinkError::TokenRefused { message }),
        other => other,
    }
}

fn unreachable(base: &str, e: &reqwest::Error) -> LinkError {
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        reason = format!("{reason}: {s}");
        src = s.source();
    }
    LinkError::Unreachable {
        url: base.to_string(),
        reason,
    }
}

async fn decode<R: DeserializeOwned>(resp: reqwest::Response) -> Result<R, LinkError> {
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| LinkError::Protocol(e.to_string()))?;
    if status.is_success() {
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        return serde_json::from_str(text)
            .map_err(|e| LinkError::Protocol(format!("{e} in {}", truncate(text))));
    }
    Err(error_from(status, &text))
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

fn error_from(status: StatusCode, text: &str) -> LinkError {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or("").to_string();
    let message = v["error"]["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| truncate(text));
    if status.is_server_error() {
        return LinkError::Server {
            status: status.as_u16(),
            message,
        };
    }
    let revoked = code.to_ascii_lowercase().contains("revoked")
        || message.to_ascii_lowercase().contains("revoked");
    if revoked && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN) {
        return LinkError::Revoked;
    }
    if status == StatusCode::UNAUTHORIZED {
        return LinkError::Unauthorized { message };
    }
    LinkError::Refused {
        status: status.as_u16(),
        code,
        message,
    }
}

impl Link {
    pub fn new(base: &str, agent_id: &str, key: SigningKey) -> Result<Link, LinkError> {
        Ok(Link {
            http: client()?,
            base: base.trim_end_matches('/').to_string(),
            agent_id: agent_id.to_string(),
            key,
            clock: Arc::new(crate::now),
            attempts: 4,
            backoff: Duration::from_millis(250),
        })
    }

    /// Uses `clock` for request timestamps.
    pub fn with_clock(mut self, clock: Clock) -> Link {
        self.clock = clock;
        self
    }

    /// At most `attempts` tries per request (at least 1), waiting `backoff`, doubled each time.
    pub fn with_retries(mut self, attempts: u32, backoff: Duration) -> Link {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/v1/agent/heartbeat`.
    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<(), LinkError> {
        let _: serde_json::Value = self
            .signed(Method::POST, "/api/v1/agent/heartbeat", Some(hb))
            .await?;
        Ok(())
    }

    /// `GET /api/v1/agent/config`.
    pub async fn config(&self) -> Result<AgentSyncSettings, LinkError> {
        self.signed::<(), _>(Method::GET, "/api/v1/agent/config", None)
            .await
    }

    /// `POST /api/v1/agent/sync/batches`.
    ///
    /// `json` is the [`proto::sync::SyncBatch`] as JSON: the sync engine encodes a batch once, keeps those
    /// bytes as its in-flight record and sends them (a batch of 5,000 objects is a few MB).
    pub async fn send_batch(&self, json: Vec<u8>) -> Result<BatchResult, LinkError> {
        self.signed_bytes(Method::POST, "/api/v1/agent/sync/batches", Some(json))
            .await
    }

    /// `POST /api/v1/agent/sync/runs`.
    pub async fn report_run(&self, run: &SyncRun) -> Result<(), LinkError> {
        let _: serde_json::Value = self
            .signed(Method::POST, "/api/v1/agent/sync/runs", Some(run))
            .await?;
        Ok(())
    }

    /// `POST /api/v1/agent/writeback/claim`: may this agent run the writeback request it was
    /// pushed? Only `proceed: true` allows touching the directory.
    pub async fn writeback_claim(&self, tracking_id: &str) -> Result<ClaimAnswer, LinkError> {
        let body = ClaimRequest {
            tracking_id: tracking_id.to_string(),
        };
        self.signed(Method::POST, "/api/v1/agent/writeback/claim", Some(&body))
            .await
    }

    /// `POST /api/v1/agent/writeback/results`: the result of a claimed request (no password).
    pub async fn writeback_result(&self, result: &WritebackResult) -> Result<(), LinkError> {
        let _: serde_json::Value = self
            .signed(
                Method::POST,
                "/api/v1/agent/writeback/results",
                Some(result),
            )
            .await?;
        Ok(())
    }

    /// The headers of a signed request: (name, value) pairs.
    pub fn sign(
        &self,
        method: &Method,
        path_and_query: &str,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let timestamp = (self.clock)();
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let nonce = hex::encode(nonce);
        let body_hash = hex::encode(Sha256::digest(body));
        let input = signing_input(
            method.as_str(),
            path_and_query,
            timestamp,
            &nonce,
            &body_hash,
        );
        let signature = self.key.sign(input.as_bytes());
        vec![
            (HEADER_AGENT, self.agent_id.clone()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_NONCE, nonce),
            (HEADER_SIGNATURE, B64.encode(signature.to_bytes())),
        ]
    }

    async fn signed<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, LinkError> {
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| LinkError::Protocol(e.to_string()))?;
        self.signed_bytes(method, path, bytes).await
    }

    /// [`Link::signed`] with the body already encoded as JSON.
    async fn signed_bytes<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<R, LinkError> {
        let has_body = body.is_some();
        let bytes = body.unwrap_or_default();
        let mut wait = self.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A fresh nonce and timestamp per try: the cloud refuses a nonce it has seen.
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            for (k, v) in self.sign(&method, path, &bytes) {
                req = req.header(k, v);
            }
            if has_body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            let result = match req.send().await {
                Ok(resp) => decode(resp).await,
                Err(e) => Err(unreachable(&self.base, &e)),
            };
            match result {
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    tracing::warn!(attempt, error = %e, "cloud request failed, retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
    }
}
