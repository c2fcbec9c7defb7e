//! Child processes: the real binaries, started as an operator would, stopped by signal, with
//! their peak memory (`ru_maxrss` from `wait4`, or `VmHWM` while a server still runs).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// A server process that is stopped (SIGINT, then SIGKILL after a deadline) when dropped.
pub struct Server {
    pub name: String,
    child: Option<Child>,
}

impl Server {
    /// Starts `cmd` with stdout and stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Server> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        Ok(Server {
            name: name.into(),
            child: Some(child),
        })
    }

    /// Starts `cmd` and reads its standard output until it forms one JSON document (the
    /// testkit's `up --json` prints its details, then keeps the server running).
    pub fn spawn_json(
        name: &str,
        mut cmd: Command,
        log: &Path,
        deadline: Duration,
    ) -> Result<(Server, serde_json::Value)> {
        let err = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let server = Server {
            name: name.into(),
            child: Some(child),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                text.push_str(&line);
                text.push('\n');
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    let _ = tx.send(Ok(v));
                    return;
                }
            }
            let _ = tx.send(Err(anyhow!("exited before printing its details")));
        });
        match rx.recv_timeout(deadline) {
            Ok(Ok(v)) => Ok((server, v)),
            Ok(Err(e)) => Err(e.context(format!("{name} (see {})", log.display()))),
            Err(_) => bail!(
                "{name} did not start within {deadline:?} (see {})",
                log.display()
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Peak resident memory so far, in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no VmHWM for {}", self.name))?;
        Ok(kb * 1024)
    }

    /// SIGINT (what Ctrl-C sends), then waits; SIGKILL after 20 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: a signal to our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How a finished command went.
pub struct Finished {
    pub elapsed: Duration,
    /// Peak resident memory of the process, in bytes.
    pub peak_rss: u64,
    pub success: bool,
}

/// Runs `cmd` to the end (output to `log`), timing it and taking its peak memory.
pub fn run_measured(mut cmd: Command, log: &Path) -> Result<Finished> {
    let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("start the command")?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    // The child is reaped: forget the handle without waiting again.
    std::mem::forget(child);
    if r != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    Ok(Finished {
        elapsed,
        peak_rss: usage.ru_maxrss as u64 * 1024,
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    })
}

/// Runs `cmd` and fails with its output when it does not succeed.
pub fn run(mut cmd: Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}{}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Writes `text` to `path` readable by the owner only.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    Ok(())
}
