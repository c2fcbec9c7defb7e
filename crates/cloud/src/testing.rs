//! The one test fixture for a cloud in process (feature `test-util`): a real cloud on a loopback
//! port, on a real store (SQLite in a temporary directory, or a testkit PostgreSQL), with a clock
//! the test moves — or, for tests with agents (which sign requests with the system clock), a
//! clock kept on the real time. The cloud, agent and cli tests all use it; a test crate wraps it
//! only to add what needs its own crate (e.g. registering an agent).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenant::clock::{Clock, ManualClock};

use crate::config::Config;
use crate::AppState;

/// The fixed clock's start: 2026-11-24.
pub const START: i64 = 1_795_600_000;
pub const ADMIN_PASSWORD: &str = "Adm1n-Pass-word!";

/// The default configuration without the per-address limits: every test client is 127.0.0.1,
/// and tests that sign in or start resets many times are not about those limits
/// (crates/cloud/tests/limits.rs is).
pub fn unlimited() -> Config {
    let mut c = Config::default();
    c.limits.sign_in_per_minute = 0;
    c.limits.sspr_start_per_minute = 0;
    c
}

/// Starts testkit's SMTP sink (aiosmtpd) and points `config` at it, sending from `from`: for
/// tests that read the mail a cloud sends.
pub async fn mail_through_sink(config: &mut Config, from: &str) -> testkit::smtp::Smtp {
    let smtp = tokio::task::spawn_blocking(testkit::smtp::Smtp::start)
        .await
        .expect("the SMTP start task")
        .expect("start the SMTP test server (python3-aiosmtpd)");
    config.smtp.host = Some(smtp.host().to_string());
    config.smtp.port = smtp.port();
    config.smtp.starttls = false;
    config.smtp.from = from.into();
    smtp
}

/// The wall clock in seconds, for a cloud whose clock follows the real time.
pub fn wall_clock() -> i64 {
    tenant::clock::Clock::now(&tenant::clock::SystemClock)
}

pub struct Cloud {
    pub base: String,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub domain: String,
    pub tenant_id: String,
    pub store: store::Store,
    /// Set the clock to the real time before each request (agents sign with the system clock,
    /// and the cloud accepts only signatures within 5 minutes of its own time).
    real_time: bool,
    /// Completing it is the cloud's SIGTERM ([`Cloud::shut_down`]).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serving task: it ends when the cloud process would exit.
    pub served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: tempfile::TempDir,
    _pg: Option<testkit::postgres::Postgres>,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub tracking_id: Option<String>,
}

impl Reply {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
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
    /// Tenant `contoso` on SQLite, the limits off, the clock at [`START`].
    pub async fn start() -> Cloud {
        Self::start_with(unlimited(), None).await
    }

    /// [`Cloud::start`] on a fresh testkit PostgreSQL.
    pub async fn start_postgres() -> Cloud {
        let pg = testkit::postgres::Postgres::start().expect("start PostgreSQL");
        Self::start_with(unlimited(), Some(pg)).await
    }

    /// A cloud with `config` (its data directory and database are the test's own) and the clock
    /// at [`START`].
    pub async fn start_with(config: Config, pg: Option<testkit::postgres::Postgres>) -> Cloud {
        Self::launch(config, pg, START, false).await
    }

    /// A cloud with `config` on SQLite whose clock follows the real time, for tests with agents.
    pub async fn start_real_time(config: Config) -> Cloud {
        Self::launch(config, None, wall_clock(), true).await
    }

    async fn launch(
        mut config: Config,
        pg: Option<testkit::postgres::Postgres>,
        now: i64,
        real_time: bool,
    ) -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        config.data_dir = dir.path().to_path_buf();
        config.database_url = pg.as_ref().map(|p| p.url());
        let store = crate::open_store(&config).await.unwrap();
        let clock = ManualClock::new(now);
        let init = crate::bootstrap::create_tenant(
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(crate::serve_on(listener, state, async move {
            let _ = stopped.await;
        }));
        let mut c = Cloud {
            base,
            clock,
            http: reqwest::Client::new(),
            admin_token: String::new(),
            domain: init.tenant.initial_domain.clone(),
            tenant_id: init.tenant.id.clone(),
            store,
            real_time,
            stop: Some(stop),
            served: Some(served),
            dir,
            _pg: pg,
        };
        c.admin_token = c
            .sign_in(&init.admin.user_principal_name, ADMIN_PASSWORD)
            .await;
        c
    }

    /// What SIGTERM does to `cloud serve`: the cloud drains and then stops serving.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Moves the clock and signs the admin in again (tokens expire as time passes).
    pub async fn set_time(&mut self, t: i64) {
        self.clock.set(t);
        self.admin_token = self.sign_in(&self.upn("admin"), ADMIN_PASSWORD).await;
    }

    /// Puts the clock on the real time (a cloud started with [`Cloud::start_real_time`] does this
    /// before every request).
    pub fn tick(&self) {
        self.clock.set(wall_clock());
    }

    /// The cloud's data directory (its database and anything else it wrote).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn upn(&self, local: &str) -> String {
        format!("{local}@{}", self.domain)
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
        self.send(req, body).await
    }

    /// A call on the reset session `session` (`/api/v1/sspr/session`, `…/verify`...): the
    /// session secret in its header ([`crate::api::sspr::SESSION_HEADER`]), never in the path.
    pub async fn sspr(
        &self,
        method: Method,
        path: &str,
        session: &str,
        body: Option<Value>,
    ) -> Reply {
        let req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header(crate::api::sspr::SESSION_HEADER, session);
        self.send(req, body).await
    }

    async fn send(&self, mut req: reqwest::RequestBuilder, body: Option<Value>) -> Reply {
        if self.real_time {
            self.tick();
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let tracking_id = resp
            .headers()
            .get("x-tracking-id")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            body,
            tracking_id,
        }
    }

    /// As the Global Administrator.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, Some(&self.admin_token), body).await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.admin(Method::GET, path, None).await.ok()
    }

    /// Creates a user (as admin) and returns it.
    pub async fn user(&self, local: &str, extra: Value) -> Value {
        let mut body = json!({"userPrincipalName": self.upn(local), "displayName": local});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.admin(Method::POST, "/api/v1/users", Some(body))
            .await
            .ok()
    }

    /// Creates a user holding `role` with a password and returns a token for it.
    pub async fn admin_with_role(&self, local: &str, role: &str) -> String {
        self.user(
            local,
            json!({"roles": [role], "password": "Sec0nd-Pass-word!"}),
        )
        .await;
        self.sign_in(&self.upn(local), "Sec0nd-Pass-word!").await
    }

    /// A second tenant `name` in the same database; returns a token of its Global Administrator.
    pub async fn second_tenant(&self, name: &str) -> String {
        let other = crate::bootstrap::create_tenant(
            &self.store,
            &self.clock,
            "dirbridge.internal",
            name,
            "admin",
            ADMIN_PASSWORD,
        )
        .await
        .unwrap();
        self.sign_in(&other.admin.user_principal_name, ADMIN_PASSWORD)
            .await
    }

    /// Claims `domain` through the API and verifies it as the host operator does
    /// (`dirbridge cloud domains verify`, no DNS): tests that only need a domain use this.
    pub async fn add_verified_domain(&self, domain: &str) {
        let claimed = self
            .admin(
                Method::POST,
                "/api/v1/tenant/domains",
                Some(json!({ "domain": domain })),
            )
            .await
            .ok();
        assert_eq!(claimed["verified"], false, "{claimed}");
        self.store
            .verify_tenant_domain(&self.tenant_id, domain, self.clock.now())
            .await
            .unwrap();
    }

    /// Proves `domain` the way its owner does: claims it, publishes the challenge on `dns` (the
    /// cloud must have been started with `dns` as its `[dns] nameservers`) and verifies it.
    /// Returns the verified domain.
    pub async fn prove_domain(&self, dns: &mut testkit::dns::Dns, domain: &str) -> Value {
        let claimed = self
            .admin(
                Method::POST,
                "/api/v1/tenant/domains",
                Some(json!({ "domain": domain })),
            )
            .await
            .ok();
        let record = &claimed["verification"];
        dns.publish(&[(
            record["name"].as_str().unwrap(),
            record["value"].as_str().unwrap(),
        )])
        .unwrap();
        self.admin(
            Method::POST,
            &format!("/api/v1/tenant/domains/{domain}/verify"),
            None,
        )
        .await
        .ok()
    }

    /// A user by UPN, or None (404).
    pub async fn find_user(&self, upn: &str) -> Option<Value> {
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
            .get(&format!("/api/v1/users?upnPrefix={prefix}&limit=1000"))
            .await;
        r["items"].as_array().cloned().unwrap_or_default()
    }

    /// The group with this display name (None if absent).
    pub async fn group(&self, name: &str) -> Option<Value> {
        let r = self.get(&format!("/api/v1/groups?namePrefix={name}")).await;
        r["items"]
            .as_array()
            .and_then(|a| a.iter().find(|g| g["displayName"] == name).cloned())
    }

    /// Ids of a group's members.
    pub async fn members(&self, group_id: &str) -> Vec<String> {
        let r = self
            .get(&format!("/api/v1/groups/{group_id}/members"))
            .await;
        r.as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Changes the fields of `changes` (an object of policy fields) in the tenant's password
    /// reset policy and keeps the rest.
    pub async fn set_policy(&self, changes: Value) {
        let mut policy =
            self.admin(Method::GET, "/api/v1/policy", None).await.ok()["policy"].clone();
        for (k, v) in changes.as_object().expect("an object of policy fields") {
            policy[k] = v.clone();
        }
        self.admin(Method::PUT, "/api/v1/policy", Some(policy))
            .await
            .ok();
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

    /// A fresh one-time agent registration token.
    pub async fn registration_token(&self) -> String {
        let r = self
            .admin(Method::POST, "/api/v1/agents/tokens", Some(json!({})))
            .await
            .ok();
        r["token"].as_str().unwrap().to_string()
    }

    /// Asks the tenant's agents for a delta (`POST /api/v1/sync/run`) as soon as one's push
    /// socket is up (409 until it is; at most 60 s), and returns the successful answer.
    pub async fn sync_now_when_connected(&self) -> Reply {
        let deadline = tenant::clock::monotonic() + Duration::from_secs(60);
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
                tenant::clock::monotonic() < deadline,
                "the push socket never connected"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
