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
use testkit::dataset::{escape_rdn_value, Dataset, DatasetSpec, DnStyle};

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
    pub fn admin_dn(&self) -> Result<&str> {
        self.text("/admin/dn")
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

/// A synced person the benchmarks act as: the cloud's id and UPN, the directory DN, and the
/// password the directory holds now.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub upn: String,
    pub dn: String,
    pub password: String,
    /// Where the directory's current password is written for the raw bind tools (0600).
    pub password_file: PathBuf,
    /// The address the person's requests come from (`X-Forwarded-For`): one per person.
    pub address: String,
}

impl Directory {
    /// The dataset the testkit loaded (`up --users N`, seed 1: the testkit's default).
    fn dataset(&self) -> Dataset {
        Dataset::generate(DatasetSpec::new(self.users, 1))
    }

    /// Up to `n` ordinary people from the cloud's listing of synced users (`users`: the API's
    /// `User` documents): enabled, no admin role, plain ASCII names (their DNs need no
    /// escaping), with their dataset password.
    pub fn people(&self, users: &[Value], n: usize) -> Result<Vec<Person>> {
        let data = self.dataset();
        let style = match self.kind {
            Kind::Samba => DnStyle::Ad,
            Kind::Openldap => DnStyle::OpenLdap,
        };
        let root = self.synced_root()?;
        let mut by_dn = std::collections::HashMap::new();
        for (i, u) in data.users.iter().enumerate() {
            if u.enabled && !u.admin && u.cn.is_ascii() && escape_rdn_value(&u.cn) == u.cn {
                by_dn.insert(data.user_dn(i, root, style).to_lowercase(), i);
            }
        }
        let secrets = self.work.join("people");
        std::fs::create_dir_all(&secrets)?;
        let mut out = Vec::new();
        for u in users {
            if out.len() == n {
                break;
            }
            let dn = u["onPremises"]["distinguishedName"].as_str().unwrap_or("");
            let admin = u["roles"].as_array().is_some_and(|r| !r.is_empty());
            if admin || u["accountEnabled"] != true {
                continue;
            }
            let Some(&i) = by_dn.get(&dn.to_lowercase()) else {
                continue;
            };
            let p = Person {
                id: u["id"].as_str().context("no id")?.to_string(),
                upn: u["userPrincipalName"]
                    .as_str()
                    .context("no userPrincipalName")?
                    .to_string(),
                dn: dn.to_string(),
                password: data.users[i].password.clone(),
                password_file: secrets.join(format!("{i}.pw")),
                address: format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            };
            write_private(&p.password_file, &p.password)?;
            out.push(p);
        }
        Ok(out)
    }

    /// Sets `person`'s password as the directory's administrator with the raw tool, timed as
    /// the process runs (start to exit): AD `ldapmodify` replacing `unicodePwd` (the quoted
    /// password in UTF-16LE) over LDAPS; OpenLDAP `ldappasswd -s` (RFC 3062 password modify).
    pub fn raw_set_password(&self, person: &mut Person, password: &str) -> Result<Duration> {
        let mut cmd;
        let mut stdin = None;
        match self.kind {
            Kind::Samba => {
                let quoted: Vec<u8> = format!("\"{password}\"")
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect();
                stdin = Some(format!(
                    "dn: {}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n-\n",
                    person.dn,
                    base64(&quoted)
                ));
                cmd = Command::new("ldapmodify");
                cmd.args(["-x", "-H", self.ldaps_url()?, "-D", self.admin_dn()?]);
                cmd.arg("-y").arg(self.admin_password_file());
            }
            Kind::Openldap => {
                cmd = Command::new("ldappasswd");
                cmd.args(["-x", "-H", self.ldaps_url()?, "-D", self.admin_dn()?]);
                cmd.arg("-y").arg(self.admin_password_file());
                cmd.args(["-s", password, &person.dn]);
            }
        }
        cmd.env("LDAPTLS_CACERT", self.ca_file()?)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().context("start ldapmodify / ldappasswd")?;
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
            std::io::Write::write_all(&mut pipe, text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            bail!(
                "{} of {} failed: {}",
                if self.kind == Kind::Samba {
                    "ldapmodify unicodePwd"
                } else {
                    "ldappasswd"
                },
                person.dn,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        person.password = password.to_string();
        write_private(&person.password_file, password)?;
        Ok(elapsed)
    }

    /// The raw bind tool of [`Directory::raw_bind`], as the tables name it.
    pub fn raw_bind_tool(&self) -> &'static str {
        match self.kind {
            Kind::Samba => "ldapsearch -b '' -s base",
            Kind::Openldap => "ldapwhoami",
        }
    }

    /// A simple bind as `person` with the raw tool, timed as the process runs: OpenLDAP
    /// `ldapwhoami`; Samba (no WhoAmI operation) `ldapsearch -b '' -s base` (the root DSE).
    pub fn raw_bind(&self, person: &Person) -> Result<Duration> {
        let mut cmd = Command::new(match self.kind {
            Kind::Samba => "ldapsearch",
            Kind::Openldap => "ldapwhoami",
        });
        cmd.env("LDAPTLS_CACERT", self.ca_file()?)
            .args(["-x", "-H", self.ldaps_url()?, "-D", &person.dn, "-y"])
            .arg(&person.password_file);
        if self.kind == Kind::Samba {
            cmd.args(["-LLL", "-b", "", "-s", "base"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let out = cmd.output().context("start ldapwhoami / ldapsearch")?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            bail!(
                "bind as {} failed: {}",
                person.dn,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(elapsed)
    }
}

/// Standard base64 with padding (LDIF's `::` values).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(A[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_pads_like_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
