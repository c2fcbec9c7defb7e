//! `dirbridge groups …`. Groups are given by id or exact display name.

use proto::{Group, GroupLicense, MemberKind, MemberRef, NewGroup, Page};
use serde_json::{Map, Value};

use super::{fetch_pages, note_more, resolve_group, Ctx, Names};
use crate::api::{seg, Api};
use crate::args::{GroupsCommand, GroupsListArgs};
use crate::output::{self, fields, opt, wire, Table};
use crate::time::format_rfc3339;

pub async fn run(cmd: GroupsCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        GroupsCommand::List(args) => list(&api, args, ctx).await,
        GroupsCommand::Create { name, description } => {
            let v = api
                .post(
                    "/api/v1/groups",
                    &NewGroup {
                        display_name: name,
                        description,
                    },
                )
                .await?;
            ctx.out.data(v, |g: Group| render_group(&g))
        }
        GroupsCommand::Show { group } => {
            let g = resolve_group(&api, &group).await?;
            if ctx.out.is_json() {
                // The document as the API sent it, not our re-encoding of it.
                let v = api.get(&group_path(&g.id), &[]).await?;
                output::print_json(&v);
            } else {
                print!("{}", render_group(&g));
            }
            Ok(())
        }
        GroupsCommand::Update {
            group,
            name,
            description,
            clear_description,
        } => {
            let g = resolve_group(&api, &group).await?;
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("displayName".into(), Value::String(n));
            }
            if clear_description {
                body.insert("description".into(), Value::Null);
            } else if let Some(d) = description {
                body.insert("description".into(), Value::String(d));
            }
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --name, --description or --clear-description"
                );
            }
            let v = api.patch(&group_path(&g.id), &body).await?;
            ctx.out.data(v, |g: Group| render_group(&g))
        }
        GroupsCommand::Delete { group } => {
            let g = resolve_group(&api, &group).await?;
            api.delete(&group_path(&g.id)).await?;
            ctx.out
                .done(&format!("Deleted group {} ({}).", g.display_name, g.id));
            Ok(())
        }
        GroupsCommand::Members { group } => {
            let g = resolve_group(&api, &group).await?;
            let v = api
                .get(&format!("{}/members", group_path(&g.id)), &[])
                .await?;
            if ctx.out.is_json() {
                output::print_json(&v);
                return Ok(());
            }
            let members: Vec<MemberRef> = output::decode(v)?;
            let mut names = Names::default();
            let mut t = Table::new(&["kind", "name", "id"]).empty("The group has no members.");
            for m in members {
                let name = match m.kind {
                    MemberKind::User => names.user(&api, &m.id).await,
                    MemberKind::Group => names.group(&api, &m.id).await,
                };
                t.row(vec![wire(&m.kind), name, m.id]);
            }
            print!("{}", t.render());
            Ok(())
        }
        GroupsCommand::AddMember {
            group,
            user,
            member_group,
        } => {
            let g = resolve_group(&api, &group).await?;
            let (member, shown) = match (user, member_group) {
                (Some(u), _) => (
                    MemberRef {
                        kind: MemberKind::User,
                        id: u.clone(),
                    },
                    u,
                ),
                (None, Some(other)) => {
                    let other = resolve_group(&api, &other).await?;
                    (
                        MemberRef {
                            kind: MemberKind::Group,
                            id: other.id,
                        },
                        other.display_name,
                    )
                }
                (None, None) => anyhow::bail!("say who to add: --user ID|UPN or --group GROUP"),
            };
            let v = api
                .post(&format!("{}/members", group_path(&g.id)), &member)
                .await?;
            ctx.out.data(v, |m: MemberRef| {
                format!(
                    "Added {} {shown} to {} (member id {}).",
                    wire(&m.kind),
                    g.display_name,
                    m.id
                )
            })
        }
        GroupsCommand::RemoveMember { group, member } => {
            let g = resolve_group(&api, &group).await?;
            // A UPN is friendlier than an id; the members endpoint wants the id.
            let id = if member.contains('@') {
                let v = api
                    .get(&format!("/api/v1/users/{}", seg(&member)), &[])
                    .await?;
                v.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or(&member)
                    .to_string()
            } else {
                member.clone()
            };
            api.delete(&format!("{}/members/{}", group_path(&g.id), seg(&id)))
                .await?;
            ctx.out
                .done(&format!("Removed {member} from {}.", g.display_name));
            Ok(())
        }
        GroupsCommand::Licenses { group } => {
            let g = resolve_group(&api, &group).await?;
            let v = api
                .get(&format!("{}/licenses", group_path(&g.id)), &[])
                .await?;
            ctx.out.data(v, |licenses: Vec<GroupLicense>| {
                let mut t = Table::new(&["sku", "since"]).empty("The group gives no licences.");
                for l in licenses {
                    t.row(vec![l.sku_id, format_rfc3339(l.created_at)]);
                }
                t.render()
            })
        }
    }
}

pub fn group_path(id: &str) -> String {
    format!("/api/v1/groups/{}", seg(id))
}

async fn list(api: &Api, args: GroupsListArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(p) = args.name_prefix {
        query.push(("namePrefix", p));
    }
    let v = fetch_pages(api, "/api/v1/groups", query, &args.page).await?;
    note_more(ctx, &v);
    ctx.out.data(v, |page: Page<Group>| {
        let mut t = Table::new(&["name", "source", "description", "id"]).empty("No groups match.");
        for g in page.items {
            t.row(vec![
                g.display_name,
                g.source.as_str().into(),
                opt(&g.description),
                g.id,
            ]);
        }
        t.render()
    })
}

fn render_group(g: &Group) -> String {
    let mut rows = vec![
        ("Id", g.id.clone()),
        ("Name", g.display_name.clone()),
        ("Description", opt(&g.description)),
        ("Source", g.source.as_str().into()),
    ];
    if let Some(op) = &g.on_premises {
        rows.push(("Immutable id", op.immutable_id.clone()));
    }
    rows.push(("Created", format_rfc3339(g.created_at)));
    fields(&rows)
}
