//! `dirbridge cloud init`: create a tenant and its first Global Administrator.

use proto::{Role, Source, Tenant, User};
use store::Store;
use tenant::clock::{Clock, SystemClock};
use tenant::{secrets, validate};

use crate::config::Config;

pub struct Initialized {
    pub tenant: Tenant,
    pub admin: User,
}

/// Opens (creating if needed) the store the config names and creates the tenant in it.
pub async fn init(
    config: &Config,
    tenant_name: &str,
    admin_upn: &str,
    password: &str,
) -> anyhow::Result<Initialized> {
    let store = crate::open_store(config).await?;
    create_tenant(
        &store,
        &SystemClock,
        &config.domain_suffix,
        tenant_name,
        admin_upn,
        password,
    )
    .await
}

/// `dirbridge cloud domains verify`: on the host, with the database's own credentials, marks
/// `domain` verified for tenant `tenant_name` (claiming it first if needed) without a DNS lookup,
/// for an operator who knows the organisation owns it. Audited as `host`.
pub async fn verify_domain_on_host(
    config: &Config,
    tenant_name: &str,
    domain: &str,
) -> anyhow::Result<proto::TenantDomain> {
    let store = crate::open_store(config).await?;
    let t = store
        .get_tenant_by_name(tenant_name)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("there is no tenant named {tenant_name} in this database")
        })?;
    let now = SystemClock.now();
    let verified = crate::domains::verify_on_host(&store, config, &t.id, domain, now)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    store
        .insert_audit(&proto::AuditRecord {
            id: tenant::secrets::ordered_id(),
            tenant_id: t.id.clone(),
            time: now,
            actor: "host".into(),
            action: "tenant.verifyDomain".into(),
            target: Some(verified.domain.clone()),
            result: proto::AuditResult::Success,
            tracking_id: crate::error::tracking_id(),
            details: Some("marked verified on the host (dirbridge cloud domains verify)".into()),
        })
        .await?;
    Ok(verified)
}

/// Creates tenant `name` with initial domain `name.<suffix>` and its first Global Administrator.
/// `admin_upn` may be a bare name (`admin`), which gets the initial domain.
pub async fn create_tenant(
    store: &Store,
    clock: &dyn Clock,
    suffix: &str,
    name: &str,
    admin_upn: &str,
    password: &str,
) -> anyhow::Result<Initialized> {
    let name = validate::tenant_name(name)?;
    let domain = validate::domain(&format!("{name}.{suffix}"))?;
    if store.get_tenant_by_name(&name).await?.is_some() {
        anyhow::bail!("a tenant named '{name}' already exists in this database; pick another name or use the existing one");
    }
    if store.get_tenant_by_domain(&domain).await?.is_some() {
        anyhow::bail!(
            "the domain {domain} already belongs to another tenant; pick another tenant name"
        );
    }
    let upn = if admin_upn.contains('@') {
        admin_upn.to_string()
    } else {
        format!("{admin_upn}@{domain}")
    };
    let upn = validate::upn(&upn, std::slice::from_ref(&domain))?;
    validate::new_password(password)?;
    let now = clock.now();
    let tenant = Tenant {
        id: secrets::new_id(),
        name: name.clone(),
        initial_domain: domain.clone(),
        domains: vec![domain],
        default_usage_location: None,
        soft_match_enabled: true,
        created_at: now,
    };
    let admin = User {
        id: secrets::new_id(),
        tenant_id: tenant.id.clone(),
        user_principal_name: upn,
        display_name: "Global Administrator".into(),
        given_name: None,
        surname: None,
        mail: None,
        mobile_phone: None,
        office_phone: None,
        usage_location: None,
        account_enabled: true,
        source: Source::Cloud,
        roles: vec![Role::GlobalAdministrator],
        on_premises: None,
        created_at: now,
        updated_at: now,
    };
    store.create_tenant(&tenant).await?;
    let hash = secrets::hash_password(password);
    store.insert_user(&admin, Some(&hash)).await?;
    Ok(Initialized { tenant, admin })
}
