//! The cloud side and the agent, as an operator runs them: `dirbridge cloud init` + `cloud
//! serve` (SQLite in its data directory, or a PostgreSQL database from `testkit::postgres`),
//! `dirbridge agent register` + `agent connector add`, then `agent sync run` or `agent run`.
//! The benchmarks read the cloud through its public API, as an admin.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::directory::Directory;
use crate::procs::{self, free_port, write_private, Finished, Server};

/// Where the cloud keeps its data.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite,
    /// A `postgres://…` URL of an empty database.
    Postgres(String),
}

impl Db {
    pub fn label(&self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }
}

/// A running `dirbridge cloud serve` and an admin's bearer token.
pub struct Cloud {
    pub url: String,
    server: Server,
    api: Api,
    /// The tenant administrator's UPN and the 0600 file holding its password.
    pub admin_upn: String,
    pub admin_password_file: PathBuf,
    /// Where `cloud serve` logs (the writeback breakdown reads its timestamps).
    pub log: PathBuf,
}

/// The cloud's HTTP API as its administrator: cheap to clone into tasks.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub http: reqwest::Client,
    token: String,
}

/// An anonymous call's answer: status and body (JSON, or null when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// When the answer's head arrived, in milliseconds since the Unix epoch.
    pub at_ms: f64,
}

/// Now, in milliseconds since the Unix epoch (to line up with the cloud's log and the agent's
/// event ids).
pub fn epoch_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

impl Answer {
    /// `error.message` of an error answer, else the body.
    pub fn why(&self) -> String {
        match self.body.pointer("/error/message").and_then(Value::as_str) {
            Some(m) => format!("{}: {m}", self.status),
            None => format!("{}: {}", self.status, self.body),
        }
    }
}

impl Cloud {
    /// `cloud init` a tenant `bench` in `dir`, then `cloud serve` on a free loopback port;
    /// returns once it answers `/healthz` and the admin is signed in.
    pub async fn start(bin: &Path, dir: &Path, db: &Db) -> Result<Cloud> {
        std::fs::create_dir_all(dir)?;
        let data = dir.join("cloud");
        let pw_file = dir.join("admin.pw");
        let password = format!("Bn-1{}", random_text(24));
        write_private(&pw_file, &password)?;
        let mut init = Command::new(bin);
        init.args(["cloud", "init", "--data-dir"])
            .arg(&data)
            .args(["--tenant", "bench", "--admin", "admin", "--password-file"])
            .arg(&pw_file);
        if let Db::Postgres(url) = db {
            init.args(["--database-url", url]);
        }
        procs::run(init).context("dirbridge cloud init")?;
        // The directories' users are under dirbridge.test: verified on the host, as an operator
        // of a single-organisation install does.
        let mut verify = Command::new(bin);
        verify
            .args(["cloud", "domains", "verify", "--data-dir"])
            .arg(&data)
            .args(["--tenant", "bench", "dirbridge.test"]);
        if let Db::Postgres(url) = db {
            verify.args(["--database-url", url]);
        }
        procs::run(verify).context("dirbridge cloud domains verify")?;
        let (url, server) = serve(bin, &data, db, &dir.join("cloud.log")).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let admin_upn = "admin@bench.dirbridge.internal".to_string();
        let signed_in: Value = http
            .post(format!("{url}/api/v1/auth/token"))
            .json(&json!({ "userPrincipalName": admin_upn, "password": password }))
            .send()
            .await?
            .error_for_status()
            .context("sign in as the admin")?
            .json()
            .await?;
        let token = signed_in["accessToken"]
            .as_str()
            .context("no accessToken")?
            .to_string();
        Ok(Cloud {
            api: Api {
                url: url.clone(),
                http,
                token,
            },
            url,
            server,
            admin_upn,
            admin_password_file: pw_file,
            log: dir.join("cloud.log"),
        })
    }

    /// An API call as the admin; the answer's JSON (null for 204).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        self.api.call(method, path, body).await
    }

    /// A handle on the API for tasks.
    pub fn client(&self) -> Api {
        self.api.clone()
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.api(reqwest::Method::GET, path, None).await
    }

    /// Peak resident memory of `cloud serve` so far, in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        self.server.peak_rss()
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Sets the delta schedule the agents follow.
    pub async fn set_delta_interval(&self, secs: u32) -> Result<()> {
        self.api(
            reqwest::Method::PATCH,
            "/api/v1/sync/settings",
            Some(json!({ "deltaIntervalSecs": secs })),
        )
        .await?;
        Ok(())
    }
}

/// `dirbridge cloud serve` of the database `db` (SQLite in `data`) on a free loopback port,
/// logging to `log`; returns its URL once it answers `/healthz`. Another call on the same
/// PostgreSQL database is a second instance behind the same (imagined) load balancer.
pub async fn serve(bin: &Path, data: &Path, db: &Db, log: &Path) -> Result<(String, Server)> {
    let port = free_port()?;
    let mut serve = Command::new(bin);
    // The harness is the reverse proxy: requests it makes for a person carry the person's
    // address in X-Forwarded-For, so the per-address limits apply per person, as they
    // would to people behind a real proxy (see `Api::anonymous`).
    serve
        .env("DIRBRIDGE_TRUSTED_PROXIES", "127.0.0.1")
        .args(["cloud", "serve", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    if let Db::Postgres(url) = db {
        serve.args(["--database-url", url]);
    }
    let server = Server::spawn("dirbridge cloud serve", serve, log)?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await {
            if r.status().is_success() {
                return Ok((url, server));
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the cloud did not answer /healthz within 30 s (see {})",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Api {
    /// The same API as whoever holds `token` (a person signed in as themselves).
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// An API call as the admin; the answer's JSON (null for 204).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// A call without a bearer token (sign-in, the start of a self-service reset) on `http`,
    /// as if from `from` (`X-Forwarded-For`; the cloud trusts the harness as its proxy); any
    /// status is an answer, only a transport failure is an error.
    pub async fn anonymous(
        &self,
        http: &reqwest::Client,
        from: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        self.unsigned(http, from, method, path, None, body).await
    }

    /// [`Api::anonymous`] on the reset session `session`: its secret in the
    /// `X-Dirbridge-Sspr-Session` header, as the cloud wants it (never in the path).
    pub async fn in_session(
        &self,
        http: &reqwest::Client,
        from: &str,
        method: reqwest::Method,
        path: &str,
        session: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        self.unsigned(http, from, method, path, Some(session), body)
            .await
    }

    async fn unsigned(
        &self,
        http: &reqwest::Client,
        from: &str,
        method: reqwest::Method,
        path: &str,
        session: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let mut req = http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("x-forwarded-for", from);
        if let Some(s) = session {
            req = req.header("x-dirbridge-sspr-session", s);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let at_ms = epoch_ms();
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok(Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            at_ms,
        })
    }
}

/// A registered agent data directory with one connector to `directory`.
pub struct Agent {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    log_dir: PathBuf,
    /// Extra environment for `agent run` (experiments: `--agent-env`).
    pub env: Vec<(String, String)>,
}

impl Agent {
    /// Creates a registration token (the directory's domain was verified at start), registers the agent and
    /// adds a connector to the synced root of `directory`.
    pub async fn register(
        bin: &Path,
        dir: &Path,
        cloud: &Cloud,
        directory: &Directory,
    ) -> Result<Agent> {
        let t = cloud
            .api(
                reqwest::Method::POST,
                "/api/v1/agents/tokens",
                Some(json!({})),
            )
            .await?;
        let token_file = dir.join("registration.token");
        write_private(&token_file, t["token"].as_str().context("no token")?)?;
        let data_dir = dir.join("agent");
        let mut reg = Command::new(bin);
        reg.args(["agent", "register", "--data-dir"])
            .arg(&data_dir)
            .args(["--cloud", &cloud.url, "--token-file"])
            .arg(&token_file)
            .args(["--name", "bench"]);
        procs::run(reg).context("dirbridge agent register")?;
        let mut add = Command::new(bin);
        add.args(["agent", "connector", "add", "--data-dir"])
            .arg(&data_dir)
            .args([
                "--name",
                "bench",
                "--kind",
                directory.kind.connector_kind(),
                "--url",
                directory.ldaps_url()?,
                "--ca-file",
                directory.ca_file()?,
                "--bind-dn",
                directory.service_dn()?,
                "--base-dn",
                directory.base_dn()?,
                "--include-ou",
                directory.synced_root()?,
                "--password-file",
            ])
            .arg(directory.service_password_file());
        procs::run(add).context("dirbridge agent connector add")?;
        Ok(Agent {
            bin: bin.to_path_buf(),
            data_dir,
            log_dir: dir.to_path_buf(),
            env: Vec::new(),
        })
    }

    /// `dirbridge agent sync run --full`, timed, with its peak memory.
    pub fn full_sync(&self) -> Result<Finished> {
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "agent",
            "sync",
            "run",
            "--full",
            "--output",
            "json",
            "--data-dir",
        ])
        .arg(&self.data_dir);
        let log = self.log_dir.join("agent-full-sync.log");
        let f = procs::run_measured(cmd, &log)?;
        if !f.success {
            bail!(
                "dirbridge agent sync run --full failed: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Ok(f)
    }

    /// `dirbridge agent run`, the service with its schedule.
    pub fn service(&self) -> Result<Server> {
        self.service_logged("agent-run.log", &[])
    }

    /// `dirbridge agent run`, its output to `log` in the run's directory, with `env` (which
    /// `--agent-env` overrides).
    pub fn service_logged(&self, log: &str, env: &[(&str, &str)]) -> Result<Server> {
        let mut cmd = Command::new(&self.bin);
        cmd.envs(env.iter().copied())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["agent", "run", "--data-dir"])
            .arg(&self.data_dir);
        Server::spawn("dirbridge agent run", cmd, &self.log_dir.join(log))
    }

    /// The agent's event log (`dirbridge agent events --output json`).
    pub fn events(&self) -> Result<Vec<Value>> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["agent", "events", "--output", "json", "--data-dir"])
            .arg(&self.data_dir);
        let out = procs::run(cmd).context("dirbridge agent events")?;
        Ok(serde_json::from_str::<Value>(&out)?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// `dirbridge agent writeback enable` as the tenant's administrator (password from its
    /// 0600 file): checks the directory rights, creates the sealing key, tells the cloud.
    pub fn enable_writeback(&self, cloud: &Cloud) -> Result<()> {
        let mut cmd = Command::new(&self.bin);
        cmd.env("DIRBRIDGE_CONFIG_DIR", self.log_dir.join("cli-config"))
            .args(["agent", "writeback", "enable", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--cloud", &cloud.url, "--admin", &cloud.admin_upn])
            .arg("--password-file")
            .arg(&cloud.admin_password_file);
        let out = procs::run(cmd).context("dirbridge agent writeback enable")?;
        if !out.contains("Password reset write-back is enabled.") {
            bail!("dirbridge agent writeback enable did not say it is enabled: {out}");
        }
        Ok(())
    }
}

/// Random letters and digits (for throwaway passwords).
pub fn random_text(n: usize) -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}
