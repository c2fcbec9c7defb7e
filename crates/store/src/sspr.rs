//! Self-service password reset: registered authentication methods, reset sessions, and the
//! per-account throttles (kept here, in the database, so several cloud instances agree).
//!
//! Nothing stored here is a secret in clear: sessions are keyed by the SHA-256 of their secret,
//! one-time codes are kept as an HMAC keyed by that secret, security answers as Argon2id hashes.

use serde::{Deserialize, Serialize};

use crate::db::{args, Row};
use crate::{from_json, to_json, Result, Store, StoreError};

/// One registered security question, with the Argon2id hash of its normalised answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAnswer {
    pub question: String,
    pub answer_hash: String,
}

impl std::fmt::Debug for StoredAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAnswer")
            .field("question", &self.question)
            .field("answer_hash", &"[redacted]")
            .finish()
    }
}

/// The authentication methods one user registered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthMethodsRecord {
    pub tenant_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub mobile_phone: Option<String>,
    pub office_phone: Option<String>,
    pub questions: Vec<StoredAnswer>,
    pub updated_at: i64,
    /// The authenticator app's TOTP secret, sealed (`v1.…`); none when not registered.
    pub authenticator: Option<String>,
    /// The last TOTP step a code was accepted for (written only by
    /// [`Store::use_authenticator_step`], never by [`Store::put_auth_methods`]).
    pub authenticator_last_step: Option<i64>,
    /// A registration begun and not yet confirmed by a first code: the sealed secret and
    /// until when it may be confirmed.
    pub authenticator_pending: Option<String>,
    pub authenticator_pending_expires: Option<i64>,
}

/// One reset session. `user_id` is `None` for a decoy (unknown or ineligible user).
#[derive(Clone, PartialEq, Eq)]
pub struct SsprSessionRecord {
    /// SHA-256 (hex) of the session secret.
    pub id_hash: String,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    /// Whose throttles apply: `user:<tenant>:<id>` or `upn:<lower-case UPN>`.
    pub subject: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub methods_required: i64,
    /// The questions this session asks.
    pub questions: Vec<String>,
    /// Methods verified so far (wire names).
    pub verified: Vec<String>,
    /// HMAC-SHA256 (hex) of the current one-time code, keyed by the session secret.
    pub code_mac: Option<String>,
    pub code_expires_at: Option<i64>,
    pub used_at: Option<i64>,
    /// The last writeback result, JSON.
    pub result: Option<String>,
}

impl std::fmt::Debug for SsprSessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsprSessionRecord")
            .field("id_hash", &"[redacted]")
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .field("verified", &self.verified)
            .field("code_mac", &self.code_mac.as_ref().map(|_| "[redacted]"))
            .field("used_at", &self.used_at)
            .finish()
    }
}

const SESSION_COLS: &str =
    "id_hash, tenant_id, user_id, subject, created_at, expires_at, methods_required, \
                            questions, verified, code_mac, code_expires_at, used_at, result";

fn session_from(r: &dyn Row) -> Result<SsprSessionRecord> {
    Ok(SsprSessionRecord {
        id_hash: r.text("id_hash")?,
        tenant_id: r.opt_text("tenant_id")?,
        user_id: r.opt_text("user_id")?,
        subject: r.text("subject")?,
        created_at: r.int("created_at")?,
        expires_at: r.int("expires_at")?,
        methods_required: r.int("methods_required")?,
        questions: from_json(&r.text("questions")?, "question list")?,
        verified: from_json(&r.text("verified")?, "verified method list")?,
        code_mac: r.opt_text("code_mac")?,
        code_expires_at: r.opt_int("code_expires_at")?,
        used_at: r.opt_int("used_at")?,
        result: r.opt_text("result")?,
    })
}

impl Store {
    // ------------------------------------------------------------ registered methods

    pub async fn get_auth_methods(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Option<AuthMethodsRecord>> {
        let sql =
            "SELECT tenant_id, user_id, email, mobile_phone, office_phone, questions, updated_at, \
                   authenticator, authenticator_last_step, authenticator_pending, authenticator_pending_expires \
                   FROM auth_methods WHERE tenant_id = $1 AND user_id = $2";
        self.inner
            .opt(sql, &args![tenant_id, user_id], |r| {
                Ok(AuthMethodsRecord {
                    tenant_id: r.text("tenant_id")?,
                    user_id: r.text("user_id")?,
                    email: r.opt_text("email")?,
                    mobile_phone: r.opt_text("mobile_phone")?,
                    office_phone: r.opt_text("office_phone")?,
                    questions: from_json(&r.text("questions")?, "security question list")?,
                    updated_at: r.int("updated_at")?,
                    authenticator: r.opt_text("authenticator")?,
                    authenticator_last_step: r.opt_int("authenticator_last_step")?,
                    authenticator_pending: r.opt_text("authenticator_pending")?,
                    authenticator_pending_expires: r.opt_int("authenticator_pending_expires")?,
                })
            })
            .await
    }

    /// Store (replace) a user's methods. NotFound if the user does not exist.
    pub async fn put_auth_methods(&self, m: &AuthMethodsRecord) -> Result<()> {
        let sql = "INSERT INTO auth_methods (tenant_id, user_id, email, mobile_phone, office_phone, questions, updated_at, \
                   authenticator, authenticator_pending, authenticator_pending_expires) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                   ON CONFLICT (tenant_id, user_id) DO UPDATE SET email = excluded.email, \
                   mobile_phone = excluded.mobile_phone, office_phone = excluded.office_phone, \
                   questions = excluded.questions, updated_at = excluded.updated_at, \
                   authenticator = excluded.authenticator, authenticator_pending = excluded.authenticator_pending, \
                   authenticator_pending_expires = excluded.authenticator_pending_expires";
        let a = args![
            &m.tenant_id,
            &m.user_id,
            &m.email,
            &m.mobile_phone,
            &m.office_phone,
            to_json(&m.questions)?,
            m.updated_at,
            &m.authenticator,
            &m.authenticator_pending,
            m.authenticator_pending_expires
        ];
        self.inner.exec(sql, &a).await.map(|_| ())
    }

    /// Marks TOTP `step` used for the user's authenticator: true when it is later than every
    /// step used before (so the code is accepted), false when it was used already or an earlier
    /// one is newer. Atomic, so two requests with one code cannot both pass.
    pub async fn use_authenticator_step(
        &self,
        tenant_id: &str,
        user_id: &str,
        step: i64,
    ) -> Result<bool> {
        let sql = "UPDATE auth_methods SET authenticator_last_step = $3 \
                   WHERE tenant_id = $1 AND user_id = $2 \
                   AND (authenticator_last_step IS NULL OR authenticator_last_step < $3)";
        Ok(self
            .inner
            .exec(sql, &args![tenant_id, user_id, step])
            .await?
            == 1)
    }

    // ------------------------------------------------------------ sessions

    pub async fn insert_sspr_session(&self, s: &SsprSessionRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO sspr_sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        let a = args![
            &s.id_hash,
            &s.tenant_id,
            &s.user_id,
            &s.subject,
            s.created_at,
            s.expires_at,
            s.methods_required,
            to_json(&s.questions)?,
            to_json(&s.verified)?,
            &s.code_mac,
            s.code_expires_at,
            s.used_at,
            &s.result
        ];
        self.inner.exec(&sql, &a).await.map(|_| ())
    }

    pub async fn get_sspr_session(&self, id_hash: &str) -> Result<Option<SsprSessionRecord>> {
        let sql = format!("SELECT {SESSION_COLS} FROM sspr_sessions WHERE id_hash = $1");
        self.inner.opt(&sql, &args![id_hash], session_from).await
    }

    /// Replace the session's one-time code (its HMAC) and the code's expiry.
    pub async fn set_sspr_code(
        &self,
        id_hash: &str,
        code_mac: Option<&str>,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let sql = "UPDATE sspr_sessions SET code_mac = $2, code_expires_at = $3 WHERE id_hash = $1";
        self.inner
            .exec(sql, &args![id_hash, code_mac, expires_at])
            .await
            .map(|_| ())
    }

    /// Record `method` as verified (and forget the code when it was the one used).
    pub async fn add_sspr_verified(
        &self,
        id_hash: &str,
        verified: &[String],
        clear_code: bool,
    ) -> Result<()> {
        let sql = if clear_code {
            "UPDATE sspr_sessions SET verified = $2, code_mac = NULL, code_expires_at = NULL WHERE id_hash = $1"
        } else {
            "UPDATE sspr_sessions SET verified = $2 WHERE id_hash = $1"
        };
        self.inner
            .exec(sql, &args![id_hash, to_json(verified)?])
            .await
            .map(|_| ())
    }

    /// Take the session for one password operation: true for exactly one caller while it is
    /// unused and not expired.
    pub async fn claim_sspr_session(&self, id_hash: &str, now: i64) -> Result<bool> {
        let sql = "UPDATE sspr_sessions SET used_at = $2 WHERE id_hash = $1 AND used_at IS NULL AND expires_at > $2";
        Ok(self.inner.exec(sql, &args![id_hash, now]).await? == 1)
    }

    /// Give a claimed session back (the directory refused the password: the person may try
    /// another one within the session's lifetime).
    pub async fn release_sspr_session(&self, id_hash: &str) -> Result<()> {
        let sql = "UPDATE sspr_sessions SET used_at = NULL WHERE id_hash = $1";
        self.inner.exec(sql, &args![id_hash]).await.map(|_| ())
    }

    pub async fn set_sspr_result(&self, id_hash: &str, result_json: &str) -> Result<()> {
        let sql = "UPDATE sspr_sessions SET result = $2 WHERE id_hash = $1";
        self.inner
            .exec(sql, &args![id_hash, result_json])
            .await
            .map(|_| ())
    }

    /// Delete sessions that expired before `before`; how many.
    pub async fn prune_sspr_sessions(&self, before: i64) -> Result<u64> {
        self.inner
            .exec(
                "DELETE FROM sspr_sessions WHERE expires_at < $1",
                &args![before],
            )
            .await
    }

    // ------------------------------------------------------------ throttles

    /// Until when `subject` is locked out, if it is (a past time means no longer).
    pub async fn sspr_lockout(&self, subject: &str) -> Result<Option<i64>> {
        let sql = "SELECT until FROM sspr_lockouts WHERE subject = $1";
        self.inner
            .opt(sql, &args![subject], |r| r.int("until"))
            .await
    }

    /// Record one event of `kind` for `subject` at `now` and return how many there are since
    /// `since` (this one included). In one transaction, so concurrent writers each count their
    /// own and everyone's committed events.
    pub async fn record_sspr_event(
        &self,
        subject: &str,
        kind: &str,
        now: i64,
        since: i64,
    ) -> Result<i64> {
        let mut tx = self.inner.begin().await?;
        tx.exec(
            "INSERT INTO sspr_events (subject, kind, at) VALUES ($1, $2, $3)",
            &args![subject, kind, now],
        )
        .await?;
        let n = tx
            .opt(
                "SELECT COUNT(*) AS n FROM sspr_events WHERE subject = $1 AND kind = $2 AND at > $3",
                &args![subject, kind, since],
                |r| r.int("n"),
            )
            .await?
            .unwrap_or(0);
        tx.commit().await?;
        Ok(n)
    }

    /// How many events of `kind` `subject` has since `since`, and the oldest of them.
    pub async fn count_sspr_events(
        &self,
        subject: &str,
        kind: &str,
        since: i64,
    ) -> Result<(i64, Option<i64>)> {
        let sql = "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM sspr_events WHERE subject = $1 AND kind = $2 AND at > $3";
        Ok(self
            .inner
            .opt(sql, &args![subject, kind, since], |r| {
                Ok((r.int("n")?, r.opt_int("oldest")?))
            })
            .await?
            .unwrap_or((0, None)))
    }

    /// Lock `subject` out until `until` (a later lockout already in place is kept).
    pub async fn set_sspr_lockout(&self, subject: &str, until: i64) -> Result<()> {
        let sql = "INSERT INTO sspr_lockouts (subject, until) VALUES ($1, $2) \
                   ON CONFLICT (subject) DO UPDATE SET until = CASE WHEN sspr_lockouts.until > excluded.until \
                   THEN sspr_lockouts.until ELSE excluded.until END";
        self.inner
            .exec(sql, &args![subject, until])
            .await
            .map(|_| ())
    }

    /// Lift `subject`'s lockout and forget its counted events of `kinds` (an administrator
    /// cleared it), in one transaction.
    pub async fn clear_sspr_lockout(&self, subject: &str, kinds: &[&str]) -> Result<()> {
        let mut tx = self.inner.begin().await?;
        tx.exec(
            "DELETE FROM sspr_lockouts WHERE subject = $1",
            &args![subject],
        )
        .await?;
        for kind in kinds {
            tx.exec(
                "DELETE FROM sspr_events WHERE subject = $1 AND kind = $2",
                &args![subject, *kind],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Delete throttle events older than `before`; how many.
    pub async fn prune_sspr_events(&self, before: i64) -> Result<u64> {
        self.inner
            .exec("DELETE FROM sspr_events WHERE at < $1", &args![before])
            .await
    }

    /// The server key called `name`: the stored one, or `candidate` stored now if there is none
    /// (several instances racing all end up with the first one stored).
    pub async fn sspr_key(&self, name: &str, candidate: &str) -> Result<String> {
        self.inner
            .exec(
                "INSERT INTO sspr_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &args![name, candidate],
            )
            .await?;
        self.inner
            .opt(
                "SELECT value FROM sspr_keys WHERE name = $1",
                &args![name],
                |r| r.text("value"),
            )
            .await?
            .ok_or_else(|| StoreError::Backend("the SSPR key vanished after it was stored".into()))
    }
}
