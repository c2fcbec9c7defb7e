//! `dirbridge users …`.

use anyhow::bail;
use proto::writeback::{Outcome, WritebackResult};
use proto::{Entitlement, LicenseAssignment, NewUser, Page, User, UserPatch};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;

use super::{fetch_pages, note_more, Ctx, Names};
use crate::api::{seg, Api};
use crate::args::{
    MethodsCommand, MethodsSetArgs, ResetPasswordArgs, UserCreateArgs, UserUpdateArgs,
    UsersCommand, UsersListArgs,
};
use crate::output::{self, fields, opt, wire, yes_no, Table};
use crate::password::{self, Prompt};
use crate::time::format_rfc3339;

pub async fn run(cmd: UsersCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        UsersCommand::List(args) => list(&api, args, ctx).await,
        UsersCommand::Show { user } => {
            let v = api.get(&user_path(&user), &[]).await?;
            ctx.out.data(v, |u: User| render_user(&u))
        }
        UsersCommand::Create(args) => create(&api, args, ctx).await,
        UsersCommand::Update(args) => update(&api, args, ctx).await,
        UsersCommand::Delete { user } => {
            api.delete(&user_path(&user)).await?;
            ctx.out.done(&format!("Deleted user {user}."));
            Ok(())
        }
        UsersCommand::ResetPassword(args) => reset_password(&api, args, ctx).await,
        UsersCommand::Unlock { user } => unlock(&api, &user, ctx).await,
        UsersCommand::RevokeTokens { user } => {
            let v = api
                .post_empty(&format!("{}/revoke-tokens", user_path(&user)))
                .await?;
            let revoked = v.get("revoked").and_then(Value::as_u64).unwrap_or(0);
            ctx.out.data(v, |_: Value| {
                format!("Revoked {revoked} token(s) of {user}; they must sign in again.")
            })
        }
        UsersCommand::Licenses { user } => {
            let v = api
                .get(&format!("{}/licenses", user_path(&user)), &[])
                .await?;
            if ctx.out.is_json() {
                output::print_json(&v);
                return Ok(());
            }
            let assignments: Vec<LicenseAssignment> = output::decode(v)?;
            print!("{}", assignments_table(&api, &assignments, false).await);
            Ok(())
        }
        UsersCommand::Methods(MethodsCommand::Show { user }) => {
            let v = api.get(&methods_path(&user), &[]).await?;
            ctx.out.data(v, |m: Value| render_methods(&m))
        }
        UsersCommand::Methods(MethodsCommand::Set(args)) => set_methods(&api, args, ctx).await,
        UsersCommand::Entitlement { user } => {
            let v = api
                .get(&format!("{}/entitlement", user_path(&user)), &[])
                .await?;
            ctx.out.data(v, |e: Entitlement| {
                fields(&[
                    ("User", user.clone()),
                    ("Allowed", yes_no(e.allowed)),
                    ("SKU", opt(&e.sku_id)),
                    ("Reason", opt(&e.reason)),
                ])
            })
        }
    }
}

fn methods_path(user: &str) -> String {
    format!("{}/authentication-methods", user_path(user))
}

/// The `PUT …/authentication-methods` body: given fields set, removed ones `null`, the rest
/// absent (unchanged). Never security questions: those are the user's own.
fn methods_body(args: &MethodsSetArgs) -> anyhow::Result<serde_json::Map<String, Value>> {
    use crate::args::ContactMethod;
    let mut body = serde_json::Map::new();
    for (method, value) in [
        (ContactMethod::Email, &args.email),
        (ContactMethod::MobilePhone, &args.mobile_phone),
        (ContactMethod::OfficePhone, &args.office_phone),
    ] {
        if let Some(v) = value {
            if args.remove.contains(&method) {
                bail!(
                    "--{} and --remove {} contradict each other",
                    method.field().replace("Phone", "-phone"),
                    method.field().replace("Phone", "-phone")
                );
            }
            body.insert(method.field().into(), Value::String(v.clone()));
        }
    }
    for m in &args.remove {
        body.insert(m.field().into(), Value::Null);
    }
    if body.is_empty() {
        bail!("nothing to change: give --email, --mobile-phone, --office-phone or --remove");
    }
    Ok(body)
}

async fn set_methods(api: &Api, args: MethodsSetArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let body = methods_body(&args)?;
    let v = api.put(&methods_path(&args.user), &body).await?;
    ctx.out.data(v, |m: Value| render_methods(&m))
}

fn render_methods(m: &Value) -> String {
    let text = |k: &str| m[k].as_str().unwrap_or("-").to_string();
    let questions = m["securityQuestions"]
        .as_array()
        .map(|q| q.len().to_string())
        .unwrap_or_else(|| "0".into());
    fields(&[
        ("User", text("userPrincipalName")),
        ("Email", text("email")),
        ("Mobile phone", text("mobilePhone")),
        ("Office phone", text("officePhone")),
        ("Security questions", questions),
    ])
}

fn user_path(user: &str) -> String {
    format!("/api/v1/users/{}", seg(user))
}

async fn list(api: &Api, args: UsersListArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(p) = args.upn_prefix {
        query.push(("upnPrefix", p));
    }
    if let Some(d) = args.display_name {
        query.push(("displayName", d));
    }
    if let Some(s) = args.sku {
        query.push(("skuId", s));
    }
    if let Some(s) = args.source {
        query.push(("source", s.as_str().to_string()));
    }
    let v = fetch_pages(api, "/api/v1/users", query, &args.page).await?;
    note_more(ctx, &v);
    ctx.out.data(v, |page: Page<User>| {
        let mut t = Table::new(&[
            "upn",
            "display name",
            "source",
            "enabled",
            "usage location",
            "id",
        ])
        .empty("No users match.");
        for u in page.items {
            t.row(vec![
                u.user_principal_name,
                u.display_name,
                u.source.as_str().into(),
                yes_no(u.account_enabled),
                opt(&u.usage_location),
                u.id,
            ]);
        }
        t.render()
    })
}

pub fn render_user(u: &User) -> String {
    let roles: Vec<String> = u
        .roles
        .iter()
        .map(|r| r.display_name().to_string())
        .collect();
    let mut rows = vec![
        ("Id", u.id.clone()),
        ("User principal name", u.user_principal_name.clone()),
        ("Display name", u.display_name.clone()),
        ("Given name", opt(&u.given_name)),
        ("Surname", opt(&u.surname)),
        ("Mail", opt(&u.mail)),
        ("Mobile phone", opt(&u.mobile_phone)),
        ("Office phone", opt(&u.office_phone)),
        ("Usage location", opt(&u.usage_location)),
        ("Account enabled", yes_no(u.account_enabled)),
        ("Source", u.source.as_str().into()),
        ("Roles", output::list(&roles)),
    ];
    if let Some(op) = &u.on_premises {
        rows.push(("Immutable id", op.immutable_id.clone()));
        rows.push(("SAM account name", opt(&op.sam_account_name)));
        rows.push((
            "Last sync",
            op.last_sync_at
                .map(format_rfc3339)
                .unwrap_or_else(|| "-".into()),
        ));
        rows.push(("Owned by on-premises", output::list(&op.owned_attributes)));
    }
    rows.push(("Created", format_rfc3339(u.created_at)));
    rows.push(("Updated", format_rfc3339(u.updated_at)));
    fields(&rows)
}

async fn create(api: &Api, args: UserCreateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let secret = password::obtain_optional(
        &args.password,
        &format!("Initial password for {}", args.upn),
    )?;
    let mut body = NewUser {
        user_principal_name: args.upn,
        display_name: args.display_name,
        given_name: args.given_name,
        surname: args.surname,
        mail: args.mail,
        mobile_phone: args.mobile,
        office_phone: args.office_phone,
        usage_location: args.usage_location,
        account_enabled: !args.disabled,
        password: secret.as_ref().map(|s| s.expose_secret().to_owned()),
        roles: args.roles,
    };
    let answer = api.post("/api/v1/users", &body).await;
    if let Some(p) = body.password.as_mut() {
        zeroize::Zeroize::zeroize(p);
    }
    ctx.out.data(answer?, |u: User| render_user(&u))
}

/// The PATCH body with only the given fields: absent ones are left out, cleared ones sent as null.
pub fn user_patch(args: &UserUpdateArgs) -> anyhow::Result<Value> {
    fn set_or_clear(value: &Option<String>, clear: bool) -> Option<Option<String>> {
        if clear {
            Some(None)
        } else {
            value.clone().map(Some)
        }
    }
    let patch = UserPatch {
        user_principal_name: args.upn.clone(),
        display_name: args.display_name.clone(),
        given_name: set_or_clear(&args.given_name, args.clear_given_name),
        surname: set_or_clear(&args.surname, args.clear_surname),
        mail: set_or_clear(&args.mail, args.clear_mail),
        mobile_phone: set_or_clear(&args.mobile, args.clear_mobile),
        office_phone: set_or_clear(&args.office_phone, args.clear_office_phone),
        usage_location: set_or_clear(&args.usage_location, args.clear_usage_location),
        account_enabled: match (args.enable, args.disable) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        roles: if args.clear_roles {
            Some(Vec::new())
        } else {
            (!args.roles.is_empty()).then(|| args.roles.clone())
        },
    };
    // `UserPatch` writes an absent field as null, which the API reads as "clear": keep only the
    // nulls that were asked for.
    let cleared: Vec<&str> = [
        ("givenName", args.clear_given_name),
        ("surname", args.clear_surname),
        ("mail", args.clear_mail),
        ("mobilePhone", args.clear_mobile),
        ("officePhone", args.clear_office_phone),
        ("usageLocation", args.clear_usage_location),
    ]
    .into_iter()
    .filter_map(|(k, c)| c.then_some(k))
    .collect();
    let mut body = serde_json::to_value(&patch)?;
    if let Value::Object(map) = &mut body {
        map.retain(|k, v| !v.is_null() || cleared.contains(&k.as_str()));
        if map.is_empty() {
            bail!("nothing to change: give at least one field, e.g. --display-name, --usage-location CC, --clear-usage-location, --enable or --disable (see dirbridge users update --help)");
        }
    }
    Ok(body)
}

async fn update(api: &Api, args: UserUpdateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let body = user_patch(&args)?;
    let v = api.patch(&user_path(&args.user), &body).await?;
    ctx.out.data(v, |u: User| render_user(&u))
}

/// Body of `POST /api/v1/users/{id}/password` (no proto type for it), borrowing the secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PasswordReset<'a> {
    password: &'a str,
    #[serde(rename = "mustChange", skip_serializing_if = "std::ops::Not::not")]
    must_change: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unlock: bool,
}

async fn reset_password(api: &Api, args: ResetPasswordArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let secret = password::obtain(
        &args.password,
        &format!("New password for {}", args.user),
        Prompt::Twice,
    )?;
    let body = PasswordReset {
        password: secret.expose_secret(),
        must_change: args.must_change,
        unlock: args.unlock,
    };
    let v = api
        .post(&format!("{}/password", user_path(&args.user)), &body)
        .await?;
    if v.is_null() {
        // A cloud-only user: set in the cloud, nothing more to say.
        ctx.out.done(&format!(
            "Set a new password for {}; their sessions were signed out.",
            args.user
        ));
        return Ok(());
    }
    writeback_result(v, ctx)
}

/// Prints a writeback result (the person's words, the admin detail, the tracking id) and fails
/// unless it succeeded, so scripts see the outcome in the exit status.
fn writeback_result(v: Value, ctx: &Ctx) -> anyhow::Result<()> {
    let r: WritebackResult = output::decode(v.clone())?;
    ctx.out.data(v, |r: WritebackResult| {
        let mut pairs = vec![
            ("Result", r.message.clone()),
            ("Outcome", wire(&r.outcome)),
            ("Tracking id", r.tracking_id.clone()),
        ];
        if let Some(a) = &r.agent_id {
            pairs.push(("Agent", a.clone()));
        }
        if let Some(d) = &r.admin_detail {
            pairs.push(("Detail", d.clone()));
        }
        fields(&pairs)
    })?;
    if r.outcome != Outcome::Succeeded {
        bail!(
            "the on-premises directory was not changed as asked ({}); tracking id {}",
            wire(&r.outcome),
            r.tracking_id
        );
    }
    Ok(())
}

async fn unlock(api: &Api, user: &str, ctx: &Ctx) -> anyhow::Result<()> {
    let v = api
        .post_empty(&format!("{}/unlock", user_path(user)))
        .await?;
    writeback_result(v, ctx)
}

/// Licence assignments as a table; `with_user` adds the user's UPN (for tenant-wide listings).
pub async fn assignments_table(api: &Api, items: &[LicenseAssignment], with_user: bool) -> String {
    let mut names = Names::default();
    let headers: &[&'static str] = if with_user {
        &[
            "user",
            "sku",
            "source",
            "state",
            "error",
            "usage location",
            "updated",
        ]
    } else {
        &[
            "sku",
            "source",
            "state",
            "error",
            "usage location",
            "updated",
        ]
    };
    let mut t = Table::new(headers).empty("No licences.");
    for a in items {
        let source = match &a.source {
            proto::AssignmentSource::Direct => "direct".to_string(),
            proto::AssignmentSource::Group(id) => format!("group {}", names.group(api, id).await),
        };
        let mut row = Vec::new();
        if with_user {
            row.push(names.user(api, &a.user_id).await);
        }
        row.extend([
            a.sku_id.clone(),
            source,
            wire(&a.state),
            a.error.map(|e| wire(&e)).unwrap_or_else(|| "-".into()),
            opt(&a.effective_usage_location),
            format_rfc3339(a.updated_at),
        ]);
        t.row(row);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn patch_of(args: &[&str]) -> anyhow::Result<Value> {
        let cli = Cli::try_parse_from(
            ["dirbridge", "users", "update", "ann@contoso.com"]
                .iter()
                .chain(args),
        )
        .unwrap();
        let Command::Users(UsersCommand::Update(u)) = cli.command else {
            panic!()
        };
        user_patch(&u)
    }

    #[test]
    fn patch_sends_only_given_fields() {
        assert_eq!(
            patch_of(&["--usage-location", "NO", "--disable"]).unwrap(),
            serde_json::json!({"usageLocation": "NO", "accountEnabled": false})
        );
    }

    #[test]
    fn clearing_sends_null() {
        assert_eq!(
            patch_of(&["--clear-usage-location", "--display-name", "Ann"]).unwrap(),
            serde_json::json!({"usageLocation": null, "displayName": "Ann"})
        );
        assert_eq!(
            patch_of(&["--clear-roles"]).unwrap(),
            serde_json::json!({"roles": []})
        );
    }

    #[test]
    fn an_empty_patch_is_refused_with_the_flags_to_use() {
        let err = patch_of(&[]).unwrap_err().to_string();
        assert!(
            err.contains("nothing to change") && err.contains("--usage-location"),
            "{err}"
        );
    }
}
