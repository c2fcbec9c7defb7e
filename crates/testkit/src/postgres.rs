//! A throwaway PostgreSQL 15 cluster for tests: `initdb` into a temporary directory, `postgres` on
//! a free loopback port (unix socket in the same directory), trust authentication, no fsync.
//!
//! PostgreSQL refuses to run as root, so when the test runs as root the directory is handed to
//! the `postgres` system user and the server runs as that user. The server is stopped (fast
//! shutdown) when the fixture is dropped, and it is told to quit if the test process dies
//! (`PR_SET_PDEATHSIG`), so a crashed test does not leave a server behind.

use std::ffi::CString;
use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// Where Debian's `postgresql-15` package puts the server binaries.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How long the server may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// Attempts at finding a free port (another process may take the one we picked).
const PORT_ATTEMPTS: usize = 5;

/// A running PostgreSQL cluster. The superuser is `postgres`, reachable without a password on
/// 127.0.0.1; [`Postgres::url`] points at the `postgres` database.
pub struct Postgres {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// The system account a root process runs the server as.
#[derive(Clone, Copy)]
struct RunAs {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl Postgres {
    /// Create a fresh cluster and start it; returns once it accepts connections.
    pub fn start() -> anyhow::Result<Postgres> {
        let bin = bin_dir();
        if !bin.join("postgres").exists() {
            bail!(
                "PostgreSQL 15 is not installed ({} is missing); install it with `apt-get install postgresql-15`",
                bin.join("postgres").display()
            );
        }
        let run_as = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("dirbridge-pg-")
            .tempdir()
            .context("create a temporary directory for PostgreSQL")?;
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        fs::create_dir(&sock)?;
        if let Some(r) = run_as {
            // The server user must be able to reach and own its directories.
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
            chown(dir.path(), r)?;
            chown(&sock, r)?;
        }

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])
            .current_dir(dir.path())
            .stdin(Stdio::null());
        drop_privileges(&mut initdb, run_as, false);
        let out = initdb.output().context("run initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match start_server(&bin, &data, &sock, dir.path(), port, run_as) {
                Ok(child) => return Ok(Postgres { child: Some(child), port, dir }),
                Err(StartError::PortTaken(e)) => last_err = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("could not find a free port for PostgreSQL")))
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `name` on this cluster (which need not exist yet).
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, name)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster (`data/`), its socket (`sock/`) and its log (`postgres.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Create an empty database and return its URL, so each test can have its own.
    /// `name` must be a plain identifier (letters, digits, `_`).
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("database name {name:?} must consist of letters, digits and '_'");
        }
        let out = Command::new(bin_dir().join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", name])
            .stdin(Stdio::null())
            .output()
            .context("run createdb")?;
        if !out.status.success() {
            bail!("createdb {name} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(self.url_for(name))
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("port", &self.port).field("dir", &self.dir.path()).finish()
    }
}

enum StartError {
    PortTaken(anyhow::Error),
    Other(anyhow::Error),
}

fn start_server(
    bin: &Path,
    data: &Path,
    sock: &Path,
    dir: &Path,
    port: u16,
    run_as: Option<RunAs>,
) -> Result<Child, StartError> {
    let log_path = dir.join("postgres.log");
    let log = fs::File::create(&log_path).map_err(|e| StartError::Other(e.into()))?;
    let log_err = log.try_clone().map_err(|e| StartError::Other(e.into()))?;
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(sock)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "shared_buffers=32MB",
            "-c",
            "max_connections=100",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    drop_privileges(&mut cmd, run_as, true);
    let mut child = spawn_from_keeper(cmd).map_err(|e| StartError::Other(anyhow!("start postgres: {e}")))?;

    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| StartError::Other(e.into()))? {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let err = anyhow!("postgres exited during start-up ({status}):\n{log}");
            return Err(if log.contains("could not bind") || log.contains("Address already in use") {
                StartError::PortTaken(err)
            } else {
                StartError::Other(err)
            });
        }
        if accepts_connections(bin, port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            stop(&mut child);
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(StartError::Other(anyhow!(
                "postgres did not accept connections within {START_DEADLINE:?}:\n{log}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `pg_isready` succeeds only once the server accepts sessions (not while it is starting up).
fn accepts_connections(bin: &Path, port: u16) -> bool {
    if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_err() {
        return false;
    }
    Command::new(bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-t", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Fast shutdown (SIGINT: abort transactions, disconnect, checkpoint), then SIGKILL if it hangs.
fn stop(child: &mut Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn bin_dir() -> PathBuf {
    std::env::var_os("DIRBRIDGE_PG_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(BIN_DIR))
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("find a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// `Some(postgres user)` when running as root, `None` otherwise.
fn run_as() -> anyhow::Result<Option<RunAs>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns a pointer to static storage or NULL; we copy the ids out at once.
    // Tests calling this concurrently may race on that storage, so serialise the lookup.
    static LOOKUP: Mutex<()> = Mutex::new(());
    let _guard = LOOKUP.lock().unwrap_or_else(|p| p.into_inner());
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!("running as root, but there is no `postgres` system user to run PostgreSQL as (install postgresql-15)");
    }
    // SAFETY: pw is non-null and points at a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

fn chown(path: &Path, r: RunAs) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid))
        .with_context(|| format!("chown {} to the postgres user", path.display()))
}

/// In the child, between fork and exec: become the server user (when root) and, for the
/// long-running server, ask the kernel to send SIGQUIT (immediate shutdown) when our process dies.
fn drop_privileges(cmd: &mut Command, run_as: Option<RunAs>, die_with_parent: bool) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: only async-signal-safe calls (setgroups, setgid, setuid, prctl, getppid) run in
    // the forked child before exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(r) = run_as {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(r.gid) != 0
                    || libc::setuid(r.uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            if die_with_parent {
                // Set after setuid: changing credentials clears the parent-death signal.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    // Our process died between fork and prctl.
                    libc::_exit(1);
                }
            }
            Ok(())
        });
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// The parent-death signal fires when the *thread* that forked the child exits, not the process.
/// Tests start servers from short-lived threads (libtest's per-test threads, tokio's blocking
/// pool), so servers are forked from one thread that lives as long as the process.
fn spawn_from_keeper(cmd: Command) -> io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the testkit spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?;
    reply_rx.recv().map_err(|_| io::Error::other("testkit spawner thread is gone"))?
}
