//! `dirbridge licenses …`.

use proto::{GroupLicense, LicenseAssignment, NewSubscription, Sku, SkuSummary, Subscription};
use serde::Serialize;

use super::groups::group_path;
use super::users::assignments_table;
use super::{resolve_group, Ctx};
use crate::api::seg;
use crate::args::LicensesCommand;
use crate::output::{self, fields, wire, yes_no, Table};
use crate::time::format_rfc3339;

/// `{skuId}`: the body of the trial and assignment endpoints (no proto type for it).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SkuRef<'a> {
    sku_id: &'a str,
}

pub async fn run(cmd: LicensesCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        LicensesCommand::List => {
            let v = api.get("/api/v1/licenses", &[]).await?;
            ctx.out
                .data(v, |skus: Vec<SkuSummary>| summary_table(&skus))
        }
        LicensesCommand::Skus => {
            let v = api.get("/api/v1/licenses/skus", &[]).await?;
            ctx.out.data(v, |skus: Vec<Sku>| {
                let mut t = Table::new(&["sku", "name", "free", "service plans"]).empty("No SKUs.");
                for s in skus {
                    t.row(vec![
                        s.id,
                        s.name,
                        yes_no(s.free),
                        output::list(&s.service_plans),
                    ]);
                }
                t.render()
            })
        }
        LicensesCommand::Trial { sku } => {
            let v = api
                .post("/api/v1/licenses/trial", &SkuRef { sku_id: &sku })
                .await?;
            ctx.out.data(v, |s: Subscription| {
                render_subscription("Started a trial", &s)
            })
        }
        LicensesCommand::Purchase {
            sku,
            units,
            term_days,
        } => {
            let v = api
                .post(
                    "/api/v1/licenses/subscriptions",
                    &NewSubscription {
                        sku_id: sku,
                        units,
                        term_days,
                    },
                )
                .await?;
            ctx.out.data(v, |s: Subscription| {
                render_subscription("Added a subscription", &s)
            })
        }
        LicensesCommand::Assign { user, sku } => {
            let v = api
                .post(
                    &format!("/api/v1/users/{}/licenses", seg(&user)),
                    &SkuRef { sku_id: &sku },
                )
                .await?;
            ctx.out.data(v, |a: LicenseAssignment| match a.error {
                None => format!("Assigned {} to {user} ({}).", a.sku_id, wire(&a.state)),
                Some(e) => format!(
                    "Assigned {} to {user}, but the assignment is in error: {}.",
                    a.sku_id,
                    wire(&e)
                ),
            })
        }
        LicensesCommand::Remove { user, sku } => {
            api.delete(&format!(
                "/api/v1/users/{}/licenses/{}",
                seg(&user),
                seg(&sku)
            ))
            .await?;
            ctx.out.done(&format!("Removed {sku} from {user}."));
            Ok(())
        }
        LicensesCommand::AssignGroup { group, sku } => {
            let g = resolve_group(&api, &group).await?;
            let v = api
                .post(
                    &format!("{}/licenses", group_path(&g.id)),
                    &SkuRef { sku_id: &sku },
                )
                .await?;
            ctx.out.data(v, |l: GroupLicense| {
                format!(
                    "Members of {} now get {} through the group.",
                    g.display_name, l.sku_id
                )
            })
        }
        LicensesCommand::RemoveGroup { group, sku } => {
            let g = resolve_group(&api, &group).await?;
            api.delete(&format!("{}/licenses/{}", group_path(&g.id), seg(&sku)))
                .await?;
            ctx.out.done(&format!(
                "Members of {} no longer get {sku} through the group.",
                g.display_name
            ));
            Ok(())
        }
        LicensesCommand::Errors => {
            let v = api.get("/api/v1/licenses/errors", &[]).await?;
            if ctx.out.is_json() {
                output::print_json(&v);
                return Ok(());
            }
            let errors: Vec<LicenseAssignment> = output::decode(v)?;
            if errors.is_empty() {
                println!("No licence assignments are in error.");
            } else {
                print!("{}", assignments_table(&api, &errors, true).await);
            }
            Ok(())
        }
    }
}

/// Like `Get-MsolAccountSku`: one line per SKU with its unit counts.
pub fn summary_table(skus: &[SkuSummary]) -> String {
    let mut t = Table::new(&["sku", "name", "enabled", "warning", "suspended", "locked out", "consumed"])
        .empty("No subscriptions yet: start one with dirbridge licenses trial, or dirbridge licenses purchase.");
    for s in skus {
        t.row(vec![
            s.sku_id.clone(),
            s.name.clone(),
            s.enabled_units.to_string(),
            s.warning_units.to_string(),
            s.suspended_units.to_string(),
            s.locked_out_units.to_string(),
            s.consumed_units.to_string(),
        ]);
    }
    t.render()
}

fn render_subscription(what: &str, s: &Subscription) -> String {
    format!(
        "{what} of {}.\n{}",
        s.sku_id,
        fields(&[
            ("Subscription", s.id.clone()),
            ("SKU", s.sku_id.clone()),
            ("Kind", wire(&s.kind)),
            ("Units", s.units.to_string()),
            ("Starts", format_rfc3339(s.starts_at)),
            ("Ends", format_rfc3339(s.ends_at)),
        ])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_one_line_per_sku_with_unit_counts() {
        let s = SkuSummary {
            sku_id: "DIRBRIDGE_PREMIUM".into(),
            name: "dirbridge Premium".into(),
            enabled_units: 100,
            warning_units: 0,
            suspended_units: 0,
            locked_out_units: 0,
            consumed_units: 1,
            subscriptions: vec![],
        };
        let text = summary_table(&[s]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("SKU") && lines[0].ends_with("CONSUMED"));
        let cells: Vec<&str> = lines[1]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "DIRBRIDGE_PREMIUM",
                "dirbridge Premium",
                "100",
                "0",
                "0",
                "0",
                "1"
            ]
        );
    }
}
