//! What each command does: call the API, print the answer. No decisions about the directory here;
//! the cloud makes them and says why when it refuses.

pub mod agent;
pub mod agents;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod cloud;
pub mod groups;
pub mod licenses;
pub mod policy;
pub mod sync;
pub mod tenant;
pub mod users;

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::api::{seg, Api, ApiFailure};
use crate::args::{Cli, Command, PageArgs};
use crate::output::Output;

/// An error that ends the process with its own exit status (docs/operations.md, "Exit
/// status") instead of 1.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// `agent sync run` finished, but some objects had errors (`CompletedWithErrors`).
pub const EXIT_COMPLETED_WITH_ERRORS: u8 = 3;

/// What every command gets: how to print, and the `--cloud` override.
pub struct Ctx {
    pub out: Output,
    pub cloud: Option<String>,
}

impl Ctx {
    /// A client with the stored sign-in.
    pub fn api(&self) -> anyhow::Result<Api> {
        Api::signed_in(self.cloud.as_deref())
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        out: Output { format: cli.output },
        cloud: cli.cloud,
    };
    match cli.command {
        Command::Cloud(cmd) => cloud::run(cmd, &ctx).await,
        Command::Login(args) => auth::login(args, &ctx).await,
        Command::Logout => auth::logout(&ctx).await,
        Command::Whoami => auth::whoami(&ctx).await,
        Command::Users(cmd) => users::run(cmd, &ctx).await,
        Command::Groups(cmd) => groups::run(cmd, &ctx).await,
        Command::Licenses(cmd) => licenses::run(cmd, &ctx).await,
        Command::Policy(cmd) => policy::run(cmd, &ctx).await,
        Command::Tenant(cmd) => tenant::run(cmd, &ctx).await,
        Command::Audit(args) => audit::run(args, &ctx).await,
        Command::Agents(cmd) => agents::run(cmd, &ctx).await,
        Command::Apps(cmd) => apps::run(cmd, &ctx).await,
        Command::Sync(cmd) => sync::run(cmd, &ctx).await,
        Command::Agent(cmd) => agent::run(cmd, &ctx).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "dirbridge", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Fetches one page, or every page with `--all`, of a `Page<T>` listing. With `--all` the answer is
/// `{"items":[…every item…]}`; otherwise the page as the API sent it.
pub async fn fetch_pages(
    api: &Api,
    path: &str,
    mut query: Vec<(&'static str, String)>,
    page: &PageArgs,
) -> anyhow::Result<Value> {
    if let Some(limit) = page.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(after) = &page.after {
        query.push(("after", after.clone()));
    }
    let first = api.get(path, &query).await?;
    if !page.all {
        return Ok(first);
    }
    let mut items: Vec<Value> = Vec::new();
    let mut current = first;
    loop {
        let next = current
            .get("next")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(Value::Array(batch)) = current.get_mut("items").map(Value::take) {
            items.extend(batch);
        }
        let Some(next) = next else { break };
        let mut q = query.clone();
        q.retain(|(k, _)| *k != "after");
        q.push(("after", next));
        current = api.get(path, &q).await?;
    }
    Ok(json!({ "items": items }))
}

/// Tells a person that a listing has more pages than shown.
pub fn note_more(ctx: &Ctx, value: &Value) {
    if ctx.out.is_json() {
        return;
    }
    if let Some(next) = value.get("next").and_then(Value::as_str) {
        eprintln!("More results: add --all, or --after {next}");
    }
}

pub fn is_status(err: &anyhow::Error, statuses: &[u16]) -> bool {
    err.downcast_ref::<ApiFailure>()
        .is_some_and(|f| statuses.contains(&f.status))
}

/// A group by id or, failing that, by exact display name (case-insensitive). Returns the group.
pub async fn resolve_group(api: &Api, group: &str) -> anyhow::Result<proto::Group> {
    let by_id = api
        .get(&format!("/api/v1/groups/{}", seg(group)), &[])
        .await;
    let not_found = match by_id {
        Ok(v) => return crate::output::decode(v),
        Err(e) if is_status(&e, &[400, 404]) => e,
        Err(e) => return Err(e),
    };
    let all = PageArgs {
        limit: None,
        after: None,
        all: true,
    };
    let listing = fetch_pages(
        api,
        "/api/v1/groups",
        vec![("namePrefix", group.to_string())],
        &all,
    )
    .await?;
    let page: proto::Page<proto::Group> = crate::output::decode(listing)?;
    let mut named: Vec<proto::Group> = page
        .items
        .into_iter()
        .filter(|g| g.display_name.eq_ignore_ascii_case(group))
        .collect();
    match named.len() {
        0 => Err(not_found),
        1 => Ok(named.remove(0)),
        n => {
            let ids: Vec<String> = named.iter().map(|g| g.id.clone()).collect();
            anyhow::bail!(
                "{n} groups are named `{group}`; give the id of the one you mean: {}",
                ids.join(", ")
            )
        }
    }
}

/// Turns ids into names for tables, one lookup per distinct id, falling back to the id.
#[derive(Default)]
pub struct Names {
    users: HashMap<String, String>,
    groups: HashMap<String, String>,
}

impl Names {
    pub async fn user(&mut self, api: &Api, id: &str) -> String {
        if let Some(n) = self.users.get(id) {
            return n.clone();
        }
        let name = match api.get(&format!("/api/v1/users/{}", seg(id)), &[]).await {
            Ok(v) => v
                .get("userPrincipalName")
                .and_then(Value::as_str)
                .unwrap_or(id)
                .to_string(),
            Err(_) => id.to_string(),
        };
        self.users.insert(id.to_string(), name.clone());
        name
    }

    pub async fn group(&mut self, api: &Api, id: &str) -> String {
        if let Some(n) = self.groups.get(id) {
            return n.clone();
        }
        let name = match api.get(&format!("/api/v1/groups/{}", seg(id)), &[]).await {
            Ok(v) => v
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or(id)
                .to_string(),
            Err(_) => id.to_string(),
        };
        self.groups.insert(id.to_string(), name.clone());
        name
    }
}
