//! The command line: every command, flag and help text of `dirbridge`. Parsing only; what a
//! command does lives in `commands/`.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use proto::{AuthMethod, Role, Source, SsprScope};
use serde::de::DeserializeOwned;

pub use crate::output::OutputFormat;
pub use crate::password::{NewUserPassword, PasswordSource};

#[derive(Debug, Parser)]
#[command(
    name = "dirbridge",
    version,
    propagate_version = true,
    about = "Self-hosted hybrid identity: a cloud tenant for your on-premises directory",
    long_about = "dirbridge gives an organisation a cloud tenant for the users in its Active Directory or \
OpenLDAP: users and groups, licences, self-service password reset with writeback, and an audit log.\n\n\
`dirbridge cloud …` runs the cloud service itself. Every other command is an administrator's client of \
its REST API: sign in once with `dirbridge login`, then manage the tenant.",
    after_help = "Examples:\n  \
dirbridge cloud init --data-dir /var/lib/dirbridge --tenant contoso --admin admin@contoso.dirbridge.internal\n  \
dirbridge cloud serve --data-dir /var/lib/dirbridge --listen 0.0.0.0:8080\n  \
dirbridge login --cloud https://id.contoso.com --user admin@contoso.dirbridge.internal\n  \
dirbridge users list --output json\n  \
dirbridge licenses trial && dirbridge licenses list"
)]
pub struct Cli {
    /// How to print data: aligned columns for people, or the API's JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table, env = "DIRBRIDGE_OUTPUT")]
    pub output: OutputFormat,

    /// Cloud to talk to, e.g. https://id.contoso.com (default: the one you signed in to).
    #[arg(long, global = true, value_name = "URL", env = "DIRBRIDGE_CLOUD")]
    pub cloud: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and run the cloud service (tenant, API, portal).
    #[command(subcommand)]
    Cloud(CloudCommand),

    /// Sign in to a cloud (administrators, cloud users and users synced from on-premises) and
    /// keep the token for later commands.
    #[command(
        long_about = "Sign in to a cloud: an administrator, a cloud user, or a user synced from \
on-premises (checked against the on-premises directory by a running agent). The token is kept in \
$DIRBRIDGE_CONFIG_DIR/credentials.json (default: your configuration directory, e.g. \
~/.config/dirbridge/credentials.json), readable only by you, and used by every other command \
until it expires or you run `dirbridge logout`.\n\n\
The password is never taken from the command line: you are prompted for it, or give \
--password-file or --password-stdin.",
        after_help = "Examples:\n  \
dirbridge login --cloud https://id.contoso.com --user admin@contoso.dirbridge.internal\n  \
pass show dirbridge/admin | dirbridge login --cloud http://127.0.0.1:8080 --user admin@contoso.dirbridge.internal --password-stdin"
    )]
    Login(LoginArgs),

    /// Revoke the stored token and forget it.
    #[command(after_help = "Example:\n  dirbridge logout")]
    Logout,

    /// Show who you are signed in as.
    #[command(after_help = "Example:\n  dirbridge whoami --output json")]
    Whoami,

    /// Manage users: list, create, change, reset passwords, see licences.
    #[command(subcommand)]
    Users(UsersCommand),

    /// Manage groups and their members and licences.
    #[command(subcommand)]
    Groups(GroupsCommand),

    /// See and manage subscriptions and licence assignments.
    #[command(subcommand)]
    Licenses(LicensesCommand),

    /// See and change the self-service password reset policy.
    #[command(subcommand)]
    Policy(PolicyCommand),

    /// See and change tenant settings and domains.
    #[command(subcommand)]
    Tenant(TenantCommand),

    /// Manage the on-premises agents of the tenant: registration tokens, list, revoke.
    #[command(subcommand)]
    Agents(crate::commands::agents::AgentsCommand),

    /// Apps that sign the tenant's users in (OpenID Connect): register, list, secrets, keys.
    #[command(subcommand)]
    Apps(crate::commands::apps::AppsCommand),

    /// Directory sync as the cloud sees it: errors, run history, deletion threshold, staging.
    #[command(subcommand)]
    Sync(crate::commands::sync::SyncCommand),

    /// Run and configure this machine's on-premises agent (register, connectors, sync).
    #[command(subcommand)]
    Agent(crate::commands::agent::AgentCommand),

    /// Search the tenant's audit log, newest first.
    #[command(
        long_about = "Search the tenant's audit log, newest first. Every change and sign-in is recorded \
with who did it, what it was done to, whether it worked, and the tracking id shown to the person \
who made the request.",
        after_help = "Examples:\n  \
dirbridge audit --limit 20\n  \
dirbridge audit --action license.assign --since 2024-05-01\n  \
dirbridge audit --tracking-id 85be9f13-a15a-46a2-83c6-62a191763339"
    )]
    Audit(AuditArgs),

    /// Print a shell completion script.
    #[command(
        long_about = "Print a completion script for your shell to standard output.",
        after_help = "Examples:\n  \
dirbridge completions bash > /etc/bash_completion.d/dirbridge\n  \
dirbridge completions zsh > \"${fpath[1]}/_dirbridge\"\n  \
dirbridge completions fish > ~/.config/fish/completions/dirbridge.fish"
    )]
    Completions {
        /// Shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

// ---------------------------------------------------------------- passwords

// ---------------------------------------------------------------- cloud

#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// Create the database, the tenant and its first Global Administrator.
    #[command(
        long_about = "Create the database (SQLite in --data-dir, or PostgreSQL with --database-url), the \
tenant and its first Global Administrator. The tenant's initial domain is <tenant>.<domain suffix>.\n\n\
The administrator's password is asked twice in the terminal, or read from --password-file or \
--password-stdin; it is never taken from the command line.",
        after_help = "Examples:\n  \
dirbridge cloud init --data-dir ./data --tenant contoso --admin admin@contoso.dirbridge.internal\n  \
dirbridge cloud init --data-dir ./data --tenant contoso --admin admin@contoso.dirbridge.internal --password-file admin.pw"
    )]
    Init(CloudInitArgs),

    /// Run the cloud service until Ctrl-C or SIGTERM.
    #[command(
        long_about = "Run the cloud service (REST API, portal, agent gateway) until Ctrl-C or SIGTERM.\n\n\
Settings come from --config (TOML), then DIRBRIDGE_* environment variables (DIRBRIDGE_LISTEN, \
DIRBRIDGE_DATA_DIR, DIRBRIDGE_DATABASE_URL, DIRBRIDGE_DOMAIN_SUFFIX, DIRBRIDGE_TOKEN_LIFETIME_SECS, \
DIRBRIDGE_MAX_BODY_BYTES), then these flags. Logs go to standard error; set RUST_LOG to change the level.",
        after_help = "Examples:\n  \
dirbridge cloud serve --data-dir ./data\n  \
dirbridge cloud serve --config /etc/dirbridge/cloud.toml --listen 0.0.0.0:8443\n  \
dirbridge cloud serve --database-url postgres://dirbridge@db/dirbridge"
    )]
    Serve(CloudServeArgs),

    /// Tenant domains, from the host (the database's own access, no API).
    #[command(subcommand)]
    Domains(CloudDomainsCommand),
}

#[derive(Debug, Subcommand)]
pub enum CloudDomainsCommand {
    /// Mark a domain verified without a DNS record, for a single-organisation install whose
    /// operator knows the organisation owns it.
    #[command(
        long_about = "Mark a domain verified for a tenant without the DNS TXT record that `dirbridge tenant verify-domain` looks up. Only someone with the database (the host's data directory or the database URL) can do this; the API never verifies a domain without proof. Audited as `host`.",
        after_help = "Example:\n  dirbridge cloud domains verify --data-dir ./data --tenant contoso contoso.com"
    )]
    Verify(CloudDomainVerifyArgs),
}

#[derive(Debug, Args)]
pub struct CloudDomainVerifyArgs {
    /// The data directory of the SQLite database.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The tenant's name (as given to `cloud init`).
    #[arg(long, value_name = "NAME")]
    pub tenant: String,

    /// TOML configuration file (the same one `cloud serve` reads).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Use this PostgreSQL database instead of SQLite in the data directory.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    /// The domain, e.g. contoso.com.
    pub domain: String,
}

#[derive(Debug, Args)]
pub struct CloudInitArgs {
    /// Directory for the SQLite database and other state (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Tenant name: letters, digits and hyphens; it becomes the first label of the initial domain.
    #[arg(long, value_name = "NAME")]
    pub tenant: String,

    /// User principal name of the first Global Administrator; a bare name (`admin`) gets the
    /// initial domain.
    #[arg(long, value_name = "UPN")]
    pub admin: String,

    /// Suffix of initial domains (default: from the configuration, dirbridge.internal).
    #[arg(long, value_name = "SUFFIX")]
    pub domain_suffix: Option<String>,

    /// TOML configuration file (the same one `cloud serve` reads).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Use this PostgreSQL database instead of SQLite in the data directory.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    #[command(flatten)]
    pub password: PasswordSource,
}

#[derive(Debug, Args)]
pub struct CloudServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory holding the SQLite database.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Use this PostgreSQL database instead of SQLite in the data directory.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// ---------------------------------------------------------------- sign-in

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your user principal name, e.g. admin@contoso.dirbridge.internal.
    #[arg(long, value_name = "UPN")]
    pub user: String,

    #[command(flatten)]
    pub password: PasswordSource,
}

// ---------------------------------------------------------------- users

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users, optionally filtered.
    #[command(after_help = "Examples:\n  \
dirbridge users list\n  \
dirbridge users list --upn-prefix ann --source onPremises\n  \
dirbridge users list --sku DIRBRIDGE_PREMIUM --all --output json")]
    List(UsersListArgs),

    /// Show one user.
    #[command(after_help = "Example:\n  dirbridge users show ann@contoso.com")]
    Show {
        /// User id or user principal name.
        #[arg(value_name = "ID|UPN")]
        user: String,
    },

    /// Create a cloud user.
    #[command(
        long_about = "Create a cloud user. Without a password the user exists (and can be licensed) but \
cannot sign in until an administrator sets one with `dirbridge users reset-password`.",
        after_help = "Examples:\n  \
dirbridge users create --upn ann@contoso.com --display-name \"Ann Lee\" --usage-location NO --password-prompt\n  \
dirbridge users create --upn helpdesk@contoso.com --display-name Helpdesk --role passwordAdministrator --password-file pw.txt"
    )]
    Create(UserCreateArgs),

    /// Change a user: only the fields you give are sent.
    #[command(after_help = "Examples:\n  \
dirbridge users update ann@contoso.com --usage-location NO\n  \
dirbridge users update ann@contoso.com --clear-mobile --disable\n  \
dirbridge users update ann@contoso.com --role userAdministrator --role licenseAdministrator")]
    Update(UserUpdateArgs),

    /// Delete a user.
    #[command(after_help = "Example:\n  dirbridge users delete ann@contoso.com")]
    Delete {
        /// User id or user principal name.
        #[arg(value_name = "ID|UPN")]
        user: String,
    },

    /// Set a new password for a user (an administrator's reset). For a user synced from
    /// on-premises the password is written to the on-premises directory by a writeback agent;
    /// the command prints the result and its tracking id, and fails unless it succeeded.
    #[command(after_help = "Examples:\n  \
dirbridge users reset-password ann@contoso.com\n  \
dirbridge users reset-password ann@contoso.com --password-file new.pw\n  \
dirbridge users reset-password ann@contoso.com --password-file new.pw --must-change --unlock")]
    ResetPassword(ResetPasswordArgs),

    /// Unlock a synced user's on-premises account (through password writeback).
    #[command(after_help = "Example:\n  dirbridge users unlock ann@contoso.com")]
    Unlock {
        /// User id or user principal name.
        #[arg(value_name = "ID|UPN")]
        user: String,
    },

    /// Sign a user out everywhere: revoke all of their tokens.
    #[command(after_help = "Example:\n  dirbridge users revoke-tokens ann@contoso.com")]
    RevokeTokens {
        /// User id or user principal name.
        #[arg(value_name = "ID|UPN")]
        user: String,
    },

    /// Show a user's licences, direct and inherited from groups, with their state.
    #[command(after_help = "Example:\n  dirbridge users licenses ann@contoso.com")]
    Licenses {
        /// User id or user principal name.
        #[arg(value_name = "ID|UPN")]
        user: String,
    },

    /// Show whether a user may use password reset with writeback, and if not, why.
    #[command(after_help = "Example:\n  dirbridge users entitlement ann@contoso.com")]
    Entitlement {
        /// User id or user principal name.
        #[arg(value_name = "ID|UPN")]
        user: String,
    },

    /// A user's contact methods for password reset (email, phones): show them masked, or set
    /// them for the user. Security answers are the user's own to register.
    #[command(subcommand)]
    Methods(MethodsCommand),
}

#[derive(Debug, Subcommand)]
pub enum MethodsCommand {
    /// Show a user's registered methods (email and phones masked, questions without answers).
    #[command(after_help = "Example:\n  dirbridge users methods show ann@contoso.com")]
    Show {
        /// User id or user principal name.
        #[arg(value_name = "ID|UPN")]
        user: String,
    },
    /// Set a user's contact methods: only what you give changes.
    #[command(
        after_help = "Examples:\n  dirbridge users methods set ann@contoso.com --email ann.private@example.net --mobile-phone '+47 900 00 000'\n  dirbridge users methods set ann@contoso.com --remove office-phone"
    )]
    Set(MethodsSetArgs),
}

#[derive(Debug, Args)]
pub struct MethodsSetArgs {
    /// User id or user principal name.
    #[arg(value_name = "ID|UPN")]
    pub user: String,
    /// The address reset codes are sent to.
    #[arg(long)]
    pub email: Option<String>,
    /// Mobile phone (E.164, e.g. +4790000000).
    #[arg(long)]
    pub mobile_phone: Option<String>,
    /// Office phone.
    #[arg(long)]
    pub office_phone: Option<String>,
    /// Remove a method (repeatable).
    #[arg(long, value_enum, value_name = "METHOD")]
    pub remove: Vec<ContactMethod>,
}

/// A contact method an administrator may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContactMethod {
    Email,
    MobilePhone,
    OfficePhone,
}

impl ContactMethod {
    /// The field of `PUT …/authentication-methods`.
    pub fn field(self) -> &'static str {
        match self {
            ContactMethod::Email => "email",
            ContactMethod::MobilePhone => "mobilePhone",
            ContactMethod::OfficePhone => "officePhone",
        }
    }
}

#[derive(Debug, Args)]
pub struct UsersListArgs {
    /// Only users whose UPN starts with this (case-insensitive).
    #[arg(long, value_name = "P")]
    pub upn_prefix: Option<String>,

    /// Only users whose display name contains this (case-insensitive).
    #[arg(long, value_name = "S")]
    pub display_name: Option<String>,

    /// Only users holding this SKU, directly or through a group.
    #[arg(long, value_name = "SKU")]
    pub sku: Option<String>,

    /// Only users created in the cloud, or only users synced from on-premises.
    #[arg(long, value_parser = wire_enum::<Source>(&["cloud", "onPremises"]))]
    pub source: Option<Source>,

    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Clone, Default, Args)]
pub struct PageArgs {
    /// At most this many results per page.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,

    /// Continue after this position (the `next` of a previous page).
    #[arg(long, value_name = "CURSOR", conflicts_with = "all")]
    pub after: Option<String>,

    /// Fetch every page, not only the first.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    /// User principal name (sign-in name), e.g. ann@contoso.com.
    #[arg(long, value_name = "UPN")]
    pub upn: String,

    /// Name shown to people.
    #[arg(long, value_name = "NAME")]
    pub display_name: String,

    /// First name.
    #[arg(long, value_name = "NAME")]
    pub given_name: Option<String>,

    /// Last name.
    #[arg(long, value_name = "NAME")]
    pub surname: Option<String>,

    /// Email address (also used to send password reset codes).
    #[arg(long, value_name = "ADDRESS")]
    pub mail: Option<String>,

    /// Mobile phone number, e.g. +4791234567.
    #[arg(long, value_name = "NUMBER")]
    pub mobile: Option<String>,

    /// Office phone number.
    #[arg(long, value_name = "NUMBER")]
    pub office_phone: Option<String>,

    /// Country where the user uses services (ISO 3166-1 alpha-2, e.g. NO); needed for licences.
    #[arg(long, value_name = "CC")]
    pub usage_location: Option<String>,

    /// Create the account disabled (it cannot sign in).
    #[arg(long)]
    pub disabled: bool,

    /// Administrator role to give (repeat for several).
    #[arg(long = "role", value_name = "ROLE", value_parser = role_parser())]
    pub roles: Vec<Role>,

    #[command(flatten)]
    pub password: NewUserPassword,
}

#[derive(Debug, Args)]
pub struct UserUpdateArgs {
    /// User id or user principal name.
    #[arg(value_name = "ID|UPN")]
    pub user: String,

    /// New user principal name.
    #[arg(long, value_name = "UPN")]
    pub upn: Option<String>,

    /// New display name.
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,

    /// New first name.
    #[arg(long, value_name = "NAME", conflicts_with = "clear_given_name")]
    pub given_name: Option<String>,
    /// Remove the first name.
    #[arg(long)]
    pub clear_given_name: bool,

    /// New last name.
    #[arg(long, value_name = "NAME", conflicts_with = "clear_surname")]
    pub surname: Option<String>,
    /// Remove the last name.
    #[arg(long)]
    pub clear_surname: bool,

    /// New email address.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "clear_mail")]
    pub mail: Option<String>,
    /// Remove the email address.
    #[arg(long)]
    pub clear_mail: bool,

    /// New mobile phone number, e.g. +4791234567.
    #[arg(long, value_name = "NUMBER", conflicts_with = "clear_mobile")]
    pub mobile: Option<String>,
    /// Remove the mobile phone number.
    #[arg(long)]
    pub clear_mobile: bool,

    /// New office phone number.
    #[arg(long, value_name = "NUMBER", conflicts_with = "clear_office_phone")]
    pub office_phone: Option<String>,
    /// Remove the office phone number.
    #[arg(long)]
    pub clear_office_phone: bool,

    /// ISO 3166-1 alpha-2 country code, e.g. NO.
    #[arg(long, value_name = "CC", conflicts_with = "clear_usage_location")]
    pub usage_location: Option<String>,
    /// Remove the usage location (licences then cannot be assigned directly).
    #[arg(long)]
    pub clear_usage_location: bool,

    /// Allow the account to sign in.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Block the account from signing in.
    #[arg(long)]
    pub disable: bool,

    /// Replace the user's administrator roles with these (repeat for several).
    #[arg(long = "role", value_name = "ROLE", value_parser = role_parser(), conflicts_with = "clear_roles")]
    pub roles: Vec<Role>,
    /// Remove every administrator role.
    #[arg(long)]
    pub clear_roles: bool,
}

#[derive(Debug, Args)]
pub struct ResetPasswordArgs {
    /// User id or user principal name.
    #[arg(value_name = "ID|UPN")]
    pub user: String,

    #[command(flatten)]
    pub password: PasswordSource,

    /// Synced users: the person must change the password at next sign-in.
    #[arg(long)]
    pub must_change: bool,

    /// Synced users: also unlock the on-premises account.
    #[arg(long)]
    pub unlock: bool,
}

// ---------------------------------------------------------------- groups

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// List groups.
    #[command(
        after_help = "Examples:\n  dirbridge groups list\n  dirbridge groups list --name-prefix sales --all"
    )]
    List(GroupsListArgs),

    /// Create a cloud group.
    #[command(
        after_help = "Example:\n  dirbridge groups create --name \"SSPR users\" --description \"May reset their own password\""
    )]
    Create {
        /// Display name of the group.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// What the group is for.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },

    /// Show one group.
    #[command(after_help = "Example:\n  dirbridge groups show \"SSPR users\"")]
    Show {
        /// Group id or exact display name.
        #[arg(value_name = "GROUP")]
        group: String,
    },

    /// Rename a group or change its description.
    #[command(
        after_help = "Example:\n  dirbridge groups update \"SSPR users\" --name \"Password reset pilot\""
    )]
    Update {
        /// Group id or exact display name.
        #[arg(value_name = "GROUP")]
        group: String,
        /// New display name.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// What the group is for.
        #[arg(long, value_name = "TEXT", conflicts_with = "clear_description")]
        description: Option<String>,
        /// Remove the description.
        #[arg(long)]
        clear_description: bool,
    },

    /// Delete a group (its members are not deleted).
    #[command(after_help = "Example:\n  dirbridge groups delete \"SSPR users\"")]
    Delete {
        /// Group id or exact display name.
        #[arg(value_name = "GROUP")]
        group: String,
    },

    /// List a group's direct members.
    #[command(after_help = "Example:\n  dirbridge groups members \"SSPR users\"")]
    Members {
        /// Group id or exact display name.
        #[arg(value_name = "GROUP")]
        group: String,
    },

    /// Add a user or a group to a group.
    #[command(after_help = "Examples:\n  \
dirbridge groups add-member \"SSPR users\" --user ann@contoso.com\n  \
dirbridge groups add-member \"SSPR users\" --group Helpdesk")]
    AddMember {
        /// Group id or exact display name.
        #[arg(value_name = "GROUP")]
        group: String,
        /// User id or UPN to add.
        #[arg(
            long,
            value_name = "ID|UPN",
            required_unless_present = "member_group",
            conflicts_with = "member_group"
        )]
        user: Option<String>,
        /// Group id or exact display name to add.
        #[arg(long = "group", value_name = "GROUP", id = "member_group")]
        member_group: Option<String>,
    },

    /// Remove a member from a group.
    #[command(
        after_help = "Example:\n  dirbridge groups remove-member \"SSPR users\" ann@contoso.com"
    )]
    RemoveMember {
        /// Group id or exact display name.
        #[arg(value_name = "GROUP")]
        group: String,
        /// Member id (a user may also be given by UPN).
        #[arg(value_name = "MEMBER_ID")]
        member: String,
    },

    /// Show the licences a group gives its members.
    #[command(after_help = "Example:\n  dirbridge groups licenses \"SSPR users\"")]
    Licenses {
        /// Group id or exact display name.
        #[arg(value_name = "GROUP")]
        group: String,
    },
}

#[derive(Debug, Args)]
pub struct GroupsListArgs {
    /// Only groups whose name starts with this (case-insensitive).
    #[arg(long, value_name = "P")]
    pub name_prefix: Option<String>,

    #[command(flatten)]
    pub page: PageArgs,
}

// ---------------------------------------------------------------- licences

#[derive(Debug, Subcommand)]
pub enum LicensesCommand {
    /// Units per SKU: enabled, warning, suspended, locked out, consumed.
    #[command(
        long_about = "Units per SKU, like Get-MsolAccountSku: how many are enabled, in warning (expired, \
grace period), suspended, locked out, and how many are consumed by assignments.",
        after_help = "Example:\n  dirbridge licenses list"
    )]
    List,

    /// The SKUs this cloud offers and the service plans each unlocks.
    #[command(after_help = "Example:\n  dirbridge licenses skus")]
    Skus,

    /// Start a free trial subscription (100 units for 90 days).
    #[command(after_help = "Example:\n  dirbridge licenses trial --sku DIRBRIDGE_PREMIUM")]
    Trial {
        /// SKU to try.
        #[arg(long, value_name = "SKU", default_value = "DIRBRIDGE_PREMIUM")]
        sku: String,
    },

    /// Add a purchased subscription.
    #[command(
        after_help = "Example:\n  dirbridge licenses purchase --sku DIRBRIDGE_PREMIUM --units 250 --term-days 365"
    )]
    Purchase {
        /// SKU id, e.g. DIRBRIDGE_PREMIUM (dirbridge licenses skus lists them).
        #[arg(long, value_name = "SKU")]
        sku: String,
        /// Number of seats.
        #[arg(long, value_name = "N")]
        units: u32,
        /// Length of the term in days.
        #[arg(long, value_name = "D")]
        term_days: u32,
    },

    /// Assign a licence to a user directly (the user needs a usage location).
    #[command(
        after_help = "Example:\n  dirbridge licenses assign --user ann@contoso.com --sku DIRBRIDGE_PREMIUM"
    )]
    Assign {
        /// User id or UPN.
        #[arg(long, value_name = "ID|UPN")]
        user: String,
        /// SKU id, e.g. DIRBRIDGE_PREMIUM (dirbridge licenses skus lists them).
        #[arg(long, value_name = "SKU")]
        sku: String,
    },

    /// Remove a user's direct licence.
    #[command(
        after_help = "Example:\n  dirbridge licenses remove --user ann@contoso.com --sku DIRBRIDGE_PREMIUM"
    )]
    Remove {
        /// User id or UPN.
        #[arg(long, value_name = "ID|UPN")]
        user: String,
        /// SKU id, e.g. DIRBRIDGE_PREMIUM (dirbridge licenses skus lists them).
        #[arg(long, value_name = "SKU")]
        sku: String,
    },

    /// License every member of a group (members without a usage location get the tenant's).
    #[command(
        after_help = "Example:\n  dirbridge licenses assign-group --group \"SSPR users\" --sku DIRBRIDGE_PREMIUM"
    )]
    AssignGroup {
        /// Group id or exact display name.
        #[arg(long, value_name = "GROUP")]
        group: String,
        /// SKU id, e.g. DIRBRIDGE_PREMIUM (dirbridge licenses skus lists them).
        #[arg(long, value_name = "SKU")]
        sku: String,
    },

    /// Stop licensing a group's members through the group.
    #[command(
        after_help = "Example:\n  dirbridge licenses remove-group --group \"SSPR users\" --sku DIRBRIDGE_PREMIUM"
    )]
    RemoveGroup {
        /// Group id or exact display name.
        #[arg(long, value_name = "GROUP")]
        group: String,
        /// SKU id, e.g. DIRBRIDGE_PREMIUM (dirbridge licenses skus lists them).
        #[arg(long, value_name = "SKU")]
        sku: String,
    },

    /// Assignments in an error state (e.g. CountViolation) and why.
    #[command(after_help = "Example:\n  dirbridge licenses errors")]
    Errors,
}

// ---------------------------------------------------------------- password reset policy

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the tenant's password reset policy, the administrators' policy, and writeback status.
    #[command(after_help = "Example:\n  dirbridge policy show")]
    Show,

    /// Change the given settings of the password reset policy; the others stay as they are.
    #[command(
        long_about = "Change the given settings of the self-service password reset policy; the others stay \
as they are. The cloud checks the whole policy and refuses a combination that breaks a rule (for \
example two methods required but only one allowed), saying which.",
        after_help = "Examples:\n  \
dirbridge policy set --enabled-for all --methods-required 1 --methods email,mobilePhone\n  \
dirbridge policy set --enabled-for group --group \"SSPR users\" --writeback true\n  \
dirbridge policy set --methods email,securityQuestions --questions-to-register 3 --questions-to-answer 3\n  \
dirbridge policy set --helpdesk-url https://help.contoso.com"
    )]
    Set(PolicySetArgs),

    /// List the predefined security questions.
    #[command(after_help = "Example:\n  dirbridge policy questions")]
    Questions,
}

#[derive(Debug, Default, Args)]
pub struct PolicySetArgs {
    /// Who may reset their own password.
    #[arg(long, value_parser = wire_enum::<SsprScope>(&["none", "group", "all"]))]
    pub enabled_for: Option<SsprScope>,

    /// The group allowed when --enabled-for is group (id or exact display name).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// How many methods a user must pass (1 or 2).
    #[arg(long, value_name = "N")]
    pub methods_required: Option<u8>,

    /// Methods users may use, comma-separated.
    #[arg(
        long,
        value_name = "METHOD,…",
        value_delimiter = ',',
        value_parser = wire_enum::<AuthMethod>(&["email", "mobilePhone", "officePhone", "securityQuestions", "authenticatorApp"])
    )]
    pub methods: Option<Vec<AuthMethod>>,

    /// How many security questions a user registers (3–5).
    #[arg(long, value_name = "N")]
    pub questions_to_register: Option<u8>,

    /// How many security questions a user answers to reset (3–5).
    #[arg(long, value_name = "N")]
    pub questions_to_answer: Option<u8>,

    /// Add a question of your own to choose from (repeat for several).
    #[arg(long, value_name = "Q")]
    pub add_question: Vec<String>,

    /// Remove a question from the list (repeat for several).
    #[arg(long, value_name = "Q")]
    pub remove_question: Vec<String>,

    /// Ask users to register their methods when they sign in.
    #[arg(long, value_name = "true|false")]
    pub registration_required: Option<bool>,

    /// Ask users to reconfirm their methods every N days (0 = never).
    #[arg(long, value_name = "N")]
    pub reconfirm_days: Option<u16>,

    /// Email users when their password is reset.
    #[arg(long, value_name = "true|false")]
    pub notify_users: Option<bool>,

    /// Email all administrators when an administrator resets their password.
    #[arg(long, value_name = "true|false")]
    pub notify_admins: Option<bool>,

    /// Show this link to users who cannot reset their password.
    #[arg(long, value_name = "URL", conflicts_with_all = ["helpdesk_email", "no_helpdesk"])]
    pub helpdesk_url: Option<String>,

    /// Show this email address to users who cannot reset their password.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_helpdesk")]
    pub helpdesk_email: Option<String>,

    /// Show no helpdesk contact.
    #[arg(long)]
    pub no_helpdesk: bool,

    /// Write new passwords back to the on-premises directory.
    #[arg(long, value_name = "true|false")]
    pub writeback: Option<bool>,

    /// Let users unlock their on-premises account without resetting the password.
    #[arg(long, value_name = "true|false")]
    pub unlock_without_reset: Option<bool>,
}

// ---------------------------------------------------------------- tenant

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Show the tenant: name, domains, defaults.
    #[command(after_help = "Example:\n  dirbridge tenant show")]
    Show,

    /// Change tenant settings.
    #[command(
        after_help = "Examples:\n  dirbridge tenant set --default-usage-location NO\n  dirbridge tenant set --soft-match false"
    )]
    Set {
        /// Country for group-licensed members without a usage location (ISO 3166-1 alpha-2).
        #[arg(
            long,
            value_name = "CC",
            conflicts_with = "clear_default_usage_location"
        )]
        default_usage_location: Option<String>,
        /// Remove the default usage location.
        #[arg(long)]
        clear_default_usage_location: bool,
        /// Match new synced users onto existing cloud users by UPN or mail.
        #[arg(long, value_name = "true|false")]
        soft_match: Option<bool>,
    },

    /// Claim a domain; prints the DNS TXT record that proves it (then `verify-domain`).
    #[command(
        long_about = "Claim a domain for the tenant. It is unverified until its DNS has the TXT record \
this prints; only verified domains carry user principal names, soft match and sign-in.",
        after_help = "Example:\n  dirbridge tenant add-domain contoso.com"
    )]
    AddDomain {
        /// Domain name, e.g. contoso.com.
        domain: String,
    },

    /// Look up a claimed domain's TXT record and verify the domain.
    #[command(after_help = "Example:\n  dirbridge tenant verify-domain contoso.com")]
    VerifyDomain {
        /// Domain name, e.g. contoso.com.
        domain: String,
    },

    /// List the tenant's domains, verified or not.
    Domains,
}

// ---------------------------------------------------------------- audit

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records by this actor (a UPN, or `system`).
    #[arg(long, value_name = "UPN")]
    pub actor: Option<String>,

    /// Only this action, e.g. user.create, license.assign, signIn.
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,

    /// Only records about this target (a UPN, group, SKU…).
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,

    /// Only records at or after this time (RFC 3339, a date, or epoch seconds).
    #[arg(long, value_name = "TIME", value_parser = time_parser)]
    pub since: Option<i64>,

    /// Only records before this time (RFC 3339, a date, or epoch seconds).
    #[arg(long, value_name = "TIME", value_parser = time_parser)]
    pub until: Option<i64>,

    /// Only records of one request, by the tracking id a person was shown.
    #[arg(long, value_name = "ID")]
    pub tracking_id: Option<String>,

    #[command(flatten)]
    pub page: PageArgs,
}

// ---------------------------------------------------------------- value parsers

/// Accepts exactly the API's spelling of a proto enum (so completions list them) and turns it into
/// the proto type through serde, so the two cannot drift apart.
fn wire_enum<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).map(|name: String| {
        serde_json::from_value(serde_json::Value::String(name))
            .expect("possible values are wire names")
    })
}

fn role_parser() -> impl TypedValueParser<Value = Role> {
    wire_enum::<Role>(&[
        "globalAdministrator",
        "userAdministrator",
        "passwordAdministrator",
        "licenseAdministrator",
    ])
}

fn time_parser(s: &str) -> Result<i64, String> {
    crate::time::parse_time(s).map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dirbridge").chain(args.iter().copied()))
    }

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_argument_says_what_it_is_for() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let here = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(here.clone());
                }
                walk(sub, &here, missing);
            }
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() && !matches!(arg.get_id().as_str(), "help" | "version")
                {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "dirbridge", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    #[test]
    fn role_names_match_the_wire_spelling() {
        for role in Role::ALL {
            let cli = parse(&[
                "users",
                "create",
                "--upn",
                "a@b.c",
                "--display-name",
                "A",
                "--role",
                role.as_str(),
            ])
            .unwrap();
            let Command::Users(UsersCommand::Create(args)) = cli.command else {
                panic!()
            };
            assert_eq!(args.roles, vec![role]);
        }
    }

    #[test]
    fn no_command_accepts_a_password_argument() {
        for args in [
            &["login", "--user", "a@b.c", "--password", "x"][..],
            &[
                "users",
                "create",
                "--upn",
                "a@b.c",
                "--display-name",
                "A",
                "--password",
                "x",
            ],
            &["users", "reset-password", "a@b.c", "--password", "x"],
            &[
                "cloud",
                "init",
                "--data-dir",
                "d",
                "--tenant",
                "t",
                "--admin",
                "a@b.c",
                "--password",
                "x",
            ],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{args:?}"
            );
        }
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse(&["users", "list", "--output", "json", "--cloud", "http://x:1"]).unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.cloud.as_deref(), Some("http://x:1"));
        let cli = parse(&[
            "login",
            "--cloud",
            "http://x:1",
            "--user",
            "a@b.c",
            "--password-stdin",
        ])
        .unwrap();
        let Command::Login(login) = cli.command else {
            panic!()
        };
        assert!(login.password.password_stdin);
    }

    #[test]
    fn policy_methods_are_comma_separated_wire_names() {
        let cli = parse(&[
            "policy",
            "set",
            "--methods",
            "email,mobilePhone",
            "--enabled-for",
            "group",
        ])
        .unwrap();
        let Command::Policy(PolicyCommand::Set(set)) = cli.command else {
            panic!()
        };
        assert_eq!(
            set.methods,
            Some(vec![AuthMethod::Email, AuthMethod::MobilePhone])
        );
        assert_eq!(set.enabled_for, Some(SsprScope::Group));
        assert!(parse(&["policy", "set", "--methods", "sms"]).is_err());
        assert!(parse(&["policy", "set", "--helpdesk-url", "u", "--no-helpdesk"]).is_err());
    }

    #[test]
    fn contradictory_update_flags_are_refused() {
        assert!(parse(&["users", "update", "u", "--enable", "--disable"]).is_err());
        assert!(parse(&[
            "users",
            "update",
            "u",
            "--usage-location",
            "NO",
            "--clear-usage-location"
        ])
        .is_err());
        assert!(parse(&["users", "update", "u", "--clear-usage-location"]).is_ok());
    }

    #[test]
    fn add_member_needs_exactly_one_kind() {
        assert!(parse(&["groups", "add-member", "g"]).is_err());
        assert!(parse(&["groups", "add-member", "g", "--user", "u", "--group", "h"]).is_err());
        let cli = parse(&["groups", "add-member", "g", "--group", "h"]).unwrap();
        let Command::Groups(GroupsCommand::AddMember {
            member_group, user, ..
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!((member_group.as_deref(), user), (Some("h"), None));
    }

    #[test]
    fn audit_times_accept_rfc3339_and_epoch() {
        let cli = parse(&[
            "audit",
            "--since",
            "2024-05-01T12:00:00Z",
            "--until",
            "1714600000",
        ])
        .unwrap();
        let Command::Audit(a) = cli.command else {
            panic!()
        };
        assert_eq!(
            (a.since, a.until),
            (Some(1_714_564_800), Some(1_714_600_000))
        );
        assert!(parse(&["audit", "--since", "last tuesday"]).is_err());
    }

    #[test]
    fn source_filter_uses_api_spelling() {
        let cli = parse(&["users", "list", "--source", "onPremises", "--all"]).unwrap();
        let Command::Users(UsersCommand::List(l)) = cli.command else {
            panic!()
        };
        assert_eq!(l.source, Some(Source::OnPremises));
        assert!(l.page.all);
        assert!(parse(&["users", "list", "--source", "onprem"]).is_err());
    }
}
