//! Who is calling under `/api/v1/agent/…`: a registered agent, proven by an Ed25519 signature
//! over the method, path, timestamp, nonce and body hash (`proto::sync::signing_input`). Stale
//! timestamps, replayed nonces (remembered in the store, so every cloud process agrees),
//! revoked and unknown agents are refused.

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use proto::sync::{
    signing_input, HEADER_AGENT, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
    MAX_CLOCK_SKEW_SECS,
};
use proto::{ErrorCode, Tenant};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use store::AgentRecord;

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// Largest signed agent request body: a full batch of 500 objects with large groups.
pub const MAX_AGENT_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A verified agent request: the agent, its tenant, and the body that was signed.
#[derive(Debug, Clone)]
pub struct AgentCaller {
    pub agent: AgentRecord,
    pub tenant: Tenant,
    pub body: Bytes,
}

impl AgentCaller {
    /// The signed body as JSON of type `T`; 400 with serde's explanation otherwise.
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        crate::extract::json_object(&self.body)
    }
}

fn header<'a>(parts: &'a axum::http::request::Parts, name: &str) -> ApiResult<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            AppError::unauthenticated(format!(
                "This endpoint is for registered agents: the signed-request header {name} is missing. Register the agent first (dirbridge agent register --token-file F)."
            ))
        })
}

fn bad_signature() -> AppError {
    AppError::unauthenticated(
        "The request signature does not verify with this agent's registered key. If the agent's key files were replaced, register it again.",
    )
}

impl FromRequest<AppState> for AgentCaller {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let agent_id = header(&parts, HEADER_AGENT)?.to_string();
        let ts_text = header(&parts, HEADER_TIMESTAMP)?;
        let nonce = header(&parts, HEADER_NONCE)?.to_string();
        let sig_text = header(&parts, HEADER_SIGNATURE)?;
        let timestamp: i64 = ts_text.parse().map_err(|_| {
            AppError::unauthenticated(format!(
                "{HEADER_TIMESTAMP} must be Unix seconds (a whole number)."
            ))
        })?;
        if nonce.len() < 8 || nonce.len() > 128 || !nonce.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AppError::unauthenticated(format!(
                "{HEADER_NONCE} must be 8 to 128 printable ASCII characters, random per request."
            )));
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(sig_text)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| {
                AppError::unauthenticated(format!(
                    "{HEADER_SIGNATURE} must be a base64 Ed25519 signature (64 bytes)."
                ))
            })?;

        let agent = state.store.get_agent(&agent_id).await?.ok_or_else(|| {
            AppError::unauthenticated(
                "No agent is registered with this id. Register it (dirbridge agent register --token-file F) with a token from dirbridge agents token create.",
            )
        })?;
        let now = state.now();
        if (now - timestamp).abs() > MAX_CLOCK_SKEW_SECS {
            return Err(AppError::unauthenticated(format!(
                "The request timestamp is {}s away from the cloud's clock (at most {MAX_CLOCK_SKEW_SECS}s allowed). Synchronise the agent host's clock (NTP).",
                now - timestamp
            )));
        }

        let body = axum::body::to_bytes(body, MAX_AGENT_BODY_BYTES)
            .await
            .map_err(|_| {
                AppError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "The request body is larger than {MAX_AGENT_BODY_BYTES} bytes or could not be read."
                    ),
                )
            })?;
        let path_and_query = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| &u.0)
            .unwrap_or(&parts.uri)
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let body_hash = hex::encode(Sha256::digest(&body));
        let input = signing_input(
            parts.method.as_str(),
            &path_and_query,
            timestamp,
            &nonce,
            &body_hash,
        );
        let key = tenant::sync::public_key("signingPublicKey", &agent.signing_public_key)
            .ok()
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(AppError::internal)?;
        key.verify_strict(input.as_bytes(), &signature)
            .map_err(|_| bad_signature())?;

        // Said only to the holder of the key: others cannot probe which agents were revoked.
        if agent.revoked_at.is_some() {
            return Err(AppError::forbidden(
                "This agent was revoked by an administrator (dirbridge agents revoke). Register it again with a new token to reconnect it.",
            ));
        }
        // Only a verified request may spend a nonce, so nobody can burn an agent's nonces.
        let fresh = state
            .store
            .remember_nonce(&agent.id, &nonce, now, now - 2 * MAX_CLOCK_SKEW_SECS)
            .await?;
        if !fresh {
            return Err(AppError::unauthenticated(
                "This request was already received (its nonce was used before): replayed requests are refused. Send each request with a new random nonce.",
            ));
        }
        let tenant = state
            .store
            .get_tenant(&agent.tenant_id)
            .await?
            .ok_or_else(|| {
                AppError::unauthenticated("The tenant of this agent no longer exists.")
            })?;
        Ok(AgentCaller {
            agent,
            tenant,
            body,
        })
    }
}
