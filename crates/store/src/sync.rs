//! Directory sync: per-tenant sync settings, applied batches (kept so a replay gets the first
//! answer), run history and per-object sync errors. What a batch changes is decided by
//! `tenant::sync`; [`Store::apply_sync_batch`] writes that decision in one transaction.

use proto::sync::{AgentSyncSettings, BatchResult, SyncErrorRecord, SyncRun, SyncRunRow};
use proto::{Group, MemberRef, User};

use crate::db::{args, Arg, Backend, Row};
use crate::users::{INSERT_USER, UPDATE_USER};
use crate::{
    enum_name, fold, from_json, groups, to_json, users, Params, Result, Store, StoreError,
};

/// The directory objects a batch may touch, loaded before it is planned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncSnapshot {
    /// Users whose immutableId, UPN or mail is among those asked for.
    pub users: Vec<User>,
    /// Groups whose immutableId is among those asked for.
    pub groups: Vec<Group>,
    /// Direct members of those groups, as (group id, member).
    pub memberships: Vec<(String, MemberRef)>,
}

/// One per-object sync error to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncErrorWrite {
    pub anchor: String,
    pub distinguished_name: Option<String>,
    pub code: String,
    pub message: String,
}

/// Everything one batch changes, written in one transaction by [`Store::apply_sync_batch`].
#[derive(Debug, Clone, Default)]
pub struct SyncWrite {
    pub tenant_id: String,
    pub agent_id: String,
    pub run_id: String,
    pub seq: u32,
    pub now: i64,
    /// The answer to keep for replays.
    pub result: BatchResult,
    pub delete_users: Vec<String>,
    pub delete_groups: Vec<String>,
    pub insert_users: Vec<User>,
    pub update_users: Vec<User>,
    pub insert_groups: Vec<Group>,
    pub update_groups: Vec<Group>,
    /// Groups whose direct membership becomes exactly this list.
    pub set_members: Vec<(String, Vec<MemberRef>)>,
    pub errors: Vec<SyncErrorWrite>,
    /// Anchors that applied cleanly: their earlier errors are cleared.
    pub cleared: Vec<String>,
    /// Answers kept for batches applied before this time are dropped (0 keeps all).
    pub forget_batches_before: i64,
}

fn settings_from(r: &dyn Row) -> Result<AgentSyncSettings> {
    let n = |c: &str| -> Result<u32> { Ok(r.int(c)?.clamp(0, u32::MAX as i64) as u32) };
    Ok(AgentSyncSettings {
        deletion_threshold: n("deletion_threshold")?,
        deletion_window_secs: n("deletion_window_secs")?,
        allow_deletes_once: r.flag("allow_deletes_once")?,
        staging: r.flag("staging")?,
        delta_interval_secs: n("delta_interval_secs")?,
        full_interval_secs: n("full_interval_secs")?,
    })
}

/// Objects per multi-row statement of a batch (ids in an `IN` list), and users per multi-row
/// `INSERT` (24 parameters each). The statements bind their parameters in order
/// ([`Params::in_order`]), so on SQLite a parameter costs the same however many a statement has
/// (500 ids and 40 users a statement measured the same as 100 and 5). On PostgreSQL every
/// statement is a round trip to another process, so fewer and larger statements win (its limit
/// is 65,535 parameters).
fn rows_per_statement(backend: &Backend) -> (usize, usize) {
    match backend {
        Backend::Sqlite(_) => (100, 5),
        Backend::Postgres(_) => (1_000, 100),
    }
}

/// `IN ($a, $b, …)` over `values`, or `None` when there are none.
fn in_list(p: &mut Params, values: &[String]) -> Option<String> {
    if values.is_empty() {
        return None;
    }
    let marks: Vec<String> = values.iter().map(|v| p.push(v.as_str())).collect();
    Some(format!("({})", marks.join(", ")))
}

impl Store {
    /// The tenant's stored sync settings, `None` until an admin changed them.
    pub async fn get_sync_settings(&self, tenant_id: &str) -> Result<Option<AgentSyncSettings>> {
        let sql = "SELECT deletion_threshold, deletion_window_secs, allow_deletes_once, staging, delta_interval_secs, full_interval_secs \
                   FROM sync_settings WHERE tenant_id = $1";
        self.inner.opt(sql, &args![tenant_id], settings_from).await
    }

    /// Creates or replaces the tenant's sync settings. NotFound if the tenant does not exist.
    pub async fn put_sync_settings(&self, tenant_id: &str, s: &AgentSyncSettings) -> Result<()> {
        let sql = "INSERT INTO sync_settings (tenant_id, deletion_threshold, allow_deletes_once, staging, \
                   delta_interval_secs, full_interval_secs, deletion_window_secs) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                   ON CONFLICT (tenant_id) DO UPDATE SET deletion_threshold = excluded.deletion_threshold, \
                   deletion_window_secs = excluded.deletion_window_secs, \
                   allow_deletes_once = excluded.allow_deletes_once, staging = excluded.staging, \
                   delta_interval_secs = excluded.delta_interval_secs, full_interval_secs = excluded.full_interval_secs";
        self.inner
            .exec(
                sql,
                &args![
                    tenant_id,
                    s.deletion_threshold as i64,
                    s.allow_deletes_once,
                    s.staging,
                    s.delta_interval_secs as i64,
                    s.full_interval_secs as i64,
                    s.deletion_window_secs as i64
                ],
            )
            .await
            .map(|_| ())
    }

    /// The answer given to the batch `(agent, run_id, seq)`, if it was applied.
    pub async fn batch_result(
        &self,
        agent_id: &str,
        run_id: &str,
        seq: u32,
    ) -> Result<Option<BatchResult>> {
        let sql =
            "SELECT result FROM sync_batches WHERE agent_id = $1 AND run_id = $2 AND seq = $3";
        let found = self
            .inner
            .opt(sql, &args![agent_id, run_id, seq as i64], |r| {
                r.text("result")
            })
            .await?;
        found.map(|j| from_json(&j, "batch result")).transpose()
    }

    /// Users matching any of `anchors` (immutableId, exact), `upns` (ignoring case) or `mails`
    /// (ignoring ASCII case); groups matching `anchors`, with their direct members.
    pub async fn sync_snapshot(
        &self,
        tenant_id: &str,
        anchors: &[String],
        upns: &[String],
        mails: &[String],
    ) -> Result<SyncSnapshot> {
        let mut snap = SyncSnapshot::default();
        let (ids_per_statement, _) = rows_per_statement(&self.sync);
        // Chunks keep every statement well under the backends' parameter limits.
        for chunk in anchors.chunks(ids_per_statement) {
            let mut p = Params::in_order(&self.sync);
            let t = p.push(tenant_id);
            let list = in_list(&mut p, chunk).unwrap_or_default();
            let sql = format!(
                "SELECT {} FROM users WHERE tenant_id = {t} AND immutable_id IN {list}",
                users::COLS
            );
            snap.users
                .extend(self.sync.all(&sql, &p.args, users::user_from).await?);
            let sql = format!(
                "SELECT {} FROM directory_groups WHERE tenant_id = {t} AND immutable_id IN {list}",
                groups::COLS
            );
            snap.groups
                .extend(self.sync.all(&sql, &p.args, groups::group_from).await?);
        }
        let upn_keys: Vec<String> = upns.iter().map(|u| fold(u)).collect();
        for chunk in upn_keys.chunks(ids_per_statement) {
            let mut p = Params::in_order(&self.sync);
            let t = p.push(tenant_id);
            let list = in_list(&mut p, chunk).unwrap_or_default();
            let sql = format!(
                "SELECT {} FROM users WHERE tenant_id = {t} AND upn_key IN {list}",
                users::COLS
            );
            snap.users
                .extend(self.sync.all(&sql, &p.args, users::user_from).await?);
        }
        let mail_keys: Vec<String> = mails.iter().map(|m| m.to_ascii_lowercase()).collect();
        for chunk in mail_keys.chunks(ids_per_statement) {
            let mut p = Params::in_order(&self.sync);
            let t = p.push(tenant_id);
            let list = in_list(&mut p, chunk).unwrap_or_default();
            let sql = format!(
                "SELECT {} FROM users WHERE tenant_id = {t} AND mail IS NOT NULL AND lower(mail) IN {list}",
                users::COLS
            );
            snap.users
                .extend(self.sync.all(&sql, &p.args, users::user_from).await?);
        }
        snap.users.sort_by(|a, b| a.id.cmp(&b.id));
        snap.users.dedup_by(|a, b| a.id == b.id);
        let group_ids: Vec<String> = snap.groups.iter().map(|g| g.id.clone()).collect();
        for chunk in group_ids.chunks(ids_per_statement) {
            let mut p = Params::in_order(&self.sync);
            let t = p.push(tenant_id);
            let list = in_list(&mut p, chunk).unwrap_or_default();
            let sql = format!(
                "SELECT group_id, member_kind, member_id FROM group_members WHERE tenant_id = {t} AND group_id IN {list}"
            );
            snap.memberships.extend(
                self.sync
                    .all(&sql, &p.args, |r| {
                        Ok((
                            r.text("group_id")?,
                            MemberRef {
                                kind: crate::parse_enum(&r.text("member_kind")?, "member kind")?,
                                id: r.text("member_id")?,
                            },
                        ))
                    })
                    .await?,
            );
        }
        snap.memberships.sort();
        Ok(snap)
    }

    /// Writes one planned batch in one transaction, keyed by `(agent, run_id, seq)`. Returns
    /// `Some(first answer)` without changing anything when that batch was already applied.
    /// Conflict (and nothing written) if a concurrent change broke a uniqueness rule.
    pub async fn apply_sync_batch(&self, w: &SyncWrite) -> Result<Option<BatchResult>> {
        let (ids_per_statement, users_per_statement) = rows_per_statement(&self.sync);
        let mut tx = self.sync.begin().await?;
        let key = args![&w.agent_id, &w.run_id, w.seq as i64];
        let inserted = tx
            .exec(
                "INSERT INTO sync_batches (agent_id, run_id, seq, tenant_id, result, applied_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agent_id, run_id, seq) DO NOTHING",
                &[
                    key[0].clone(),
                    key[1].clone(),
                    key[2].clone(),
                    Arg::from(&w.tenant_id),
                    Arg::from(to_json(&w.result)?),
                    Arg::from(w.now),
                ],
            )
            .await?;
        if inserted == 0 {
            drop(tx);
            return self.batch_result(&w.agent_id, &w.run_id, w.seq).await;
        }
        tx.exec(
            "DELETE FROM sync_batches WHERE applied_at < $1",
            &args![w.forget_batches_before],
        )
        .await?;
        let t = w.tenant_id.as_str();
        // Per-object work as multi-row statements (see `rows_per_statement`).
        for chunk in w.delete_users.chunks(ids_per_statement) {
            let mut p = Params::in_order(&self.sync);
            let t = p.push(t);
            let list = in_list(&mut p, chunk).unwrap_or_default();
            for sql in [
                format!("DELETE FROM group_members WHERE tenant_id = {t} AND member_kind = 'user' AND member_id IN {list}"),
                format!("DELETE FROM license_assignments WHERE tenant_id = {t} AND user_id IN {list}"),
                format!("DELETE FROM api_tokens WHERE tenant_id = {t} AND user_id IN {list}"),
                format!("DELETE FROM users WHERE tenant_id = {t} AND id IN {list}"),
            ] {
                tx.exec(&sql, &p.args).await?;
            }
        }
        for id in &w.delete_groups {
            let a = args![t, id];
            tx.exec(
                "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2",
                &a,
            )
            .await?;
            tx.exec("DELETE FROM group_members WHERE tenant_id = $1 AND member_kind = 'group' AND member_id = $2", &a)
                .await?;
            tx.exec(
                "DELETE FROM group_licenses WHERE tenant_id = $1 AND group_id = $2",
                &a,
            )
            .await?;
            tx.exec("DELETE FROM license_assignments WHERE tenant_id = $1 AND source_type = 'group' AND source_group_id = $2", &a)
                .await?;
            tx.exec(
                "DELETE FROM directory_groups WHERE tenant_id = $1 AND id = $2",
                &a,
            )
            .await?;
        }
        for u in &w.update_users {
            let mut a = users::user_args(u)?;
            a.remove(20);
            if tx.exec(UPDATE_USER, &a).await? == 0 {
                return Err(StoreError::NotFound);
            }
        }
        // INSERT_USER's column list with many rows of VALUES.
        let insert_head = INSERT_USER.split(" VALUES ").next().unwrap_or(INSERT_USER);
        for chunk in w.insert_users.chunks(users_per_statement) {
            let mut p = Params::in_order(&self.sync);
            let mut rows = Vec::with_capacity(chunk.len());
            for u in chunk {
                let mut a = users::user_args(u)?;
                a.push(Arg::OptText(None));
                let marks: Vec<String> = a.into_iter().map(|v| p.push(v)).collect();
                rows.push(format!("({})", marks.join(", ")));
            }
            let sql = format!("{insert_head} VALUES {}", rows.join(", "));
            tx.exec(&sql, &p.args).await?;
        }
        for g in &w.update_groups {
            let sql = "UPDATE directory_groups SET display_name = $3, description = $4, source = $5, immutable_id = $6, \
                       on_prem_dn = $7, sam_account_name = $8, last_sync_at = $9, owned_attributes = $10, \
                       display_name_key = $11 WHERE tenant_id = $1 AND id = $2";
            let mut a = Vec::from(args![
                &g.tenant_id,
                &g.id,
                &g.display_name,
                &g.description,
                enum_name(&g.source)?
            ]);
            a.extend(users::on_premises_args(&g.on_premises)?);
            a.extend(args![fold(&g.display_name)]);
            if tx.exec(sql, &a).await? == 0 {
                return Err(StoreError::NotFound);
            }
        }
        for g in &w.insert_groups {
            let sql = format!(
                "INSERT INTO directory_groups ({}, display_name_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                groups::COLS
            );
            let mut a = Vec::from(args![
                &g.tenant_id,
                &g.id,
                &g.display_name,
                &g.description,
                enum_name(&g.source)?
            ]);
            a.extend(users::on_premises_args(&g.on_premises)?);
            a.extend(args![g.created_at, fold(&g.display_name)]);
            tx.exec(&sql, &a).await?;
        }
        for (group_id, members) in &w.set_members {
            tx.exec(
                "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2",
                &args![t, group_id],
            )
            .await?;
            // Multi-row inserts: one statement per 100 members.
            for chunk in members.chunks(100) {
                let mut p = Params::in_order(&self.sync);
                let rows: Vec<String> = chunk
                    .iter()
                    .map(|m| {
                        Ok(format!(
                            "({}, {}, {}, {})",
                            p.push(t),
                            p.push(group_id.as_str()),
                            p.push(enum_name(&m.kind)?),
                            p.push(m.id.as_str())
                        ))
                    })
                    .collect::<Result<_>>()?;
                let sql = format!(
                    "INSERT INTO group_members (tenant_id, group_id, member_kind, member_id) VALUES {} \
                     ON CONFLICT (tenant_id, group_id, member_kind, member_id) DO NOTHING",
                    rows.join(", ")
                );
                tx.exec(&sql, &p.args).await?;
            }
        }
        for chunk in w.cleared.chunks(ids_per_statement) {
            let mut p = Params::in_order(&self.sync);
            let t = p.push(t);
            let agent = p.push(w.agent_id.as_str());
            let list = in_list(&mut p, chunk).unwrap_or_default();
            let sql = format!(
                "DELETE FROM sync_errors WHERE tenant_id = {t} AND agent_id = {agent} AND anchor IN {list}"
            );
            tx.exec(&sql, &p.args).await?;
        }
        for e in &w.errors {
            tx.exec(
                "INSERT INTO sync_errors (tenant_id, agent_id, anchor, dn, code, message, first_seen_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (tenant_id, agent_id, anchor) DO UPDATE SET \
                 dn = excluded.dn, code = excluded.code, message = excluded.message, last_seen_at = excluded.last_seen_at, \
                 first_seen_at = CASE WHEN sync_errors.code = excluded.code THEN sync_errors.first_seen_at \
                 ELSE excluded.first_seen_at END",
                &args![t, &w.agent_id, &e.anchor, &e.distinguished_name, &e.code, &e.message, w.now],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(None)
    }

    /// Records a run report (a later report of the same run replaces it) and remembers its
    /// outcome on the agent. A delta run that changed nothing replaces the agent's previous
    /// line for the same connector when that line is such runs too, counting them
    /// ([`SyncRunRow::runs`]): the schedule's empty runs do not crowd out the history.
    pub async fn record_sync_run(&self, tenant_id: &str, run: &SyncRun) -> Result<()> {
        let mut row = SyncRunRow {
            run: run.clone(),
            runs: 1,
            first_started_at: None,
        };
        let mut replaces = None;
        if run.changed_nothing() {
            let recent: Vec<(String, SyncRunRow)> = self
                .inner
                .all(
                    "SELECT run_id, run FROM sync_runs WHERE tenant_id = $1 AND agent_id = $2 AND run_id <> $3 \
                     ORDER BY started_at DESC, run_id DESC LIMIT 20",
                    &args![tenant_id, &run.agent_id, &run.run_id],
                    |r| Ok((r.text("run_id")?, from_json(&r.text("run")?, "sync run")?)),
                )
                .await?;
            if let Some((id, prev)) = recent
                .into_iter()
                .find(|(_, p)| p.run.connector == run.connector)
            {
                if prev.run.changed_nothing() && prev.run.started_at <= run.started_at {
                    row.runs = prev.runs.max(1) + 1;
                    row.first_started_at =
                        Some(prev.first_started_at.unwrap_or(prev.run.started_at));
                    replaces = Some(id);
                }
            }
        }
        let mut tx = self.inner.begin().await?;
        if let Some(id) = replaces {
            tx.exec(
                "DELETE FROM sync_runs WHERE agent_id = $1 AND run_id = $2",
                &args![&run.agent_id, &id],
            )
            .await?;
        }
        tx.exec(
            "INSERT INTO sync_runs (agent_id, run_id, tenant_id, started_at, run) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (agent_id, run_id) DO UPDATE SET started_at = excluded.started_at, run = excluded.run",
            &args![&run.agent_id, &run.run_id, tenant_id, run.started_at, to_json(&row)?],
        )
        .await?;
        tx.exec(
            "UPDATE agents SET last_run_outcome = $2, last_run_message = $3 WHERE id = $1",
            &args![&run.agent_id, enum_name(&run.outcome)?, &run.message],
        )
        .await?;
        tx.commit().await
    }

    /// The tenant's runs, newest first, at most `limit` lines (consecutive delta runs that
    /// changed nothing are one line).
    pub async fn list_sync_runs(&self, tenant_id: &str, limit: u32) -> Result<Vec<SyncRunRow>> {
        let sql = "SELECT run FROM sync_runs WHERE tenant_id = $1 ORDER BY started_at DESC, run_id DESC LIMIT $2";
        self.inner
            .all(sql, &args![tenant_id, limit as i64], |r| {
                from_json(&r.text("run")?, "sync run")
            })
            .await
    }

    /// The tenant's open sync errors, most recently seen first.
    pub async fn list_sync_errors(&self, tenant_id: &str) -> Result<Vec<SyncErrorRecord>> {
        let sql = "SELECT agent_id, anchor, dn, code, message, first_seen_at, last_seen_at FROM sync_errors \
                   WHERE tenant_id = $1 ORDER BY last_seen_at DESC, anchor";
        self.inner
            .all(sql, &args![tenant_id], |r| {
                Ok(SyncErrorRecord {
                    agent_id: r.text("agent_id")?,
                    anchor: r.text("anchor")?,
                    distinguished_name: r.opt_text("dn")?,
                    code: r.text("code")?,
                    message: r.text("message")?,
                    first_seen_at: r.int("first_seen_at")?,
                    last_seen_at: r.int("last_seen_at")?,
                })
            })
            .await
    }
}
