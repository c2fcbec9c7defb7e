//! A throwaway Samba AD domain controller.
//!
//! * The domain (`DIRBRIDGE.TEST`, base `DC=dirbridge,DC=test`) is provisioned once with
//!   `samba-tool domain provision` into a cached template (see [`crate::cache`]), together with
//!   the synced root `OU=Corp`, the service accounts and their delegations; a dataset, if asked
//!   for, is loaded offline into a second cached template. Each instance copies a template and
//!   starts in well under a second.
//! * Every instance has its own smb.conf (nothing touches `/etc/samba` or `/run/samba`), its own
//!   loopback address `127.x.y.z` (Samba binds fixed ports), a server certificate with
//!   subjectAltNames from [`TestCa::shared`], and runs `samba -F -M single` with only the `ldap`
//!   service.
//! * [`Samba::shared`] is one instance per test process (tests isolate themselves in their own
//!   OU with [`Samba::create_ou`]); [`Samba::start_fresh`] is for tests that change domain-wide
//!   settings such as the password policy.
//!
//! The delegated service accounts ([`ServiceAccount`]) hold exactly the rights dirbridge needs,
//! granted with ACEs whose GUIDs are looked up in the server's own schema: Reset Password,
//! Change Password, write `lockoutTime` and `pwdLastSet` on users below `OU=Corp`, and
//! Replicating Directory Changes plus Unexpire Password on the domain root. Variants lack one
//! right each, for error-path tests. None is a Domain Admin.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
use crate::dataset::{Dataset, DatasetSpec, DnStyle};
use crate::ldapc::{self, attr, Target};
use crate::process::{self, ServerProcess};

/// Kerberos realm of the test domain.
pub const REALM: &str = "DIRBRIDGE.TEST";
/// DNS name of the test domain (the UPN suffix).
pub const DNS_DOMAIN: &str = "dirbridge.test";
/// NetBIOS name of the test domain.
pub const NETBIOS_DOMAIN: &str = "DIRBRIDGE";
/// Host name of the domain controller (also a subjectAltName of its certificate).
pub const HOST_NAME: &str = "dc1";
/// The domain's naming context.
pub const BASE_DN: &str = "DC=dirbridge,DC=test";
/// The OU dirbridge syncs; the service accounts' rights are delegated here.
pub const SYNCED_ROOT: &str = "OU=Corp,DC=dirbridge,DC=test";
/// Where the service accounts live (outside the synced root).
pub const SERVICE_OU: &str = "OU=Service Accounts,DC=dirbridge,DC=test";
/// Where [`Samba::create_ou`] puts per-test OUs (inside the synced root, so they inherit the
/// delegations).
pub const TESTS_OU: &str = "OU=Tests,OU=Corp,DC=dirbridge,DC=test";
/// The domain's Domain Admins group.
pub const DOMAIN_ADMINS: &str = "CN=Domain Admins,CN=Users,DC=dirbridge,DC=test";

const ADMIN_PASSWORD: &str = "Testkit-Adm1n-Pass!";
const SERVICE_PASSWORD: &str = "Testkit-Svc-Pass-1!";
const LOADER: &str = include_str!("samba_load.py");
/// `python3 -c` body for [`Samba::set_password_last_set`]: smb.conf, sam.ldb, DN, FILETIME.
const SET_PWD_LAST_SET: &str = "
import sys, ldb
from samba import dsdb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB
smb_conf, sam_ldb, dn, value = sys.argv[1:5]
lp = LoadParm()
lp.load(smb_conf)
db = SamDB(url=sam_ldb, session_info=system_session(), lp=lp)
m = ldb.Message(ldb.Dn(db, dn))
m['pwdLastSet'] = ldb.MessageElement(value, ldb.FLAG_MOD_REPLACE, 'pwdLastSet')
db.modify(m, controls=['local_oid:%s:0' % dsdb.DSDB_CONTROL_BYPASS_PASSWORD_HASH_OID])
";
const LDAPS_PORT: u16 = 636;
const LDAP_PORT: u16 = 389;

/// One right dirbridge's on-prem account needs in AD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum AdRight {
    /// Reset Password (extended right User-Force-Change-Password) on users below the synced root.
    ResetPassword,
    /// Change Password (User-Change-Password) on users below the synced root.
    ChangePassword,
    /// Write property `lockoutTime` (unlock) on users below the synced root.
    WriteLockoutTime,
    /// Write property `pwdLastSet` on users below the synced root.
    WritePwdLastSet,
    /// Replicating Directory Changes (DS-Replication-Get-Changes) on the domain: DirSync.
    ReplicatingDirectoryChanges,
    /// Unexpire Password on the domain.
    UnexpirePassword,
}

impl AdRight {
    pub const ALL: [AdRight; 6] = [
        AdRight::ResetPassword,
        AdRight::ChangePassword,
        AdRight::WriteLockoutTime,
        AdRight::WritePwdLastSet,
        AdRight::ReplicatingDirectoryChanges,
        AdRight::UnexpirePassword,
    ];

    /// (object DN, ACE in SDDL with `{…}` placeholders the loader resolves against the schema)
    fn ace(self) -> (&'static str, &'static str) {
        match self {
            AdRight::ResetPassword => (
                SYNCED_ROOT,
                "(OA;CI;CR;{right:User-Force-Change-Password};{class:user};{sid})",
            ),
            AdRight::ChangePassword => (
                SYNCED_ROOT,
                "(OA;CI;CR;{right:User-Change-Password};{class:user};{sid})",
            ),
            AdRight::WriteLockoutTime => (
                SYNCED_ROOT,
                "(OA;CI;WP;{attr:lockoutTime};{class:user};{sid})",
            ),
            AdRight::WritePwdLastSet => (
                SYNCED_ROOT,
                "(OA;CI;WP;{attr:pwdLastSet};{class:user};{sid})",
            ),
            AdRight::ReplicatingDirectoryChanges => (
                BASE_DN,
                "(OA;;CR;{right:DS-Replication-Get-Changes};;{sid})",
            ),
            AdRight::UnexpirePassword => (BASE_DN, "(OA;;CR;{right:Unexpire-Password};;{sid})"),
        }
    }
}

/// The delegated on-prem service accounts (the `MSOL_` account of the incumbent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ServiceAccount {
    /// Every right in [`AdRight::ALL`].
    Full,
    /// Every right but one.
    Missing(AdRight),
}

impl ServiceAccount {
    /// The full account and one variant per missing right.
    pub fn all() -> Vec<ServiceAccount> {
        std::iter::once(ServiceAccount::Full)
            .chain(AdRight::ALL.into_iter().map(ServiceAccount::Missing))
            .collect()
    }

    /// The `sAMAccountName` (and CN).
    pub fn name(self) -> &'static str {
        match self {
            ServiceAccount::Full => "MSOL_dirbridge",
            ServiceAccount::Missing(AdRight::ResetPassword) => "MSOL_noreset",
            ServiceAccount::Missing(AdRight::ChangePassword) => "MSOL_nochange",
            ServiceAccount::Missing(AdRight::WriteLockoutTime) => "MSOL_nolockout",
            ServiceAccount::Missing(AdRight::WritePwdLastSet) => "MSOL_nopwdlastset",
            ServiceAccount::Missing(AdRight::ReplicatingDirectoryChanges) => "MSOL_nodirsync",
            ServiceAccount::Missing(AdRight::UnexpirePassword) => "MSOL_nounexpire",
        }
    }

    /// The rights this account holds.
    pub fn rights(self) -> Vec<AdRight> {
        AdRight::ALL
            .into_iter()
            .filter(|r| !matches!(self, ServiceAccount::Missing(m) if m == *r))
            .collect()
    }
}

/// A bind identity: DN, a login that also works for binding (UPN), and the password.
#[derive(Clone, Debug, Serialize)]
pub struct Credentials {
    pub dn: String,
    pub login: String,
    pub password: String,
}

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct SambaOptions {
    /// Load this dataset below [`SYNCED_ROOT`] (offline, cached).
    pub dataset: Option<DatasetSpec>,
    /// smb.conf's `old password allowed period` in minutes: how long the previous password
    /// still works after a change or reset. None: 0, like Windows' LDAP binds (what every
    /// other test expects); `Some(60)` is Samba's own default.
    pub old_password_allowed_period: Option<u32>,
}

/// How long the phases of a start took (for docs/benchmarks.md; tests never assert on them).
#[derive(Clone, Debug, Default, Serialize)]
pub struct StartTimings {
    #[serde(serialize_with = "crate::process::as_secs")]
    /// Provisioning and loading, zero when the cached template was there.
    pub template: Duration,
    #[serde(serialize_with = "crate::process::as_secs")]
    /// Copying the template into the instance directory.
    pub copy: Duration,
    #[serde(serialize_with = "crate::process::as_secs")]
    /// From spawning `samba` until LDAPS answered.
    pub start: Duration,
}

/// A running Samba AD DC.
pub struct Samba {
    ip: Ipv4Addr,
    dc_dir: PathBuf,
    tls: CertFiles,
    ca_pem: String,
    dataset: Option<Dataset>,
    shared: bool,
    timings: StartTimings,
    next_ou: AtomicU64,
    process: Mutex<ServerProcess>,
    instance_dir: Mutex<Option<tempfile::TempDir>>,
}

impl Samba {
    /// The instance shared by all tests of this process (with [`DatasetSpec::small`] loaded).
    /// Stopped when the process exits. Panics if it cannot start.
    pub fn shared() -> &'static Samba {
        Samba::try_shared().unwrap_or_else(|e| panic!("starting the shared Samba AD DC: {e:#}"))
    }

    /// Like [`Samba::shared`], returning the error.
    pub fn try_shared() -> Result<&'static Samba> {
        static SHARED: OnceLock<Samba> = OnceLock::new();
        static INIT: Mutex<()> = Mutex::new(());
        if let Some(s) = SHARED.get() {
            return Ok(s);
        }
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = SHARED.get() {
            return Ok(s);
        }
        let mut samba = Samba::start(&SambaOptions {
            dataset: Some(DatasetSpec::small()),
            ..SambaOptions::default()
        })?;
        samba.shared = true;
        let _ = SHARED.set(samba);
        process::at_exit(Box::new(|| {
            if let Some(s) = SHARED.get() {
                s.shutdown();
            }
        }));
        Ok(SHARED.get().expect("just set"))
    }

    /// A new instance with no dataset, for tests that change domain-wide settings.
    pub fn start_fresh() -> Result<Samba> {
        Samba::start(&SambaOptions::default())
    }

    /// A new instance.
    pub fn start(options: &SambaOptions) -> Result<Samba> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            bail!("the Samba AD DC fixture must run as root (samba binds ports 389 and 636)");
        }
        let t0 = Instant::now();
        let template = template(options.dataset)?;
        let template_time = if template.1 {
            t0.elapsed()
        } else {
            Duration::ZERO
        };
        let template = template.0;

        let instance = process::instance_dir("samba")?;
        let dc_dir = instance.path().join("dc");
        let t1 = Instant::now();
        cache::copy_tree(&template, &dc_dir)?;
        let copy = t1.elapsed();

        let ip = process::free_loopback_address(&[LDAP_PORT, LDAPS_PORT, 3268, 3269])?;
        let ca = TestCa::shared();
        let tls_dir = instance.path().join("tls");
        std::fs::create_dir_all(&tls_dir)?;
        let fqdn = format!("{HOST_NAME}.{DNS_DOMAIN}");
        let tls = ca
            .issue_server_cert(&[&fqdn, "localhost"], &[IpAddr::V4(ip)])?
            .write(&tls_dir, "samba", ca)?;
        let conf = write_smb_conf(
            &dc_dir,
            Some(ip),
            Some(&tls),
            options.old_password_allowed_period.unwrap_or(0),
        )?;

        let log = instance.path().join("samba.log");
        let out = File::create(&log)?;
        let mut cmd = Command::new(process::find_program("samba")?);
        cmd.args(["-F", "-M", "single", "--debug-stdout", "-d", "1", "-s"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let t2 = Instant::now();
        let child = process::spawn_server(cmd).context("starting samba")?;
        let mut server = ServerProcess::new("samba", child);

        let target = Target {
            url: format!("ldaps://{ip}:{LDAPS_PORT}"),
            ca_pem: ca.cert_pem().to_owned(),
            starttls: false,
            bind: None,
        };
        let ready = process::wait_until("Samba to answer LDAPS", Duration::from_secs(60), || {
            server.ensure_running()?;
            if !process::port_open(SocketAddr::from((ip, LDAPS_PORT))) {
                return Ok(false);
            }
            Ok(ldapc::root_dse(&target).is_ok())
        });
        if let Err(e) = ready {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            bail!("{e:#}\n--- samba.log (tail)\n{tail}");
        }
        let start = t2.elapsed();

        Ok(Samba {
            ip,
            dc_dir,
            tls,
            ca_pem: ca.cert_pem().to_owned(),
            dataset: options.dataset.map(Dataset::generate),
            shared: false,
            timings: StartTimings {
                template: template_time,
                copy,
                start,
            },
            next_ou: AtomicU64::new(1),
            process: Mutex::new(server),
            instance_dir: Mutex::new(Some(instance)),
        })
    }

    /// The loopback address this instance listens on.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `ldaps://127.x.y.z:636`
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}:{LDAPS_PORT}", self.ip)
    }

    /// `ldap://127.x.y.z:389`, for StartTLS (Samba refuses simple binds without TLS).
    pub fn ldap_url(&self) -> String {
        format!("ldap://{}:{LDAP_PORT}", self.ip)
    }

    /// The CA certificate file that verifies this server.
    pub fn ca_cert_path(&self) -> &Path {
        &self.tls.ca
    }

    /// The CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The domain naming context.
    pub fn base_dn(&self) -> &'static str {
        BASE_DN
    }

    /// The root of what dirbridge syncs.
    pub fn synced_root(&self) -> &'static str {
        SYNCED_ROOT
    }

    /// The built-in domain Administrator (for fixtures and setup, never for the code under test).
    pub fn admin(&self) -> Credentials {
        Credentials {
            dn: format!("CN=Administrator,CN=Users,{BASE_DN}"),
            login: format!("Administrator@{DNS_DOMAIN}"),
            password: ADMIN_PASSWORD.into(),
        }
    }

    /// A delegated service account.
    pub fn service_account(&self, account: ServiceAccount) -> Credentials {
        Credentials {
            dn: format!("CN={},{SERVICE_OU}", account.name()),
            login: format!("{}@{DNS_DOMAIN}", account.name()),
            password: SERVICE_PASSWORD.into(),
        }
    }

    /// The dataset loaded into this instance, if any.
    pub fn dataset(&self) -> Option<&Dataset> {
        self.dataset.as_ref()
    }

    /// Credentials of dataset user `i` (its initial password).
    pub fn dataset_user(&self, i: usize) -> Option<Credentials> {
        let d = self.dataset.as_ref()?;
        let u = d.users.get(i)?;
        Some(Credentials {
            dn: d.user_dn(i, SYNCED_ROOT, DnStyle::Ad),
            login: format!("{}@{DNS_DOMAIN}", u.login),
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

    /// Whether this is the process-wide shared instance.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// How long this instance took to come up.
    pub fn timings(&self) -> &StartTimings {
        &self.timings
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.lock().map(|p| p.pid()).unwrap_or(0)
    }

    /// The instance's Samba directory (private/sam.ldb, etc/smb.conf, …).
    pub fn dir(&self) -> &Path {
        &self.dc_dir
    }

    /// Lets `account_dn` list and read `CN=Deleted Objects` (the ACE `(A;;LCRP;;;<sid>)`), as AD
    /// admins do for sync accounts (`dsacls "CN=Deleted Objects,DC=…" /takeownership` then
    /// `/G account:LCRP`). Samba applies that container's ACL to DirSync, which by default
    /// shows deletes to administrators only. Changes this instance's database only, never the
    /// cached template it was copied from.
    pub fn grant_deleted_objects_read(&self, account_dn: &str) -> Result<()> {
        let script = format!(
            r#"
import ldb
from samba.samdb import SamDB
from samba.param import LoadParm
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack, ndr_unpack
lp = LoadParm(); lp.load({conf:?})
db = SamDB(url={sam:?}, session_info=system_session(), lp=lp)
sid = ndr_unpack(security.dom_sid, db.search(base={account:?}, scope=ldb.SCOPE_BASE, attrs=["objectSid"])[0]["objectSid"][0])
dn = "CN=Deleted Objects,{base}"
res = db.search(base=dn, scope=ldb.SCOPE_BASE, attrs=["nTSecurityDescriptor"], controls=["show_deleted:1"])
desc = ndr_unpack(security.descriptor, res[0]["nTSecurityDescriptor"][0])
ace = security.descriptor.from_sddl("D:(A;;LCRP;;;%s)" % sid, security.dom_sid(db.get_domain_sid())).dacl.aces[0]
desc.dacl_add(ace)
m = ldb.Message(); m.dn = ldb.Dn(db, dn)
m["nTSecurityDescriptor"] = ldb.MessageElement(ndr_pack(desc), ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
db.modify(m, controls=["show_deleted:1", "sd_flags:1:4"])
"#,
            conf = self.dc_dir.join("etc/smb.conf").display().to_string(),
            sam = self.dc_dir.join("private/sam.ldb").display().to_string(),
            account = account_dn,
            base = BASE_DN,
        );
        process::run(Command::new(samba_python()).arg("-c").arg(script))
            .context("granting read on CN=Deleted Objects")?;
        Ok(())
    }

    fn admin_target(&self) -> Target {
        let admin = self.admin();
        Target {
            url: self.ldaps_url(),
            ca_pem: self.ca_pem.clone(),
            starttls: false,
            bind: Some((admin.dn, admin.password)),
        }
    }

    /// Creates a fresh OU for one test below [`TESTS_OU`] (inside the synced root, so the
    /// service accounts' delegations apply) and returns its DN. `name` is made unique.
    pub fn create_ou(&self, name: &str) -> Result<String> {
        let n = self.next_ou.fetch_add(1, Ordering::Relaxed);
        let unique = format!("{name}-{}-{n}", std::process::id());
        let dn = format!(
            "OU={},{TESTS_OU}",
            crate::dataset::escape_rdn_value(&unique)
        );
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

    /// Creates an enabled user `CN=<login>,<ou_dn>` with `password`, over LDAP as the
    /// Administrator (so the domain's password policy applies).
    pub fn create_user(&self, ou_dn: &str, login: &str, password: &str) -> Result<Credentials> {
        let dn = format!("CN={},{ou_dn}", crate::dataset::escape_rdn_value(login));
        let upn = format!("{login}@{DNS_DOMAIN}");
        let pwd = unicode_pwd(password);
        ldapc::add(
            &self.admin_target(),
            &dn,
            vec![
                attr("objectClass", &[b"user"]),
                attr("sAMAccountName", &[login.as_bytes()]),
                attr("userPrincipalName", &[upn.as_bytes()]),
                attr("givenName", &[login.as_bytes()]),
                attr("sn", &[b"Testuser"]),
                attr("mail", &[format!("{login}@{DNS_DOMAIN}").as_bytes()]),
                attr("unicodePwd", &[&pwd]),
                attr("userAccountControl", &[b"512"]),
            ],
        )?;
        Ok(Credentials {
            dn,
            login: upn,
            password: password.into(),
        })
    }

    /// Creates a global security group `CN=<name>,<ou_dn>` and returns its DN.
    pub fn create_group(&self, ou_dn: &str, name: &str) -> Result<String> {
        let dn = format!("CN={},{ou_dn}", crate::dataset::escape_rdn_value(name));
        ldapc::add(
            &self.admin_target(),
            &dn,
            vec![
                attr("objectClass", &[b"group"]),
                attr("sAMAccountName", &[name.as_bytes()]),
            ],
        )?;
        Ok(dn)
    }

    /// Adds `member_dn` to the group `group_dn` (e.g. [`DOMAIN_ADMINS`]), as the
    /// Administrator: what `samba-tool group addmembers` does.
    pub fn add_member(&self, group_dn: &str, member_dn: &str) -> Result<()> {
        ldapc::modify(
            &self.admin_target(),
            group_dn,
            vec![Mod::Add(
                b"member".to_vec(),
                std::iter::once(member_dn.as_bytes().to_vec()).collect(),
            )],
        )
    }

    /// Deletes an entry, as the Administrator.
    pub fn admin_delete(&self, dn: &str) -> Result<()> {
        ldapc::delete(&self.admin_target(), dn)
    }

    /// Replaces attributes of an entry, as the Administrator.
    pub fn admin_replace(&self, dn: &str, attribute: &str, values: &[&str]) -> Result<()> {
        let values = values.iter().map(|v| v.as_bytes().to_vec()).collect();
        ldapc::modify(
            &self.admin_target(),
            dn,
            vec![Mod::Replace(attribute.as_bytes().to_vec(), values)],
        )
    }

    /// Sets `pwdLastSet` of `dn` to `filetime` (100 ns units since 1601), e.g. a date long
    /// past, so that with the domain's maximum password age (42 days) the password has expired
    /// and a bind answers `data 532`. LDAP only lets anyone write 0 or -1 there, so this goes
    /// through Samba's own bindings on the running DC's sam.ldb with the bypass-password-hash
    /// control (as the offline loader adds users); the server then judges it as usual.
    pub fn set_password_last_set(&self, dn: &str, filetime: u64) -> Result<()> {
        process::run(
            Command::new(samba_python())
                .arg("-c")
                .arg(SET_PWD_LAST_SET)
                .arg(self.dc_dir.join("etc/smb.conf"))
                .arg(self.dc_dir.join("private/sam.ldb"))
                .arg(dn)
                .arg(filetime.to_string()),
        )
        .with_context(|| format!("setting pwdLastSet of {dn}"))?;
        Ok(())
    }

    /// Changes the domain password policy. Refused on the shared instance: other tests rely on
    /// the defaults.
    pub fn set_password_policy(&self, policy: &AdPasswordPolicy) -> Result<()> {
        if self.shared {
            bail!("set_password_policy changes the whole domain: use Samba::start_fresh()");
        }
        let mut mods = Vec::new();
        let mut set = |name: &str, v: String| {
            mods.push(Mod::Replace(
                name.as_bytes().to_vec(),
                std::iter::once(v.into_bytes()).collect(),
            ))
        };
        if let Some(v) = policy.min_length {
            set("minPwdLength", v.to_string());
        }
        if let Some(v) = policy.history_length {
            set("pwdHistoryLength", v.to_string());
        }
        if let Some(v) = policy.complexity {
            set("pwdProperties", if v { "1" } else { "0" }.to_string());
        }
        if let Some(v) = policy.min_age {
            set("minPwdAge", nt_interval(v));
        }
        if let Some(v) = policy.lockout_threshold {
            set("lockoutThreshold", v.to_string());
        }
        if let Some(v) = policy.lockout_duration {
            set("lockoutDuration", nt_interval(v));
            set("lockOutObservationWindow", nt_interval(v));
        }
        ldapc::modify(&self.admin_target(), BASE_DN, mods)
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

impl Drop for Samba {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Domain-wide password settings (`None` leaves a setting as it is).
#[derive(Clone, Debug, Default)]
pub struct AdPasswordPolicy {
    pub min_length: Option<u32>,
    pub history_length: Option<u32>,
    pub complexity: Option<bool>,
    pub min_age: Option<Duration>,
    pub lockout_threshold: Option<u32>,
    pub lockout_duration: Option<Duration>,
}

/// A negative interval in 100 ns units, as AD stores durations.
fn nt_interval(d: Duration) -> String {
    let ticks = (d.as_nanos() / 100) as i64;
    (-ticks).to_string()
}

/// `unicodePwd` value: the password in double quotes, UTF-16LE.
pub fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// smb.conf for an instance rooted at `dc` (the copied template). Without `ip` it is the
/// configuration the offline loader uses.
fn write_smb_conf(
    dc: &Path,
    ip: Option<Ipv4Addr>,
    tls: Option<&CertFiles>,
    old_password_minutes: u32,
) -> Result<PathBuf> {
    let d = dc.display();
    let mut s = format!(
        "[global]
\tnetbios name = {host}
\tworkgroup = {NETBIOS_DOMAIN}
\trealm = {REALM}
\tserver role = active directory domain controller
\tidmap_ldb:use rfc2307 = yes
\tserver services = ldap
\tdns proxy = no
\tdisable netbios = yes
\tprivate dir = {d}/private
\tbinddns dir = {d}/bind-dns
\tlock directory = {d}
\tstate directory = {d}/state
\tcache directory = {d}/cache
\tpid directory = {d}/run
\tncalrpc dir = {d}/run/ncalrpc
\twinbindd socket directory = {d}/run/winbindd
\tntp signd socket directory = {d}/run/ntp_signd
\tlog file = {d}/log.samba
\t# 0 unless a test asks otherwise: like Windows for LDAP binds, a replaced password
\t# stops working at once (Samba's own default is 60 minutes).
\told password allowed period = {old_password_minutes}
",
        host = HOST_NAME.to_uppercase()
    );
    if let Some(ip) = ip {
        // "a.b.c.d/8": Samba then accepts an address that no interface carries.
        s.push_str(&format!(
            "\tinterfaces = {ip}/8\n\tbind interfaces only = yes\n"
        ));
    }
    match tls {
        Some(t) => s.push_str(&format!(
            "\ttls enabled = yes\n\ttls keyfile = {}\n\ttls certfile = {}\n\ttls cafile = {}\n",
            t.key.display(),
            t.cert.display(),
            t.ca.display()
        )),
        None => s.push_str("\ttls enabled = no\n"),
    }
    for sub in ["run", "cache", "state", "etc"] {
        std::fs::create_dir_all(dc.join(sub))?;
    }
    let path = dc.join("etc/smb.conf");
    std::fs::write(&path, s).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The Python interpreter that has Samba's bindings (Debian's, whatever `python3` is first on
/// PATH).
fn samba_python() -> PathBuf {
    let debian = PathBuf::from("/usr/bin/python3");
    if debian.is_file() {
        debian
    } else {
        PathBuf::from("python3")
    }
}

/// Runs the offline loader against the stopped domain in `dc` with `plan` (see
/// samba_load.py) and returns its JSON report.
fn run_loader(dc: &Path, mut plan: serde_json::Value) -> Result<serde_json::Value> {
    let conf = write_smb_conf(dc, None, None, 0)?;
    plan["smb_conf"] = conf.display().to_string().into();
    plan["sam_ldb"] = dc.join("private/sam.ldb").display().to_string().into();
    let script = dc.join("load.py");
    std::fs::write(&script, LOADER)?;
    let plan_path = dc.join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(&plan)?)?;
    let out = process::run(Command::new(samba_python()).arg(&script).arg(&plan_path))?;
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&plan_path);
    let report = String::from_utf8_lossy(&out.stdout);
    let last = report.lines().last().unwrap_or("{}");
    serde_json::from_str(last).with_context(|| format!("loader report: {report}"))
}

/// The cached template for `dataset`: (directory, whether it was built now).
fn template(dataset: Option<DatasetSpec>) -> Result<(PathBuf, bool)> {
    let version = cache::tool_version("samba", &["-V"]);
    let base_key = cache::key(&[
        "samba-base",
        &version,
        REALM,
        ADMIN_PASSWORD,
        SERVICE_PASSWORD,
        LOADER,
    ]);
    let mut built = false;
    let base = cache::get_or_build("samba-base", &base_key, |dir| {
        built = true;
        build_base(dir)
    })?;
    let Some(spec) = dataset else {
        return Ok((base, built));
    };
    let key = cache::key(&["samba-dataset", &base_key, &spec.key()]);
    let with_data = cache::get_or_build("samba-data", &key, |dir| {
        built = true;
        cache::copy_tree(&base, dir)?;
        let data = Dataset::generate(spec);
        let ldif = dir.join("dataset.ldif");
        let mut w = std::io::BufWriter::new(File::create(&ldif)?);
        data.write_ad_ldif(&mut w, SYNCED_ROOT, BASE_DN, DNS_DOMAIN)?;
        std::io::Write::flush(&mut w)?;
        drop(w);
        run_loader(
            dir,
            serde_json::json!({ "ldif": [ldif.display().to_string()] }),
        )?;
        std::fs::remove_file(&ldif)?;
        Ok(())
    })?;
    Ok((with_data, built))
}

/// Provisions the domain into `dir` and adds the OUs, service accounts and delegations.
fn build_base(dir: &Path) -> Result<()> {
    process::run(
        Command::new(process::find_program("samba-tool")?)
            .args(["domain", "provision"])
            .arg(format!("--realm={REALM}"))
            .arg(format!("--domain={NETBIOS_DOMAIN}"))
            .arg(format!("--host-name={HOST_NAME}"))
            .args(["--server-role=dc", "--dns-backend=NONE", "--use-rfc2307"])
            .arg(format!("--adminpass={ADMIN_PASSWORD}"))
            .arg(format!("--targetdir={}", dir.display())),
    )
    .context("samba-tool domain provision")?;

    let accounts: Vec<_> = ServiceAccount::all()
        .into_iter()
        .map(|a| {
            serde_json::json!({
                "name": a.name(),
                "ou": "OU=Service Accounts",
                "password": SERVICE_PASSWORD,
            })
        })
        .collect();
    let mut aces = Vec::new();
    for a in ServiceAccount::all() {
        for right in a.rights() {
            let (dn, sddl) = right.ace();
            aces.push(serde_json::json!({ "dn": dn, "account": a.name(), "sddl": sddl }));
        }
    }
    let report = run_loader(
        dir,
        serde_json::json!({
            // Minimum password age 0: tests change a password right after setting it.
            "domain": { "minPwdAge": "0" },
            "ous": ["OU=Corp", "OU=Tests,OU=Corp", "OU=Service Accounts"],
            "accounts": accounts,
            "aces": aces,
        }),
    )?;
    std::fs::write(dir.join("testkit-report.json"), report.to_string())?;
    Ok(())
}

/// The schema GUIDs the template's delegations were built from (as the server's schema has
/// them), keyed `right:<name>` / `attr:<name>`.
pub fn delegation_guids() -> Result<serde_json::Value> {
    let (dir, _) = template(None)?;
    let text = std::fs::read_to_string(dir.join("testkit-report.json"))?;
    Ok(serde_json::from_str::<serde_json::Value>(&text)?["guids"].clone())
}
