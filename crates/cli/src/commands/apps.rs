//! `dirbridge apps …`: apps that sign the tenant's users in through its OpenID Connect
//! provider (docs/oidc.md): register, list, show, update, delete, client secrets, key rotation.

use clap::{Args, Subcommand, ValueEnum};
use proto::oidc::{App, AppCreated, AppPatch, ClientType, KeysRotated, NewApp};

use super::{resolve_group, Ctx};
use crate::api::{seg, Api};
use crate::output::{fields, opt, wire, yes_no, Table};
use crate::time::format_rfc3339;

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// The registered apps.
    #[command(
        after_help = "Examples:\n  dirbridge apps list\n  dirbridge apps list --output json"
    )]
    List,

    /// One app's settings (its client secrets by id only).
    #[command(after_help = "Example:\n  dirbridge apps show 5b1f0c8e-7d2a-4e61-9c3f-0a8b7e6d5c4b")]
    Show {
        /// App id (the client id; from `dirbridge apps list`).
        id: String,
    },

    /// Register an app; prints its client id, the client secret (shown this once) and the issuer.
    #[command(
        after_help = "Examples:\n  dirbridge apps create --name Grafana --redirect-uri https://grafana.contoso.com/login/generic_oauth\n  dirbridge apps create --name 'Mobile app' --public --redirect-uri com.contoso.app:/callback --scope openid --scope profile\n  dirbridge apps create --name Wiki --redirect-uri https://wiki.contoso.com/cb --group 'Wiki users' --skip-consent --output json"
    )]
    Create(CreateArgs),

    /// Change an app's settings (only the options given).
    #[command(
        after_help = "Examples:\n  dirbridge apps update ID --redirect-uri https://grafana.contoso.com/login/generic_oauth --redirect-uri https://grafana2.contoso.com/login/generic_oauth\n  dirbridge apps update ID --skip-consent false --everyone"
    )]
    Update(UpdateArgs),

    /// Delete an app with its client secrets and every token it holds.
    #[command(after_help = "Example:\n  dirbridge apps delete ID")]
    Delete {
        /// App id (the client id; from `dirbridge apps list`).
        id: String,
    },

    /// Client secrets of a confidential app.
    #[command(subcommand)]
    Secret(SecretCommand),

    /// New token signing keys for the tenant; the old ones stay published until their tokens expire.
    #[command(after_help = "Example:\n  dirbridge apps rotate-keys")]
    RotateKeys,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// One more client secret (shown this once), to roll the secret over.
    #[command(after_help = "Example:\n  dirbridge apps secret add ID")]
    Add {
        /// App id (the client id; from `dirbridge apps list`).
        id: String,
    },
    /// Remove a client secret (its id from `dirbridge apps show`).
    #[command(after_help = "Example:\n  dirbridge apps secret remove ID SECRET_ID")]
    Remove {
        /// App id (the client id; from `dirbridge apps list`).
        id: String,
        /// The secret's id (from `dirbridge apps show`).
        secret_id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Alg {
    #[value(name = "ES256")]
    Es256,
    #[value(name = "RS256")]
    Rs256,
}

impl Alg {
    fn name(self) -> String {
        match self {
            Alg::Es256 => "ES256".into(),
            Alg::Rs256 => "RS256".into(),
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The app's name, shown to people on the consent page.
    #[arg(long)]
    pub name: String,
    /// Where the provider may send the browser back (exact; repeat for several).
    #[arg(long = "redirect-uri", value_name = "URI", required = true)]
    pub redirect_uris: Vec<String>,
    /// Where logout may send the browser afterwards (exact; repeat for several).
    #[arg(long = "post-logout-uri", value_name = "URI")]
    pub post_logout_uris: Vec<String>,
    /// A public app (browser or native): no secret, PKCE required.
    #[arg(long)]
    pub public: bool,
    /// A scope the app may ask for (repeat; default all: openid profile email offline_access groups).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Only members of this group (name or id; nested groups count) may sign in.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    #[command(flatten)]
    pub lifetimes: Lifetimes,
    /// No consent page: the administrator agrees for every user.
    #[arg(long)]
    pub skip_consent: bool,
    /// How ID tokens are signed (default ES256).
    #[arg(long, value_enum)]
    pub alg: Option<Alg>,
}

#[derive(Debug, Args)]
pub struct Lifetimes {
    /// Access token lifetime in seconds (60 to 86400; default 3600).
    #[arg(long, value_name = "SECS")]
    pub access_token_lifetime: Option<i64>,
    /// ID token lifetime in seconds (60 to 86400; default 3600).
    #[arg(long, value_name = "SECS")]
    pub id_token_lifetime: Option<i64>,
    /// Refresh token lifetime in seconds (300 to 31536000; default 30 days).
    #[arg(long, value_name = "SECS")]
    pub refresh_token_lifetime: Option<i64>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// App id (the client id; from `dirbridge apps list`).
    pub id: String,
    /// A new name, shown to people on the consent page.
    #[arg(long)]
    pub name: Option<String>,
    /// Replaces the redirect URIs (repeat for several).
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// Replaces the post-logout URIs (repeat for several).
    #[arg(long = "post-logout-uri", value_name = "URI")]
    pub post_logout_uris: Vec<String>,
    /// Replaces the allowed scopes (repeat for several).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Only members of this group (name or id) may sign in.
    #[arg(long, value_name = "GROUP", conflicts_with = "everyone")]
    pub group: Option<String>,
    /// Every user of the tenant may sign in.
    #[arg(long)]
    pub everyone: bool,
    #[command(flatten)]
    pub lifetimes: Lifetimes,
    /// `true`: no consent page (the administrator agrees for every user); `false`: ask.
    #[arg(long, value_name = "BOOL")]
    pub skip_consent: Option<bool>,
    /// How ID tokens are signed from now on.
    #[arg(long, value_enum)]
    pub alg: Option<Alg>,
}

fn app_path(id: &str) -> String {
    format!("/api/v1/apps/{}", seg(id))
}

async fn group_id(api: &Api, group: Option<&str>) -> anyhow::Result<Option<String>> {
    Ok(match group {
        Some(g) => Some(resolve_group(api, g).await?.id),
        None => None,
    })
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

pub async fn run(cmd: AppsCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        AppsCommand::List => {
            let v = api.get("/api/v1/apps", &[]).await?;
            ctx.out.data(v, |apps: Vec<App>| {
                let mut t = Table::new(&["name", "type", "redirect URIs", "consent", "id"])
                    .empty("No apps are registered. Register one with `dirbridge apps create`.");
                for a in apps {
                    t.row(vec![
                        a.name,
                        wire(&a.client_type),
                        a.redirect_uris.join(" "),
                        if a.skip_consent { "skipped" } else { "asked" }.into(),
                        a.id,
                    ]);
                }
                t.render()
            })
        }
        AppsCommand::Show { id } => {
            let v = api.get(&app_path(&id), &[]).await?;
            ctx.out.data(v, |a: App| render(&a))
        }
        AppsCommand::Create(a) => {
            let body = NewApp {
                name: a.name,
                client_type: Some(if a.public {
                    ClientType::Public
                } else {
                    ClientType::Confidential
                }),
                redirect_uris: a.redirect_uris,
                post_logout_redirect_uris: a.post_logout_uris,
                allowed_scopes: non_empty(a.scopes),
                access_group_id: group_id(&api, a.group.as_deref()).await?,
                access_token_lifetime_secs: a.lifetimes.access_token_lifetime,
                id_token_lifetime_secs: a.lifetimes.id_token_lifetime,
                refresh_token_lifetime_secs: a.lifetimes.refresh_token_lifetime,
                skip_consent: Some(a.skip_consent),
                id_token_signing_alg: a.alg.map(Alg::name),
            };
            let v = api.post("/api/v1/apps", &body).await?;
            ctx.out.data(v, created)
        }
        AppsCommand::Update(a) => {
            let access_group_id = if a.everyone {
                Some(None)
            } else {
                group_id(&api, a.group.as_deref()).await?.map(Some)
            };
            let patch = AppPatch {
                name: a.name,
                redirect_uris: non_empty(a.redirect_uris),
                post_logout_redirect_uris: non_empty(a.post_logout_uris),
                allowed_scopes: non_empty(a.scopes),
                access_group_id,
                access_token_lifetime_secs: a.lifetimes.access_token_lifetime,
                id_token_lifetime_secs: a.lifetimes.id_token_lifetime,
                refresh_token_lifetime_secs: a.lifetimes.refresh_token_lifetime,
                skip_consent: a.skip_consent,
                id_token_signing_alg: a.alg.map(Alg::name),
            };
            let v = api.patch(&app_path(&a.id), &patch).await?;
            ctx.out.data(v, |a: App| render(&a))
        }
        AppsCommand::Delete { id } => {
            api.delete(&app_path(&id)).await?;
            ctx.out.done(&format!(
                "Deleted app {id}. Its client secrets and every token it held no longer work."
            ));
            Ok(())
        }
        AppsCommand::Secret(SecretCommand::Add { id }) => {
            let v = api
                .post_empty(&format!("{}/secrets", app_path(&id)))
                .await?;
            ctx.out.data(v, created)
        }
        AppsCommand::Secret(SecretCommand::Remove { id, secret_id }) => {
            api.delete(&format!("{}/secrets/{}", app_path(&id), seg(&secret_id)))
                .await?;
            ctx.out.done(&format!(
                "Removed client secret {secret_id} of app {id}; it no longer authenticates the app."
            ));
            Ok(())
        }
        AppsCommand::RotateKeys => {
            let v = api.post_empty("/api/v1/apps/keys/rotate").await?;
            ctx.out.data(v, |k: KeysRotated| {
                format!(
                    "New signing keys: {}. Tokens are signed with them from now on; the old keys stay published for a day, until every token they signed has expired.",
                    k.key_ids.join(", ")
                )
            })
        }
    }
}

fn created(c: AppCreated) -> String {
    let mut pairs = vec![
        ("Client id", c.app.id.clone()),
        ("Issuer", c.issuer.clone()),
        (
            "Discovery",
            format!("{}/.well-known/openid-configuration", c.issuer),
        ),
    ];
    if let Some(s) = &c.client_secret {
        pairs.insert(1, ("Client secret", s.clone()));
    }
    let mut out = fields(&pairs);
    if c.client_secret.is_some() {
        out.push_str("\nThe client secret is shown this once: put it in the app's configuration now. To replace it later: dirbridge apps secret add ID.");
    } else {
        out.push_str("\nA public app has no secret: it must use PKCE (S256).");
    }
    out
}

fn render(a: &App) -> String {
    fields(&[
        ("Name", a.name.clone()),
        ("Client id", a.id.clone()),
        ("Type", wire(&a.client_type)),
        ("Redirect URIs", a.redirect_uris.join(" ")),
        ("Post-logout URIs", a.post_logout_redirect_uris.join(" ")),
        ("Scopes", a.allowed_scopes.join(" ")),
        ("Access group", opt(&a.access_group_id)),
        ("Skip consent", yes_no(a.skip_consent)),
        ("ID token alg", a.id_token_signing_alg.clone()),
        (
            "Lifetimes",
            format!(
                "access {} s, ID {} s, refresh {} s",
                a.access_token_lifetime_secs,
                a.id_token_lifetime_secs,
                a.refresh_token_lifetime_secs
            ),
        ),
        (
            "Secrets",
            a.secrets
                .iter()
                .map(|s| format!("{} ({})", s.id, format_rfc3339(s.created_at)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ])
}
