//! Directory connectors: `DATA_DIR/connectors/NAME.toml` (where and what to read) and
//! `DATA_DIR/connectors/NAME.secret` (the service account's password, mode 0600). The password
//! never travels on a command line; the CLI reads it from a file, stdin or
//! `DIRBRIDGE_CONNECTOR_PASSWORD`.

use std::path::{Path, PathBuf};

use ldap::ad::rights;
use ldap::{CaBundle, ConnectOptions, Connection, LdapError, Scope};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{private_dir, write_private, AgentError};

/// Which kind of directory.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    Ad,
    Openldap,
}

impl std::str::FromStr for DirectoryKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ad" => Ok(DirectoryKind::Ad),
            "openldap" => Ok(DirectoryKind::Openldap),
            _ => Err(format!("{s}: the kind is `ad` or `openldap`")),
        }
    }
}

/// `DATA_DIR/connectors/NAME.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ConnectorConfig {
    pub name: String,
    pub kind: DirectoryKind,
    /// `ldaps://host[:port]`, or `ldap://host[:port]` for StartTLS.
    pub url: String,
    /// PEM file of the CA(s) that issued the directory's certificate.
    pub ca_file: PathBuf,
    pub bind_dn: String,
    /// The naming context (AD: the domain DN, DirSync reads from it) or the OpenLDAP suffix.
    pub base_dn: String,
    /// Only objects below one of these are synced (empty: everything below `base_dn`).
    #[serde(default)]
    pub include_ous: Vec<String>,
    /// Objects below one of these are not synced.
    #[serde(default)]
    pub exclude_ous: Vec<String>,
    /// Extra LDAP filter ANDed into every user and group search, e.g. `(department=Sales)`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Users are synced only if they are direct members of this group.
    #[serde(default)]
    pub group_scope: Option<String>,
    /// OpenLDAP: object classes of users (default inetOrgPerson).
    #[serde(default)]
    pub user_classes: Vec<String>,
    /// OpenLDAP: object classes of groups (default groupOfNames, groupOfUniqueNames).
    #[serde(default)]
    pub group_classes: Vec<String>,
    /// Where the UPN comes from: an attribute (`mail`, `userPrincipalName`) or a template with
    /// `{attr}` placeholders (`{uid}@example.com`). Default: AD userPrincipalName, OpenLDAP mail.
    #[serde(default)]
    pub upn_from: Option<String>,
    /// Source anchor attribute: `objectGUID` (default on AD), `ms-DS-ConsistencyGuid`, or
    /// `entryUUID` (OpenLDAP, the default there).
    #[serde(default)]
    pub anchor: Option<String>,
    /// Accounts writeback refuses besides the ones the directory marks itself (AD: adminCount
    /// and the protected groups in `tokenGroups`). See docs/writeback.md "Protected accounts".
    #[serde(default, skip_serializing_if = "ProtectedAccounts::is_empty")]
    pub protected: ProtectedAccounts,
}

/// `[protected]` of a connector: accounts whose password writeback never touches.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ProtectedAccounts {
    /// These accounts, by DN (OpenLDAP: the database's rootdn is added where `cn=config` is
    /// readable).
    #[serde(default)]
    pub dns: Vec<String>,
    /// Members of these groups, directly or through other groups (OpenLDAP `member`,
    /// `uniqueMember`, `memberUid`).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl ProtectedAccounts {
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.groups.is_empty()
    }
}

impl ConnectorConfig {
    /// A connector for everything below `base_dn` with the defaults of every optional setting.
    pub fn new(
        name: &str,
        kind: DirectoryKind,
        url: String,
        ca_file: PathBuf,
        bind_dn: String,
        base_dn: String,
    ) -> ConnectorConfig {
        ConnectorConfig {
            name: name.into(),
            kind,
            url,
            ca_file,
            bind_dn,
            base_dn,
            include_ous: vec![],
            exclude_ous: vec![],
            filter: None,
            group_scope: None,
            user_classes: vec![],
            group_classes: vec![],
            upn_from: None,
            anchor: None,
            protected: ProtectedAccounts::default(),
        }
    }

    pub fn anchor_attr(&self) -> &str {
        match (&self.anchor, self.kind) {
            (Some(a), _) => a,
            (None, DirectoryKind::Ad) => "objectGUID",
            (None, DirectoryKind::Openldap) => "entryUUID",
        }
    }

    pub fn upn_rule(&self) -> &str {
        match (&self.upn_from, self.kind) {
            (Some(u), _) => u,
            (None, DirectoryKind::Ad) => "userPrincipalName",
            (None, DirectoryKind::Openldap) => "mail",
        }
    }

    pub fn user_classes(&self) -> Vec<String> {
        if self.user_classes.is_empty() {
            match self.kind {
                DirectoryKind::Ad => vec!["user".into()],
                DirectoryKind::Openldap => vec!["inetOrgPerson".into()],
            }
        } else {
            self.user_classes.clone()
        }
    }

    pub fn group_classes(&self) -> Vec<String> {
        if self.group_classes.is_empty() {
            match self.kind {
                DirectoryKind::Ad => vec!["group".into()],
                DirectoryKind::Openldap => {
                    vec!["groupOfNames".into(), "groupOfUniqueNames".into()]
                }
            }
        } else {
            self.group_classes.clone()
        }
    }

    /// The roots the sync reads below (the include list, or the base).
    pub fn roots(&self) -> Vec<String> {
        if self.include_ous.is_empty() {
            vec![self.base_dn.clone()]
        } else {
            self.include_ous.clone()
        }
    }

    fn extra(&self) -> String {
        match &self.filter {
            Some(f) if !f.trim().is_empty() => {
                let f = f.trim();
                if f.starts_with('(') {
                    f.to_string()
                } else {
                    format!("({f})")
                }
            }
            _ => String::new(),
        }
    }

    /// The filter for users.
    pub fn user_filter(&self) -> String {
        let classes = match self.kind {
            DirectoryKind::Ad => "(objectCategory=person)(objectClass=user)".to_string(),
            DirectoryKind::Openldap => or_classes(&self.user_classes()),
        };
        format!("(&{classes}{})", self.extra())
    }

    /// The filter for groups.
    pub fn group_filter(&self) -> String {
        format!("(&{}{})", or_classes(&self.group_classes()), self.extra())
    }

    /// Users or groups (for delta mechanisms that read both at once).
    pub fn object_filter(&self) -> String {
        let mut classes = self.user_classes();
        classes.extend(self.group_classes());
        format!("(&{}{})", or_classes(&classes), self.extra())
    }

    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions::new(self.url.clone(), CaBundle::File(self.ca_file.clone()))
    }

    /// Checks what can be checked without a server.
    pub fn validate(&self) -> Result<(), AgentError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(AgentError::Config(format!(
                "connector name {:?}: use letters, digits, - and _",
                self.name
            )));
        }
        self.connect_options()
            .tls_mode()
            .map_err(|e| AgentError::Config(e.to_string()))?;
        if self.base_dn.trim().is_empty() {
            return Err(AgentError::Config("the base DN is empty".into()));
        }
        for ou in &self.include_ous {
            if !ldap::dn::is_below(ou, &self.base_dn) {
                return Err(AgentError::Config(format!(
                    "the included OU {ou} is not below the base DN {}",
                    self.base_dn
                )));
            }
        }
        Ok(())
    }
}

fn or_classes(classes: &[String]) -> String {
    let parts: String = classes
        .iter()
        .map(|c| format!("(objectClass={c})"))
        .collect();
    if classes.len() == 1 {
        parts
    } else {
        format!("(|{parts})")
    }
}

pub fn connectors_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("connectors")
}

/// Saves a connector and its password (0600).
pub fn save(
    data_dir: &Path,
    config: &ConnectorConfig,
    password: &SecretString,
) -> Result<(), AgentError> {
    config.validate()?;
    if password.expose_secret().is_empty() {
        return Err(AgentError::Config(
            "the service account password is empty".into(),
        ));
    }
    let dir = connectors_dir(data_dir);
    private_dir(&dir).map_err(AgentError::io(&dir))?;
    let text = toml::to_string(config).map_err(|e| AgentError::Config(e.to_string()))?;
    let p = dir.join(format!("{}.toml", config.name));
    write_private(&p, text.as_bytes()).map_err(AgentError::io(&p))?;
    let p = dir.join(format!("{}.secret", config.name));
    write_private(&p, password.expose_secret().as_bytes()).map_err(AgentError::io(&p))?;
    Ok(())
}

/// Loads one connector.
pub fn load(data_dir: &Path, name: &str) -> Result<ConnectorConfig, AgentError> {
    let p = connectors_dir(data_dir).join(format!("{name}.toml"));
    if !p.exists() {
        return Err(AgentError::NoSuchConnector {
            name: name.to_string(),
            dir: data_dir.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(&p).map_err(AgentError::io(&p))?;
    toml::from_str(&text).map_err(|e| AgentError::Config(format!("{}: {e}", p.display())))
}

/// Every connector, by name.
pub fn list(data_dir: &Path) -> Result<Vec<ConnectorConfig>, AgentError> {
    let dir = connectors_dir(data_dir);
    let mut names = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(rd) => {
            for e in rd {
                let e = e.map_err(AgentError::io(&dir))?;
                let n = e.file_name().to_string_lossy().to_string();
                if let Some(stem) = n.strip_suffix(".toml") {
                    names.push(stem.to_string());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(AgentError::io(&dir)(e)),
    }
    names.sort();
    names.iter().map(|n| load(data_dir, n)).collect()
}

/// The service account's password.
pub fn password(data_dir: &Path, name: &str) -> Result<SecretString, AgentError> {
    let p = connectors_dir(data_dir).join(format!("{name}.secret"));
    let text = Zeroizing::new(std::fs::read_to_string(&p).map_err(AgentError::io(&p))?);
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

/// Connects and binds as the service account.
pub async fn connect(
    config: &ConnectorConfig,
    password: &SecretString,
) -> Result<Connection, AgentError> {
    let mut c = Connection::connect(&config.connect_options())
        .await
        .map_err(AgentError::ldap(&config.name))?;
    c.simple_bind(&config.bind_dn, password)
        .await
        .map_err(AgentError::ldap(&config.name))?;
    Ok(c)
}

/// One check of `connector test`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Passes, but the directory does something the operator should know or change
    /// ([`server_advice`]); printed `[warn]`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warn: bool,
    /// What was found, or what is missing and how to grant it.
    pub detail: String,
}

impl Check {
    pub(crate) fn new(name: &str, ok: bool, detail: String) -> Check {
        Check {
            name: name.into(),
            ok,
            warn: false,
            detail,
        }
    }

    pub(crate) fn warning(name: &str, detail: String) -> Check {
        Check {
            name: name.into(),
            ok: true,
            warn: true,
            detail,
        }
    }
}

/// What an operator must know about this directory server beyond rights, from its root DSE
/// (docs/operations.md "Samba DCs"): on a Samba DC, `old password allowed period`; on a DC
/// without the policy-hints control, that resets cannot enforce password history. Empty for
/// OpenLDAP, or when the root DSE cannot be read.
pub async fn server_advice(c: &mut Connection, config: &ConnectorConfig) -> Vec<Check> {
    if config.kind != DirectoryKind::Ad {
        return Vec::new();
    }
    let Ok(info) = c.ad_server_info().await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if info.samba {
        out.push(Check::warning(
            "old-password",
            "this is a Samba DC: after a reset or change it keeps accepting the previous password for LDAP binds, and so for pass-through sign-in, during smb.conf's `old password allowed period` (default 60 minutes; smb.conf is not readable over LDAP, so this cannot be checked from here). Set `old password allowed period = 0` in the [global] section of smb.conf on every DC and restart samba".into(),
        ));
    }
    if info.policy_hints.is_none() {
        out.push(Check::warning(
            "reset-history",
            format!(
                "this DC does not list the policy-hints control ({} or {}; Samba 4.17 lists neither), so a password reset through writeback (self-service or by an administrator) cannot enforce the on-prem password history; a password change does. Upgrade the DC to a version that offers it, or keep the on-prem history rule in mind when reading reset results",
                ldap::controls::POLICY_HINTS_OID,
                ldap::controls::POLICY_HINTS_DEPRECATED_OID
            ),
        ));
    }
    out
}

/// [`server_advice`] on a connection of its own (best effort: nothing when it cannot bind).
pub async fn advice(data_dir: &Path, config: &ConnectorConfig) -> Vec<Check> {
    let Ok(password) = password(data_dir, &config.name) else {
        return Vec::new();
    };
    let Ok(mut c) = connect(config, &password).await else {
        return Vec::new();
    };
    let out = server_advice(&mut c, config).await;
    let _ = c.unbind().await;
    out
}

/// Checks TLS, the bind, reading the base and each included OU, and (AD) the DirSync right.
pub async fn test(data_dir: &Path, config: &ConnectorConfig) -> Vec<Check> {
    let mut out = Vec::new();
    let mut push = |name: &str, ok: bool, detail: String| {
        out.push(Check {
            name: name.into(),
            ok,
            warn: false,
            detail,
        })
    };
    let password = match password(data_dir, &config.name) {
        Ok(p) => p,
        Err(e) => {
            push("password", false, e.to_string());
            return out;
        }
    };
    let mut c = match Connection::connect(&config.connect_options()).await {
        Ok(c) => {
            push(
                "tls",
                true,
                format!(
                    "TLS to {} verified with {}",
                    config.url,
                    config.ca_file.display()
                ),
            );
            c
        }
        Err(e) => {
            let hint = match &e {
                LdapError::CertificateRejected { .. } => format!(
                    "; the CA file {} does not vouch for the server's certificate (or the certificate does not name the host in the URL)",
                    config.ca_file.display()
                ),
                LdapError::Unreachable { .. } => "; check the host, the port and the firewall".into(),
                _ => String::new(),
            };
            push(
                "tls",
                false,
                format!("{e}{hint} ({})", e.diagnostic().unwrap_or("")),
            );
            return out;
        }
    };
    match c.simple_bind(&config.bind_dn, &password).await {
        Ok(()) => push("bind", true, format!("bound as {}", config.bind_dn)),
        Err(e) => {
            push("bind", false, format!("binding as {} failed: {e}; check the bind DN and the password (`dirbridge agent connector add` stores a new one)", config.bind_dn));
            return out;
        }
    }
    for root in std::iter::once(config.base_dn.clone()).chain(config.include_ous.iter().cloned()) {
        match c.read(&root, &["objectClass"]).await {
            Ok(_) => push("read", true, format!("{root} is readable")),
            Err(e) => push("read", false, format!("cannot read {root}: {e}; grant the account read access (AD: Authenticated Users can read by default)")),
        }
    }
    match c
        .search_page(
            &config.roots()[0],
            Scope::Subtree,
            &config.user_filter(),
            &["cn"],
            5,
            &[],
        )
        .await
    {
        Ok((entries, _)) => push(
            "search",
            true,
            format!(
                "user search works ({} seen in a first page of 5)",
                entries.len()
            ),
        ),
        Err(e) => push("search", false, format!("user search failed: {e}")),
    }
    match config.kind {
        DirectoryKind::Ad => {
            match c
                .ad_dirsync(
                    &config.base_dn,
                    "(objectClass=organizationalUnit)",
                    &["objectGUID"],
                    &[],
                )
                .await
            {
                Ok(_) => push(
                    "dirsync",
                    true,
                    "DirSync works (Replicating Directory Changes is granted)".into(),
                ),
                Err(LdapError::InsufficientAccess { .. }) => {
                    let (sid, account) = account_names(&mut c, config).await;
                    push("dirsync", false, format!(
                        "the account lacks Replicating Directory Changes on {base}, which delta sync (DirSync) needs. Grant it with: samba-tool dsacl set {target} --objectdn={base} --sddl='(OA;;CR;{right};;{sid})' (on Windows: dsacls \"{base}\" /G \"{account}:CA;Replicating Directory Changes\")",
                        base = config.base_dn,
                        target = ldap::rights::samba_tool_target(&config.url),
                        right = rights::REPLICATING_DIRECTORY_CHANGES,
                    ));
                }
                Err(e) => push(
                    "dirsync",
                    false,
                    format!("DirSync failed: {e} ({})", e.diagnostic().unwrap_or("")),
                ),
            }
            match c.ad_can_read_deleted_objects(&config.base_dn).await {
                Ok(true) => push(
                    "deletes",
                    true,
                    "the account can see deleted objects (deletes reach the cloud with each delta)"
                        .into(),
                ),
                Ok(false) => {
                    let (sid, account) = account_names(&mut c, config).await;
                    push("deletes", false, format!(
                        "the account cannot list CN=Deleted Objects,{base}, so deltas do not see deletes (only full imports do). Grant List Contents and Read Property on it: on Windows `dsacls \"CN=Deleted Objects,{base}\" /takeownership` then `dsacls \"CN=Deleted Objects,{base}\" /g {account}:LCRP`; on Samba add the ACE (A;;LCRP;;;{sid}) to that container's nTSecurityDescriptor (with the show-deleted control)",
                        base = config.base_dn,
                    ));
                }
                Err(e) => push(
                    "deletes",
                    false,
                    format!("checking CN=Deleted Objects failed: {e}"),
                ),
            }
        }
        DirectoryKind::Openldap => {
            push_size_limit(&mut c, config, &mut push).await;
            match c.openldap_sync_refresh(&config.base_dn, "(objectClass=organizationalUnit)", &["entryUUID"], None).await {
                Ok(_) => push("syncrepl", true, "syncrepl refresh works (syncprov is loaded)".into()),
                Err(e) => push("syncrepl", false, format!("syncrepl refresh failed: {e}; load the syncprov overlay on the database (olcOverlay=syncprov) and give the account read access to entryUUID and entryCSN")),
            }
        }
    }
    out.extend(server_advice(&mut c, config).await);
    let _ = c.unbind().await;
    out
}

/// OpenLDAP counts a paged search against its size limit too (`olcSizeLimit`, `olcLimits`
/// `size.prtotal`, default 500 entries): page through what a full import reads (every user and
/// group below each root, no attributes) and say how to lift the limit if slapd stops it.
async fn push_size_limit(
    c: &mut Connection,
    config: &ConnectorConfig,
    push: &mut impl FnMut(&str, bool, String),
) {
    let mut seen = 0;
    for root in config.roots() {
        match c
            .search_paged(
                &root,
                Scope::Subtree,
                &config.object_filter(),
                &["1.1"],
                200,
            )
            .await
        {
            Ok(entries) => seen += entries.len(),
            Err(LdapError::Other { code: 4, .. }) => {
                return push("size-limit", false, format!(
                    "the server stopped a paged search below {root} at its size limit (sizeLimitExceeded), so a full import would fail. Lift the limit for the service account in the database of {base} in cn=config (ldapmodify -Y EXTERNAL -H ldapi:/// on the server: `dn: olcDatabase={{N}}mdb,cn=config`, `add: olcLimits`): olcLimits: dn.exact=\"{account}\" size.prtotal=unlimited size.soft=unlimited",
                    base = config.base_dn,
                    account = config.bind_dn,
                ));
            }
            Err(e) => {
                return push(
                    "size-limit",
                    false,
                    format!("paging through the users and groups below {root} failed: {e}"),
                )
            }
        }
    }
    push(
        "size-limit",
        true,
        format!("a paged search returned all {seen} users and groups below the synced roots (no size limit stopped it)"),
    );
}

/// The service account's SID and its `DOMAIN\\sAMAccountName` (the domain's first DC
/// label), for delegation commands; placeholders where unreadable.
async fn account_names(c: &mut Connection, config: &ConnectorConfig) -> (String, String) {
    let me = c
        .read(&config.bind_dn, &["objectSid", "sAMAccountName"])
        .await
        .ok();
    let sid = me
        .as_ref()
        .and_then(|e| e.values("objectSid").first().map(|s| sid_text(s)))
        .unwrap_or_else(|| "<SID of the service account>".into());
    let domain = config
        .base_dn
        .split(',')
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.eq_ignore_ascii_case("DC").then(|| v.to_ascii_uppercase())
        })
        .unwrap_or_else(|| "DOMAIN".into());
    let sam = me
        .as_ref()
        .and_then(|e| e.text("sAMAccountName").map(str::to_owned))
        .unwrap_or_else(|| "<service account>".into());
    (sid, format!("{domain}\\{sam}"))
}

pub use ldap::dn::sid_text;

/// `value` for a POSIX shell: as is when it holds only safe characters, else in single quotes.
fn shell_word(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "=,._-/:@+".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The `dirbridge agent connector add` command that saves `config` again in `data_dir` (the
/// password from `DIRBRIDGE_CONNECTOR_PASSWORD`, never on the command line), for messages that
/// tell an administrator how to change a connector.
pub fn add_command(data_dir: &Path, config: &ConnectorConfig) -> String {
    let mut args: Vec<(&str, String)> = vec![
        ("--data-dir", data_dir.display().to_string()),
        ("--name", config.name.clone()),
        (
            "--kind",
            match config.kind {
                DirectoryKind::Ad => "ad",
                DirectoryKind::Openldap => "openldap",
            }
            .into(),
        ),
        ("--url", config.url.clone()),
        ("--ca-file", config.ca_file.display().to_string()),
        ("--bind-dn", config.bind_dn.clone()),
        ("--base-dn", config.base_dn.clone()),
    ];
    args.extend(
        config
            .include_ous
            .iter()
            .map(|o| ("--include-ou", o.clone())),
    );
    args.extend(
        config
            .exclude_ous
            .iter()
            .map(|o| ("--exclude-ou", o.clone())),
    );
    args.extend(config.filter.iter().map(|f| ("--filter", f.clone())));
    args.extend(
        config
            .group_scope
            .iter()
            .map(|g| ("--group-scope", g.clone())),
    );
    args.extend(config.upn_from.iter().map(|u| ("--upn-from", u.clone())));
    args.extend(config.anchor.iter().map(|a| ("--anchor", a.clone())));
    args.extend(
        config
            .user_classes
            .iter()
            .map(|c| ("--user-class", c.clone())),
    );
    args.extend(
        config
            .group_classes
            .iter()
            .map(|c| ("--group-class", c.clone())),
    );
    let mut out = "DIRBRIDGE_CONNECTOR_PASSWORD=… dirbridge agent connector add".to_string();
    for (flag, value) in args {
        out.push(' ');
        out.push_str(flag);
        out.push(' ');
        out.push_str(&shell_word(&value));
    }
    out
}
