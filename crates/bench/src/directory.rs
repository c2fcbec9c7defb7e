//! The on-premises side: a Samba AD DC or slapd from the testkit binary (`testkit samba|slapd up
//! --users N --json`, cached datasets), the raw reads and writes the benchmarks compare with
//! (`ldapsearch`, `ldapmodify`), run with the OpenLDAP client tools.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::procs::{write_private, Server};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Samba,
    Openldap,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Samba => "Samba AD",
            Kind::Openldap => "OpenLDAP",
        }
    }

    /// `--kind` of `dirbridge agent connector add`.
    pub fn connector_kind(self) -> &'static str {
        match self {
            Kind::Samba => "ad",
            Kind::Openldap => "openldap",
        }
    }
}

/// A running directory and how to reach it.
pub struct Directory {
    pub kind: Kind,
    pub users: usize,
    details: Value,
    work: PathBuf,
    /// Seconds from `up` until the server answered (dataset build on a cold cache included).
    pub ready_secs: f64,
    _server: Server,
}

impl Directory {
    pub fn start(testkit: &Path, kind: Kind, users: usize, work: &Path) -> Result<Directory> {
        let mut cmd = Command::new(testkit);
        cmd.arg(match kind {
            Kind::Samba => "samba",
            Kind::Openldap => "slapd",
        })
        .args(["up", "--users", &users.to_string(), "--json"]);
        let name = format!("testkit {} up", kind.label());
        let (server, details) = Server::spawn_json(
            &name,
            cmd,
            &work.join(format!("{}-testkit.log", kind.connector_kind())),
            Duration::from_secs(900),
        )?;
        let d = Directory {
            kind,
            users,
            ready_secs: details["ready_after_secs"].as_f64().unwrap_or(0.0),
            details,
            work: work.to_path_buf(),
            _server: server,
        };
        write_private(
            &d.service_password_file(),
            d.text("/service_account/password")?,
        )?;
        write_private(&d.admin_password_file(), d.text("/admin/password")?)?;
        Ok(d)
    }

    fn text(&self, pointer: &str) -> Result<&str> {
        self.details
            .pointer(pointer)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("the testkit details have no {pointer}"))
    }

    pub fn ldaps_url(&self) -> Result<&str> {
        self.text("/ldaps_url")
    }
    pub fn ca_file(&self) -> Result<&str> {
        self.text("/ca_file")
    }
    pub fn base_dn(&self) -> Result<&str> {
        self.text("/base_dn")
    }
    pub fn synced_root(&self) -> Result<&str> {
        self.text("/synced_root")
    }
    pub fn service_dn(&self) -> Result<&str> {
        self.text("/service_account/dn")
    }
    pub fn service_password_file(&self) -> PathBuf {
        self.work
            .join(format!("{}-service.pw", self.kind.connector_kind()))
    }
    fn admin_password_file(&self) -> PathBuf {
        self.work
            .join(format!("{}-admin.pw", self.kind.connector_kind()))
    }

    /// A paged `ldapsearch` (`page` entries a page, LDAPS, the service account) of `filter` below
    /// `root` asking for `attrs`; returns the time and the number of entries read. The output is
    /// read in full (as the agent reads it), not thrown away unread.
    pub fn paged_search(
        &self,
        root: &str,
        filter: &str,
        attrs: &[String],
        page: u32,
    ) -> Result<(Duration, u64)> {
        let started = Instant::now();
        let mut child = Command::new("ldapsearch")
            .env("LDAPTLS_CACERT", self.ca_file()?)
            .args([
                "-LLL",
                "-x",
                "-o",
                "ldif-wrap=no",
                "-H",
                self.ldaps_url()?,
                "-D",
            ])
            .arg(self.service_dn()?)
            .arg("-y")
            .arg(self.service_password_file())
            .args(["-b", root, "-E", &format!("pr={page}/noprompt"), filter])
            .args(attrs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("start ldapsearch (apt-get install ldap-utils)")?;
        let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut entries = 0u64;
        for line in BufReader::new(out).split(b'\n') {
            let line = line?;
            if line.starts_with(b"dn:") {
                entries += 1;
            }
        }
        let status = child.wait_with_output()?;
        let elapsed = started.elapsed();
        if !status.status.success() {
            bail!(
                "ldapsearch failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
        Ok((elapsed, entries))
    }

    /// Replaces one attribute of `dn` as the directory's administrator (`ldapmodify`); returns
    /// once the server has committed it.
    pub fn replace(&self, dn: &str, attribute: &str, value: &str) -> Result<()> {
        let ldif = format!(
            "dn: {dn}\nchangetype: modify\nreplace: {attribute}\n{attribute}: {value}\n-\n"
        );
        let mut child = Command::new("ldapmodify")
            .env("LDAPTLS_CACERT", self.ca_file()?)
            .args(["-x", "-H", self.ldaps_url()?, "-D"])
            .arg(self.text("/admin/dn")?)
            .arg("-y")
            .arg(self.admin_password_file())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start ldapmodify")?;
        std::io::Write::write_all(
            child.stdin.as_mut().ok_or_else(|| anyhow!("no stdin"))?,
            ldif.as_bytes(),
        )?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "ldapmodify of {dn} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}
