//! `dirbridge tenant …`.

use proto::Tenant;
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
            api.post("/api/v1/tenant/domains", &json!({ "domain": domain }))
                .await?
        }
    };
    ctx.out.data(v, |t: Tenant| render_tenant(&t))
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
