//! Tenant domains are proven before they are trusted: a domain is claimed unverified with a
//! random challenge, the owner publishes it as a DNS TXT record at `_dirbridge.DOMAIN`, and only
//! a lookup that finds it verifies the domain. Only verified domains carry UPNs, soft match and
//! sign-in routing (`Tenant::domains` lists just those). An operator of a single-organisation
//! install can mark a domain verified from the host (`dirbridge cloud domains verify`), never
//! through the API without proof.

use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::Resolver;
use proto::{DomainChallenge, ErrorCode, TenantDomain};
use rand::RngCore;
use store::{DomainRecord, Store, StoreError};
use tenant::roles::Operation;
use tenant::validate;

use crate::app::caller::Caller;
use crate::config::{Config, DnsConfig};
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// The label the TXT record sits under: `_dirbridge.contoso.com`.
pub fn record_name(domain: &str) -> String {
    format!("_dirbridge.{domain}")
}

fn new_challenge() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("dirbridge-verification={}", hex::encode(bytes))
}

/// What the API shows of a stored domain.
pub fn view(d: &DomainRecord) -> TenantDomain {
    TenantDomain {
        domain: d.domain.clone(),
        verified: d.verified_at.is_some(),
        verified_at: d.verified_at,
        verification: match (&d.verified_at, &d.challenge) {
            (None, Some(value)) => Some(DomainChallenge {
                record_type: "TXT".into(),
                name: record_name(&d.domain),
                value: value.clone(),
            }),
            _ => None,
        },
    }
}

/// The validated, lower-cased domain, refused if it is under the service's own suffix.
fn claimable(config: &Config, input: &str) -> ApiResult<String> {
    let d = validate::domain(input)?;
    let suffix = config.domain_suffix.to_ascii_lowercase();
    if d == suffix || d.ends_with(&format!(".{suffix}")) {
        return Err(AppError::bad_request(format!(
            "domain: names under {suffix} are the service's own initial domains and cannot be added; add a domain your organisation owns."
        )));
    }
    // The proof sits at `_dirbridge.DOMAIN`, which DNS must be able to name: a longer domain
    // could be claimed but never looked up (found by schemathesis: 503 on every verify).
    let record = record_name(&d);
    if record.len() > validate::DOMAIN_MAX {
        return Err(AppError::bad_request(format!(
            "domain: at most {} characters, so that its verification record {} fits the {} characters of a DNS name; use a shorter domain.",
            validate::DOMAIN_MAX - (record.len() - d.len()),
            record_name("DOMAIN"),
            validate::DOMAIN_MAX
        )));
    }
    Ok(d)
}

async fn find(store: &Store, tenant_id: &str, domain: &str) -> ApiResult<Option<DomainRecord>> {
    Ok(store
        .tenant_domains(tenant_id)
        .await?
        .into_iter()
        .find(|d| d.domain.eq_ignore_ascii_case(domain)))
}

/// Claims `domain` for the caller's tenant, unverified. Claiming a domain already claimed and
/// still unverified answers the same challenge again (`created` false).
pub async fn claim(
    state: &AppState,
    caller: &Caller,
    input: &str,
) -> ApiResult<(TenantDomain, bool)> {
    caller.authorize(Operation::ManageTenant)?;
    let d = claimable(&state.config, input)?;
    if let Some(existing) = find(&state.store, &caller.tenant.id, &d).await? {
        if existing.verified_at.is_none() {
            return Ok((view(&existing), false));
        }
    }
    let added = state
        .store
        .add_tenant_domain(&caller.tenant.id, &d, &new_challenge())
        .await;
    if let Err(e) = added {
        // A request on this or another instance claimed it meanwhile: the answer a claim made
        // before gets.
        return match find(&state.store, &caller.tenant.id, &d).await? {
            Some(existing) if existing.verified_at.is_none() => Ok((view(&existing), false)),
            _ => Err(e.into()),
        };
    }
    let stored = find(&state.store, &caller.tenant.id, &d)
        .await?
        .ok_or_else(|| AppError::not_found("The domain was removed meanwhile."))?;
    Ok((view(&stored), true))
}

/// Every domain of the caller's tenant, verified or not.
pub async fn list(state: &AppState, caller: &Caller) -> ApiResult<Vec<TenantDomain>> {
    caller.authorize(Operation::ReadDirectory)?;
    let all = state.store.tenant_domains(&caller.tenant.id).await?;
    Ok(all.iter().map(view).collect())
}

/// Looks the challenge up in DNS and verifies the domain when it is published. A verified domain
/// answers as it is.
pub async fn verify(state: &AppState, caller: &Caller, input: &str) -> ApiResult<TenantDomain> {
    caller.authorize(Operation::ManageTenant)?;
    let d = validate::domain(input)?;
    let Some(claim) = find(&state.store, &caller.tenant.id, &d).await? else {
        // A claim disappears when another tenant verifies the domain.
        if state.store.get_tenant_by_domain(&d).await?.is_some() {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("{d} was verified by another tenant."),
            ));
        }
        return Err(AppError::not_found(format!(
            "{d} is not a domain of this tenant; add it first (POST /api/v1/tenant/domains)."
        )));
    };
    if claim.verified_at.is_some() {
        return Ok(view(&claim));
    }
    let expected = claim.challenge.clone().unwrap_or_default();
    let name = record_name(&claim.domain);
    let found = lookup_txt(&state.config.dns, &name).await?;
    if !found.iter().any(|t| t.trim() == expected) {
        let seen = if found.is_empty() {
            "no TXT record there".to_string()
        } else {
            format!(
                "only {}",
                found
                    .iter()
                    .map(|t| format!("\"{}\"", t.chars().take(80).collect::<String>()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "{} is not verified: the DNS lookup of {name} found {seen}. Publish a TXT record \
                 {name} with the value {expected} at your DNS provider, then verify again (DNS \
                 changes can take a while to be seen).",
                claim.domain
            ),
        ));
    }
    mark_verified(&state.store, &caller.tenant.id, &claim.domain, state.now()).await?;
    // Objects refused for this suffix apply at once: agents re-send them in their next delta.
    crate::api::push::sync_now(state, &caller.tenant.id, false).await;
    let stored = find(&state.store, &caller.tenant.id, &d)
        .await?
        .ok_or_else(|| AppError::not_found("The domain was removed meanwhile."))?;
    Ok(view(&stored))
}

/// Marks a claimed domain verified (the proof was checked by the caller).
async fn mark_verified(store: &Store, tenant_id: &str, domain: &str, now: i64) -> ApiResult<()> {
    match store.verify_tenant_domain(tenant_id, domain, now).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict(m)) => Err(AppError::new(ErrorCode::Conflict, m)),
        Err(e) => Err(e.into()),
    }
}

/// The host operator's path (`dirbridge cloud domains verify`): claims `domain` for the tenant if
/// needed and marks it verified without a DNS lookup. Never reachable through the API.
pub async fn verify_on_host(
    store: &Store,
    config: &Config,
    tenant_id: &str,
    domain: &str,
    now: i64,
) -> ApiResult<TenantDomain> {
    let d = claimable(config, domain)?;
    if find(store, tenant_id, &d).await?.is_none() {
        store
            .add_tenant_domain(tenant_id, &d, &new_challenge())
            .await?;
    }
    mark_verified(store, tenant_id, &d, now).await?;
    let stored = find(store, tenant_id, &d)
        .await?
        .ok_or_else(|| AppError::not_found("The domain was removed meanwhile."))?;
    Ok(view(&stored))
}

/// The TXT strings at `name` (each record's strings joined); empty when the name or the record
/// does not exist. A resolver that cannot answer is a 503 that says to try again.
pub async fn lookup_txt(config: &DnsConfig, name: &str) -> ApiResult<Vec<String>> {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(config.timeout_secs.max(1));
    opts.attempts = 2;
    // A verification must see the record as published now, not a cached miss.
    opts.cache_size = 0;
    opts.negative_max_ttl = Some(Duration::ZERO);
    let builder = if config.nameservers.is_empty() {
        Resolver::builder_tokio().map_err(|e| {
            tracing::warn!(error = %e, "reading the system resolver configuration");
            AppError::new(
                ErrorCode::ServiceUnavailable,
                "The cloud has no DNS resolver configured: set [dns] nameservers in its configuration, then verify again.",
            )
        })?
    } else {
        let mut servers = NameServerConfigGroup::new();
        for addr in &config.nameservers {
            servers.merge(NameServerConfigGroup::from_ips_clear(
                &[addr.ip()],
                addr.port(),
                true,
            ));
        }
        Resolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], servers),
            TokioConnectionProvider::default(),
        )
    };
    let resolver = builder.with_options(opts).build();
    match resolver.txt_lookup(format!("{name}.")).await {
        Ok(found) => Ok(found
            .iter()
            .map(|txt| {
                txt.txt_data()
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>()
            })
            .collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => {
            tracing::warn!(error = %e, %name, "DNS lookup for domain verification failed");
            Err(AppError::new(
                ErrorCode::ServiceUnavailable,
                format!("The DNS lookup of {name} failed ({e}); try again in a minute."),
            ))
        }
    }
}
