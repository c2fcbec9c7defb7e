//! The OpenID Connect provider's rows: app registrations and their client secrets, the
//! tenant's signing keys (private halves sealed by the caller), authorization requests waiting
//! for a browser, authorization codes, access and refresh tokens, and consents.
//!
//! Codes, tokens and secrets reach the store only as hashes. Single use is enforced here, in one
//! statement each ([`Store::consume_code`], [`Store::use_refresh_token`]), so two instances
//! racing on the same code or refresh token cannot both win.

use proto::oidc::{App, AppSecretInfo, ClientType};

use crate::db::{args, Row};
use crate::{enum_name, from_json, parse_enum, to_json, Result, Store, StoreError};

const APP_COLS: &str =
    "tenant_id, id, name, client_type, redirect_uris, post_logout_redirect_uris, \
    allowed_scopes, access_group_id, access_token_secs, id_token_secs, refresh_token_secs, \
    skip_consent, signing_alg, created_at, updated_at";

fn app_from(r: &dyn Row) -> Result<App> {
    Ok(App {
        tenant_id: r.text("tenant_id")?,
        id: r.text("id")?,
        name: r.text("name")?,
        client_type: parse_enum::<ClientType>(&r.text("client_type")?, "client type")?,
        redirect_uris: from_json(&r.text("redirect_uris")?, "redirect URI list")?,
        post_logout_redirect_uris: from_json(
            &r.text("post_logout_redirect_uris")?,
            "redirect URI list",
        )?,
        allowed_scopes: from_json(&r.text("allowed_scopes")?, "scope list")?,
        access_group_id: r.opt_text("access_group_id")?,
        access_token_lifetime_secs: r.int("access_token_secs")?,
        id_token_lifetime_secs: r.int("id_token_secs")?,
        refresh_token_lifetime_secs: r.int("refresh_token_secs")?,
        skip_consent: r.flag("skip_consent")?,
        id_token_signing_alg: r.text("signing_alg")?,
        secrets: Vec::new(),
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

/// One signing key of a tenant. `sealed_private` is opaque to the store.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub tenant_id: String,
    pub kid: String,
    pub alg: String,
    /// The public JWK, as JSON text.
    pub public_jwk: String,
    pub sealed_private: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("tenant_id", &self.tenant_id)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("sealed_private", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

fn key_from(r: &dyn Row) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        tenant_id: r.text("tenant_id")?,
        kid: r.text("kid")?,
        alg: r.text("alg")?,
        public_jwk: r.text("public_jwk")?,
        sealed_private: r.text("sealed_private")?,
        created_at: r.int("created_at")?,
        retired_at: r.opt_int("retired_at")?,
        publish_until: r.opt_int("publish_until")?,
    })
}

/// An authorization request waiting for the browser (its checked parameters as JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub request: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An authorization code (by hash) and what it was issued for (`request`: JSON).
#[derive(Clone, PartialEq, Eq)]
pub struct CodeRecord {
    pub hash: String,
    pub tenant_id: String,
    pub app_id: String,
    pub user_id: String,
    pub grant_id: String,
    pub request: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for CodeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeRecord")
            .field("hash", &"[redacted]")
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("grant_id", &self.grant_id)
            .finish()
    }
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// First use: the code is spent now.
    Fresh(CodeRecord),
    /// The code was redeemed before (the grant's tokens should be revoked).
    Reused(CodeRecord),
    Unknown,
}

/// An access or refresh token handed to an app (by hash).
#[derive(Clone, PartialEq, Eq)]
pub struct AppTokenRecord {
    pub hash: String,
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub user_id: String,
    pub grant_id: String,
    /// `access` or `refresh`.
    pub kind: String,
    pub scopes: Vec<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
}

impl std::fmt::Debug for AppTokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppTokenRecord")
            .field("hash", &"[redacted]")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish()
    }
}

const TOKEN_COLS: &str = "hash, id, tenant_id, app_id, user_id, grant_id, kind, scopes, auth_time, created_at, expires_at, revoked";

fn app_token_from(r: &dyn Row) -> Result<AppTokenRecord> {
    Ok(AppTokenRecord {
        hash: r.text("hash")?,
        id: r.text("id")?,
        tenant_id: r.text("tenant_id")?,
        app_id: r.text("app_id")?,
        user_id: r.text("user_id")?,
        grant_id: r.text("grant_id")?,
        kind: r.text("kind")?,
        scopes: from_json(&r.text("scopes")?, "scope list")?,
        auth_time: r.int("auth_time")?,
        created_at: r.int("created_at")?,
        expires_at: r.int("expires_at")?,
        revoked: r.flag("revoked")?,
    })
}

fn code_from(r: &dyn Row) -> Result<CodeRecord> {
    Ok(CodeRecord {
        hash: r.text("hash")?,
        tenant_id: r.text("tenant_id")?,
        app_id: r.text("app_id")?,
        user_id: r.text("user_id")?,
        grant_id: r.text("grant_id")?,
        request: r.text("request")?,
        created_at: r.int("created_at")?,
        expires_at: r.int("expires_at")?,
    })
}

impl Store {
    // ------------------------------------------------------------ apps

    /// Conflict on a duplicate id; NotFound if the tenant does not exist.
    pub async fn insert_app(&self, a: &App) -> Result<()> {
        let sql = format!(
            "INSERT INTO oidc_apps ({APP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        );
        self.inner.exec(&sql, &app_args(a)?).await.map(|_| ())
    }

    /// Writes every setting of the app (not its secrets); NotFound if the tenant has no such app.
    pub async fn update_app(&self, a: &App) -> Result<()> {
        let sql = "UPDATE oidc_apps SET name = $3, client_type = $4, redirect_uris = $5, \
            post_logout_redirect_uris = $6, allowed_scopes = $7, access_group_id = $8, \
            access_token_secs = $9, id_token_secs = $10, refresh_token_secs = $11, \
            skip_consent = $12, signing_alg = $13, created_at = $14, updated_at = $15 \
            WHERE tenant_id = $1 AND id = $2";
        match self.inner.exec(sql, &app_args(a)?).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    /// The tenant's app with this id (its secrets' ids included).
    pub async fn get_app(&self, tenant_id: &str, id: &str) -> Result<Option<App>> {
        let sql = format!("SELECT {APP_COLS} FROM oidc_apps WHERE tenant_id = $1 AND id = $2");
        let Some(mut app) = self
            .inner
            .opt(&sql, &args![tenant_id, id], app_from)
            .await?
        else {
            return Ok(None);
        };
        app.secrets = self.app_secrets(id).await?;
        Ok(Some(app))
    }

    /// Every app of the tenant, by name.
    pub async fn list_apps(&self, tenant_id: &str) -> Result<Vec<App>> {
        let sql =
            format!("SELECT {APP_COLS} FROM oidc_apps WHERE tenant_id = $1 ORDER BY name, id");
        let mut apps = self.inner.all(&sql, &args![tenant_id], app_from).await?;
        for a in &mut apps {
            a.secrets = self.app_secrets(&a.id).await?;
        }
        Ok(apps)
    }

    /// Deletes the app with its secrets, codes, tokens and consents. `false` if there was none.
    pub async fn delete_app(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = self
            .inner
            .exec(
                "DELETE FROM oidc_apps WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, id],
            )
            .await?;
        Ok(n > 0)
    }

    async fn app_secrets(&self, app_id: &str) -> Result<Vec<AppSecretInfo>> {
        self.inner
            .all(
                "SELECT id, created_at FROM oidc_app_secrets WHERE app_id = $1 ORDER BY created_at, id",
                &args![app_id],
                |r| {
                    Ok(AppSecretInfo {
                        id: r.text("id")?,
                        created_at: r.int("created_at")?,
                    })
                },
            )
            .await
    }

    /// Adds a client secret (its hash) to an app.
    pub async fn insert_app_secret(
        &self,
        app_id: &str,
        id: &str,
        hash: &str,
        now: i64,
    ) -> Result<()> {
        self.inner
            .exec(
                "INSERT INTO oidc_app_secrets (id, app_id, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &args![id, app_id, hash, now, None::<i64>],
            )
            .await
            .map(|_| ())
    }

    /// Removes one client secret of the tenant's app; `false` if it has none with this id.
    pub async fn delete_app_secret(&self, tenant_id: &str, app_id: &str, id: &str) -> Result<bool> {
        let n = self
            .inner
            .exec(
                "DELETE FROM oidc_app_secrets WHERE id = $1 AND app_id = $2 \
                 AND app_id IN (SELECT id FROM oidc_apps WHERE tenant_id = $3)",
                &args![id, app_id, tenant_id],
            )
            .await?;
        Ok(n > 0)
    }

    /// Whether `hash` is the hash of one of the app's client secrets.
    pub async fn app_secret_matches(&self, app_id: &str, hash: &str) -> Result<bool> {
        let found = self
            .inner
            .opt(
                "SELECT app_id FROM oidc_app_secrets WHERE hash = $1",
                &args![hash],
                |r| r.text("app_id"),
            )
            .await?;
        Ok(found.as_deref() == Some(app_id))
    }

    // ------------------------------------------------------------ signing keys

    /// Every signing key of the tenant, newest first.
    pub async fn list_signing_keys(&self, tenant_id: &str) -> Result<Vec<SigningKeyRecord>> {
        self.inner
            .all(
                "SELECT tenant_id, kid, alg, public_jwk, sealed_private, created_at, retired_at, publish_until \
                 FROM oidc_keys WHERE tenant_id = $1 ORDER BY created_at DESC, kid",
                &args![tenant_id],
                key_from,
            )
            .await
    }

    pub async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<()> {
        self.inner
            .exec(
                "INSERT INTO oidc_keys (tenant_id, kid, alg, public_jwk, sealed_private, created_at, retired_at, publish_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &args![
                    &k.tenant_id,
                    &k.kid,
                    &k.alg,
                    &k.public_jwk,
                    &k.sealed_private,
                    k.created_at,
                    k.retired_at,
                    k.publish_until
                ],
            )
            .await
            .map(|_| ())
    }

    /// Retires the tenant's active keys other than `keep`: they sign nothing more and stay
    /// published until `publish_until`. How many were retired.
    pub async fn retire_signing_keys(
        &self,
        tenant_id: &str,
        keep: &[String],
        now: i64,
        publish_until: i64,
    ) -> Result<u64> {
        let mut n = 0;
        for k in self.list_signing_keys(tenant_id).await? {
            if k.retired_at.is_none() && !keep.contains(&k.kid) {
                n += self
                    .inner
                    .exec(
                        "UPDATE oidc_keys SET retired_at = $3, publish_until = $4 \
                         WHERE tenant_id = $1 AND kid = $2 AND retired_at IS NULL",
                        &args![tenant_id, &k.kid, now, publish_until],
                    )
                    .await?;
            }
        }
        // Keys no token can need any more are deleted.
        self.inner
            .exec(
                "DELETE FROM oidc_keys WHERE tenant_id = $1 AND publish_until < $2",
                &args![tenant_id, now],
            )
            .await?;
        Ok(n)
    }

    // ------------------------------------------------------------ authorization requests

    /// Stores a request waiting for the browser; requests, codes and tokens that ran out are
    /// deleted meanwhile.
    pub async fn insert_pending_request(&self, r: &PendingRequest) -> Result<()> {
        self.inner
            .exec(
                "DELETE FROM oidc_requests WHERE expires_at < $1",
                &args![r.created_at],
            )
            .await?;
        self.inner
            .exec(
                "DELETE FROM oidc_codes WHERE expires_at < $1",
                &args![r.created_at],
            )
            .await?;
        // Expired tokens are refused anyway; spent refresh tokens are kept until then, so a
        // replay is still recognised.
        self.inner
            .exec(
                "DELETE FROM oidc_tokens WHERE expires_at < $1",
                &args![r.created_at],
            )
            .await?;
        self.inner
            .exec(
                "INSERT INTO oidc_requests (id, tenant_id, app_id, request, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &args![&r.id, &r.tenant_id, &r.app_id, &r.request, r.created_at, r.expires_at],
            )
            .await
            .map(|_| ())
    }

    /// The tenant's pending request with this id, expired or not (the caller checks).
    pub async fn get_pending_request(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<PendingRequest>> {
        self.inner
            .opt(
                "SELECT id, tenant_id, app_id, request, created_at, expires_at FROM oidc_requests \
                 WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, id],
                |r| {
                    Ok(PendingRequest {
                        id: r.text("id")?,
                        tenant_id: r.text("tenant_id")?,
                        app_id: r.text("app_id")?,
                        request: r.text("request")?,
                        created_at: r.int("created_at")?,
                        expires_at: r.int("expires_at")?,
                    })
                },
            )
            .await
    }

    /// Replaces what a pending request remembers; `false` if it is gone.
    pub async fn update_pending_request(
        &self,
        tenant_id: &str,
        id: &str,
        request: &str,
    ) -> Result<bool> {
        let n = self
            .inner
            .exec(
                "UPDATE oidc_requests SET request = $3 WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, id, request],
            )
            .await?;
        Ok(n > 0)
    }

    /// Deletes a pending request; `true` if this call deleted it (so only one caller finishes it).
    pub async fn take_pending_request(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = self
            .inner
            .exec(
                "DELETE FROM oidc_requests WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, id],
            )
            .await?;
        Ok(n > 0)
    }

    // ------------------------------------------------------------ codes

    pub async fn insert_code(&self, c: &CodeRecord) -> Result<()> {
        self.inner
            .exec(
                "INSERT INTO oidc_codes (hash, tenant_id, app_id, user_id, grant_id, request, created_at, expires_at, used) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &args![
                    &c.hash,
                    &c.tenant_id,
                    &c.app_id,
                    &c.user_id,
                    &c.grant_id,
                    &c.request,
                    c.created_at,
                    c.expires_at,
                    false
                ],
            )
            .await
            .map(|_| ())
    }

    /// Spends the code with this hash: [`CodeUse::Fresh`] for exactly one caller, ever.
    pub async fn consume_code(&self, hash: &str) -> Result<CodeUse> {
        let spent = self
            .inner
            .exec(
                "UPDATE oidc_codes SET used = $2 WHERE hash = $1 AND used = $3",
                &args![hash, true, false],
            )
            .await?;
        let row = self
            .inner
            .opt(
                "SELECT hash, tenant_id, app_id, user_id, grant_id, request, created_at, expires_at \
                 FROM oidc_codes WHERE hash = $1",
                &args![hash],
                code_from,
            )
            .await?;
        Ok(match (row, spent) {
            (None, _) => CodeUse::Unknown,
            (Some(c), 1) => CodeUse::Fresh(c),
            (Some(c), _) => CodeUse::Reused(c),
        })
    }

    // ------------------------------------------------------------ tokens

    pub async fn insert_app_token(&self, t: &AppTokenRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO oidc_tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        self.inner
            .exec(
                &sql,
                &args![
                    &t.hash,
                    &t.id,
                    &t.tenant_id,
                    &t.app_id,
                    &t.user_id,
                    &t.grant_id,
                    &t.kind,
                    to_json(&t.scopes)?,
                    t.auth_time,
                    t.created_at,
                    t.expires_at,
                    t.revoked
                ],
            )
            .await
            .map(|_| ())
    }

    /// The app token with this hash, revoked or expired ones included: the caller checks both.
    pub async fn app_token_by_hash(&self, hash: &str) -> Result<Option<AppTokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM oidc_tokens WHERE hash = $1");
        self.inner.opt(&sql, &args![hash], app_token_from).await
    }

    /// Spends a refresh token (it is revoked now): `true` for exactly one caller, ever.
    pub async fn use_refresh_token(&self, hash: &str) -> Result<bool> {
        let n = self
            .inner
            .exec(
                "UPDATE oidc_tokens SET revoked = $2 WHERE hash = $1 AND kind = 'refresh' AND revoked = $3",
                &args![hash, true, false],
            )
            .await?;
        Ok(n == 1)
    }

    /// Revokes one app token; `true` if it existed.
    pub async fn revoke_app_token(&self, hash: &str) -> Result<bool> {
        let n = self
            .inner
            .exec(
                "UPDATE oidc_tokens SET revoked = $2 WHERE hash = $1",
                &args![hash, true],
            )
            .await?;
        Ok(n > 0)
    }

    /// Revokes every token of one grant (one sign-in's chain); how many were still valid.
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<u64> {
        self.inner
            .exec(
                "UPDATE oidc_tokens SET revoked = $2 WHERE grant_id = $1 AND revoked = $3",
                &args![grant_id, true, false],
            )
            .await
    }

    /// Revokes every app token of a user; how many were still valid.
    pub async fn revoke_user_app_tokens(&self, tenant_id: &str, user_id: &str) -> Result<u64> {
        self.inner
            .exec(
                "UPDATE oidc_tokens SET revoked = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked = $4",
                &args![tenant_id, user_id, true, false],
            )
            .await
    }

    // ------------------------------------------------------------ consent

    /// The scopes the user agreed the app may have, if they ever agreed.
    pub async fn get_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        app_id: &str,
    ) -> Result<Option<Vec<String>>> {
        let text = self
            .inner
            .opt(
                "SELECT scopes FROM oidc_consents WHERE tenant_id = $1 AND user_id = $2 AND app_id = $3",
                &args![tenant_id, user_id, app_id],
                |r| r.text("scopes"),
            )
            .await?;
        text.map(|t| from_json(&t, "scope list")).transpose()
    }

    pub async fn put_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        app_id: &str,
        scopes: &[String],
        now: i64,
    ) -> Result<()> {
        self.inner
            .exec(
                "INSERT INTO oidc_consents (tenant_id, user_id, app_id, scopes, granted_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, user_id, app_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
                &args![tenant_id, user_id, app_id, to_json(scopes)?, now],
            )
            .await
            .map(|_| ())
    }
}

fn app_args(a: &App) -> Result<[crate::db::Arg; 15]> {
    Ok(args![
        &a.tenant_id,
        &a.id,
        &a.name,
        enum_name(&a.client_type)?,
        to_json(&a.redirect_uris)?,
        to_json(&a.post_logout_redirect_uris)?,
        to_json(&a.allowed_scopes)?,
        &a.access_group_id,
        a.access_token_lifetime_secs,
        a.id_token_lifetime_secs,
        a.refresh_token_lifetime_secs,
        a.skip_consent,
        &a.id_token_signing_alg,
        a.created_at,
        a.updated_at
    ])
}
