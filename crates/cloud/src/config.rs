//! Cloud settings: a TOML file, then `DIRBRIDGE_*` environment variables over it, then flags
//! (applied by the CLI). Defaults work for the demo.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

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
    fn unknown_keys_and_bad_numbers_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
        let mut c = Config::default();
        let err = c
            .apply_env(|k| (k == "DIRBRIDGE_MAX_BODY_BYTES").then(|| "lots".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("DIRBRIDGE_MAX_BODY_BYTES"));
    }
}
