//! The shared in-process cloud, and helpers to register an agent with it and point a connector
//! at a testkit directory.

#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::path::Path;

use agent::connector::{ConnectorConfig, DirectoryKind};
use agent::sync::Engine;
use cloud::config::Config;
use dirbridge_agent as agent;
use ldap::{CaBundle, ConnectOptions, Connection, SecretString};

#[allow(unused_imports)]
pub use cloud::testing::{Reply, ADMIN_PASSWORD};

/// The shared in-process cloud (`dirbridge_cloud::testing`) with a clock on the real time
/// (agents sign requests with the system clock) and the `dirbridge.test` domain the testkit
/// directories use, plus registering an agent.
pub struct Cloud(cloud::testing::Cloud);

impl Deref for Cloud {
    type Target = cloud::testing::Cloud;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Cloud {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Cloud {
    /// A cloud with the default configuration (limits on).
    pub async fn start() -> Cloud {
        Cloud::start_with(Config::default()).await
    }

    /// [`Cloud::start`] with `config` (its data directory and database are the test's own).
    pub async fn start_with(config: Config) -> Cloud {
        let c = cloud::testing::Cloud::start_real_time(config).await;
        c.add_verified_domain("dirbridge.test").await;
        Cloud(c)
    }

    /// [`Cloud::start`] sending mail to a real SMTP server (aiosmtpd), returned beside it.
    pub async fn start_with_mail() -> (Cloud, testkit::smtp::Smtp) {
        let mut config = Config::default();
        let smtp =
            cloud::testing::mail_through_sink(&mut config, "Password reset <sspr@contoso.test>")
                .await;
        (Cloud::start_with(config).await, smtp)
    }

    /// The cloud's data directory (its database and anything else it wrote).
    pub fn dir(&self) -> &Path {
        self.data_dir()
    }

    /// Registers an agent in `data_dir` and opens its engine.
    pub async fn agent(&self, data_dir: &Path) -> Engine {
        let token = self.registration_token().await;
        agent::identity::register(
            data_dir,
            &self.base,
            &SecretString::from(token),
            "test-agent",
        )
        .await
        .expect("register");
        Engine::open(data_dir).await.expect("engine")
    }
}

/// A short name unique to this test process and call.
pub fn uniq(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{n}", std::process::id() % 10000)
}

pub fn ad_connector(samba: &testkit::samba::Samba, include: &[&str]) -> ConnectorConfig {
    let svc = samba.service_account(testkit::samba::ServiceAccount::Full);
    ConnectorConfig {
        include_ous: include.iter().map(|s| s.to_string()).collect(),
        ..ConnectorConfig::new(
            "corp",
            DirectoryKind::Ad,
            samba.ldaps_url(),
            samba.ca_cert_path().to_path_buf(),
            svc.dn,
            samba.base_dn().into(),
        )
    }
}

/// An OpenLDAP connector (StartTLS) for the slapd service account with every right.
pub fn openldap_connector(slapd: &testkit::slapd::Slapd, include: &[&str]) -> ConnectorConfig {
    let svc = slapd.service_account(testkit::slapd::OpenLdapServiceAccount::Full);
    ConnectorConfig {
        include_ous: include.iter().map(|s| s.to_string()).collect(),
        ..ConnectorConfig::new(
            "ldap",
            DirectoryKind::Openldap,
            slapd.ldap_url(),
            slapd.ca_cert_path().to_path_buf(),
            svc.dn,
            slapd.base_dn().into(),
        )
    }
}

/// Saves `config` with the slapd service account's password.
pub fn save_openldap_connector(
    data_dir: &Path,
    slapd: &testkit::slapd::Slapd,
    config: &ConnectorConfig,
) {
    let svc = slapd.service_account(testkit::slapd::OpenLdapServiceAccount::Full);
    agent::connector::save(data_dir, config, &SecretString::from(svc.password)).unwrap();
}

/// Saves `config` with the Samba service account's password.
pub fn save_ad_connector(data_dir: &Path, samba: &testkit::samba::Samba, config: &ConnectorConfig) {
    let svc = samba.service_account(testkit::samba::ServiceAccount::Full);
    agent::connector::save(data_dir, config, &SecretString::from(svc.password)).unwrap();
}

/// An administrator's connection to a testkit directory (fixture changes only).
pub async fn admin_conn(url: &str, ca_pem: &str, dn: &str, password: &str) -> Connection {
    let mut c = Connection::connect(&ConnectOptions::new(url, CaBundle::Pem(ca_pem.to_owned())))
        .await
        .unwrap();
    c.simple_bind(dn, &SecretString::from(password.to_owned()))
        .await
        .unwrap();
    c
}

pub fn attr(name: &str, values: &[&str]) -> (String, Vec<Vec<u8>>) {
    (
        name.to_string(),
        values.iter().map(|v| v.as_bytes().to_vec()).collect(),
    )
}

/// Lets the Samba service account see tombstones (see
/// [`testkit::samba::Samba::grant_deleted_objects_read`]). Done once per process on the
/// shared instance.
pub async fn grant_deleted_objects_read(samba: &testkit::samba::Samba) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let svc = samba.service_account(testkit::samba::ServiceAccount::Full);
        samba
            .grant_deleted_objects_read(&svc.dn)
            .expect("granting read on Deleted Objects");
    })
    .await;
}
