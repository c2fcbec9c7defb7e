//! Tenants: name and initial domain unique across the installation (case-insensitive), and
//! their domains (`tenant_domains`, keyed by tenant and lower-cased domain). A domain is claimed
//! unverified with a challenge, and is trusted only once verified; the database lets one tenant
//! at most hold a domain verified, however requests interleave.

use proto::{Epoch, Tenant};

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

/// A tenant's domain as stored: `verified_at` is None while only claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub domain: String,
    pub verified_at: Option<Epoch>,
    /// The TXT value that proves the claim (None once verified).
    pub challenge: Option<String>,
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
            let insert = "INSERT INTO tenant_domains \
                          (domain_key, domain, tenant_id, position, verified_at) \
                          VALUES ($1, $2, $3, $4, $5)";
            let a = args![fold(d), d, &t.id, i as i64, t.created_at];
            match tx.exec(insert, &a).await {
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
                "SELECT domain FROM tenant_domains WHERE tenant_id = $1 AND verified_at IS NOT NULL \
                 ORDER BY position, domain_key",
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

    /// The tenant holding `domain` (any case) verified, if any.
    pub async fn get_tenant_by_domain(&self, domain: &str) -> Result<Option<Tenant>> {
        let sql =
            "SELECT tenant_id FROM tenant_domains WHERE domain_key = $1 AND verified_at IS NOT NULL";
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
                "SELECT tenant_id, domain FROM tenant_domains WHERE verified_at IS NOT NULL \
                 ORDER BY tenant_id, position, domain_key",
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

    /// Claims `domain` for the tenant, unverified, with the TXT value `challenge` that will prove
    /// it, at the end of its list. Conflict if this tenant has it already, or another tenant holds
    /// it verified; unverified claims of other tenants do not stand in the way. NotFound for an
    /// unknown tenant.
    pub async fn add_tenant_domain(
        &self,
        tenant_id: &str,
        domain: &str,
        challenge: &str,
    ) -> Result<()> {
        let sql = "INSERT INTO tenant_domains (domain_key, domain, tenant_id, position, challenge) \
                   SELECT $1, $2, $3, next.position, $4 FROM (SELECT COALESCE(MAX(position), -1) + 1 \
                   AS position FROM tenant_domains WHERE tenant_id = $3) next \
                   WHERE NOT EXISTS (SELECT 1 FROM tenant_domains \
                   WHERE domain_key = $1 AND verified_at IS NOT NULL AND tenant_id <> $3)";
        match self
            .inner
            .exec(sql, &args![fold(domain), domain, tenant_id, challenge])
            .await
        {
            Ok(0) => Err(StoreError::Conflict(format!(
                "{domain} belongs to another tenant."
            ))),
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "{domain} is already a domain of this tenant."
            ))),
            Err(e) => Err(e),
        }
    }

    /// Every domain of the tenant, verified or not, in the tenant's order.
    pub async fn tenant_domains(&self, tenant_id: &str) -> Result<Vec<DomainRecord>> {
        self.inner
            .all(
                "SELECT domain, verified_at, challenge FROM tenant_domains WHERE tenant_id = $1 \
                 ORDER BY position, domain_key",
                &args![tenant_id],
                |r| {
                    Ok(DomainRecord {
                        domain: r.text("domain")?,
                        verified_at: r.opt_int("verified_at")?,
                        challenge: r.opt_text("challenge")?,
                    })
                },
            )
            .await
    }

    /// Marks the tenant's claim of `domain` verified at `now` (a no-op if it is already), and
    /// drops other tenants' unverified claims of it. NotFound if the tenant has not claimed it;
    /// Conflict if another tenant verified it first.
    pub async fn verify_tenant_domain(
        &self,
        tenant_id: &str,
        domain: &str,
        now: Epoch,
    ) -> Result<()> {
        let key = fold(domain);
        let sql = "UPDATE tenant_domains SET verified_at = $3, challenge = NULL \
                   WHERE tenant_id = $1 AND domain_key = $2 AND verified_at IS NULL";
        match self.inner.exec(sql, &args![tenant_id, &key, now]).await {
            Ok(0) => {
                let held = self
                    .inner
                    .opt(
                        "SELECT domain FROM tenant_domains WHERE tenant_id = $1 AND domain_key = $2",
                        &args![tenant_id, &key],
                        |r| r.text("domain"),
                    )
                    .await?;
                if held.is_none() {
                    // Gone because another tenant verified it meanwhile, or never claimed.
                    let other = self
                        .inner
                        .opt(
                            "SELECT tenant_id FROM tenant_domains WHERE domain_key = $1 \
                             AND verified_at IS NOT NULL",
                            &args![&key],
                            |r| r.text("tenant_id"),
                        )
                        .await?;
                    return Err(match other {
                        Some(_) => StoreError::Conflict(format!(
                            "{domain} was verified by another tenant."
                        )),
                        None => StoreError::NotFound,
                    });
                }
            }
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(StoreError::Conflict(format!(
                    "{domain} was verified by another tenant."
                )))
            }
            Err(e) => return Err(e),
        }
        self.inner
            .exec(
                "DELETE FROM tenant_domains WHERE domain_key = $1 AND tenant_id <> $2 \
                 AND verified_at IS NULL",
                &args![&key, tenant_id],
            )
            .await?;
        Ok(())
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
