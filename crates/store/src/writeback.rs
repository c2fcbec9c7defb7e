//! Password writeback: the request queue (`writeback_requests`), which agents take requests
//! (`agent_writeback`) and which cloud process holds each agent's push socket
//! (`agent_presence`). Every state change is one conditional `UPDATE … WHERE state = …`, so
//! several cloud processes on one database agree on who moved a request first. The queue holds
//! ciphertext only; envelopes are cleared when a request ends.

use std::collections::BTreeMap;

use proto::writeback::{DirectoryKind, SealedRequest, WritebackResult};

use crate::db::{args, Row};
use crate::{enum_name, from_json, parse_enum, to_json, Result, Store, StoreError};

/// Where a writeback request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritebackState {
    Pending,
    Dispatched,
    Claimed,
    Done,
    Expired,
}

impl WritebackState {
    pub fn as_str(self) -> &'static str {
        match self {
            WritebackState::Pending => "pending",
            WritebackState::Dispatched => "dispatched",
            WritebackState::Claimed => "claimed",
            WritebackState::Done => "done",
            WritebackState::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => WritebackState::Pending,
            "dispatched" => WritebackState::Dispatched,
            "claimed" => WritebackState::Claimed,
            "done" => WritebackState::Done,
            "expired" => WritebackState::Expired,
            other => {
                return Err(StoreError::Backend(format!(
                    "the database holds an unknown writeback state {other:?}"
                )))
            }
        })
    }
}

/// One queued writeback request as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritebackRequestRecord {
    pub tracking_id: String,
    pub tenant_id: String,
    pub user_id: String,
    /// `reset`, `change`, `unlock` or `adminReset`.
    pub kind: String,
    pub state: WritebackState,
    pub agent_id: Option<String>,
    /// Agents that were dispatched the request and did not claim it in time.
    pub excluded: Vec<String>,
    pub attempt: i64,
    /// One sealed envelope per agent; empty once the request ended.
    pub envelopes: BTreeMap<String, SealedRequest>,
    pub result: Option<WritebackResult>,
    pub created_at: i64,
    pub dispatched_ms: Option<i64>,
    pub deadline_ms: i64,
}

/// One agent's writeback enablement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentWritebackRecord {
    pub agent_id: String,
    pub tenant_id: String,
    pub enabled: bool,
    pub connector: Option<String>,
    pub directory_kind: Option<DirectoryKind>,
    pub checked_roots: Vec<String>,
    pub enabled_at: Option<i64>,
    pub disabled_at: Option<i64>,
    pub key_created_at: Option<i64>,
}

const REQ_COLS: &str =
    "tracking_id, tenant_id, user_id, kind, state, agent_id, excluded, attempt, \
                        envelopes, result, created_at, dispatched_ms, deadline_ms";

fn request_from(r: &dyn Row) -> Result<WritebackRequestRecord> {
    Ok(WritebackRequestRecord {
        tracking_id: r.text("tracking_id")?,
        tenant_id: r.text("tenant_id")?,
        user_id: r.text("user_id")?,
        kind: r.text("kind")?,
        state: WritebackState::parse(&r.text("state")?)?,
        agent_id: r.opt_text("agent_id")?,
        excluded: from_json(&r.text("excluded")?, "writeback exclusion list")?,
        attempt: r.int("attempt")?,
        envelopes: r
            .opt_text("envelopes")?
            .map(|e| from_json(&e, "writeback envelope set"))
            .transpose()?
            .unwrap_or_default(),
        result: r
            .opt_text("result")?
            .map(|e| from_json(&e, "writeback result"))
            .transpose()?,
        created_at: r.int("created_at")?,
        dispatched_ms: r.opt_int("dispatched_ms")?,
        deadline_ms: r.int("deadline_ms")?,
    })
}

const WB_COLS: &str = "agent_id, tenant_id, enabled, connector, directory_kind, checked_roots, \
                       enabled_at, disabled_at, key_created_at";

fn enablement_from(r: &dyn Row) -> Result<AgentWritebackRecord> {
    Ok(AgentWritebackRecord {
        agent_id: r.text("agent_id")?,
        tenant_id: r.text("tenant_id")?,
        enabled: r.flag("enabled")?,
        connector: r.opt_text("connector")?,
        directory_kind: r
            .opt_text("directory_kind")?
            .map(|k| parse_enum(&k, "directory kind"))
            .transpose()?,
        checked_roots: from_json(&r.text("checked_roots")?, "checked roots")?,
        enabled_at: r.opt_int("enabled_at")?,
        disabled_at: r.opt_int("disabled_at")?,
        key_created_at: r.opt_int("key_created_at")?,
    })
}

impl Store {
    /// Queues a new request in state `pending`. Conflict if the tracking id is taken; NotFound
    /// if the tenant does not exist.
    pub async fn insert_writeback_request(&self, r: &WritebackRequestRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO writeback_requests ({REQ_COLS}) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, 0, $7, NULL, $8, NULL, $9)"
        );
        self.inner
            .exec(
                &sql,
                &args![
                    &r.tracking_id,
                    &r.tenant_id,
                    &r.user_id,
                    &r.kind,
                    WritebackState::Pending.as_str(),
                    to_json(&r.excluded)?,
                    to_json(&r.envelopes)?,
                    r.created_at,
                    r.deadline_ms
                ],
            )
            .await
            .map(|_| ())
    }

    pub async fn get_writeback_request(
        &self,
        tracking_id: &str,
    ) -> Result<Option<WritebackRequestRecord>> {
        let sql = format!("SELECT {REQ_COLS} FROM writeback_requests WHERE tracking_id = $1");
        self.inner
            .opt(&sql, &args![tracking_id], request_from)
            .await
    }

    /// Requests in `state` (oldest first), at most `limit`.
    pub async fn writeback_requests_in(
        &self,
        state: WritebackState,
        limit: i64,
    ) -> Result<Vec<WritebackRequestRecord>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM writeback_requests WHERE state = $1 \
             ORDER BY deadline_ms, tracking_id LIMIT $2"
        );
        self.inner
            .all(&sql, &args![state.as_str(), limit], request_from)
            .await
    }

    /// `pending → dispatched` to `agent_id`. `false` if someone else moved it first.
    pub async fn dispatch_writeback(
        &self,
        tracking_id: &str,
        agent_id: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let sql = "UPDATE writeback_requests SET state = 'dispatched', agent_id = $2, \
                   attempt = attempt + 1, dispatched_ms = $3 \
                   WHERE tracking_id = $1 AND state = 'pending' AND deadline_ms > $3";
        Ok(self
            .inner
            .exec(sql, &args![tracking_id, agent_id, now_ms])
            .await?
            > 0)
    }

    /// `dispatched → pending` for a request `agent_id` did not claim, with `excluded` as the
    /// new exclusion list. Only if it is still that dispatch (`attempt`).
    pub async fn repend_writeback(
        &self,
        tracking_id: &str,
        agent_id: &str,
        attempt: i64,
        excluded: &[String],
    ) -> Result<bool> {
        let sql = "UPDATE writeback_requests SET state = 'pending', agent_id = NULL, \
                   dispatched_ms = NULL, excluded = $4 \
                   WHERE tracking_id = $1 AND state = 'dispatched' AND agent_id = $2 AND attempt = $3";
        Ok(self
            .inner
            .exec(
                sql,
                &args![tracking_id, agent_id, attempt, to_json(excluded)?],
            )
            .await?
            > 0)
    }

    /// `dispatched → claimed` by the agent it was dispatched to, before the deadline. `true`
    /// for exactly one claim of a request.
    pub async fn claim_writeback(
        &self,
        tracking_id: &str,
        agent_id: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let sql = "UPDATE writeback_requests SET state = 'claimed', claimed_ms = $3 \
                   WHERE tracking_id = $1 AND state = 'dispatched' AND agent_id = $2 \
                   AND deadline_ms > $3";
        Ok(self
            .inner
            .exec(sql, &args![tracking_id, agent_id, now_ms])
            .await?
            > 0)
    }

    /// `claimed → done` with the claiming agent's result; the envelopes are dropped. `false`
    /// if `agent_id` does not hold the claim (or the request already ended).
    pub async fn complete_writeback(
        &self,
        tracking_id: &str,
        agent_id: &str,
        result: &WritebackResult,
        now_ms: i64,
    ) -> Result<bool> {
        let sql = "UPDATE writeback_requests SET state = 'done', result = $3, envelopes = NULL, \
                   finished_ms = $4 \
                   WHERE tracking_id = $1 AND state = 'claimed' AND agent_id = $2";
        Ok(self
            .inner
            .exec(sql, &args![tracking_id, agent_id, to_json(result)?, now_ms])
            .await?
            > 0)
    }

    /// Ends a request whose deadline passed: `claimed → expired` with `if_claimed`, or
    /// `pending | dispatched → expired` with `if_unclaimed`; envelopes dropped. `false` if it
    /// had already ended or its deadline is still ahead.
    pub async fn expire_writeback(
        &self,
        tracking_id: &str,
        now_ms: i64,
        if_claimed: &WritebackResult,
        if_unclaimed: &WritebackResult,
    ) -> Result<bool> {
        self.end_writeback(tracking_id, now_ms, if_claimed, if_unclaimed, true)
            .await
    }

    /// [`Store::expire_writeback`] before the deadline: a cloud process that shuts down ends
    /// the requests it still waits for (with the same claimed / unclaimed distinction).
    pub async fn end_writeback_early(
        &self,
        tracking_id: &str,
        now_ms: i64,
        if_claimed: &WritebackResult,
        if_unclaimed: &WritebackResult,
    ) -> Result<bool> {
        self.end_writeback(tracking_id, now_ms, if_claimed, if_unclaimed, false)
            .await
    }

    async fn end_writeback(
        &self,
        tracking_id: &str,
        now_ms: i64,
        if_claimed: &WritebackResult,
        if_unclaimed: &WritebackResult,
        at_deadline: bool,
    ) -> Result<bool> {
        let due = if at_deadline {
            " AND deadline_ms <= $2"
        } else {
            ""
        };
        let claimed = format!(
            "UPDATE writeback_requests SET state = 'expired', result = $3, \
             envelopes = NULL, finished_ms = $2 \
             WHERE tracking_id = $1 AND state = 'claimed'{due}"
        );
        let claimed = claimed.as_str();
        if self
            .inner
            .exec(claimed, &args![tracking_id, now_ms, to_json(if_claimed)?])
            .await?
            > 0
        {
            return Ok(true);
        }
        let unclaimed = format!(
            "UPDATE writeback_requests SET state = 'expired', result = $3, \
             envelopes = NULL, finished_ms = $2 \
             WHERE tracking_id = $1 AND state IN ('pending', 'dispatched'){due}"
        );
        Ok(self
            .inner
            .exec(
                &unclaimed,
                &args![tracking_id, now_ms, to_json(if_unclaimed)?],
            )
            .await?
            > 0)
    }

    /// Requests not yet ended whose deadline passed (at most `limit`).
    pub async fn overdue_writeback_requests(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<WritebackRequestRecord>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM writeback_requests \
             WHERE state IN ('pending', 'dispatched', 'claimed') AND deadline_ms <= $1 \
             ORDER BY deadline_ms, tracking_id LIMIT $2"
        );
        self.inner
            .all(&sql, &args![now_ms, limit], request_from)
            .await
    }

    // ------------------------------------------------------------ enablement

    /// Turns writeback on for the agent with a new sealing key (replacing the one it registered
    /// or last enabled with), in one transaction. NotFound if the agent does not exist.
    pub async fn enable_agent_writeback(
        &self,
        rec: &AgentWritebackRecord,
        sealing_public_key: &str,
    ) -> Result<()> {
        let kind = rec.directory_kind.as_ref().map(enum_name).transpose()?;
        let mut tx = self.inner.begin().await?;
        let n = tx
            .exec(
                "UPDATE agents SET sealing_public_key = $2 WHERE id = $1",
                &args![&rec.agent_id, sealing_public_key],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        let sql = format!(
            "INSERT INTO agent_writeback ({WB_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (agent_id) DO UPDATE SET tenant_id = excluded.tenant_id, \
             enabled = excluded.enabled, connector = excluded.connector, \
             directory_kind = excluded.directory_kind, checked_roots = excluded.checked_roots, \
             enabled_at = excluded.enabled_at, disabled_at = excluded.disabled_at, \
             key_created_at = excluded.key_created_at"
        );
        tx.exec(
            &sql,
            &args![
                &rec.agent_id,
                &rec.tenant_id,
                rec.enabled,
                &rec.connector,
                kind,
                to_json(&rec.checked_roots)?,
                rec.enabled_at,
                rec.disabled_at,
                rec.key_created_at
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Turns writeback off for the agent. `false` if it was not on.
    pub async fn disable_agent_writeback(&self, agent_id: &str, now: i64) -> Result<bool> {
        let sql = "UPDATE agent_writeback SET enabled = $2, disabled_at = $3 \
                   WHERE agent_id = $1 AND enabled = $4";
        Ok(self
            .inner
            .exec(sql, &args![agent_id, false, now, true])
            .await?
            > 0)
    }

    pub async fn get_agent_writeback(
        &self,
        agent_id: &str,
    ) -> Result<Option<AgentWritebackRecord>> {
        let sql = format!("SELECT {WB_COLS} FROM agent_writeback WHERE agent_id = $1");
        self.inner
            .opt(&sql, &args![agent_id], enablement_from)
            .await
    }

    /// The tenant's writeback enablements (enabled or not), by agent id.
    pub async fn list_agent_writeback(&self, tenant_id: &str) -> Result<Vec<AgentWritebackRecord>> {
        let sql =
            format!("SELECT {WB_COLS} FROM agent_writeback WHERE tenant_id = $1 ORDER BY agent_id");
        self.inner
            .all(&sql, &args![tenant_id], enablement_from)
            .await
    }

    // ------------------------------------------------------------ presence

    /// The agent's push socket is held by `instance_id`, seen at `now_ms`.
    pub async fn touch_agent_presence(
        &self,
        agent_id: &str,
        instance_id: &str,
        now_ms: i64,
    ) -> Result<()> {
        let sql = "INSERT INTO agent_presence (agent_id, instance_id, last_seen_ms) VALUES ($1, $2, $3) \
                   ON CONFLICT (agent_id, instance_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms";
        self.inner
            .exec(sql, &args![agent_id, instance_id, now_ms])
            .await
            .map(|_| ())
    }

    pub async fn remove_agent_presence(&self, agent_id: &str, instance_id: &str) -> Result<()> {
        let sql = "DELETE FROM agent_presence WHERE agent_id = $1 AND instance_id = $2";
        self.inner
            .exec(sql, &args![agent_id, instance_id])
            .await
            .map(|_| ())
    }

    /// Agents of the tenant with a presence row seen at or after `since_ms`.
    pub async fn present_agents(&self, tenant_id: &str, since_ms: i64) -> Result<Vec<String>> {
        let sql = "SELECT DISTINCT p.agent_id AS agent_id FROM agent_presence p \
                   JOIN agents a ON a.id = p.agent_id \
                   WHERE a.tenant_id = $1 AND p.last_seen_ms >= $2 ORDER BY agent_id";
        self.inner
            .all(sql, &args![tenant_id, since_ms], |r| r.text("agent_id"))
            .await
    }
}
