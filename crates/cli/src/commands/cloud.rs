//! `dirbridge cloud init` and `dirbridge cloud serve`: configuration from file, environment and
//! flags, then straight into the cloud crate.

use anyhow::Context;
use cloud::config::Config;
use secrecy::ExposeSecret;

use super::Ctx;
use crate::args::{
    CloudCommand, CloudDomainVerifyArgs, CloudDomainsCommand, CloudInitArgs, CloudServeArgs,
    LogFormat,
};
use crate::output::print_json;
use crate::password::{self, Prompt};

pub async fn run(cmd: CloudCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        CloudCommand::Init(args) => init(args, ctx).await,
        CloudCommand::Serve(args) => serve(args).await,
        CloudCommand::Domains(CloudDomainsCommand::Verify(args)) => verify_domain(args, ctx).await,
    }
}

async fn verify_domain(args: CloudDomainVerifyArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let config = configure(
        args.config.as_deref(),
        args.data_dir,
        None,
        args.database_url,
        None,
    )?;
    let d = cloud::bootstrap::verify_domain_on_host(&config, &args.tenant, &args.domain).await?;
    if ctx.out.is_json() {
        print_json(&serde_json::to_value(&d)?);
    } else {
        println!("{} is verified for tenant {}.", d.domain, args.tenant);
    }
    Ok(())
}

/// `load()` (file, then `DIRBRIDGE_*`), then the flags that were given.
fn configure(
    file: Option<&std::path::Path>,
    data_dir: Option<std::path::PathBuf>,
    listen: Option<String>,
    database_url: Option<String>,
    domain_suffix: Option<String>,
) -> anyhow::Result<Config> {
    let mut config = Config::load(file)?;
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    if let Some(l) = listen {
        config.listen = l;
    }
    if let Some(u) = database_url {
        config.database_url = Some(u);
    }
    if let Some(s) = domain_suffix {
        config.domain_suffix = s;
    }
    Ok(config)
}

async fn init(args: CloudInitArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let config = configure(
        args.config.as_deref(),
        Some(args.data_dir),
        None,
        args.database_url,
        args.domain_suffix,
    )?;
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let secret = password::obtain(
        &args.password,
        &format!("Password for {}", args.admin),
        Prompt::Twice,
    )?;
    let done =
        cloud::bootstrap::init(&config, &args.tenant, &args.admin, secret.expose_secret()).await?;
    if ctx.out.is_json() {
        print_json(&serde_json::json!({ "tenant": done.tenant, "admin": done.admin }));
    } else {
        println!(
            "Created tenant {} with the initial domain {}.",
            done.tenant.name, done.tenant.initial_domain
        );
        println!("Global Administrator: {}", done.admin.user_principal_name);
        println!(
            "Next: dirbridge cloud serve --data-dir {}",
            config.data_dir.display()
        );
    }
    Ok(())
}

async fn serve(args: CloudServeArgs) -> anyhow::Result<()> {
    let config = configure(
        args.config.as_deref(),
        args.data_dir,
        args.listen,
        args.database_url,
        None,
    )?;
    init_logging(args.log_format);
    cloud::serve(config).await
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
