//! Groups and their direct members (users or groups). Display names need not be unique;
//! immutableId is unique per tenant. Nesting is stored as is: resolving it is `tenant`'s job.

use proto::{Group, MemberKind, MemberRef, Page, PageRequest};

use crate::db::{args, Row};
use crate::users::{on_premises_args, on_premises_from};
use crate::{
    enum_name, fold, into_page, page_limit, parse_enum, prefix_bound, Params, Result, Store,
    StoreError,
};

pub(crate) const COLS: &str = "tenant_id, id, display_name, description, source, immutable_id, on_prem_dn, sam_account_name, \
                    last_sync_at, owned_attributes, created_at";

pub(crate) fn group_from(r: &dyn Row) -> Result<Group> {
    Ok(Group {
        id: r.text("id")?,
        tenant_id: r.text("tenant_id")?,
        display_name: r.text("display_name")?,
        description: r.opt_text("description")?,
        source: parse_enum(&r.text("source")?, "group source")?,
        on_premises: on_premises_from(r)?,
        created_at: r.int("created_at")?,
    })
}

fn member_from(r: &dyn Row) -> Result<MemberRef> {
    Ok(MemberRef {
        kind: parse_enum(&r.text("member_kind")?, "member kind")?,
        id: r.text("member_id")?,
    })
}

impl Store {
    /// NotFound if the tenant does not exist; Conflict on a duplicate id or immutableId.
    pub async fn insert_group(&self, g: &Group) -> Result<()> {
        let sql = format!(
            "INSERT INTO directory_groups ({COLS}, display_name_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let mut a = Vec::from(args![
            &g.tenant_id,
            &g.id,
            &g.display_name,
            &g.description,
            enum_name(&g.source)?
        ]);
        a.extend(on_premises_args(&g.on_premises)?);
        a.extend(args![g.created_at, fold(&g.display_name)]);
        match self.inner.exec(&sql, &a).await {
            Err(StoreError::Conflict(_)) => Err(self.group_conflict(g, false).await),
            other => other.map(|_| ()),
        }
    }

    pub async fn get_group(&self, tenant_id: &str, id: &str) -> Result<Option<Group>> {
        let sql = format!("SELECT {COLS} FROM directory_groups WHERE tenant_id = $1 AND id = $2");
        self.inner
            .opt(&sql, &args![tenant_id, id], group_from)
            .await
    }

    /// Replaces every field but the ids and `created_at`. NotFound; Conflict on an immutableId
    /// that belongs to another group.
    pub async fn update_group(&self, g: &Group) -> Result<()> {
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
        a.extend(on_premises_args(&g.on_premises)?);
        a.extend(args![fold(&g.display_name)]);
        match self.inner.exec(sql, &a).await {
            Ok(0) => Err(StoreError::NotFound),
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(self.group_conflict(g, true).await),
            Err(e) => Err(e),
        }
    }

    /// Deletes the group, its members, its own memberships in other groups, its group licences
    /// and the licence assignments it gave. `false` if there was no such group.
    pub async fn delete_group(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.inner.begin().await?;
        let a = args![tenant_id, id];
        tx.exec(
            "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2",
            &a,
        )
        .await?;
        tx.exec(
            "DELETE FROM group_members WHERE tenant_id = $1 AND member_kind = 'group' AND member_id = $2",
            &a,
        )
        .await?;
        tx.exec(
            "DELETE FROM group_licenses WHERE tenant_id = $1 AND group_id = $2",
            &a,
        )
        .await?;
        tx.exec(
            "DELETE FROM license_assignments WHERE tenant_id = $1 AND source_type = 'group' AND source_group_id = $2",
            &a,
        )
        .await?;
        let n = tx
            .exec(
                "DELETE FROM directory_groups WHERE tenant_id = $1 AND id = $2",
                &a,
            )
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// One page of groups ordered by id (`after` = id of the last group of the previous page),
    /// optionally only those whose display name starts with `name_prefix` (ignoring case).
    pub async fn list_groups(
        &self,
        tenant_id: &str,
        name_prefix: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Group>> {
        let limit = page_limit(page);
        let mut p = Params::default();
        let mut sql = format!(
            "SELECT {COLS} FROM directory_groups WHERE tenant_id = {}",
            p.push(tenant_id)
        );
        if let Some(after) = &page.after {
            sql += &format!(" AND id > {}", p.push(after));
        }
        if let Some(prefix) = name_prefix.map(fold).filter(|s| !s.is_empty()) {
            if let Some(bound) = prefix_bound(&prefix) {
                sql += &format!(" AND display_name_key < {}", p.push(bound));
            }
            sql += &format!(" AND display_name_key >= {}", p.push(prefix));
        }
        sql += &format!(" ORDER BY id LIMIT {}", p.push((limit + 1) as i64));
        let rows = self.inner.all(&sql, &p.args, group_from).await?;
        Ok(into_page(rows, limit, |g| g.id.clone()))
    }

    /// Add a direct member. `false` if it already was one; NotFound if the group or the member
    /// does not exist in the tenant.
    pub async fn add_member(
        &self,
        tenant_id: &str,
        group_id: &str,
        member: &MemberRef,
    ) -> Result<bool> {
        let mut tx = self.inner.begin().await?;
        let exists = |r: &dyn Row| r.text("id");
        let group = tx
            .opt(
                "SELECT id FROM directory_groups WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, group_id],
                exists,
            )
            .await?;
        let member_sql = match member.kind {
            MemberKind::User => "SELECT id FROM users WHERE tenant_id = $1 AND id = $2",
            MemberKind::Group => "SELECT id FROM directory_groups WHERE tenant_id = $1 AND id = $2",
        };
        let found = tx
            .opt(member_sql, &args![tenant_id, &member.id], exists)
            .await?;
        if group.is_none() || found.is_none() {
            return Err(StoreError::NotFound);
        }
        let n = tx
            .exec(
                "INSERT INTO group_members (tenant_id, group_id, member_kind, member_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, group_id, member_kind, member_id) DO NOTHING",
                &args![tenant_id, group_id, enum_name(&member.kind)?, &member.id],
            )
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// `false` if it was not a member.
    pub async fn remove_member(
        &self,
        tenant_id: &str,
        group_id: &str,
        member: &MemberRef,
    ) -> Result<bool> {
        let sql = "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND member_kind = $3 \
                   AND member_id = $4";
        let n = self
            .inner
            .exec(
                sql,
                &args![tenant_id, group_id, enum_name(&member.kind)?, &member.id],
            )
            .await?;
        Ok(n > 0)
    }

    /// Direct members, users first, each kind ordered by id.
    pub async fn list_members(&self, tenant_id: &str, group_id: &str) -> Result<Vec<MemberRef>> {
        let sql = "SELECT member_kind, member_id FROM group_members WHERE tenant_id = $1 AND group_id = $2";
        let mut members = self
            .inner
            .all(sql, &args![tenant_id, group_id], member_from)
            .await?;
        members.sort();
        Ok(members)
    }

    /// Every direct membership of the tenant as (group id, member), ordered by group then member.
    pub async fn list_memberships(&self, tenant_id: &str) -> Result<Vec<(String, MemberRef)>> {
        let sql = "SELECT group_id, member_kind, member_id FROM group_members WHERE tenant_id = $1";
        let mut all = self
            .inner
            .all(sql, &args![tenant_id], |r| {
                Ok((r.text("group_id")?, member_from(r)?))
            })
            .await?;
        all.sort();
        Ok(all)
    }

    /// Ids of the groups `member` is a direct member of, ordered.
    pub async fn groups_of(&self, tenant_id: &str, member: &MemberRef) -> Result<Vec<String>> {
        let sql = "SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_kind = $2 AND member_id = $3 \
                   ORDER BY group_id";
        self.inner
            .all(
                sql,
                &args![tenant_id, enum_name(&member.kind)?, &member.id],
                |r| r.text("group_id"),
            )
            .await
    }

    async fn group_conflict(&self, g: &Group, updating: bool) -> StoreError {
        if let Some(p) = &g.on_premises {
            let sql = "SELECT id FROM directory_groups WHERE tenant_id = $1 AND immutable_id = $2 AND id <> $3";
            let owner = self
                .inner
                .opt(sql, &args![&g.tenant_id, &p.immutable_id, &g.id], |r| {
                    r.text("id")
                })
                .await;
            if matches!(owner, Ok(Some(_))) {
                return StoreError::Conflict(format!(
                    "a group with immutableId {} already exists",
                    p.immutable_id
                ));
            }
        }
        if updating {
            StoreError::Conflict(format!(
                "group {} clashes with another group",
                g.display_name
            ))
        } else {
            StoreError::Conflict(format!("a group with id {} already exists", g.id))
        }
    }
}
