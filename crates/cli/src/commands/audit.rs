//! `dirbridge audit`: the tenant's audit log, newest first.

use proto::{AuditRecord, Page};

use super::{fetch_pages, note_more, Ctx};
use crate::args::AuditArgs;
use crate::output::{opt, wire, Table};
use crate::time::format_rfc3339;

pub async fn run(args: AuditArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    let mut query = Vec::new();
    for (key, value) in [
        ("actor", args.actor),
        ("action", args.action),
        ("target", args.target),
        ("since", args.since.map(|t| t.to_string())),
        ("until", args.until.map(|t| t.to_string())),
        ("trackingId", args.tracking_id),
    ] {
        if let Some(v) = value {
            query.push((key, v));
        }
    }
    let v = fetch_pages(&api, "/api/v1/audit", query, &args.page).await?;
    note_more(ctx, &v);
    ctx.out.data(v, |page: Page<AuditRecord>| {
        let mut t = Table::new(&["time", "actor", "action", "target", "result", "tracking id"])
            .empty("No audit records match.");
        for r in page.items {
            t.row(vec![
                format_rfc3339(r.time),
                r.actor,
                r.action,
                opt(&r.target),
                wire(&r.result),
                r.tracking_id,
            ]);
        }
        t.render()
    })
}
