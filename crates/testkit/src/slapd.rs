//! A throwaway OpenLDAP server (slapd from Debian's packages).
//!
//! * cn=config is generated per instance and loaded with `slapadd -n 0`: back_mdb, the
//!   `syncprov` overlay with a session log (syncrepl refreshOnly works, deletes included) and
//!   the `ppolicy` overlay with a default policy (minimum length 8, `pwdCheckQuality: 2`,
//!   history 5, lockout after 5 failures). TLS uses a certificate from [`TestCa::shared`]; the
//!   server listens on `ldap://` (StartTLS) and `ldaps://` on free ports of 127.0.0.1.
//! * The data (`slapadd -n 1`, offline, before start) is the base tree, the service accounts
//!   and optionally a [`Dataset`]; the loaded database is cached per dataset, so an instance
//!   starts in a fraction of a second even with 100,000 users.
//!
//! Checked on Debian 12 (OpenLDAP 2.5.13): the ppolicy schema is built in; `pwdCheckQuality: 2`
//! without a `pwdCheckModule` checks only `pwdMinLength` on cleartext passwords (the password
//! modify extended operation always sends cleartext), and refuses pre-hashed `userPassword`
//! values with `insufficientPasswordQuality`. Refusals come back as result 19 with the ppolicy
//! response control (e.g. error 6 passwordTooShort, 8 passwordInHistory).
//!
//! Service accounts ([`OpenLdapServiceAccount`]) are ordinary entries granted rights by ACLs on
//! the synced root `ou=Corp`: write `userPassword` (the password modify operation needs it) and
//! write the ppolicy lock attributes. They are never the rootdn, which would bypass ppolicy.

use std::fs::File;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ldap3::Mod;
use serde::Serialize;

use crate::ca::{CertFiles, TestCa};
use crate::cache;
use crate::dataset::{escape_rdn_value, ssha, Dataset, DatasetSpec, DnStyle};
use crate::ldapc::{self, attr, Target};
use crate::process::{self, ServerProcess};
use crate::samba::Credentials;

/// The suffix of the test database.
pub const BASE_DN: &str = "dc=dirbridge,dc=test";
/// The subtree dirbridge syncs; the service accounts' ACLs cover it.
pub const SYNCED_ROOT: &str = "ou=Corp,dc=dirbridge,dc=test";
/// Where [`Slapd::create_ou`] puts per-test OUs.
pub const TESTS_OU: &str = "ou=Tests,ou=Corp,dc=dirbridge,dc=test";
/// Where the service accounts live.
pub const SERVICE_OU: &str = "ou=Service Accounts,dc=dirbridge,dc=test";
/// The default password policy entry.
pub const POLICY_DN: &str = "cn=default,ou=policies,dc=dirbridge,dc=test";
/// The rootdn (fixtures only: it bypasses ACLs and ppolicy).
pub const ROOT_DN: &str = "cn=admin,dc=dirbridge,dc=test";

const ROOT_PASSWORD: &str = "Testkit-Root-Pass!";
const SERVICE_PASSWORD: &str = "Testkit-Svc-Pass-1!";
const MODULE_DIR: &str = "/usr/lib/ldap";
const SCHEMA_DIR: &str = "/etc/ldap/schema";

/// The OpenLDAP service accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum OpenLdapServiceAccount {
    /// May set passwords (write `userPassword`) and lock/unlock (write `pwdAccountLockedTime`)
    /// below the synced root, and read everything.
    Full,
    /// Lacks write access to `userPassword`.
    MissingPasswordWrite,
    /// Lacks write access to the lock attributes.
    MissingLockWrite,
}

impl OpenLdapServiceAccount {
    pub const ALL: [OpenLdapServiceAccount; 3] = [
        OpenLdapServiceAccount::Full,
        OpenLdapServiceAccount::MissingPasswordWrite,
        OpenLdapServiceAccount::MissingLockWrite,
    ];

    /// The `cn`.
    pub fn name(self) -> &'static str {
        match self {
            OpenLdapServiceAccount::Full => "dirbridge-sync",
            OpenLdapServiceAccount::MissingPasswordWrite => "dirbridge-nopasswd",
            OpenLdapServiceAccount::MissingLockWrite => "dirbridge-nolock",
        }
    }

    /// The DN.
    pub fn dn(self) -> String {
        format!("cn={},{SERVICE_OU}", self.name())
    }
}

/// The default ppolicy's settings (`None` leaves a setting as it is).
#[derive(Clone, Debug, Default)]
pub struct PpolicySettings {
    pub min_length: Option<u32>,
    pub check_quality: Option<u32>,
    pub in_history: Option<u32>,
    pub max_failure: Option<u32>,
    pub min_age: Option<Duration>,
    /// `pwdMustChange`: a user whose password an administrator set (`pwdReset: TRUE`) must
    /// change it before doing anything else.
    pub must_change: Option<bool>,
}

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct SlapdOptions {
    /// Load this dataset below [`SYNCED_ROOT`] (offline with slapadd, cached).
    pub dataset: Option<DatasetSpec>,
}

/// How long the phases of a start took.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StartTimings {
    #[serde(serialize_with = "crate::process::as_secs")]
    /// slapadd of the data, zero when the cached database was there.
    pub template: Duration,
    #[serde(serialize_with = "crate::process::as_secs")]
    /// Copying the cached database.
    pub copy: Duration,
    #[serde(serialize_with = "crate::process::as_secs")]
    /// From spawning slapd until LDAPS answered.
    pub start: Duration,
}

/// A running slapd.
pub struct Slapd {
    ldap_port: u16,
    ldaps_port: u16,
    tls: CertFiles,
    ca_pem: String,
    dataset: Option<Dataset>,
    shared: bool,
    timings: StartTimings,
    dir: PathBuf,
    next_ou: AtomicU64,
    process: Mutex<ServerProcess>,
    instance_dir: Mutex<Option<tempfile::TempDir>>,
}

impl Slapd {
    /// The instance shared by all tests of this process (with [`DatasetSpec::small`] loaded).
    pub fn shared() -> &'static Slapd {
        Slapd::try_shared().unwrap_or_else(|e| panic!("starting the shared slapd: {e:#}"))
    }

    /// Like [`Slapd::shared`], returning the error.
    pub fn try_shared() -> Result<&'static Slapd> {
        static SHARED: OnceLock<Slapd> = OnceLock::new();
        static INIT: Mutex<()> = Mutex::new(());
        if let Some(s) = SHARED.get() {
            return Ok(s);
        }
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = SHARED.get() {
            return Ok(s);
        }
        let mut slapd = Slapd::start(&SlapdOptions {
            dataset: Some(DatasetSpec::small()),
        })?;
        slapd.shared = true;
        let _ = SHARED.set(slapd);
        process::at_exit(Box::new(|| {
            if let Some(s) = SHARED.get() {
                s.shutdown();
            }
        }));
        Ok(SHARED.get().expect("just set"))
    }

    /// A new instance without a dataset.
    pub fn start_fresh() -> Result<Slapd> {
        Slapd::start(&SlapdOptions::default())
    }

    /// A new instance.
    pub fn start(options: &SlapdOptions) -> Result<Slapd> {
        Slapd::start_limited(options, false)
    }

    /// A new instance with slapd's own size limit (500 entries, paged searches included:
    /// `olcSizeLimit: 500` and no `olcLimits`), instead of the unlimited paged total the
    /// testkit otherwise gives authenticated users.
    pub fn start_with_default_size_limit(options: &SlapdOptions) -> Result<Slapd> {
        Slapd::start_limited(options, true)
    }

    fn start_limited(options: &SlapdOptions, default_size_limit: bool) -> Result<Slapd> {
        let t0 = Instant::now();
        let (template, built) = template(options.dataset)?;
        let template_time = if built { t0.elapsed() } else { Duration::ZERO };

        let instance = process::instance_dir("slapd")?;
        let dir = instance.path().to_path_buf();
        let t1 = Instant::now();
        cache::copy_tree(&template.join("db"), &dir.join("db"))?;
        let copy = t1.elapsed();

        let ca = TestCa::shared();
        let tls = ca
            .issue_server_cert(&["localhost"], &[Ipv4Addr::LOCALHOST.into()])?
            .write(&dir, "slapd", ca)?;
        let conf_dir = dir.join("slapd.d");
        std::fs::create_dir_all(&conf_dir)?;
        let config = dir.join("config.ldif");
        std::fs::write(&config, config_ldif(&dir, Some(&tls), default_size_limit))?;
        process::run(
            Command::new(process::find_program("slapadd")?)
                .args(["-n", "0", "-F"])
                .arg(&conf_dir)
                .arg("-l")
                .arg(&config),
        )
        .context("slapadd -n 0 (cn=config)")?;

        // Free ports can be taken between the check and slapd's bind: retry a few times.
        let mut last_err = None;
        for _ in 0..5 {
            let ldap_port = process::free_port(Ipv4Addr::LOCALHOST)?;
            let ldaps_port = process::free_port(Ipv4Addr::LOCALHOST)?;
            if ldap_port == ldaps_port {
                continue;
            }
            let t2 = Instant::now();
            match spawn(&dir, &conf_dir, ldap_port, ldaps_port, ca) {
                Ok(server) => {
                    return Ok(Slapd {
                        ldap_port,
                        ldaps_port,
                        tls,
                        ca_pem: ca.cert_pem().to_owned(),
                        dataset: options.dataset.map(Dataset::generate),
                        shared: false,
                        timings: StartTimings {
                            template: template_time,
                            copy,
                            start: t2.elapsed(),
                        },
                        dir,
                        next_ou: AtomicU64::new(1),
                        process: Mutex::new(server),
                        instance_dir: Mutex::new(Some(instance)),
                    })
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no free ports")))
    }

    /// `ldap://127.0.0.1:<port>` (StartTLS; plain binds are refused by nothing here, so use
    /// StartTLS as production would).
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:<port>`
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// The CA certificate file that verifies this server.
    pub fn ca_cert_path(&self) -> &Path {
        &self.tls.ca
    }

    /// The CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn base_dn(&self) -> &'static str {
        BASE_DN
    }

    pub fn synced_root(&self) -> &'static str {
        SYNCED_ROOT
    }

    /// The rootdn (fixtures only).
    pub fn admin(&self) -> Credentials {
        Credentials {
            dn: ROOT_DN.into(),
            login: ROOT_DN.into(),
            password: ROOT_PASSWORD.into(),
        }
    }

    /// A service account.
    pub fn service_account(&self, account: OpenLdapServiceAccount) -> Credentials {
        Credentials {
            dn: account.dn(),
            login: account.dn(),
            password: SERVICE_PASSWORD.into(),
        }
    }

    pub fn dataset(&self) -> Option<&Dataset> {
        self.dataset.as_ref()
    }

    /// Credentials of dataset user `i` (its initial password). `login` is the DN.
    pub fn dataset_user(&self, i: usize) -> Option<Credentials> {
        let d = self.dataset.as_ref()?;
        let u = d.users.get(i)?;
        let dn = d.user_dn(i, SYNCED_ROOT, DnStyle::OpenLdap);
        Some(Credentials {
            login: dn.clone(),
            dn,
            password: u.password.clone(),
        })
    }

    /// Credentials of [`Dataset::sample_user`].
    pub fn sample_user(&self) -> Option<Credentials> {
        let d = self.dataset.as_ref()?;
        let sample = d.sample_user();
        let i = d.users.iter().position(|u| std::ptr::eq(u, sample))?;
        self.dataset_user(i)
    }

    pub fn is_shared(&self) -> bool {
        self.shared
    }

    pub fn timings(&self) -> &StartTimings {
        &self.timings
    }

    pub fn pid(&self) -> u32 {
        self.process.lock().map(|p| p.pid()).unwrap_or(0)
    }

    /// The instance directory (slapd.d, db, certificates, slapd.log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn admin_target(&self) -> Target {
        Target {
            url: self.ldaps_url(),
            ca_pem: self.ca_pem.clone(),
            starttls: false,
            bind: Some((ROOT_DN.into(), ROOT_PASSWORD.into())),
        }
    }

    /// Creates a fresh OU for one test below [`TESTS_OU`] and returns its DN.
    pub fn create_ou(&self, name: &str) -> Result<String> {
        let n = self.next_ou.fetch_add(1, Ordering::Relaxed);
        let unique = format!("{name}-{}-{n}", std::process::id());
        let dn = format!("ou={},{TESTS_OU}", escape_rdn_value(&unique));
        ldapc::add(
            &self.admin_target(),
            &dn,
            vec![
                attr("objectClass", &[b"organizationalUnit"]),
                attr("ou", &[unique.as_bytes()]),
            ],
        )?;
        Ok(dn)
    }

    /// Creates `uid=<uid>,<ou_dn>` (inetOrgPerson) with `password`, as the rootdn (no policy
    /// check; ppolicy hashes the cleartext).
    pub fn create_user(&self, ou_dn: &str, uid: &str, password: &str) -> Result<Credentials> {
        let dn = format!("uid={},{ou_dn}", escape_rdn_value(uid));
        ldapc::add(
            &self.admin_target(),
            &dn,
            vec![
                attr("objectClass", &[b"inetOrgPerson"]),
                attr("uid", &[uid.as_bytes()]),
                attr("cn", &[uid.as_bytes()]),
                attr("sn", &[b"Testuser"]),
                attr("mail", &[format!("{uid}@dirbridge.test").as_bytes()]),
                attr("userPassword", &[password.as_bytes()]),
            ],
        )?;
        Ok(Credentials {
            login: dn.clone(),
            dn,
            password: password.into(),
        })
    }

    /// Creates `cn=<name>,<ou_dn>` (groupOfNames) with `members` (at least one: the schema
    /// requires a member) and returns its DN.
    pub fn create_group(&self, ou_dn: &str, name: &str, members: &[&str]) -> Result<String> {
        let dn = format!("cn={},{ou_dn}", escape_rdn_value(name));
        let members: Vec<&[u8]> = members.iter().map(|m| m.as_bytes()).collect();
        ldapc::add(
            &self.admin_target(),
            &dn,
            vec![
                attr("objectClass", &[b"groupOfNames"]),
                attr("cn", &[name.as_bytes()]),
                attr("member", &members),
            ],
        )?;
        Ok(dn)
    }

    /// Deletes an entry, as the rootdn.
    pub fn admin_delete(&self, dn: &str) -> Result<()> {
        ldapc::delete(&self.admin_target(), dn)
    }

    /// Renames an entry under the same parent (`new_rdn` like `ou=Other`), as the rootdn;
    /// returns the new DN.
    pub fn admin_rename(&self, dn: &str, new_rdn: &str) -> Result<String> {
        ldapc::rename(&self.admin_target(), dn, new_rdn)?;
        let parent = dn.split_once(',').map(|(_, p)| p).unwrap_or_default();
        Ok(format!("{new_rdn},{parent}"))
    }

    /// Whether the server answers a bind and a base search within `timeout` (a wedged
    /// slapd does not).
    pub fn answers_within(&self, timeout: Duration) -> bool {
        let target = self.admin_target();
        ldapc::block_on(async {
            tokio::time::timeout(timeout, async {
                let mut ldap = ldapc::connect(&target).await?;
                ldap.search(BASE_DN, ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"])
                    .await?
                    .success()?;
                let _ = ldap.unbind().await;
                anyhow::Ok(())
            })
            .await
            .is_ok_and(|r| r.is_ok())
        })
    }

    /// [`Slapd::admin_replace`] that gives up after `timeout` (a wedged slapd never answers a
    /// write).
    pub fn admin_replace_within(
        &self,
        dn: &str,
        attribute: &str,
        values: &[&str],
        timeout: Duration,
    ) -> Result<()> {
        let target = self.admin_target();
        let values: std::collections::HashSet<Vec<u8>> =
            values.iter().map(|v| v.as_bytes().to_vec()).collect();
        let mods = vec![Mod::Replace(attribute.as_bytes().to_vec(), values)];
        ldapc::block_on(async {
            tokio::time::timeout(timeout, async {
                let mut ldap = ldapc::connect(&target).await?;
                ldap.modify(dn, mods).await?.success()?;
                let _ = ldap.unbind().await;
                anyhow::Ok(())
            })
            .await
            .map_err(|_| anyhow::anyhow!("no answer to a write of {dn} within {timeout:?}"))?
        })
    }

    /// Replaces attributes of an entry, as the rootdn.
    pub fn admin_replace(&self, dn: &str, attribute: &str, values: &[&str]) -> Result<()> {
        let values = values.iter().map(|v| v.as_bytes().to_vec()).collect();
        ldapc::modify(
            &self.admin_target(),
            dn,
            vec![Mod::Replace(attribute.as_bytes().to_vec(), values)],
        )
    }

    /// Changes the default password policy. Refused on the shared instance.
    pub fn set_password_policy(&self, p: &PpolicySettings) -> Result<()> {
        if self.shared {
            bail!("set_password_policy changes every user's policy: use Slapd::start_fresh()");
        }
        let mut mods = Vec::new();
        let mut set = |name: &str, v: String| {
            mods.push(Mod::Replace(
                name.as_bytes().to_vec(),
                std::iter::once(v.into_bytes()).collect(),
            ))
        };
        if let Some(v) = p.min_length {
            set("pwdMinLength", v.to_string());
        }
        if let Some(v) = p.check_quality {
            set("pwdCheckQuality", v.to_string());
        }
        if let Some(v) = p.in_history {
            set("pwdInHistory", v.to_string());
        }
        if let Some(v) = p.max_failure {
            set("pwdMaxFailure", v.to_string());
        }
        if let Some(v) = p.min_age {
            set("pwdMinAge", v.as_secs().to_string());
        }
        if let Some(v) = p.must_change {
            set(
                "pwdMustChange",
                if v { "TRUE" } else { "FALSE" }.to_string(),
            );
        }
        ldapc::modify(&self.admin_target(), POLICY_DN, mods)
    }

    /// Stops the server and removes its directory (also what dropping does).
    pub fn shutdown(&self) {
        if let Ok(mut p) = self.process.lock() {
            p.stop();
        }
        if let Ok(mut d) = self.instance_dir.lock() {
            d.take();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn spawn(
    dir: &Path,
    conf_dir: &Path,
    ldap_port: u16,
    ldaps_port: u16,
    ca: &TestCa,
) -> Result<ServerProcess> {
    let log_path = dir.join("slapd.log");
    let log = File::create(&log_path)?;
    let debug = std::env::var("DIRBRIDGE_TESTKIT_SLAPD_DEBUG").unwrap_or_else(|_| "0".into());
    let mut cmd = Command::new(process::find_program("slapd")?);
    cmd.arg("-F")
        .arg(conf_dir)
        .arg("-h")
        .arg(format!(
            "ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/"
        ))
        .args(["-d", &debug])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = process::spawn_server(cmd).context("starting slapd")?;
    let mut server = ServerProcess::new("slapd", child);
    let target = Target {
        url: format!("ldaps://127.0.0.1:{ldaps_port}"),
        ca_pem: ca.cert_pem().to_owned(),
        starttls: false,
        bind: None,
    };
    let ready = process::wait_until("slapd to answer LDAPS", Duration::from_secs(30), || {
        server.ensure_running()?;
        if !process::port_open(SocketAddr::from((Ipv4Addr::LOCALHOST, ldaps_port))) {
            return Ok(false);
        }
        Ok(ldapc::root_dse(&target).is_ok())
    });
    if let Err(e) = ready {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!("{e:#}\n--- slapd.log\n{log}");
    }
    Ok(server)
}

/// The cn=config LDIF of an instance in `dir` (database in `dir/db`).
fn config_ldif(dir: &Path, tls: Option<&CertFiles>, default_size_limit: bool) -> String {
    let d = dir.display();
    let svc = OpenLdapServiceAccount::Full.dn();
    let nopw = OpenLdapServiceAccount::MissingPasswordWrite.dn();
    let nolock = OpenLdapServiceAccount::MissingLockWrite.dn();
    let tls = tls
        .map(|t| {
            format!(
                "olcTLSCACertificateFile: {}\nolcTLSCertificateFile: {}\nolcTLSCertificateKeyFile: {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            )
        })
        .unwrap_or_default();
    let root_pw = ssha(ROOT_PASSWORD, 0x1234_5678);
    let (frontend_limit, users_limit) = if default_size_limit {
        ("olcSizeLimit: 500", "")
    } else {
        (
            "olcSizeLimit: size.soft=500 size.hard=unlimited size.pr=1000 size.prtotal=unlimited",
            "olcLimits: {0}users size.soft=500 size.hard=unlimited size.pr=1000 size.prtotal=unlimited\n",
        )
    };
    format!(
        "dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {d}/slapd.pid
olcArgsFile: {d}/slapd.args
{tls}
dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: {{0}}back_mdb
olcModuleLoad: {{1}}ppolicy
olcModuleLoad: {{2}}syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://{SCHEMA_DIR}/core.ldif

include: file://{SCHEMA_DIR}/cosine.ldif

include: file://{SCHEMA_DIR}/inetorgperson.ldif

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcAccess: {{0}}to dn.base=\"\" by * read
olcAccess: {{1}}to dn.base=\"cn=Subschema\" by * read
{frontend_limit}

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {BASE_DN}
olcRootDN: {ROOT_DN}
olcRootPW: {root_pw}
olcDbDirectory: {d}/db
olcDbMaxSize: 8589934592
olcDbIndex: objectClass eq
olcDbIndex: entryCSN,entryUUID eq
olcDbIndex: uid,mail eq
olcDbIndex: cn eq,sub
olcDbIndex: member eq
{users_limit}olcAccess: {{0}}to dn.subtree=\"{SYNCED_ROOT}\" attrs=userPassword by dn.exact=\"{svc}\" write by dn.exact=\"{nolock}\" write by self write by anonymous auth by * none
olcAccess: {{1}}to dn.subtree=\"{SYNCED_ROOT}\" attrs=pwdAccountLockedTime,pwdFailureTime,pwdReset by dn.exact=\"{svc}\" write by dn.exact=\"{nopw}\" write by users read by * none
olcAccess: {{2}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{3}}to * by users read by * none

dn: olcOverlay={{0}}syncprov,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {{0}}syncprov
olcSpCheckpoint: 100 10
olcSpSessionlog: 10000

dn: olcOverlay={{1}}ppolicy,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {{1}}ppolicy
olcPPolicyDefault: {POLICY_DN}
olcPPolicyHashCleartext: TRUE
olcPPolicyUseLockout: TRUE
"
    )
}

/// The base tree: suffix, synced root, tests OU, service accounts, the default policy.
fn base_ldif() -> String {
    let mut s = format!(
        "dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
dc: dirbridge
o: dirbridge test

dn: {SYNCED_ROOT}
objectClass: organizationalUnit
ou: Corp

dn: {TESTS_OU}
objectClass: organizationalUnit
ou: Tests

dn: {SERVICE_OU}
objectClass: organizationalUnit
ou: Service Accounts

dn: ou=policies,{BASE_DN}
objectClass: organizationalUnit
ou: policies

dn: {POLICY_DN}
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdMinLength: 8
pwdCheckQuality: 2
pwdInHistory: 5
pwdLockout: TRUE
pwdMaxFailure: 5
pwdLockoutDuration: 300
pwdFailureCountInterval: 300
pwdAllowUserChange: TRUE
pwdMustChange: FALSE
pwdSafeModify: FALSE

"
    );
    for (i, a) in OpenLdapServiceAccount::ALL.iter().enumerate() {
        s.push_str(&format!(
            "dn: {}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: {}\nuserPassword: {}\n\n",
            a.dn(),
            a.name(),
            ssha(SERVICE_PASSWORD, 0xABCD + i as u64)
        ));
    }
    s
}

/// The cached database for `dataset`: (directory holding `db/`, whether it was built now).
fn template(dataset: Option<DatasetSpec>) -> Result<(PathBuf, bool)> {
    let version = cache::tool_version(
        process::find_program("slapd")?.to_str().unwrap_or("slapd"),
        &["-VV"],
    );
    let probe = config_ldif(Path::new("/x"), None, false);
    let key = cache::key(&[
        "slapd",
        &version,
        &probe,
        &base_ldif(),
        &dataset.map(|d| d.key()).unwrap_or_default(),
    ]);
    let mut built = false;
    let dir = cache::get_or_build("slapd-data", &key, |dir| {
        built = true;
        let conf_dir = dir.join("slapd.d");
        std::fs::create_dir_all(&conf_dir)?;
        std::fs::create_dir_all(dir.join("db"))?;
        let config = dir.join("config.ldif");
        std::fs::write(&config, config_ldif(dir, None, false))?;
        process::run(
            Command::new(process::find_program("slapadd")?)
                .args(["-n", "0", "-F"])
                .arg(&conf_dir)
                .arg("-l")
                .arg(&config),
        )
        .context("slapadd -n 0")?;
        let data = dir.join("data.ldif");
        let mut w = std::io::BufWriter::new(File::create(&data)?);
        w.write_all(base_ldif().as_bytes())?;
        if let Some(spec) = dataset {
            Dataset::generate(spec).write_openldap_ldif(&mut w, SYNCED_ROOT)?;
        }
        w.flush()?;
        drop(w);
        process::run(
            Command::new(process::find_program("slapadd")?)
                .args(["-q", "-w", "-n", "1", "-F"])
                .arg(&conf_dir)
                .arg("-l")
                .arg(&data),
        )
        .context("slapadd -n 1 (data)")?;
        std::fs::remove_file(&data)?;
        std::fs::remove_dir_all(&conf_dir)?;
        std::fs::remove_file(&config)?;
        Ok(())
    })?;
    Ok((dir, built))
}
