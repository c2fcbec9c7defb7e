//! `dirbridge agent …`: this machine's on-premises agent. Registers it with the cloud, manages
//! its directory connectors, runs sync cycles (once, or as a service loop), and shows its
//! status and event log. Secrets (the registration token, the service account's password) come
//! from files, stdin or the environment, never from arguments.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent::connector::{self, ConnectorConfig, DirectoryKind};
use agent::events::EventLog;
use agent::sync::{Engine, Progress};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use proto::sync::SyncRun;
use secrecy::SecretString;
use serde_json::json;
use zeroize::Zeroizing;

use super::Ctx;
use crate::output::{print_json, Table};
use crate::time::{format_rfc3339, parse_time};

#[derive(Debug, Args)]
pub struct DataDir {
    /// The agent's data directory (keys, connectors, connector space, event log).
    #[arg(long, value_name = "DIR", env = "DIRBRIDGE_AGENT_DATA_DIR")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Register this agent with the cloud (`--cloud URL`), using a one-time token from
    /// `dirbridge agents token create`.
    #[command(
        after_help = "Example:\n  dirbridge agent register --data-dir /var/lib/dirbridge-agent --cloud https://id.example.com --token-file /root/token\n\nCreates the agent's keys in DIR/keys (mode 0600). The token is used once and stored nowhere."
    )]
    Register {
        #[command(flatten)]
        dir: DataDir,
        /// File holding the registration token, or all that `agents token create` printed (`-`
        /// for stdin).
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// A name for admins (default: the host name).
        #[arg(long)]
        name: Option<String>,
    },

    /// Directory connectors: where to read users and groups.
    #[command(subcommand)]
    Connector(ConnectorCommand),

    /// Run sync cycles by hand.
    #[command(subcommand)]
    Sync(SyncCommand),

    /// Run the agent: heartbeat, delta sync every delta interval, full sync every full interval,
    /// until Ctrl-C. Errors are logged as events and retried.
    Run {
        #[command(flatten)]
        dir: DataDir,
    },

    /// This agent's registration, connectors and last runs.
    Status {
        #[command(flatten)]
        dir: DataDir,
    },

    /// The agent's local event log, oldest first.
    #[command(
        after_help = "Examples:\n  dirbridge agent events --data-dir DIR\n  dirbridge agent events --data-dir DIR --since 2026-11-25T08:00:00Z --output json"
    )]
    Events {
        #[command(flatten)]
        dir: DataDir,
        /// Only events at or after this time (RFC 3339, a date, or epoch seconds).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only events of one writeback request (the tracking id the person or the audit log
        /// shows).
        #[arg(long, value_name = "ID")]
        tracking_id: Option<String>,
    },

    /// Password writeback from the cloud to this agent's directory: enable, status, disable.
    #[command(subcommand)]
    Writeback(WritebackCommand),
}

#[derive(Debug, Subcommand)]
pub enum WritebackCommand {
    /// Enable password writeback through this agent. Checks the cloud administrator's
    /// credential (Global Administrator), the connector's directory credential and the service
    /// account's rights on every synced root, then creates a new sealing key and tells the
    /// cloud. The password is read from --password-file, else from the terminal without echo,
    /// else from standard input.
    #[command(
        after_help = "Example:\n  dirbridge agent writeback enable --data-dir /var/lib/dirbridge-agent --connector corp --admin admin@contoso.com\n\nA missing directory right refuses enabling and prints the exact delegation command (samba-tool dsacl / dsacls / olcAccess)."
    )]
    Enable {
        #[command(flatten)]
        dir: DataDir,
        /// The connector whose directory receives the passwords (default: the only one).
        #[arg(long, value_name = "NAME")]
        connector: Option<String>,
        /// The cloud administrator's user principal name (asked for when not given).
        #[arg(long, value_name = "UPN")]
        admin: Option<String>,
        /// Read the cloud administrator's password from this file (its first line).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// The local writeback state (writeback.json, sealing key) and the cloud's view.
    Status {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Stop the cloud sending this agent writeback requests (signed by the agent).
    Disable {
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Add (or replace) a connector. The service account's password comes from
    /// --password-file, --password-stdin or DIRBRIDGE_CONNECTOR_PASSWORD.
    #[command(
        after_help = "Example:\n  DIRBRIDGE_CONNECTOR_PASSWORD=… dirbridge agent connector add --data-dir DIR --name corp --kind ad \\\n    --url ldaps://dc1.corp.example:636 --ca-file /etc/ssl/corp-ca.pem \\\n    --bind-dn 'CN=MSOL_dirbridge,OU=Service Accounts,DC=corp,DC=example' --base-dn DC=corp,DC=example \\\n    --include-ou OU=Staff,DC=corp,DC=example"
    )]
    Add(Box<ConnectorAddArgs>),

    /// Check a connector: TLS, bind, read access, and the delta right (AD DirSync / OpenLDAP
    /// syncrepl); with writeback enabled here (or --writeback), the writeback rights as a
    /// section of their own. Says what is missing and how to grant it.
    Test {
        #[command(flatten)]
        dir: DataDir,
        /// Only this connector (default: all).
        #[arg(long)]
        name: Option<String>,
        /// Check the writeback rights too (done anyway for the connector writeback is enabled
        /// for): run it before `agent writeback enable`.
        #[arg(long)]
        writeback: bool,
    },

    /// The configured connectors.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Debug, Args)]
pub struct ConnectorAddArgs {
    #[command(flatten)]
    dir: DataDir,
    /// Connector name (letters, digits, - and _).
    #[arg(long)]
    name: String,
    /// `ad` or `openldap`.
    #[arg(long)]
    kind: DirectoryKind,
    /// `ldaps://host[:port]`, or `ldap://host[:port]` (always upgraded with StartTLS).
    #[arg(long)]
    url: String,
    /// PEM file with the CA(s) that issued the directory's certificate.
    #[arg(long, value_name = "FILE")]
    ca_file: PathBuf,
    /// The service account's DN.
    #[arg(long)]
    bind_dn: String,
    /// The naming context (AD domain DN) or OpenLDAP suffix.
    #[arg(long)]
    base_dn: String,
    /// Sync only below these OUs (repeatable; default the whole base).
    #[arg(long = "include-ou", value_name = "DN")]
    include_ous: Vec<String>,
    /// Never sync below these OUs (repeatable).
    #[arg(long = "exclude-ou", value_name = "DN")]
    exclude_ous: Vec<String>,
    /// Extra LDAP filter ANDed into user and group searches.
    #[arg(long)]
    filter: Option<String>,
    /// Sync only users who are direct members of this group.
    #[arg(long, value_name = "DN")]
    group_scope: Option<String>,
    /// Where the UPN comes from: an attribute (`mail`) or a template (`{uid}@example.com`).
    #[arg(long, value_name = "ATTR|TEMPLATE")]
    upn_from: Option<String>,
    /// Source anchor attribute (AD: objectGUID or ms-DS-ConsistencyGuid; OpenLDAP: entryUUID).
    #[arg(long)]
    anchor: Option<String>,
    /// OpenLDAP user object classes (repeatable; default inetOrgPerson).
    #[arg(long = "user-class")]
    user_classes: Vec<String>,
    /// OpenLDAP group object classes (repeatable; default groupOfNames, groupOfUniqueNames).
    #[arg(long = "group-class")]
    group_classes: Vec<String>,
    /// Writeback never touches this account (repeatable; OpenLDAP's rootdn is added where
    /// readable; AD protects its admin groups by itself).
    #[arg(long = "protected-dn", value_name = "DN")]
    protected_dns: Vec<String>,
    /// Writeback never touches members of this group, direct or nested (repeatable; OpenLDAP).
    #[arg(long = "protected-group", value_name = "DN")]
    protected_groups: Vec<String>,
    /// File holding the service account's password.
    #[arg(long, value_name = "FILE", conflicts_with = "password_stdin")]
    password_file: Option<PathBuf>,
    /// Read the service account's password from stdin.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Run one sync cycle now (delta, or full with --full) and print a summary.
    #[command(
        after_help = "Examples:\n  dirbridge agent sync run --data-dir DIR\n  dirbridge agent sync run --data-dir DIR --full --output json"
    )]
    Run {
        #[command(flatten)]
        dir: DataDir,
        /// Full import (re-reads everything; finds objects that left the scope).
        #[arg(long)]
        full: bool,
    },
}

pub async fn run(cmd: AgentCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::Register {
            dir,
            token_file,
            name,
        } => {
            let Some(cloud) = ctx.cloud.clone() else {
                bail!("give the cloud's URL with --cloud URL (or DIRBRIDGE_CLOUD)");
            };
            register(ctx, &dir.data_dir, &cloud, &token_file, name).await
        }
        AgentCommand::Connector(ConnectorCommand::Add(args)) => connector_add(ctx, *args),
        AgentCommand::Connector(ConnectorCommand::Test {
            dir,
            name,
            writeback,
        }) => connector_test(ctx, &dir.data_dir, name, writeback).await,
        AgentCommand::Connector(ConnectorCommand::List { dir }) => {
            connector_list(ctx, &dir.data_dir)
        }
        AgentCommand::Sync(SyncCommand::Run { dir, full }) => {
            sync_run(ctx, &dir.data_dir, full).await
        }
        AgentCommand::Run { dir } => service(&dir.data_dir).await,
        AgentCommand::Status { dir } => status(ctx, &dir.data_dir).await,
        AgentCommand::Events {
            dir,
            since,
            tracking_id,
        } => events(ctx, &dir.data_dir, since, tracking_id),
        AgentCommand::Writeback(cmd) => writeback(ctx, cmd).await,
    }
}

async fn writeback(ctx: &Ctx, cmd: WritebackCommand) -> anyhow::Result<()> {
    match cmd {
        WritebackCommand::Enable {
            dir,
            connector,
            admin,
            password_file,
        } => writeback_enable(ctx, &dir.data_dir, connector, admin, password_file).await,
        WritebackCommand::Status { dir } => writeback_status(ctx, &dir.data_dir).await,
        WritebackCommand::Disable { dir } => {
            agent::enable::disable(&dir.data_dir).await?;
            ctx.out.done("Password reset write-back is disabled.");
            Ok(())
        }
    }
}

async fn writeback_enable(
    ctx: &Ctx,
    data_dir: &Path,
    connector: Option<String>,
    admin: Option<String>,
    password_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let interactive = std::io::stdin().is_terminal();
    let upn = match admin {
        Some(u) => u,
        None if interactive => {
            eprint!("Cloud administrator (user principal name): ");
            std::io::stderr().flush().ok();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_string()
        }
        None => bail!("give the cloud administrator with --admin UPN"),
    };
    if upn.is_empty() {
        bail!("the cloud administrator's user principal name is empty");
    }
    let source = crate::password::PasswordSource {
        password_stdin: password_file.is_none() && !interactive,
        password_file,
    };
    let password = crate::password::obtain(
        &source,
        &format!("Password of {upn}"),
        crate::password::Prompt::Once,
    )?;
    let admin = agent::enable::CloudAdmin { upn, password };
    let done = agent::enable::enable(data_dir, connector.as_deref(), &admin).await?;
    for warning in done.unchecked.iter().chain(&done.advice) {
        eprintln!("warning: {warning}");
    }
    if ctx.out.is_json() {
        print_json(&serde_json::to_value(&done)?);
    } else {
        println!("{}", agent::enable::ENABLED_SENTENCE);
    }
    Ok(())
}

async fn writeback_status(ctx: &Ctx, data_dir: &Path) -> anyhow::Result<()> {
    let st = agent::enable::status(data_dir).await?;
    if ctx.out.is_json() {
        print_json(&serde_json::to_value(&st)?);
        return Ok(());
    }
    match &st.local {
        Some(l) => println!(
            "local: enabled for connector {} since {}",
            l.connector,
            format_rfc3339(l.enabled_at)
        ),
        None => println!("local: not enabled on this agent"),
    }
    println!(
        "sealing key: {}",
        if st.sealing_key_present {
            "present"
        } else {
            "missing"
        }
    );
    match (&st.cloud, &st.cloud_error) {
        (Some(c), _) => println!(
            "cloud: {}{}{}",
            if c.enabled { "enabled" } else { "not enabled" },
            c.connector
                .as_deref()
                .map(|n| format!(", connector {n}"))
                .unwrap_or_default(),
            if c.connected {
                ", connected"
            } else {
                ", not connected"
            }
        ),
        (None, Some(e)) => println!("cloud: unknown ({e})"),
        (None, None) => println!("cloud: unknown"),
    }
    Ok(())
}

fn read_secret_file(path: &Path) -> anyhow::Result<SecretString> {
    let mut text = Zeroizing::new(String::new());
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
    } else {
        let t = Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
        text.push_str(&t);
    }
    let s = text.trim();
    if s.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(SecretString::from(s.to_string()))
}

/// The registration token in what `dirbridge agents token create` printed: the bare token,
/// the table form (the token on the first line, then a sentence) or `--output json`.
fn registration_token(text: &SecretString) -> anyhow::Result<SecretString> {
    use secrecy::ExposeSecret;
    let text = text.expose_secret().trim();
    let token = if text.starts_with('{') {
        let v: Zeroizing<String> = Zeroizing::new(
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v["token"].as_str().map(str::to_owned))
                .ok_or_else(|| anyhow::anyhow!("JSON without a \"token\" field"))?,
        );
        v.to_string()
    } else {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string()
    };
    if token.is_empty() || token.contains(char::is_whitespace) {
        bail!("no token found");
    }
    Ok(SecretString::from(token))
}

async fn register(
    ctx: &Ctx,
    data_dir: &Path,
    cloud: &str,
    token_file: &Path,
    name: Option<String>,
) -> anyhow::Result<()> {
    let token = registration_token(&read_secret_file(token_file)?).with_context(|| {
        format!(
            "{} does not hold a registration token: put in it the token `dirbridge agents token create` printed (its whole output, table or --output json, works too)",
            token_file.display()
        )
    })?;
    let name = name
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "agent".into());
    let config = agent::identity::register(data_dir, cloud, &token, &name).await?;
    if ctx.out.is_json() {
        print_json(&serde_json::to_value(&config)?);
    } else {
        println!(
            "Registered agent {} ({}) with {} for tenant {}.\nVerified domains: {}\nNext: dirbridge agent connector add --data-dir {} …",
            config.name,
            config.agent_id,
            config.cloud_url,
            config.tenant_id,
            if config.domains.is_empty() { "(none)".into() } else { config.domains.join(", ") },
            data_dir.display()
        );
    }
    Ok(())
}

fn connector_add(ctx: &Ctx, a: ConnectorAddArgs) -> anyhow::Result<()> {
    let password = if let Some(f) = &a.password_file {
        read_secret_file(f)?
    } else if a.password_stdin {
        read_secret_file(Path::new("-"))?
    } else if let Ok(p) = std::env::var("DIRBRIDGE_CONNECTOR_PASSWORD") {
        SecretString::from(p)
    } else {
        bail!("give the service account's password with --password-file FILE, --password-stdin or DIRBRIDGE_CONNECTOR_PASSWORD");
    };
    let config = ConnectorConfig {
        name: a.name,
        kind: a.kind,
        url: a.url,
        ca_file: std::path::absolute(&a.ca_file).unwrap_or(a.ca_file),
        bind_dn: a.bind_dn,
        base_dn: a.base_dn,
        include_ous: a.include_ous,
        exclude_ous: a.exclude_ous,
        filter: a.filter,
        group_scope: a.group_scope,
        user_classes: a.user_classes,
        group_classes: a.group_classes,
        upn_from: a.upn_from,
        anchor: a.anchor,
        protected: connector::ProtectedAccounts {
            dns: a.protected_dns,
            groups: a.protected_groups,
        },
    };
    connector::save(&a.dir.data_dir, &config, &password)?;
    if ctx.out.is_json() {
        print_json(&serde_json::to_value(&config)?);
    } else {
        println!(
            "Connector {} saved. Check it with: dirbridge agent connector test --data-dir {} --name {}",
            config.name,
            a.dir.data_dir.display(),
            config.name
        );
    }
    Ok(())
}

fn connector_list(ctx: &Ctx, data_dir: &Path) -> anyhow::Result<()> {
    let list = connector::list(data_dir)?;
    if ctx.out.is_json() {
        print_json(&serde_json::to_value(&list)?);
        return Ok(());
    }
    let mut t = Table::new(&["name", "kind", "url", "base", "include"])
        .empty("No connectors. Add one with `dirbridge agent connector add`.");
    for c in list {
        t.row(vec![
            c.name.clone(),
            format!("{:?}", c.kind).to_lowercase(),
            c.url.clone(),
            c.base_dn.clone(),
            c.include_ous.join("; "),
        ]);
    }
    println!("{}", t.render());
    Ok(())
}

async fn connector_test(
    ctx: &Ctx,
    data_dir: &Path,
    name: Option<String>,
    writeback: bool,
) -> anyhow::Result<()> {
    let list = match name {
        Some(n) => vec![connector::load(data_dir, &n)?],
        None => connector::list(data_dir)?,
    };
    if list.is_empty() {
        bail!(
            "no connectors in {}: add one with `dirbridge agent connector add`",
            data_dir.display()
        );
    }
    let enabled_for = agent::enable::local_state(data_dir)?.map(|s| s.connector);
    let print = |title: &str, checks: &[connector::Check]| {
        println!("{title}:");
        for ch in checks {
            println!(
                "  [{}] {}: {}",
                match (ch.ok, ch.warn) {
                    (false, _) => "FAIL",
                    (true, true) => "warn",
                    (true, false) => " ok ",
                },
                ch.name,
                ch.detail
            );
        }
    };
    let mut all_ok = true;
    let mut out = Vec::new();
    for c in &list {
        let checks = connector::test(data_dir, c).await;
        all_ok &= checks.iter().all(|c| c.ok);
        if !ctx.out.is_json() {
            print(&format!("connector {}", c.name), &checks);
        }
        let mut entry = json!({ "connector": c.name, "checks": checks });
        if writeback || enabled_for.as_deref() == Some(c.name.as_str()) {
            let rights = agent::enable::rights_checks(data_dir, c).await;
            all_ok &= rights.iter().all(|c| c.ok);
            if !ctx.out.is_json() {
                print(&format!("connector {}, writeback rights", c.name), &rights);
            }
            entry["writebackRights"] = json!(rights);
        }
        out.push(entry);
    }
    if ctx.out.is_json() {
        print_json(&serde_json::Value::Array(out));
    }
    if !all_ok {
        bail!("some checks failed (see above)");
    }
    Ok(())
}

fn summary(run: &SyncRun) -> String {
    let mut s = format!(
        "{}: {:?} run {:?} — {} added, {} updated, {} deleted, {} errors",
        run.connector, run.kind, run.outcome, run.added, run.updated, run.deleted, run.errors
    );
    if run.pending_deletes > 0 {
        s.push_str(&format!(", {} deletes pending", run.pending_deletes));
    }
    if let Some(m) = &run.message {
        s.push_str(&format!("\n  {m}"));
    }
    s
}

async fn sync_run(ctx: &Ctx, data_dir: &Path, full: bool) -> anyhow::Result<()> {
    let mut engine = Engine::open(data_dir).await?;
    let bar = if ctx.out.is_json() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let b = bar.clone();
    engine.set_progress(Arc::new(move |p: &Progress| {
        b.set_message(format!(
            "{}: {} — {} read, {} exported",
            p.connector, p.phase, p.read, p.exported
        ));
    }));
    let result = engine.run_cycle(full).await;
    bar.finish_and_clear();
    let runs = result?;
    if ctx.out.is_json() {
        print_json(&serde_json::to_value(&runs)?);
    } else {
        for r in &runs {
            println!("{}", summary(r));
        }
    }
    if runs
        .iter()
        .any(|r| r.outcome == proto::sync::RunOutcome::Failed)
    {
        bail!(
            "a sync run failed; details in `dirbridge agent events --data-dir {}`",
            data_dir.display()
        );
    }
    let errors: u32 = runs
        .iter()
        .filter(|r| r.outcome == proto::sync::RunOutcome::CompletedWithErrors)
        .map(|r| r.errors)
        .sum();
    if errors > 0 {
        return Err(super::Exit {
            code: super::EXIT_COMPLETED_WITH_ERRORS,
            message: format!(
                "the sync run completed with {errors} object error(s): the other objects were synced; see which and why with `dirbridge sync errors`"
            ),
        }
        .into());
    }
    Ok(())
}

async fn service(data_dir: &Path) -> anyhow::Result<()> {
    let mut engine = Engine::open(data_dir).await?;
    println!(
        "dirbridge agent running (data in {}); Ctrl-C stops it. Events: dirbridge agent events --data-dir {}",
        data_dir.display(),
        data_dir.display()
    );
    let cycles = agent::service::run(&mut engine, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    println!("stopped after {cycles} sync cycles");
    Ok(())
}

async fn status(ctx: &Ctx, data_dir: &Path) -> anyhow::Result<()> {
    let id = agent::identity::load(data_dir)?;
    let space = agent::space::Space::open(data_dir).await?;
    let mut conns = Vec::new();
    for c in connector::list(data_dir)? {
        let (users, groups) = space.counts(&c.name).await?;
        let last = space.last_run(&c.name).await?;
        let cookie = space.cookie(&c.name).await?.is_some();
        conns.push(json!({
            "name": c.name, "kind": c.kind, "url": c.url,
            "users": users, "groups": groups, "hasDeltaCookie": cookie, "lastRun": last,
        }));
    }
    let v = json!({ "agent": id.config, "connectors": conns });
    if ctx.out.is_json() {
        print_json(&v);
        return Ok(());
    }
    println!(
        "agent {} ({})\ncloud: {}\ntenant: {}",
        id.config.name, id.config.agent_id, id.config.cloud_url, id.config.tenant_id
    );
    for c in conns {
        println!(
            "connector {}: {} users, {} groups in the connector space",
            c["name"].as_str().unwrap_or(""),
            c["users"],
            c["groups"]
        );
        if let Ok(run) = serde_json::from_value::<SyncRun>(c["lastRun"].clone()) {
            println!(
                "  last run {}: {}",
                format_rfc3339(run.finished_at.unwrap_or(run.started_at)),
                summary(&run)
            );
        }
    }
    Ok(())
}

fn events(
    ctx: &Ctx,
    data_dir: &Path,
    since: Option<String>,
    tracking_id: Option<String>,
) -> anyhow::Result<()> {
    let since = since.as_deref().map(parse_time).transpose()?;
    let list = EventLog::open(data_dir).query(since, tracking_id.as_deref())?;
    if ctx.out.is_json() {
        print_json(&serde_json::to_value(&list)?);
        return Ok(());
    }
    let mut t = Table::new(&["time", "level", "id", "code", "message"]).empty("No events.");
    for e in list {
        t.row(vec![
            format_rfc3339(e.time),
            format!("{:?}", e.level).to_lowercase(),
            e.event_id.map(|i| i.to_string()).unwrap_or_default(),
            e.code,
            e.message,
        ]);
    }
    println!("{}", t.render());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn token(text: &str) -> anyhow::Result<String> {
        registration_token(&SecretString::from(text.to_string()))
            .map(|t| t.expose_secret().to_string())
    }

    #[test]
    fn the_token_is_read_from_every_form_token_create_prints() {
        assert_eq!(token("dbr_abc123\n").unwrap(), "dbr_abc123");
        assert_eq!(
            token("dbr_abc123\n\nThis token registers one agent and expires at 2026-12-06T23:00:00Z. Put it in a file.\n").unwrap(),
            "dbr_abc123"
        );
        assert_eq!(
            token("{\n  \"token\": \"dbr_abc123\",\n  \"expiresAt\": 1796600000\n}\n").unwrap(),
            "dbr_abc123"
        );
        assert!(token("{\"expiresAt\": 1}").is_err());
        assert!(token("This token registers one agent").is_err());
    }
}
