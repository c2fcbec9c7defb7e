//! Tenants: name and initial domain unique across the installation (case-insensitive), and
//! their domains, each held by one tenant at most (`tenant_domains`, keyed by the lower-cased
//! domain, so the database itself refuses a second holder, however requests interleave).

use proto::Tenant;

use crate::db::{args, Row};
use crate::{fold, Params, Result, Store, StoreError};

const COLS: &str =
    "id, name, initial_domain, default_usage_location, soft_match_enabled, created_at";

/// A tenant row; its `domains` are filled in from `tenant_domains` by the caller.
fn tenant_from(r: &dyn Row) -> Result<Tenant> {
    Ok(Tenant {
        id: r.text("id")?,
        name: r.text("name")?,
        initial_domain: r.text("initial_domain")?,
        domains: Vec::new(),
        default_usage_location: r.opt_text("default_usage_location")?,
        soft_match_enabled: r.flag("soft_match_enabled")?,
        created_at: r.int("created_at")?,
    })
}

/// The tenant settings a PATCH may change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TenantChanges {
    pub default_usage_location: Option<Option<String>>,
    pub soft_match_enabled: Option<bool>,
}

impl Store {
    /// Conflict if another tenant has the same name or initial domain (ignoring case), or id,
    /// or holds one of `t.domains`. The tenant and its domains are written in one transaction.
    pub async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        let sql = "INSERT INTO tenants (id, name, name_key, initial_domain, initial_domain_key, \
                   default_usage_location, soft_match_enabled, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let a = args![
            &t.id,
            &t.name,
            fold(&t.name),
            &t.initial_domain,
            fold(&t.initial_domain),
            &t.default_usage_location,
            t.soft_match_enabled,
            t.created_at,
        ];
        let mut tx = self.inner.begin().await?;
        if let Err(e) = tx.exec(sql, &a).await {
            drop(tx);
            return Err(match e {
                StoreError::Conflict(_) => self.tenant_conflict(t, None).await,
                other => other,
            });
        }
        for (i, d) in t.domains.iter().enumerate() {
            let insert = "INSERT INTO tenant_domains (domain_key, domain, tenant_id, position) \
                          VALUES ($1, $2, $3, $4)";
            match tx.exec(insert, &args![fold(d), d, &t.id, i as i64]).await {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => {
                    return Err(StoreError::Conflict(format!(
                        "the domain {d} belongs to another tenant"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let sql = format!("SELECT {COLS} FROM tenants WHERE id = $1");
        let Some(mut t) = self.inner.opt(&sql, &args![id], tenant_from).await? else {
            return Ok(None);
        };
        t.domains = self
            .inner
            .all(
                "SELECT domain FROM tenant_domains WHERE tenant_id = $1 ORDER BY position, domain_key",
                &args![id],
                |r| r.text("domain"),
            )
            .await?;
        Ok(Some(t))
    }

    /// Case-insensitive.
    pub async fn get_tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let sql = "SELECT id FROM tenants WHERE name_key = $1";
        match self
            .inner
            .opt(sql, &args![fold(name)], |r| r.text("id"))
            .await?
        {
            Some(id) => self.get_tenant(&id).await,
            None => Ok(None),
        }
    }

    /// The tenant holding `domain` (any case), if any.
    pub async fn get_tenant_by_domain(&self, domain: &str) -> Result<Option<Tenant>> {
        let sql = "SELECT tenant_id FROM tenant_domains WHERE domain_key = $1";
        match self
            .inner
            .opt(sql, &args![fold(domain)], |r| r.text("tenant_id"))
            .await?
        {
            Some(id) => self.get_tenant(&id).await,
            None => Ok(None),
        }
    }

    /// Every tenant, ordered by name.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let sql = format!("SELECT {COLS} FROM tenants ORDER BY name_key");
        let mut tenants = self.inner.all(&sql, &args![], tenant_from).await?;
        let domains = self
            .inner
            .all(
                "SELECT tenant_id, domain FROM tenant_domains ORDER BY tenant_id, position, domain_key",
                &args![],
                |r| Ok((r.text("tenant_id")?, r.text("domain")?)),
            )
            .await?;
        for t in &mut tenants {
            t.domains = domains
                .iter()
                .filter(|(id, _)| *id == t.id)
                .map(|(_, d)| d.clone())
                .collect();
        }
        Ok(tenants)
    }

    /// Replaces every field but `id`, `created_at` and `domains` (see
    /// [`Store::add_tenant_domain`]). NotFound; Conflict as for `create_tenant`.
    pub async fn update_tenant(&self, t: &Tenant) -> Result<()> {
        let sql = "UPDATE tenants SET name = $2, name_key = $3, initial_domain = $4, initial_domain_key = $5, \
                   default_usage_location = $6, soft_match_enabled = $7 WHERE id = $1";
        let a = args![
            &t.id,
            &t.name,
            fold(&t.name),
            &t.initial_domain,
            fold(&t.initial_domain),
            &t.default_usage_location,
            t.soft_match_enabled,
        ];
        match self.inner.exec(sql, &a).await {
            Ok(0) => Err(StoreError::NotFound),
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(self.tenant_conflict(t, Some(&t.id)).await),
            Err(e) => Err(e),
        }
    }

    /// Sets only the fields `changes` gives, in one statement, so concurrent changes of
    /// different fields all stay (none writes back a stale copy of the others). NotFound.
    pub async fn patch_tenant(&self, id: &str, changes: &TenantChanges) -> Result<()> {
        let mut p = Params::default();
        let mut set = Vec::new();
        if let Some(l) = &changes.default_usage_location {
            set.push(format!("default_usage_location = {}", p.push(l)));
        }
        if let Some(b) = changes.soft_match_enabled {
            set.push(format!("soft_match_enabled = {}", p.push(b)));
        }
        // Nothing to set: still answer NotFound for an unknown tenant.
        let assignments = if set.is_empty() {
            "id = id".to_string()
        } else {
            set.join(", ")
        };
        let sql = format!("UPDATE tenants SET {assignments} WHERE id = {}", p.push(id));
        match self.inner.exec(&sql, &p.args).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    /// Adds `domain` to the tenant's list, at its end. One statement: of two concurrent adds of
    /// one domain exactly one succeeds (the other is a Conflict saying who holds it), and
    /// concurrent adds of different domains all keep theirs. NotFound for an unknown tenant.
    pub async fn add_tenant_domain(&self, tenant_id: &str, domain: &str) -> Result<()> {
        let sql = "INSERT INTO tenant_domains (domain_key, domain, tenant_id, position) \
                   SELECT $1, $2, $3, COALESCE(MAX(position), -1) + 1 FROM tenant_domains WHERE tenant_id = $3";
        match self
            .inner
            .exec(sql, &args![fold(domain), domain, tenant_id])
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => {
                let holder = self
                    .inner
                    .opt(
                        "SELECT tenant_id FROM tenant_domains WHERE domain_key = $1",
                        &args![fold(domain)],
                        |r| r.text("tenant_id"),
                    )
                    .await?;
                Err(StoreError::Conflict(
                    if holder.as_deref() == Some(tenant_id) {
                        format!("{domain} is already a domain of this tenant.")
                    } else {
                        format!("{domain} belongs to another tenant.")
                    },
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Say which uniqueness rule `t` broke (looked up after the database refused it).
    async fn tenant_conflict(&self, t: &Tenant, except_id: Option<&str>) -> StoreError {
        let except = except_id.unwrap_or("");
        let taken = |sql: &'static str, key: String| {
            let a = args![key, except];
            async move { matches!(self.inner.opt(sql, &a, |r| r.text("id")).await, Ok(Some(_))) }
        };
        if taken(
            "SELECT id FROM tenants WHERE name_key = $1 AND id <> $2",
            fold(&t.name),
        )
        .await
        {
            StoreError::Conflict(format!("a tenant named {} already exists", t.name))
        } else if taken(
            "SELECT id FROM tenants WHERE initial_domain_key = $1 AND id <> $2",
            fold(&t.initial_domain),
        )
        .await
        {
            StoreError::Conflict(format!(
                "a tenant with the initial domain {} already exists",
                t.initial_domain
            ))
        } else if except_id.is_none() {
            StoreError::Conflict(format!("a tenant with id {} already exists", t.id))
        } else {
            StoreError::Conflict(format!("tenant {} clashes with another tenant", t.name))
        }
    }
}
