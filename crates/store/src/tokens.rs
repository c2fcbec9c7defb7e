//! API tokens. Only the SHA-256 of a token is stored; the token itself never reaches the store.

use crate::db::{args, Row};
use crate::{Result, Store, StoreError};

/// One issued API token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    /// SHA-256 of the token, lower-case hex. The token itself is never stored.
    pub hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
    /// Seconds the token may go unused before it stops working; 0: no idle limit (API and CLI
    /// tokens). Browser sessions have one.
    pub idle_timeout: i64,
    /// When the token was last used (kept to the minute by [`Store::touch_token`]).
    pub last_used_at: i64,
}

impl std::fmt::Debug for TokenRecord {
    // The hash is as good as the token for looking one up: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("hash", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .field("idle_timeout", &self.idle_timeout)
            .field("last_used_at", &self.last_used_at)
            .finish()
    }
}

const COLS: &str =
    "id, tenant_id, user_id, hash, created_at, expires_at, revoked, idle_timeout, last_used_at";

fn token_from(r: &dyn Row) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.text("id")?,
        tenant_id: r.text("tenant_id")?,
        user_id: r.text("user_id")?,
        hash: r.text("hash")?,
        created_at: r.int("created_at")?,
        expires_at: r.int("expires_at")?,
        revoked: r.flag("revoked")?,
        idle_timeout: r.int("idle_timeout")?,
        last_used_at: r.int("last_used_at")?,
    })
}

impl Store {
    /// NotFound if the user does not exist in the tenant; Conflict on a duplicate id or hash.
    pub async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        let sql =
            format!("INSERT INTO api_tokens ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        let a = args![
            &t.id,
            &t.tenant_id,
            &t.user_id,
            &t.hash,
            t.created_at,
            t.expires_at,
            t.revoked,
            t.idle_timeout,
            t.last_used_at
        ];
        match self.inner.exec(&sql, &a).await {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "a token with id {} or with the same hash already exists",
                t.id
            ))),
            other => other.map(|_| ()),
        }
    }

    /// The token with this hash, revoked or expired ones included: the caller checks both.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {COLS} FROM api_tokens WHERE hash = $1");
        self.inner.opt(&sql, &args![hash], token_from).await
    }

    /// Records that token `id` was used at `now`.
    pub async fn touch_token(&self, id: &str, now: i64) -> Result<()> {
        let sql = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2";
        self.inner.exec(sql, &args![id, now]).await.map(|_| ())
    }

    /// Revoke one token. `true` when the tenant has a token with this id (it is revoked now,
    /// whether or not it was before), `false` when it has none.
    pub async fn revoke_token(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let sql = "UPDATE api_tokens SET revoked = $3 WHERE tenant_id = $1 AND id = $2";
        Ok(self.inner.exec(sql, &args![tenant_id, id, true]).await? > 0)
    }

    /// Revoke every token of a user — API and portal sessions, and the access and refresh
    /// tokens apps got from the OpenID Connect provider — so a password change or reset, or an
    /// admin's revocation, signs the user out everywhere at once. How many were not revoked
    /// before.
    pub async fn revoke_user_tokens(&self, tenant_id: &str, user_id: &str) -> Result<u64> {
        let sql = "UPDATE api_tokens SET revoked = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked = $4";
        let api = self
            .inner
            .exec(sql, &args![tenant_id, user_id, true, false])
            .await?;
        Ok(api + self.revoke_user_app_tokens(tenant_id, user_id).await?)
    }
}
