//! The audit log: append-only, read newest first.

use proto::{AuditFilter, AuditRecord, Page, PageRequest};

use crate::db::{args, Row};
use crate::{
    enum_name, into_page, page_limit, parse_enum, prefix_bound, Params, Result, Store, StoreError,
};

const COLS: &str =
    "id, tenant_id, occurred_at, actor, action, target, result, tracking_id, details";

fn record_from(r: &dyn Row) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.text("id")?,
        tenant_id: r.text("tenant_id")?,
        time: r.int("occurred_at")?,
        actor: r.text("actor")?,
        action: r.text("action")?,
        target: r.opt_text("target")?,
        result: parse_enum(&r.text("result")?, "audit result")?,
        tracking_id: r.text("tracking_id")?,
        details: r.opt_text("details")?,
    })
}

/// The paging cursor of an audit page: `"<time>:<id>"` of its last record.
fn cursor(r: &AuditRecord) -> String {
    format!("{}:{}", r.time, r.id)
}

fn parse_cursor(s: &str) -> Result<(i64, &str)> {
    s.split_once(':')
        .and_then(|(time, id)| Some((time.parse().ok()?, id)))
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "{s:?} is not an audit paging cursor (expected TIME:ID)"
            ))
        })
}

impl Store {
    /// Append a record. Conflict on a duplicate id.
    pub async fn insert_audit(&self, r: &AuditRecord) -> Result<()> {
        let sql =
            format!("INSERT INTO audit_log ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        let a = args![
            &r.id,
            &r.tenant_id,
            r.time,
            &r.actor,
            &r.action,
            &r.target,
            enum_name(&r.result)?,
            &r.tracking_id,
            &r.details,
        ];
        match self.inner.exec(&sql, &a).await {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "an audit record with id {} already exists",
                r.id
            ))),
            other => other.map(|_| ()),
        }
    }

    /// One page of the tenant's audit records, newest first (ties broken by id, descending).
    /// `page.after` is the `next` of the previous page (`"TIME:ID"`; anything else is Invalid).
    /// Filters: `actor`, `target`, `tracking_id` equal; `action` equal, or, when it ends with
    /// `.`, a prefix (`"user."` matches `user.create`); `since` ≤ time ≤ `until`.
    pub async fn list_audit(
        &self,
        tenant_id: &str,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>> {
        let limit = page_limit(page);
        let mut p = Params::default();
        let mut sql = format!(
            "SELECT {COLS} FROM audit_log WHERE tenant_id = {}",
            p.push(tenant_id)
        );
        if let Some(after) = &page.after {
            let (time, id) = parse_cursor(after)?;
            let t = p.push(time);
            sql += &format!(
                " AND occurred_at <= {t} AND (occurred_at < {t} OR id < {})",
                p.push(id)
            );
        }
        if let Some(actor) = &filter.actor {
            sql += &format!(" AND actor = {}", p.push(actor));
        }
        if let Some(action) = &filter.action {
            if action.ends_with('.') {
                sql += &format!(" AND action >= {}", p.push(action));
                if let Some(bound) = prefix_bound(action) {
                    sql += &format!(" AND action < {}", p.push(bound));
                }
            } else {
                sql += &format!(" AND action = {}", p.push(action));
            }
        }
        if let Some(target) = &filter.target {
            sql += &format!(" AND target = {}", p.push(target));
        }
        if let Some(since) = filter.since {
            sql += &format!(" AND occurred_at >= {}", p.push(since));
        }
        if let Some(until) = filter.until {
            sql += &format!(" AND occurred_at <= {}", p.push(until));
        }
        if let Some(tracking_id) = &filter.tracking_id {
            sql += &format!(" AND tracking_id = {}", p.push(tracking_id));
        }
        sql += &format!(
            " ORDER BY occurred_at DESC, id DESC LIMIT {}",
            p.push((limit + 1) as i64)
        );
        let rows = self.inner.all(&sql, &p.args, record_from).await?;
        Ok(into_page(rows, limit, cursor))
    }
}
