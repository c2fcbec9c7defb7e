//! `dirbridge tenant …`.

use proto::{Tenant, TenantDomain};
use serde_json::{json, Map, Value};

use super::Ctx;
use crate::args::TenantCommand;
use crate::output::{self, fields, opt, yes_no};
use crate::time::format_rfc3339;

pub async fn run(cmd: TenantCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    let v = match cmd {
        TenantCommand::Show => api.get("/api/v1/tenant", &[]).await?,
        TenantCommand::Set {
            default_usage_location,
            clear_default_usage_location,
            soft_match,
        } => {
            let mut body = Map::new();
            if clear_default_usage_location {
                body.insert("defaultUsageLocation".into(), Value::Null);
            } else if let Some(cc) = default_usage_location {
                body.insert("defaultUsageLocation".into(), Value::String(cc));
            }
            if let Some(b) = soft_match {
                body.insert("softMatchEnabled".into(), Value::Bool(b));
            }
            if body.is_empty() {
                anyhow::bail!("nothing to change: give --default-usage-location CC, --clear-default-usage-location or --soft-match true|false");
            }
            api.patch("/api/v1/tenant", &body).await?
        }
        TenantCommand::AddDomain { domain } => {
            let v = api
                .post("/api/v1/tenant/domains", &json!({ "domain": domain }))
                .await?;
            return ctx.out.data(v, |d: TenantDomain| render_domain(&d));
        }
        TenantCommand::VerifyDomain { domain } => {
            let path = format!("/api/v1/tenant/domains/{}/verify", crate::api::seg(&domain));
            let v = api.post(&path, &json!({})).await?;
            return ctx.out.data(v, |d: TenantDomain| render_domain(&d));
        }
        TenantCommand::Domains => {
            let v = api.get("/api/v1/tenant/domains", &[]).await?;
            return ctx.out.data(v, |all: Vec<TenantDomain>| {
                all.iter().map(render_domain).collect::<Vec<_>>().join("\n")
            });
        }
    };
    ctx.out.data(v, |t: Tenant| render_tenant(&t))
}

/// A domain and, while unverified, the record to publish and the next command.
pub fn render_domain(d: &TenantDomain) -> String {
    match &d.verification {
        Some(c) if !d.verified => format!(
            "{}: not verified yet.\nPublish this DNS record, then run `dirbridge tenant verify-domain {}`:\n  {}  {}  \"{}\"",
            d.domain, d.domain, c.name, c.record_type, c.value
        ),
        _ => format!(
            "{}: verified{}",
            d.domain,
            d.verified_at
                .map(|t| format!(" ({})", format_rfc3339(t)))
                .unwrap_or_default()
        ),
    }
}

pub fn render_tenant(t: &Tenant) -> String {
    fields(&[
        ("Id", t.id.clone()),
        ("Name", t.name.clone()),
        ("Initial domain", t.initial_domain.clone()),
        ("Domains", output::list(&t.domains)),
        ("Default usage location", opt(&t.default_usage_location)),
        ("Soft match", yes_no(t.soft_match_enabled)),
        ("Created", format_rfc3339(t.created_at)),
    ])
}
