//! Subscriptions, licence assignments (direct or inherited from a group) and group licences.
//! Which assignments should exist is computed by `tenant::licensing`; the store keeps them.

use std::collections::{BTreeMap, BTreeSet};

use proto::{AssignmentSource, GroupLicense, LicenseAssignment, Subscription, SubscriptionKind};

use crate::db::Tx;

use crate::db::{args, Arg, Row};
use crate::{enum_name, parse_enum, Params, Result, Store, StoreError};

const SUB_COLS: &str = "id, tenant_id, sku_id, kind, units, starts_at, ends_at, created_at";
const ASSIGN_COLS: &str =
    "tenant_id, user_id, sku_id, source_type, source_group_id, state, error, effective_usage_location, updated_at";
/// Rows per INSERT in `replace_group_assignments` (9 parameters each; far below both backends' limits).
const INSERT_CHUNK: usize = 200;

fn subscription_from(r: &dyn Row) -> Result<Subscription> {
    let units = r.int("units")?;
    Ok(Subscription {
        id: r.text("id")?,
        tenant_id: r.text("tenant_id")?,
        sku_id: r.text("sku_id")?,
        kind: parse_enum(&r.text("kind")?, "subscription kind")?,
        units: u32::try_from(units).map_err(|_| {
            StoreError::Backend(format!(
                "the database holds an impossible unit count {units}"
            ))
        })?,
        starts_at: r.int("starts_at")?,
        ends_at: r.int("ends_at")?,
        created_at: r.int("created_at")?,
    })
}

/// `(source_type, source_group_id)`: `("direct", "")` or `("group", id)`.
fn source_columns(s: &AssignmentSource) -> (&'static str, &str) {
    match s {
        AssignmentSource::Direct => ("direct", ""),
        AssignmentSource::Group(g) => ("group", g.as_str()),
    }
}

fn assignment_from(r: &dyn Row) -> Result<LicenseAssignment> {
    let source = match r.text("source_type")?.as_str() {
        "direct" => AssignmentSource::Direct,
        "group" => AssignmentSource::Group(r.text("source_group_id")?),
        other => {
            return Err(StoreError::Backend(format!(
                "the database holds an unknown assignment source {other:?}"
            )))
        }
    };
    Ok(LicenseAssignment {
        tenant_id: r.text("tenant_id")?,
        user_id: r.text("user_id")?,
        sku_id: r.text("sku_id")?,
        source,
        state: parse_enum(&r.text("state")?, "assignment state")?,
        error: r
            .opt_text("error")?
            .map(|e| parse_enum(&e, "licence error"))
            .transpose()?,
        effective_usage_location: r.opt_text("effective_usage_location")?,
        updated_at: r.int("updated_at")?,
    })
}

fn assignment_args(a: &LicenseAssignment) -> Result<[Arg; 9]> {
    let (source_type, group) = source_columns(&a.source);
    Ok(args![
        &a.tenant_id,
        &a.user_id,
        &a.sku_id,
        source_type,
        group,
        enum_name(&a.state)?,
        a.error.as_ref().map(enum_name).transpose()?,
        &a.effective_usage_location,
        a.updated_at,
    ])
}

impl Store {
    /// NotFound if the tenant does not exist; Conflict on a duplicate id.
    pub async fn insert_subscription(&self, s: &Subscription) -> Result<()> {
        let sql = format!(
            "INSERT INTO subscriptions ({SUB_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        let a = args![
            &s.id,
            &s.tenant_id,
            &s.sku_id,
            enum_name(&s.kind)?,
            i64::from(s.units),
            s.starts_at,
            s.ends_at,
            s.created_at,
        ];
        match self.inner.exec(&sql, &a).await {
            Err(StoreError::Conflict(_)) if s.kind == SubscriptionKind::Trial => {
                Err(StoreError::Conflict(format!(
                    "the tenant already has a trial of {} (or a subscription with id {})",
                    s.sku_id, s.id
                )))
            }
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "a subscription with id {} already exists",
                s.id
            ))),
            other => other.map(|_| ()),
        }
    }

    /// Every subscription of the tenant, oldest first.
    pub async fn list_subscriptions(&self, tenant_id: &str) -> Result<Vec<Subscription>> {
        let sql = format!(
            "SELECT {SUB_COLS} FROM subscriptions WHERE tenant_id = $1 ORDER BY created_at, id"
        );
        self.inner
            .all(&sql, &args![tenant_id], subscription_from)
            .await
    }

    /// Insert or update the assignment keyed by (tenant, user, SKU, source). NotFound if the user
    /// does not exist in the tenant.
    pub async fn upsert_assignment(&self, a: &LicenseAssignment) -> Result<()> {
        let sql = format!(
            "INSERT INTO license_assignments ({ASSIGN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant_id, user_id, sku_id, source_type, source_group_id) DO UPDATE SET \
             state = excluded.state, error = excluded.error, \
             effective_usage_location = excluded.effective_usage_location, updated_at = excluded.updated_at"
        );
        self.inner
            .exec(&sql, &assignment_args(a)?)
            .await
            .map(|_| ())
    }

    /// Direct assignment with the seat check inside the database transaction: takes the
    /// tenant's licence lock (see [`Store::lock_licences`]), reads its subscriptions and its
    /// assignments of `a.sku_id` as committed by everyone before, and upserts `a` only if
    /// `check` accepts them. However many processes assign at once, seats are never
    /// over-committed. NotFound if the tenant or user does not exist.
    pub async fn assign_checked<E: From<StoreError>>(
        &self,
        a: &LicenseAssignment,
        check: impl FnOnce(&[Subscription], &[LicenseAssignment]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut tx = self.inner.begin().await?;
        let (subs, current) = lock_licences(&mut tx, &a.tenant_id, Some(&a.sku_id)).await?;
        check(&subs, &current)?;
        let sql = format!(
            "INSERT INTO license_assignments ({ASSIGN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant_id, user_id, sku_id, source_type, source_group_id) DO UPDATE SET \
             state = excluded.state, error = excluded.error, \
             effective_usage_location = excluded.effective_usage_location, updated_at = excluded.updated_at"
        );
        tx.exec(&sql, &assignment_args(a)?).await?;
        Ok(tx.commit().await?)
    }

    /// `false` if there was no such assignment.
    pub async fn delete_assignment(
        &self,
        tenant_id: &str,
        user_id: &str,
        sku_id: &str,
        source: &AssignmentSource,
    ) -> Result<bool> {
        let (source_type, group) = source_columns(source);
        let sql = "DELETE FROM license_assignments WHERE tenant_id = $1 AND user_id = $2 AND sku_id = $3 \
                   AND source_type = $4 AND source_group_id = $5";
        Ok(self
            .inner
            .exec(sql, &args![tenant_id, user_id, sku_id, source_type, group])
            .await?
            > 0)
    }

    /// Assignments of the tenant, optionally of one user and/or one SKU, in every state,
    /// ordered by user, SKU, then source (direct before groups).
    pub async fn list_assignments(
        &self,
        tenant_id: &str,
        user_id: Option<&str>,
        sku_id: Option<&str>,
    ) -> Result<Vec<LicenseAssignment>> {
        let (sql, p) = assignments_query(tenant_id, user_id, sku_id);
        self.inner.all(&sql, &p.args, assignment_from).await
    }

    /// In one transaction: delete every group-sourced assignment of the tenant and insert
    /// `assignments` (all of which must be group-sourced and of this tenant; for a repeated key
    /// the last wins). On any error nothing changes. NotFound if one names a user that does not
    /// exist.
    pub async fn replace_group_assignments(
        &self,
        tenant_id: &str,
        assignments: &[LicenseAssignment],
    ) -> Result<()> {
        self.reconcile_group_assignments(tenant_id, |_, _| assignments.to_vec())
            .await
    }

    /// [`Store::replace_group_assignments`] with what `compute` returns from the tenant's
    /// subscriptions and assignments (every SKU), read under the tenant's licence lock in the
    /// same transaction, so group-based seats are counted against what direct assignments in
    /// other processes have committed.
    pub async fn reconcile_group_assignments(
        &self,
        tenant_id: &str,
        compute: impl FnOnce(&[Subscription], &[LicenseAssignment]) -> Vec<LicenseAssignment>,
    ) -> Result<()> {
        let mut tx = self.inner.begin().await?;
        let (subs, current) = lock_licences(&mut tx, tenant_id, None).await?;
        let assignments = compute(&subs, &current);
        let mut unique = BTreeMap::new();
        for a in &assignments {
            if a.tenant_id != tenant_id {
                return Err(StoreError::Invalid(format!(
                    "an assignment of tenant {} cannot replace those of tenant {tenant_id}",
                    a.tenant_id
                )));
            }
            let AssignmentSource::Group(group) = &a.source else {
                return Err(StoreError::Invalid(format!(
                    "the assignment of {} to user {} is direct; only group assignments are replaced",
                    a.sku_id, a.user_id
                )));
            };
            unique.insert((a.user_id.as_str(), a.sku_id.as_str(), group.as_str()), a);
        }
        let rows: Vec<&LicenseAssignment> = unique.into_values().collect();

        tx.exec(
            "DELETE FROM license_assignments WHERE tenant_id = $1 AND source_type = 'group'",
            &args![tenant_id],
        )
        .await?;
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut sql = format!("INSERT INTO license_assignments ({ASSIGN_COLS}) VALUES ");
            let mut all_args = Vec::with_capacity(chunk.len() * 9);
            for (i, a) in chunk.iter().enumerate() {
                let base = i * 9;
                let placeholders: Vec<String> = (1..=9).map(|k| format!("${}", base + k)).collect();
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                sql.push_str(&placeholders.join(", "));
                sql.push(')');
                all_args.extend(assignment_args(a)?);
            }
            tx.exec(&sql, &all_args).await?;
        }
        tx.commit().await
    }

    /// Group-sourced assignments of the users `user_ids` only: under the tenant's licence lock
    /// (as [`Store::reconcile_group_assignments`]), `compute` gives those users' rows from the
    /// tenant's subscriptions and assignments, or `None` when it cannot (then nothing changes
    /// and the answer is `None`). Only rows that differ are written: a row of these users that
    /// is not in the new set, or changed, is deleted; a new or changed one inserted. The answer
    /// is how many rows were written; no row of another user is touched.
    pub async fn reconcile_group_assignments_of(
        &self,
        tenant_id: &str,
        user_ids: &BTreeSet<String>,
        compute: impl FnOnce(&[Subscription], &[LicenseAssignment]) -> Option<Vec<LicenseAssignment>>,
    ) -> Result<Option<u64>> {
        let mut tx = self.inner.begin().await?;
        let (subs, current) = lock_licences(&mut tx, tenant_id, None).await?;
        let Some(assignments) = compute(&subs, &current) else {
            return Ok(None);
        };
        let key = |a: &LicenseAssignment| {
            let (_, group) = source_columns(&a.source);
            (a.user_id.clone(), a.sku_id.clone(), group.to_string())
        };
        let mut new = BTreeMap::new();
        for a in assignments {
            if a.tenant_id != tenant_id
                || !matches!(a.source, AssignmentSource::Group(_))
                || !user_ids.contains(&a.user_id)
            {
                return Err(StoreError::Invalid(format!(
                    "the assignment of {} to user {} is not a group assignment of these users of tenant {tenant_id}",
                    a.sku_id, a.user_id
                )));
            }
            new.insert(key(&a), a);
        }
        let old: BTreeMap<_, _> = current
            .into_iter()
            .filter(|a| {
                matches!(a.source, AssignmentSource::Group(_)) && user_ids.contains(&a.user_id)
            })
            .map(|a| (key(&a), a))
            .collect();
        let mut written = 0;
        for (k, a) in &old {
            if new.get(k) != Some(a) {
                written += tx
                    .exec(
                        "DELETE FROM license_assignments WHERE tenant_id = $1 AND user_id = $2 \
                         AND sku_id = $3 AND source_type = 'group' AND source_group_id = $4",
                        &args![tenant_id, &a.user_id, &a.sku_id, &k.2],
                    )
                    .await?;
            }
        }
        for (k, a) in &new {
            if old.get(k) != Some(a) {
                written += tx
                    .exec(
                        &format!(
                            "INSERT INTO license_assignments ({ASSIGN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                        ),
                        &assignment_args(a)?,
                    )
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Some(written))
    }

    /// `false` if the group already had it; NotFound if the group does not exist.
    pub async fn add_group_license(&self, l: &GroupLicense) -> Result<bool> {
        let sql = "INSERT INTO group_licenses (tenant_id, group_id, sku_id, created_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (tenant_id, group_id, sku_id) DO NOTHING";
        Ok(self
            .inner
            .exec(
                sql,
                &args![&l.tenant_id, &l.group_id, &l.sku_id, l.created_at],
            )
            .await?
            > 0)
    }

    /// `false` if the group did not have it.
    pub async fn remove_group_license(
        &self,
        tenant_id: &str,
        group_id: &str,
        sku_id: &str,
    ) -> Result<bool> {
        let sql =
            "DELETE FROM group_licenses WHERE tenant_id = $1 AND group_id = $2 AND sku_id = $3";
        Ok(self
            .inner
            .exec(sql, &args![tenant_id, group_id, sku_id])
            .await?
            > 0)
    }

    /// Every group licence of the tenant, ordered by group then SKU.
    pub async fn list_group_licenses(&self, tenant_id: &str) -> Result<Vec<GroupLicense>> {
        let sql = "SELECT tenant_id, group_id, sku_id, created_at FROM group_licenses WHERE tenant_id = $1 \
                   ORDER BY group_id, sku_id";
        self.inner
            .all(sql, &args![tenant_id], |r| {
                Ok(GroupLicense {
                    tenant_id: r.text("tenant_id")?,
                    group_id: r.text("group_id")?,
                    sku_id: r.text("sku_id")?,
                    created_at: r.int("created_at")?,
                })
            })
            .await
    }
}

/// Takes the tenant's licence lock for the rest of `tx` and reads, as committed by everyone
/// before, its subscriptions and its assignments (of one SKU, or all). The lock is the tenant
/// row: a no-op UPDATE holds its row lock on PostgreSQL until commit, and SQLite's
/// `BEGIN IMMEDIATE` already admits one writer at a time. NotFound for an unknown tenant.
async fn lock_licences(
    tx: &mut Tx,
    tenant_id: &str,
    sku_id: Option<&str>,
) -> Result<(Vec<Subscription>, Vec<LicenseAssignment>)> {
    if tx
        .exec(
            "UPDATE tenants SET id = id WHERE id = $1",
            &args![tenant_id],
        )
        .await?
        == 0
    {
        return Err(StoreError::NotFound);
    }
    let subs = tx
        .all(
            &format!(
                "SELECT {SUB_COLS} FROM subscriptions WHERE tenant_id = $1 ORDER BY created_at, id"
            ),
            &args![tenant_id],
            subscription_from,
        )
        .await?;
    let (sql, p) = assignments_query(tenant_id, None, sku_id);
    let current = tx.all(&sql, &p.args, assignment_from).await?;
    Ok((subs, current))
}

/// The query of [`Store::list_assignments`].
fn assignments_query(
    tenant_id: &str,
    user_id: Option<&str>,
    sku_id: Option<&str>,
) -> (String, Params) {
    let mut p = Params::default();
    let mut sql = format!(
        "SELECT {ASSIGN_COLS} FROM license_assignments WHERE tenant_id = {}",
        p.push(tenant_id)
    );
    if let Some(user_id) = user_id {
        sql += &format!(" AND user_id = {}", p.push(user_id));
    }
    if let Some(sku_id) = sku_id {
        sql += &format!(" AND sku_id = {}", p.push(sku_id));
    }
    sql += " ORDER BY user_id, sku_id, source_type, source_group_id";
    (sql, p)
}
