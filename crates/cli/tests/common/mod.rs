//! A real cloud for CLI tests: `dirbridge cloud init` then `dirbridge cloud serve` as a child
//! process in a temporary directory, killed on drop; and a way to run the built `dirbridge`
//! against it with its own configuration directory.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

pub mod agent_host;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "Adm1n-Pass-word!";
pub const USER_PASSWORD: &str = "Us3r-Pass-word!";

/// Environment variables that would change what the binary does; tests start without them.
const AMBIENT: &[&str] = &[
    "DIRBRIDGE_CLOUD",
    "DIRBRIDGE_OUTPUT",
    "DIRBRIDGE_CONFIG_DIR",
    "DIRBRIDGE_LISTEN",
    "DIRBRIDGE_DATA_DIR",
    "DIRBRIDGE_DATABASE_URL",
    "DIRBRIDGE_DOMAIN_SUFFIX",
    "DIRBRIDGE_TOKEN_LIFETIME_SECS",
    "DIRBRIDGE_MAX_BODY_BYTES",
];

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dirbridge")
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `dirbridge args…` with `config_dir` as its configuration directory and `stdin` as input.
pub fn run_in(config_dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = assert_cmd::Command::new(bin());
    for var in AMBIENT {
        cmd.env_remove(var);
    }
    cmd.env("DIRBRIDGE_CONFIG_DIR", config_dir).args(args);
    cmd.write_stdin(stdin.unwrap_or("").as_bytes().to_vec());
    let out = cmd.output().expect("run dirbridge");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub struct Cloud {
    pub url: String,
    pub domain: String,
    pub admin: String,
    /// The CLI's configuration directory (credentials.json lives here).
    pub config_dir: PathBuf,
    child: Child,
    log: PathBuf,
    /// How `cloud serve` was started: its data directory, PostgreSQL URL and extra environment.
    data: PathBuf,
    database_url: Option<String>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Cloud {
    /// Initialises tenant `contoso` and serves it on a free loopback port.
    pub fn start() -> Cloud {
        Cloud::start_with(None, &[])
    }

    /// As [`Cloud::start`], on the PostgreSQL database `database_url` instead of SQLite, with
    /// `env` (e.g. `DIRBRIDGE_LIMIT_SIGN_IN_PER_MINUTE`) set for `cloud serve`.
    pub fn start_on(database_url: &str, env: &[(&str, &str)]) -> Cloud {
        Cloud::start_with(Some(database_url.to_string()), env)
    }

    fn start_with(database_url: Option<String>, env: &[(&str, &str)]) -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config_dir = dir.path().join("config");
        let mut args = vec![
            "cloud",
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--tenant",
            "contoso",
            "--admin",
            "admin",
            "--password-stdin",
        ];
        if let Some(url) = &database_url {
            args.extend(["--database-url", url.as_str()]);
        }
        let init = run_in(&config_dir, &args, Some(&format!("{ADMIN_PASSWORD}\n"))).ok();
        let domain = "contoso.dirbridge.internal".to_string();
        let admin = format!("admin@{domain}");
        assert!(
            init.stdout.contains(&domain) && init.stdout.contains(&admin),
            "{}",
            init.stdout
        );
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Cloud::serve(dir, data, database_url, env, domain, admin)
    }

    /// Another `cloud serve` process on this one's PostgreSQL database (same tenant, same
    /// settings), on a port, a log and a CLI configuration directory of its own.
    pub fn another_instance(&self) -> Cloud {
        assert!(
            self.database_url.is_some(),
            "several instances need PostgreSQL"
        );
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Cloud::serve(
            dir,
            data,
            self.database_url.clone(),
            self.env.clone(),
            self.domain.clone(),
            self.admin.clone(),
        )
    }

    fn serve(
        dir: tempfile::TempDir,
        data: PathBuf,
        database_url: Option<String>,
        env: Vec<(String, String)>,
        domain: String,
        admin: String,
    ) -> Cloud {
        let config_dir = dir.path().join("config");
        let log = dir.path().join("serve.log");
        // A port picked free can be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let listen = format!("127.0.0.1:{port}");
            let log_file = std::fs::File::create(&log).unwrap();
            let mut cmd = std::process::Command::new(bin());
            for var in AMBIENT {
                cmd.env_remove(var);
            }
            cmd.args([
                "cloud",
                "serve",
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                &listen,
            ]);
            if let Some(url) = &database_url {
                cmd.args(["--database-url", url]);
            }
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("start dirbridge cloud serve");
            if wait_healthy(&mut child, &listen, &log, Duration::from_secs(60)) {
                return Cloud {
                    url: format!("http://{listen}"),
                    domain,
                    admin,
                    config_dir,
                    child,
                    log,
                    data,
                    database_url,
                    env,
                    dir,
                };
            }
            let _ = child.wait();
        }
        panic!(
            "dirbridge cloud serve did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Kills the `cloud serve` process at once (SIGKILL: no draining), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What `cloud serve` logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new one-time agent registration token (the admin's `agents token create --output json`).
    pub fn new_token(&self) -> String {
        let v = self
            .run(&["agents", "token", "create", "--output", "json"])
            .ok()
            .json();
        v["token"].as_str().expect("token in JSON").to_string()
    }

    /// Runs `dirbridge args…` as this cloud's administrator client.
    pub fn run(&self, args: &[&str]) -> Run {
        run_in(&self.config_dir, args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run_in(&self.config_dir, args, Some(stdin))
    }

    /// Signs the administrator in, password on standard input.
    pub fn login(&self) -> Run {
        self.run_with_stdin(
            &[
                "login",
                "--cloud",
                &self.url,
                "--user",
                &self.admin,
                "--password-stdin",
            ],
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .ok()
    }

    /// The host operator's `dirbridge cloud domains verify`: claims `domain` for the tenant if
    /// needed and marks it verified (no DNS), in the running cloud's database.
    pub fn verify_domain_on_host(&self, domain: &str) -> Run {
        let data = self.data.to_str().unwrap();
        let mut args = vec!["cloud", "domains", "verify", "--data-dir", data];
        if let Some(url) = &self.database_url {
            args.extend(["--database-url", url.as_str()]);
        }
        args.extend(["--tenant", "contoso", domain]);
        self.run(&args).ok()
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.config_dir.join("credentials.json")
    }

    pub fn upn(&self, name: &str) -> String {
        format!("{name}@{}", self.domain)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Polls `/healthz` until it answers 200 (true) or the server exits (false); panics at the deadline.
fn wait_healthy(child: &mut Child, addr: &str, log: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(
                format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    panic!(
        "dirbridge cloud serve was not healthy within {within:?}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cells of the table row whose first cell is `key` (columns are two or more spaces apart).
pub fn row<'a>(table: &'a str, key: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .find(|l| l.split("  ").next() == Some(key))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
}

/// Writes `text` to `path` (created or truncated), readable only by its owner.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Every regular file below `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
