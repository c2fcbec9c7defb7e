//! A throwaway PostgreSQL 15 cluster for tests: a fresh data directory in a temporary directory,
//! `postgres` on a free loopback port (unix socket in the same directory), trust authentication,
//! no fsync. Start-up takes a fraction of a second: `initdb` runs once per machine into a template
//! (`/dev/shm/dirbridge-pg-template-*`, kept for later runs) that each cluster copies.
//!
//! PostgreSQL refuses to run as root, so when the test runs as root the directory is handed to
//! the `postgres` system user and the server runs as that user. The server is stopped (fast
//! shutdown) when the fixture is dropped, and it is told to quit if the test process dies
//! (`PR_SET_PDEATHSIG`), so a crashed test does not leave a server behind; the directory such a
//! test leaves is removed by the next start.
//!
//! Environment: `DIRBRIDGE_PG_BIN` (default `/usr/lib/postgresql/15/bin`) and
//! `DIRBRIDGE_PG_TMPDIR` (default `/dev/shm`, else the system temporary directory).

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
        let base = scratch_base();
        sweep_stale(&base);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(&base)
            .with_context(|| {
                format!(
                    "create a temporary directory for PostgreSQL in {}",
                    base.display()
                )
            })?;
        fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())?;
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        fs::create_dir(&sock)?;
        if let Some(r) = run_as {
            // The server user must be able to reach and own its directories.
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
            chown(dir.path(), r)?;
            chown(&sock, r)?;
        }
        let template = template(&bin, &base, run_as)?;
        let out = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .context("run cp")?;
        if !out.status.success() {
            bail!(
                "copying the PostgreSQL template failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }

        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match start_server(&bin, &data, &sock, dir.path(), port, run_as) {
                Ok(child) => {
                    return Ok(Postgres {
                        child: Some(child),
                        port,
                        dir,
                    })
                }
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
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ])
            .stdin(Stdio::null())
            .output()
            .context("run createdb")?;
        if !out.status.success() {
            bail!(
                "createdb {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(self.url_for(name))
    }

    /// The one value `sql` (a query of one row and column) gives in database `name`, as text
    /// (`psql -tA`): for tests that look at what several processes wrote.
    pub fn query_value(&self, name: &str, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(bin_dir().join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                name,
                "-tAc",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .context("run psql")?;
        if !out.status.success() {
            bail!(
                "psql {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
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
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Prefix of every per-cluster directory.
const DIR_PREFIX: &str = "dirbridge-pg-";
/// File in a cluster directory naming the process that owns it.
const OWNER_FILE: &str = "owner.pid";

/// Where clusters live: `$DIRBRIDGE_PG_TMPDIR`, else `/dev/shm` (memory: initdb and copies are
/// several times faster than on disk), else the system temporary directory.
fn scratch_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("DIRBRIDGE_PG_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    // Each cluster takes ~40 MB, and containers often give /dev/shm only 64 MB.
    let roomy = free_bytes(shm).is_some_and(|free| free >= SHM_NEEDED);
    let writable = roomy
        && tempfile::Builder::new()
            .prefix(".dirbridge-probe-")
            .tempdir_in(shm)
            .is_ok();
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Free space /dev/shm must have for clusters to go there.
const SHM_NEEDED: u64 = 1 << 30;

fn free_bytes(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; c is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Remove cluster directories whose owning process has died (a test killed before its fixture
/// was dropped); their servers have already quit on the parent-death signal.
fn sweep_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(DIR_PREFIX) || name.starts_with(TEMPLATE_PREFIX) {
            continue;
        }
        let Ok(owner) = fs::read_to_string(entry.path().join(OWNER_FILE)) else {
            continue;
        };
        let Ok(pid) = owner.trim().parse::<libc::pid_t>() else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

const TEMPLATE_PREFIX: &str = "dirbridge-pg-template-";

/// An initdb'd data directory, made once per machine (per server binary and user) and copied
/// for each cluster. Created under a temporary name and renamed, so a reader never sees half.
fn template(bin: &Path, base: &Path, run_as: Option<RunAs>) -> anyhow::Result<PathBuf> {
    let postgres = fs::metadata(bin.join("postgres")).context("inspect the postgres binary")?;
    let stamp = postgres
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let name = format!(
        "{TEMPLATE_PREFIX}{euid}-{}-{}",
        postgres.len(),
        stamp.map(|d| d.as_secs()).unwrap_or_default()
    );
    let path = base.join(name);
    if path.join("PG_VERSION").exists() {
        return Ok(path);
    }
    let staging = tempfile::Builder::new()
        .prefix(".dirbridge-pg-staging-")
        .tempdir_in(base)
        .context("create a staging directory for the PostgreSQL template")?;
    let data = staging.path().join("data");
    if let Some(r) = run_as {
        fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))?;
        chown(staging.path(), r)?;
    }
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ])
        .current_dir(staging.path())
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
    // Another process may have won the race; its template is as good as ours.
    if fs::rename(&data, &path).is_err() && !path.join("PG_VERSION").exists() {
        bail!(
            "could not install the PostgreSQL template at {}",
            path.display()
        );
    }
    Ok(path)
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
    let mut child =
        spawn_from_keeper(cmd).map_err(|e| StartError::Other(anyhow!("start postgres: {e}")))?;

    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| StartError::Other(e.into()))? {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let err = anyhow!("postgres exited during start-up ({status}):\n{log}");
            return Err(
                if log.contains("could not bind") || log.contains("Address already in use") {
                    StartError::PortTaken(err)
                } else {
                    StartError::Other(err)
                },
            );
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
    if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_err()
    {
        return false;
    }
    Command::new(bin.join("pg_isready"))
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-t",
            "2",
        ])
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
    std::env::var_os("DIRBRIDGE_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BIN_DIR))
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
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGQUIT as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
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
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?
}
