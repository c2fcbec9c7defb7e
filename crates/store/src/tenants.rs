//! Tenants: name and initial domain unique across the installation (case-insensitive).

use proto::Tenant;

use crate::db::{args, Row};
use crate::{fold, from_json, to_json, Result, Store, StoreError};

const COLS: &str =
    "id, name, initial_domain, domains, default_usage_location, soft_match_enabled, created_at";

fn tenant_from(r: &dyn Row) -> Result<Tenant> {
    Ok(Tenant {
        id: r.text("id")?,
        name: r.text("name")?,
        initial_domain: r.text("initial_domain")?,
        domains: from_json(&r.text("domains")?, "domain list")?,
        default_usage_location: r.opt_text("default_usage_location")?,
        soft_match_enabled: r.flag("soft_match_enabled")?,
        created_at: r.int("created_at")?,
    })
}

impl Store {
    /// Conflict if another tenant has the same name or initial domain (ignoring case), or id.
    pub async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        let sql = "INSERT INTO tenants (id, name, name_key, initial_domain, initial_domain_key, domains, \
                   default_usage_location, soft_match_enabled, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let a = args![
            &t.id,
            &t.name,
            fold(&t.name),
            &t.initial_domain,
            fold(&t.initial_domain),
            to_json(&t.domains)?,
            &t.default_usage_location,
            t.soft_match_enabled,
            t.created_at,
        ];
        match self.inner.exec(sql, &a).await {
            Err(StoreError::Conflict(_)) => Err(self.tenant_conflict(t, None).await),
            other => other.map(|_| ()),
        }
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let sql = format!("SELECT {COLS} FROM tenants WHERE id = $1");
        self.inner.opt(&sql, &args![id], tenant_from).await
    }

    /// Case-insensitive.
    pub async fn get_tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let sql = format!("SELECT {COLS} FROM tenants WHERE name_key = $1");
        self.inner.opt(&sql, &args![fold(name)], tenant_from).await
    }

    /// Every tenant, ordered by name.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let sql = format!("SELECT {COLS} FROM tenants ORDER BY name_key");
        self.inner.all(&sql, &args![], tenant_from).await
    }

    /// Replaces every field but `id` and `created_at`. NotFound; Conflict as for `create_tenant`.
    pub async fn update_tenant(&self, t: &Tenant) -> Result<()> {
        let sql = "UPDATE tenants SET name = $2, name_key = $3, initial_domain = $4, initial_domain_key = $5, \
                   domains = $6, default_usage_location = $7, soft_match_enabled = $8 WHERE id = $1";
        let a = args![
            &t.id,
            &t.name,
            fold(&t.name),
            &t.initial_domain,
            fold(&t.initial_domain),
            to_json(&t.domains)?,
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
