//! Child server processes: started so that they die with the test process, stopped by process
//! group, waited for with a deadline (never a fixed sleep).
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, not the process. Test
//! harnesses run each test on its own thread, so a server started by one test and shared with
//! the next would be killed when the first test's thread ends. Every server is therefore forked
//! by one long-lived spawner thread that lives as long as the process.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                // The sender lives in a static, so this loop lasts as long as the process.
                while let Ok((mut cmd, reply)) = rx.recv() {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the testkit spawner thread");
        Mutex::new(tx)
    })
}

/// Starts `cmd` in its own process group, killed (SIGKILL) if this process dies.
pub(crate) fn spawn_server(mut cmd: Command) -> io::Result<Child> {
    cmd.process_group(0);
    // SAFETY: prctl, sigprocmask and getppid are async-signal-safe; the closure allocates
    // nothing.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Servers must see SIGTERM even if the caller blocked it (the CLI does).
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| io::Error::other("spawner poisoned"))?
        .send((cmd, tx))
        .map_err(|_| io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread gone"))?
}

/// A running server. Dropping it stops the whole process group: SIGTERM, then SIGKILL after a
/// grace period.
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
}

impl ServerProcess {
    pub(crate) fn new(name: impl Into<String>, child: Child) -> ServerProcess {
        ServerProcess {
            name: name.into(),
            child: Some(child),
        }
    }

    /// The process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `Some(status)` if the server has exited.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Fails if the server has exited, naming it and its exit status.
    pub(crate) fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.try_exited() {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }

    /// Stops the server and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as libc::pid_t;
        // SAFETY: plain syscalls on a process group this process created.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    // SAFETY: as above.
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        // Anything the server forked and left behind in its group.
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` every few milliseconds until it returns `Ok(true)` or `deadline` passes.
/// `check` returning `Err` aborts at once (e.g. the server exited).
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// True if something accepts TCP connections on `addr`.
pub fn port_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Runs a command to completion; fails with its output if it does not exit 0.
pub(crate) fn run(cmd: &mut Command) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// A loopback address `127.x.y.z` nobody listens on at `ports`, so a server with fixed ports
/// (Samba) can have it to itself.
pub fn free_loopback_address(ports: &[u16]) -> Result<Ipv4Addr> {
    for _ in 0..64 {
        let x: u8 = rand::random::<u8>().clamp(1, 254);
        let y: u8 = rand::random();
        let z: u8 = rand::random::<u8>().clamp(2, 254);
        if x == 0 && y == 0 {
            continue;
        }
        let ip = Ipv4Addr::new(127, x, y, z);
        let free = ports
            .iter()
            .all(|p| TcpListener::bind(SocketAddr::from((ip, *p))).is_ok());
        if free {
            return Ok(ip);
        }
    }
    bail!(
        "no loopback address 127.x.y.z has ports {ports:?} free: is a system LDAP server (slapd, \
         samba) listening on 0.0.0.0? Stop it (e.g. `service slapd stop`)"
    )
}

/// A TCP port on `ip` that was free a moment ago.
pub fn free_port(ip: Ipv4Addr) -> Result<u16> {
    let l = TcpListener::bind((ip, 0)).context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

/// The directory under which fixtures put their instance directories:
/// `$DIRBRIDGE_TESTKIT_RUN` or `$TMPDIR/dirbridge-testkit`.
fn run_root() -> PathBuf {
    std::env::var_os("DIRBRIDGE_TESTKIT_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dirbridge-testkit"))
}

/// A fresh instance directory named `<kind>-<pid>-<random>`, removed on drop. Directories left
/// by processes that no longer exist (killed test runs) are swept first.
pub fn instance_dir(kind: &str) -> Result<tempfile::TempDir> {
    let root = run_root();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    sweep_stale(&root);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{kind}-{}-", std::process::id()))
        .tempdir_in(&root)
        .with_context(|| format!("creating an instance directory in {}", root.display()))?;
    Ok(dir)
}

fn sweep_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        if !pid_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub(crate) type ExitHook = Box<dyn FnOnce() + Send>;

/// Whether process `pid` exists and is not a zombie.
pub(crate) fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Process-exit cleanup for fixtures held in statics (which are never dropped): registered
/// closures run from `atexit`, so shared servers are stopped and their directories removed
/// when the test binary exits normally. A killed test binary still takes its servers down
/// through `PR_SET_PDEATHSIG`; its directories are swept by the next run.
pub(crate) fn at_exit(f: ExitHook) {
    static HOOKS: OnceLock<Mutex<Vec<ExitHook>>> = OnceLock::new();
    extern "C" fn run_hooks() {
        if let Some(hooks) = HOOKS.get() {
            let hooks = match hooks.lock() {
                Ok(mut h) => std::mem::take(&mut *h),
                Err(_) => return,
            };
            for hook in hooks {
                hook();
            }
        }
    }
    let mut first = false;
    let hooks = HOOKS.get_or_init(|| {
        first = true;
        Mutex::new(Vec::new())
    });
    if first {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(run_hooks);
        }
    }
    if let Ok(mut h) = hooks.lock() {
        h.push(f);
    }
}

/// The path of `name`, looked up in `$PATH` and then in the sbin directories (Debian puts
/// `samba`, `slapd` and `slapadd` in `/usr/sbin`, which a non-login shell may not have).
pub fn find_program(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("{name} not found in PATH or /usr/sbin; install the Debian package that provides it")
}

/// Serializes a duration as seconds (f64), for the CLI's JSON.
pub(crate) fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}
