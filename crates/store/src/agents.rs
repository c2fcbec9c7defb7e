//! Sync agents: one-time registration tokens (kept as SHA-256 only), the registered agents with
//! their public keys and last heartbeat, and the nonces of their signed requests.

use proto::sync::RunOutcome;

use crate::db::{args, Row};
use crate::{enum_name, parse_enum, Result, Store, StoreError};

/// One registered agent as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub version: String,
    /// Ed25519 public key, base64.
    pub signing_public_key: String,
    /// X25519 public key, base64.
    pub sealing_public_key: String,
    pub registered_at: i64,
    pub revoked_at: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    /// The agent's own words from its last heartbeat.
    pub status: Option<String>,
    pub last_run_outcome: Option<RunOutcome>,
    pub last_run_message: Option<String>,
}

/// What became of a registration token presented by an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The token was valid and is now used up; the agent belongs to this tenant.
    Redeemed {
        tenant_id: String,
    },
    Unknown,
    Expired,
    AlreadyUsed,
}

const COLS: &str =
    "id, tenant_id, name, version, signing_public_key, sealing_public_key, registered_at, \
                    revoked_at, last_heartbeat_at, status, last_run_outcome, last_run_message";

fn agent_from(r: &dyn Row) -> Result<AgentRecord> {
    Ok(AgentRecord {
        id: r.text("id")?,
        tenant_id: r.text("tenant_id")?,
        name: r.text("name")?,
        version: r.text("version")?,
        signing_public_key: r.text("signing_public_key")?,
        sealing_public_key: r.text("sealing_public_key")?,
        registered_at: r.int("registered_at")?,
        revoked_at: r.opt_int("revoked_at")?,
        last_heartbeat_at: r.opt_int("last_heartbeat_at")?,
        status: r.opt_text("status")?,
        last_run_outcome: r
            .opt_text("last_run_outcome")?
            .map(|s| parse_enum(&s, "run outcome"))
            .transpose()?,
        last_run_message: r.opt_text("last_run_message")?,
    })
}

impl Store {
    /// Keeps a registration token's hash. NotFound if the tenant does not exist.
    pub async fn insert_registration_token(
        &self,
        hash: &str,
        tenant_id: &str,
        created_by: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()> {
        let sql = "INSERT INTO agent_registration_tokens (hash, tenant_id, created_by, created_at, expires_at, used_at) \
                   VALUES ($1, $2, $3, $4, $5, NULL)";
        self.inner
            .exec(
                sql,
                &args![hash, tenant_id, created_by, created_at, expires_at],
            )
            .await
            .map(|_| ())
    }

    /// Burns the token with this hash if it is unused and unexpired at `now`. Two agents racing
    /// with one token: exactly one is `Redeemed`.
    pub async fn redeem_registration_token(&self, hash: &str, now: i64) -> Result<Redemption> {
        let sql = "UPDATE agent_registration_tokens SET used_at = $2 \
                   WHERE hash = $1 AND used_at IS NULL AND expires_at > $2";
        let burned = self.inner.exec(sql, &args![hash, now]).await? > 0;
        let row = self
            .inner
            .opt(
                "SELECT tenant_id, expires_at, used_at FROM agent_registration_tokens WHERE hash = $1",
                &args![hash],
                |r| {
                    Ok((
                        r.text("tenant_id")?,
                        r.int("expires_at")?,
                        r.opt_int("used_at")?,
                    ))
                },
            )
            .await?;
        Ok(match row {
            None => Redemption::Unknown,
            Some((tenant_id, _, _)) if burned => Redemption::Redeemed { tenant_id },
            Some((_, _, Some(_))) => Redemption::AlreadyUsed,
            Some(_) => Redemption::Expired,
        })
    }

    /// NotFound if the tenant does not exist; Conflict on a duplicate id.
    pub async fn insert_agent(&self, a: &AgentRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO agents ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let outcome = a.last_run_outcome.as_ref().map(enum_name).transpose()?;
        self.inner
            .exec(
                &sql,
                &args![
                    &a.id,
                    &a.tenant_id,
                    &a.name,
                    &a.version,
                    &a.signing_public_key,
                    &a.sealing_public_key,
                    a.registered_at,
                    a.revoked_at,
                    a.last_heartbeat_at,
                    &a.status,
                    outcome,
                    &a.last_run_message
                ],
            )
            .await
            .map(|_| ())
    }

    /// Any tenant's agent by id (signed requests name only the agent).
    pub async fn get_agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        let sql = format!("SELECT {COLS} FROM agents WHERE id = $1");
        self.inner.opt(&sql, &args![id], agent_from).await
    }

    /// The tenant's agents, oldest registration first.
    pub async fn list_agents(&self, tenant_id: &str) -> Result<Vec<AgentRecord>> {
        let sql =
            format!("SELECT {COLS} FROM agents WHERE tenant_id = $1 ORDER BY registered_at, id");
        self.inner.all(&sql, &args![tenant_id], agent_from).await
    }

    /// Marks the agent revoked (keeping the first revocation time). `false` if the tenant has
    /// no such agent.
    pub async fn revoke_agent(&self, tenant_id: &str, id: &str, now: i64) -> Result<bool> {
        let sql = "UPDATE agents SET revoked_at = COALESCE(revoked_at, $3) WHERE tenant_id = $1 AND id = $2";
        Ok(self.inner.exec(sql, &args![tenant_id, id, now]).await? > 0)
    }

    pub async fn record_heartbeat(
        &self,
        agent_id: &str,
        now: i64,
        version: &str,
        status: Option<&str>,
    ) -> Result<()> {
        let sql =
            "UPDATE agents SET last_heartbeat_at = $2, version = $3, status = $4 WHERE id = $1";
        match self
            .inner
            .exec(sql, &args![agent_id, now, version, status])
            .await?
        {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    /// Remembers a signed request's nonce. `false` if the agent already used it (and it was not
    /// yet pruned). Rows seen before `prune_before` are dropped on the way.
    pub async fn remember_nonce(
        &self,
        agent_id: &str,
        nonce: &str,
        now: i64,
        prune_before: i64,
    ) -> Result<bool> {
        self.inner
            .exec(
                "DELETE FROM agent_nonces WHERE seen_at < $1",
                &args![prune_before],
            )
            .await?;
        let sql = "INSERT INTO agent_nonces (agent_id, nonce, seen_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (agent_id, nonce) DO NOTHING";
        Ok(self.inner.exec(sql, &args![agent_id, nonce, now]).await? > 0)
    }
}
