//! A real cloud on a loopback port (as crates/cloud/tests/common does it), and helpers to
//! register an agent with it and point a connector at a testkit directory.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use agent::connector::{ConnectorConfig, DirectoryKind};
use agent::sync::Engine;
use cloud::config::Config;
use cloud::AppState;
use dirbridge_agent as agent;
use ldap::{CaBundle, ConnectOptions, Connection, SecretString};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenant::clock::ManualClock;

pub const ADMIN_PASSWORD: &str = "Adm1n-Pass-word!";

pub struct Cloud {
    pub base: String,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub domain: String,
    pub store: store::Store,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(
            self.status.is_success(),
            "expected success, got {}: {}",
            self.status,
            self.body
        );
        self.body
    }
}

impl Cloud {
    /// A cloud whose clock reads the real time (agents sign with the system clock).
    pub async fn start() -> Cloud {
        Cloud::start_with(Config::default()).await
    }

    /// [`Cloud::start`] with `config` (its data directory and database are the test's own).
    pub async fn start_with(mut config: Config) -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        config.data_dir = dir.path().to_path_buf();
        config.database_url = None;
        let store = cloud::open_store(&config).await.unwrap();
        let clock = ManualClock::new(agent::now());
        let init = cloud::bootstrap::create_tenant(
            &store,
            &clock,
            &config.domain_suffix,
            "contoso",
            "admin",
            ADMIN_PASSWORD,
        )
        .await
        .unwrap();
        let state = AppState::new(store.clone(), Arc::new(clock.clone()), config);
        let app = cloud::router(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut c = Cloud {
            base,
            clock,
            http: reqwest::Client::new(),
            admin_token: String::new(),
            domain: init.tenant.initial_domain.clone(),
            store,
            _dir: dir,
        };
        c.admin_token = c
            .sign_in(&init.admin.user_principal_name, ADMIN_PASSWORD)
            .await;
        c.admin(
            Method::POST,
            "/api/v1/tenant/domains",
            Some(json!({"domain": "dirbridge.test"})),
        )
        .await
        .ok();
        c
    }

    /// The cloud's data directory (its database and anything else it wrote).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Keeps the cloud's clock on the real time (signed requests must be within 5 minutes).
    pub fn tick(&self) {
        self.clock.set(agent::now());
    }

    pub async fn sign_in(&self, upn: &str, password: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/token",
                None,
                Some(json!({"userPrincipalName": upn, "password": password})),
            )
            .await;
        r.ok()["accessToken"].as_str().unwrap().to_string()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply { status, body }
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.tick();
        self.call(method, path, Some(&self.admin_token), body).await
    }

    /// Asks the tenant's agents for a delta (`POST /api/v1/sync/run`) as soon as one's push
    /// socket is up (409 until it is; at most 60 s), and returns the successful answer.
    pub async fn sync_now_when_connected(&self) -> Reply {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let r = self
                .admin(
                    Method::POST,
                    "/api/v1/sync/run",
                    Some(json!({"full": false})),
                )
                .await;
            if r.status.is_success() {
                return r;
            }
            assert_eq!(r.status.as_u16(), 409, "{}", r.body);
            assert!(
                std::time::Instant::now() < deadline,
                "the push socket never connected"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A synced user by UPN, or None (404).
    pub async fn user(&self, upn: &str) -> Option<Value> {
        let r = self
            .admin(Method::GET, &format!("/api/v1/users/{upn}"), None)
            .await;
        if r.status == StatusCode::NOT_FOUND {
            return None;
        }
        Some(r.ok())
    }

    /// Users whose UPN starts with `prefix`.
    pub async fn users_with_prefix(&self, prefix: &str) -> Vec<Value> {
        let r = self
            .admin(
                Method::GET,
                &format!("/api/v1/users?upnPrefix={prefix}&limit=1000"),
                None,
            )
            .await
            .ok();
        r["items"].as_array().cloned().unwrap_or_default()
    }

    /// The group with this display name (None if absent).
    pub async fn group(&self, name: &str) -> Option<Value> {
        let r = self
            .admin(
                Method::GET,
                &format!("/api/v1/groups?namePrefix={name}"),
                None,
            )
            .await
            .ok();
        r["items"]
            .as_array()
            .and_then(|a| a.iter().find(|g| g["displayName"] == name).cloned())
    }

    /// Ids of a group's members.
    pub async fn members(&self, group_id: &str) -> Vec<String> {
        let r = self
            .admin(
                Method::GET,
                &format!("/api/v1/groups/{group_id}/members"),
                None,
            )
            .await
            .ok();
        r.as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn set_threshold(&self, n: u32) {
        self.admin(
            Method::PATCH,
            "/api/v1/sync/settings",
            Some(json!({"deletionThreshold": n})),
        )
        .await
        .ok();
    }

    pub async fn allow_deletes(&self) {
        self.admin(Method::POST, "/api/v1/sync/allow-deletes", Some(json!({})))
            .await
            .ok();
    }

    /// A fresh registration token.
    pub async fn token(&self) -> String {
        let r = self
            .admin(Method::POST, "/api/v1/agents/tokens", Some(json!({})))
            .await
            .ok();
        r["token"].as_str().unwrap().to_string()
    }

    /// Registers an agent in `data_dir` and opens its engine.
    pub async fn agent(&self, data_dir: &Path) -> Engine {
        let token = self.token().await;
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
        name: "corp".into(),
        kind: DirectoryKind::Ad,
        url: samba.ldaps_url(),
        ca_file: samba.ca_cert_path().to_path_buf(),
        bind_dn: svc.dn,
        base_dn: samba.base_dn().into(),
        include_ous: include.iter().map(|s| s.to_string()).collect(),
        exclude_ous: vec![],
        filter: None,
        group_scope: None,
        user_classes: vec![],
        group_classes: vec![],
        upn_from: None,
        anchor: None,
        protected: Default::default(),
    }
}

/// An OpenLDAP connector (StartTLS) for the slapd service account with every right.
pub fn openldap_connector(slapd: &testkit::slapd::Slapd, include: &[&str]) -> ConnectorConfig {
    let svc = slapd.service_account(testkit::slapd::OpenLdapServiceAccount::Full);
    ConnectorConfig {
        name: "ldap".into(),
        kind: DirectoryKind::Openldap,
        url: slapd.ldap_url(),
        ca_file: slapd.ca_cert_path().to_path_buf(),
        bind_dn: svc.dn,
        base_dn: slapd.base_dn().into(),
        include_ous: include.iter().map(|s| s.to_string()).collect(),
        exclude_ous: vec![],
        filter: None,
        group_scope: None,
        user_classes: vec![],
        group_classes: vec![],
        upn_from: None,
        anchor: None,
        protected: Default::default(),
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
