//! Cloud settings: a TOML file, then `DIRBRIDGE_*` environment variables over it, then flags
//! (applied by the CLI). Defaults work for the demo.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

pub use crate::notices::{MailTemplate, NotificationsConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: String,
    /// Where the embedded SQLite database lives when no `database_url` is set.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of SQLite.
    pub database_url: Option<String>,
    /// Initial tenant domains are `<tenant>.<domain_suffix>`.
    pub domain_suffix: String,
    /// Lifetime of API tokens handed out at sign-in.
    pub token_lifetime_secs: i64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a password writeback request may take, from submission to the agent's result.
    pub writeback_deadline_secs: u64,
    /// On SIGTERM or Ctrl-C: how long writebacks already in flight get to finish before they
    /// are answered anyway and the process exits (no new ones are taken meanwhile).
    pub shutdown_grace_secs: u64,
    /// Outgoing mail (self-service password reset codes and notices).
    pub smtp: SmtpConfig,
    /// Limits per source address on sign-in and reset starts.
    pub limits: LimitsConfig,
    /// The web portal's cookies.
    pub portal: PortalConfig,
    /// The resolver that looks up domain verification records.
    pub dns: DnsConfig,
    /// The OpenID Connect provider of every tenant.
    pub oidc: OidcConfig,
    /// The mails sent when a password is reset or changed (templates; built-in defaults).
    pub notifications: NotificationsConfig,
    /// The SMS and voice gateways that deliver reset codes to phones.
    pub sms: crate::sms::SmsConfig,
}

/// `[dns]`: where `POST /api/v1/tenant/domains/{domain}/verify` looks up the TXT record.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// `IP:PORT` of recursive resolvers to ask (UDP, then TCP); empty: the host's
    /// `/etc/resolv.conf`.
    pub nameservers: Vec<std::net::SocketAddr>,
    /// How long one lookup may take.
    pub timeout_secs: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            timeout_secs: 5,
        }
    }
}

/// `[oidc]`: the tenants' OpenID Connect providers (docs/oidc.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// The address apps and browsers reach the cloud at, e.g. `https://id.contoso.com`; each
    /// tenant's issuer is `{public_url}/t/{tenant domain}`. Unset: taken from the request's
    /// `Host` (`http://` for loopback hosts, `https://` otherwise) — set it behind a proxy,
    /// so that every instance and every client sees the same issuer.
    pub public_url: Option<String>,
    /// The key-encryption key that seals the tenants' token signing keys in the database
    /// (32 random bytes, created with mode 0600 on first use). Default: `oidc-kek` in the
    /// data dir. Several instances on one database need the same file.
    pub key_file: Option<PathBuf>,
    /// How long an authorization code may be redeemed (seconds, 1 to 600; default 60).
    pub code_lifetime_secs: Option<i64>,
}

/// `[portal]`: the web pages served at `/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalConfig {
    /// Development only, for a browser reaching the cloud over plain HTTP at an address that is
    /// not loopback: session cookies without `Secure` and without the `__Host-` prefix (which
    /// requires `Secure`). Browsers treat `http://127.0.0.1` and `http://localhost` as secure
    /// already, so the demo does not need it. Never set it behind a public address.
    pub insecure_cookies: bool,
    /// A browser session (the portal, and app sign-ins through it) ends after this many seconds
    /// without a request; its lifetime (`token_lifetime_secs`) still bounds it. 0: no idle limit.
    pub idle_timeout_secs: i64,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            insecure_cookies: false,
            idle_timeout_secs: 1800,
        }
    }
}

/// `[limits]`: per source address, on top of the per-account throttles (see `crate::limits`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Refused sign-ins (wrong password, throttled) one address may make a minute; 0 = no limit.
    pub sign_in_per_minute: u32,
    /// `POST /api/v1/sspr/start` requests one address may make a minute; 0 = no limit.
    pub sspr_start_per_minute: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed (their own addresses, exactly).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            sign_in_per_minute: 30,
            sspr_start_per_minute: 30,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[smtp]`: the relay that sends reset codes and notices. With no `host`, no mail is sent (the
/// API answers the same; operators see a warning in the log).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: Option<String>,
    pub port: u16,
    /// The From address, e.g. `dirbridge <no-reply@contoso.com>`.
    pub from: String,
    /// Upgrade the connection with STARTTLS (required unless the relay is on loopback).
    pub starttls: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: None,
            port: 587,
            from: "dirbridge <no-reply@dirbridge.internal>".into(),
            starttls: true,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            database_url: None,
            domain_suffix: "dirbridge.internal".into(),
            token_lifetime_secs: 8 * 3600,
            max_body_bytes: 64 * 1024,
            writeback_deadline_secs: 20,
            shutdown_grace_secs: 5,
            smtp: SmtpConfig::default(),
            limits: LimitsConfig::default(),
            portal: PortalConfig::default(),
            dns: DnsConfig::default(),
            oidc: OidcConfig::default(),
            notifications: NotificationsConfig::default(),
            sms: crate::sms::SmsConfig::default(),
        }
    }
}

impl Config {
    /// Reads `path` (if given), then applies `DIRBRIDGE_*` overrides from the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| {
                    format!("cannot read the configuration file {}", p.display())
                })?;
                toml::from_str(&text).with_context(|| {
                    format!("the configuration file {} is not valid", p.display())
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        crate::notices::check_templates(&config.notifications)?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = get("DIRBRIDGE_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("DIRBRIDGE_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("DIRBRIDGE_DATABASE_URL") {
            self.database_url = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = get("DIRBRIDGE_DOMAIN_SUFFIX") {
            self.domain_suffix = v;
        }
        if let Some(v) = get("DIRBRIDGE_TOKEN_LIFETIME_SECS") {
            self.token_lifetime_secs = v
                .parse()
                .context("DIRBRIDGE_TOKEN_LIFETIME_SECS must be a whole number of seconds")?;
        }
        if let Some(v) = get("DIRBRIDGE_MAX_BODY_BYTES") {
            self.max_body_bytes = v
                .parse()
                .context("DIRBRIDGE_MAX_BODY_BYTES must be a whole number of bytes")?;
        }
        if let Some(v) = get("DIRBRIDGE_WRITEBACK_DEADLINE_SECS") {
            self.writeback_deadline_secs = v
                .parse()
                .ok()
                .filter(|n| (1..=600).contains(n))
                .context(
                "DIRBRIDGE_WRITEBACK_DEADLINE_SECS must be a whole number of seconds from 1 to 600",
            )?;
        }
        if let Some(v) = get("DIRBRIDGE_SHUTDOWN_GRACE_SECS") {
            self.shutdown_grace_secs = v.parse().ok().filter(|n| (0..=60).contains(n)).context(
                "DIRBRIDGE_SHUTDOWN_GRACE_SECS must be a whole number of seconds from 0 to 60",
            )?;
        }
        if let Some(v) = get("DIRBRIDGE_SMTP_HOST") {
            self.smtp.host = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = get("DIRBRIDGE_SMTP_PORT") {
            self.smtp.port = v
                .parse()
                .context("DIRBRIDGE_SMTP_PORT must be a TCP port number")?;
        }
        if let Some(v) = get("DIRBRIDGE_SMTP_FROM") {
            self.smtp.from = v;
        }
        if let Some(v) = get("DIRBRIDGE_SMTP_STARTTLS") {
            self.smtp.starttls = v
                .parse()
                .context("DIRBRIDGE_SMTP_STARTTLS must be true or false")?;
        }
        if let Some(v) = get("DIRBRIDGE_LIMIT_SIGN_IN_PER_MINUTE") {
            self.limits.sign_in_per_minute = v.parse().context(
                "DIRBRIDGE_LIMIT_SIGN_IN_PER_MINUTE must be a whole number (0 turns the limit off)",
            )?;
        }
        if let Some(v) = get("DIRBRIDGE_LIMIT_SSPR_START_PER_MINUTE") {
            self.limits.sspr_start_per_minute = v.parse().context(
                "DIRBRIDGE_LIMIT_SSPR_START_PER_MINUTE must be a whole number (0 turns the limit off)",
            )?;
        }
        if let Some(v) = get("DIRBRIDGE_PORTAL_INSECURE_COOKIES") {
            self.portal.insecure_cookies = v
                .parse()
                .context("DIRBRIDGE_PORTAL_INSECURE_COOKIES must be true or false")?;
        }
        if let Some(v) = get("DIRBRIDGE_PORTAL_IDLE_TIMEOUT_SECS") {
            self.portal.idle_timeout_secs = v
                .parse()
                .ok()
                .filter(|n| *n >= 0)
                .context("DIRBRIDGE_PORTAL_IDLE_TIMEOUT_SECS must be a whole number of seconds (0 turns the idle limit off)")?;
        }
        if let Some(v) = get("DIRBRIDGE_OIDC_PUBLIC_URL") {
            self.oidc.public_url = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = get("DIRBRIDGE_OIDC_KEY_FILE") {
            self.oidc.key_file = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = get("DIRBRIDGE_TRUSTED_PROXIES") {
            self.limits.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().with_context(|| {
                        format!("DIRBRIDGE_TRUSTED_PROXIES: {s:?} is not an IP address")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        Ok(())
    }

    /// The store to open: the database URL, or `dirbridge.db` in the data dir.
    pub fn store_spec(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => self.data_dir.join("dirbridge.db").display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file_values() {
        let mut c: Config =
            toml::from_str("listen = \"0.0.0.0:9000\"\ntoken_lifetime_secs = 60").unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        c.apply_env(|k| match k {
            "DIRBRIDGE_LISTEN" => Some("127.0.0.1:7000".into()),
            "DIRBRIDGE_DATABASE_URL" => Some("postgres://x/y".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000");
        assert_eq!(c.token_lifetime_secs, 60);
        assert_eq!(c.store_spec(), "postgres://x/y");
    }

    #[test]
    fn a_notification_template_that_does_not_render_stops_the_load() {
        let path =
            std::env::temp_dir().join(format!("dirbridge-config-{}.toml", std::process::id()));
        let write = |body: &str| {
            std::fs::write(
                &path,
                format!("[notifications.password_reset]\nsubject = \"Reset\"\nbody = \"{body}\"\n"),
            )
            .unwrap()
        };
        write("{{ user_principal_name }} at {{ at }}");
        let c = Config::load(Some(&path)).unwrap();
        assert!(c.notifications.password_reset.is_some());
        write("{{ new_password }}");
        let e = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(
            e.contains("[notifications.password_reset] does not render"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn smtp_section_and_environment() {
        let mut c: Config =
            toml::from_str("[smtp]\nhost = \"mail.contoso.test\"\nport = 25\nstarttls = false")
                .unwrap();
        assert_eq!(c.smtp.host.as_deref(), Some("mail.contoso.test"));
        assert_eq!((c.smtp.port, c.smtp.starttls), (25, false));
        c.apply_env(|k| match k {
            "DIRBRIDGE_SMTP_PORT" => Some("2525".into()),
            "DIRBRIDGE_SMTP_FROM" => Some("x <x@contoso.test>".into()),
            "DIRBRIDGE_SMTP_HOST" => Some(String::new()),
            _ => None,
        })
        .unwrap();
        assert_eq!((c.smtp.host.as_deref(), c.smtp.port), (None, 2525));
        assert_eq!(c.smtp.from, "x <x@contoso.test>");
        assert!(Config::default().smtp.starttls);
        assert!(toml::from_str::<Config>("[smtp]\nhots = \"x\"").is_err());
    }

    #[test]
    fn limits_section_and_environment() {
        let mut c: Config = toml::from_str(
            "[limits]\nsign_in_per_minute = 5\ntrusted_proxies = [\"10.0.0.1\", \"::1\"]",
        )
        .unwrap();
        assert_eq!(c.limits.sign_in_per_minute, 5);
        assert_eq!(c.limits.sspr_start_per_minute, 30);
        assert_eq!(c.limits.trusted_proxies.len(), 2);
        c.apply_env(|k| match k {
            "DIRBRIDGE_LIMIT_SSPR_START_PER_MINUTE" => Some("0".into()),
            "DIRBRIDGE_TRUSTED_PROXIES" => Some("192.0.2.1, 192.0.2.2".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.limits.sspr_start_per_minute, 0);
        assert_eq!(
            c.limits.trusted_proxies,
            vec![
                "192.0.2.1".parse::<std::net::IpAddr>().unwrap(),
                "192.0.2.2".parse().unwrap()
            ]
        );
        let err = c
            .apply_env(|k| (k == "DIRBRIDGE_TRUSTED_PROXIES").then(|| "proxy.lan".to_string()))
            .unwrap_err();
        assert!(format!("{err:#}").contains("proxy.lan"));
        assert!(toml::from_str::<Config>("[limits]\ntrusted_proxies = [\"x\"]").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_numbers_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
        let mut c = Config::default();
        let err = c
            .apply_env(|k| (k == "DIRBRIDGE_MAX_BODY_BYTES").then(|| "lots".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("DIRBRIDGE_MAX_BODY_BYTES"));
    }
}
