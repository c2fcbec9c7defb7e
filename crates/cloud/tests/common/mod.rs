//! A real cloud on a loopback port, on a real store, with a clock the test moves.

#![allow(dead_code)]

use std::sync::Arc;

use cloud::config::Config;
use cloud::AppState;
use dirbridge_cloud as cloud;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenant::clock::ManualClock;

pub const START: i64 = 1_795_600_000; // 2026-11-24
pub const ADMIN_PASSWORD: &str = "Adm1n-Pass-word!";

/// The default configuration without the per-address limits: every test client is 127.0.0.1,
/// and tests that sign in or start resets many times are not about those limits
/// (tests/limits.rs is).
pub fn unlimited() -> Config {
    let mut c = Config::default();
    c.limits.sign_in_per_minute = 0;
    c.limits.sspr_start_per_minute = 0;
    c
}

pub struct Cloud {
    pub base: String,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub domain: String,
    pub store: store::Store,
    /// Completing it is the cloud's SIGTERM ([`Cloud::shut_down`]).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serving task: it ends when the cloud process would exit.
    pub served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
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
    pub async fn start() -> Cloud {
        Self::start_with(unlimited(), None).await
    }

    pub async fn start_postgres() -> Cloud {
        let pg = testkit::postgres::Postgres::start().expect("start PostgreSQL");
        Self::start_with(unlimited(), Some(pg)).await
    }

    pub async fn start_with(mut config: Config, pg: Option<testkit::postgres::Postgres>) -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        config.data_dir = dir.path().to_path_buf();
        config.database_url = pg.as_ref().map(|p| p.url());
        let store = cloud::open_store(&config).await.unwrap();
        let clock = ManualClock::new(START);
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(cloud::serve_on(listener, state, async move {
            let _ = stopped.await;
        }));
        let mut c = Cloud {
            base,
            clock,
            http: reqwest::Client::new(),
            admin_token: String::new(),
            domain: init.tenant.initial_domain.clone(),
            store,
            stop: Some(stop),
            served: Some(served),
            _dir: dir,
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

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
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
}
