//! Enrolment: the agent's two key pairs and its registration with the cloud.
//!
//! `DATA_DIR/keys/signing.key` (Ed25519, signs every request) and `DATA_DIR/keys/sealing.key`
//! (X25519, writeback payloads are sealed to it) hold the private halves, base64, mode 0600 in
//! a 0700 directory. `DATA_DIR/agent.toml` holds what the cloud answered. The registration token
//! is sent once and written nowhere.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use proto::sync::{AgentRegistered, AgentRegistration};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::link::{self, LinkError};
use crate::{private_dir, write_private, AgentError};

/// `DATA_DIR/agent.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct AgentConfig {
    pub cloud_url: String,
    pub agent_id: String,
    pub tenant_id: String,
    pub name: String,
    #[serde(default)]
    pub domains: Vec<String>,
}

/// A registered agent: its configuration and keys.
pub struct Identity {
    pub config: AgentConfig,
    pub signing: SigningKey,
    pub sealing: StaticSecret,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("config", &self.config)
            .field("keys", &"[redacted]")
            .finish()
    }
}

fn config_path(data_dir: &Path) -> PathBuf {
    data_dir.join("agent.toml")
}

fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

/// The agent's version, as reported to the cloud.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Creates the keys, registers with the cloud using the one-time `token`, and saves
/// `agent.toml`. Refuses a data directory that is already registered.
pub async fn register(
    data_dir: &Path,
    cloud_url: &str,
    token: &SecretString,
    name: &str,
) -> Result<AgentConfig, AgentError> {
    if config_path(data_dir).exists() {
        return Err(AgentError::AlreadyRegistered(data_dir.to_path_buf()));
    }
    let cloud_url = cloud_url.trim_end_matches('/').to_string();
    private_dir(data_dir).map_err(AgentError::io(data_dir))?;
    let keys = keys_dir(data_dir);
    private_dir(&keys).map_err(AgentError::io(&keys))?;

    let signing = SigningKey::generate(&mut OsRng);
    let sealing = StaticSecret::random_from_rng(OsRng);
    let signing_b64 = Zeroizing::new(B64.encode(signing.to_bytes()));
    let sealing_b64 = Zeroizing::new(B64.encode(sealing.to_bytes()));
    let p = keys.join("signing.key");
    write_private(&p, signing_b64.as_bytes()).map_err(AgentError::io(&p))?;
    let p = keys.join("sealing.key");
    write_private(&p, sealing_b64.as_bytes()).map_err(AgentError::io(&p))?;

    let body = AgentRegistration {
        registration_token: token.expose_secret().to_string(),
        name: name.to_string(),
        version: VERSION.to_string(),
        signing_public_key: B64.encode(signing.verifying_key().to_bytes()),
        sealing_public_key: B64.encode(PublicKey::from(&sealing).to_bytes()),
    };
    let answer: AgentRegistered = link::register(&cloud_url, &body).await?;
    let config = AgentConfig {
        cloud_url,
        agent_id: answer.agent_id,
        tenant_id: answer.tenant_id,
        name: name.to_string(),
        domains: answer.tenant_domains,
    };
    let text = toml::to_string(&config).map_err(|e| AgentError::Config(e.to_string()))?;
    let p = config_path(data_dir);
    write_private(&p, text.as_bytes()).map_err(AgentError::io(&p))?;
    Ok(config)
}

/// Loads a registered agent from `data_dir`.
pub fn load(data_dir: &Path) -> Result<Identity, AgentError> {
    let p = config_path(data_dir);
    if !p.exists() {
        return Err(AgentError::NotRegistered(data_dir.to_path_buf()));
    }
    let text = std::fs::read_to_string(&p).map_err(AgentError::io(&p))?;
    let config: AgentConfig =
        toml::from_str(&text).map_err(|e| AgentError::Config(format!("{}: {e}", p.display())))?;
    let signing = SigningKey::from_bytes(&*read_key(&keys_dir(data_dir).join("signing.key"))?);
    let sealing = StaticSecret::from(*read_key(&keys_dir(data_dir).join("sealing.key"))?);
    Ok(Identity {
        config,
        signing,
        sealing,
    })
}

/// `DATA_DIR/keys/sealing.key`.
pub fn sealing_key_path(data_dir: &Path) -> PathBuf {
    keys_dir(data_dir).join("sealing.key")
}

/// Replaces the writeback sealing key with a new X25519 key (0600 in the 0700 key directory)
/// and returns the new public key, base64. Whoever calls it tells the cloud; the old key can no
/// longer open anything sealed to it.
pub fn roll_sealing_key(data_dir: &Path) -> Result<String, AgentError> {
    let keys = keys_dir(data_dir);
    private_dir(&keys).map_err(AgentError::io(&keys))?;
    let sealing = StaticSecret::random_from_rng(OsRng);
    let sealing_b64 = Zeroizing::new(B64.encode(sealing.to_bytes()));
    let p = sealing_key_path(data_dir);
    write_private(&p, sealing_b64.as_bytes()).map_err(AgentError::io(&p))?;
    Ok(B64.encode(PublicKey::from(&sealing).to_bytes()))
}

fn read_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, AgentError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(AgentError::io(path))?);
    let bytes = Zeroizing::new(
        B64.decode(text.trim())
            .map_err(|_| AgentError::Config(format!("{} is not a base64 key", path.display())))?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(AgentError::Config(format!(
            "{} does not hold a 32-byte key",
            path.display()
        )));
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

impl Identity {
    /// A signed client of the cloud for this agent.
    pub fn link(&self) -> Result<link::Link, LinkError> {
        link::Link::new(
            &self.config.cloud_url,
            &self.config.agent_id,
            self.signing.clone(),
        )
    }
}
