//! Child processes: the real binaries, started as an operator would, stopped by signal, with
//! their peak memory (`VmHWM`, read while they run).

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
        let kb = vm_hwm_kb(&status).ok_or_else(|| anyhow!("no VmHWM for {}", self.name))?;
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
    /// Peak resident memory of the process, in bytes: its `VmHWM`, read while it ran (`None` when
    /// it ended before the first reading).
    pub peak_rss: Option<u64>,
    pub success: bool,
}

/// Runs `cmd` to the end (output to `log`), timing it and taking its peak memory.
///
/// The peak is not `wait4`'s `ru_maxrss`: `Command` starts the child with `posix_spawn`, whose
/// child shares this process's memory until it execs, and exec folds the high-water mark of the
/// memory it leaves into the child's `ru_maxrss`. A 25 MB agent spawned by a benchmark that once
/// held 95 MB reports 95 MB. `VmHWM` is the high-water mark of the child's own memory only, so a
/// thread reads it until the child has exited; the child is reaped only after that thread stops,
/// so its pid cannot be reused under the reader.
pub fn run_measured(mut cmd: Command, log: &Path) -> Result<Finished> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("start the command")?;
    let pid = child.id() as libc::pid_t;
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            while !done.load(Ordering::Acquire) {
                if let Some(kb) = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| vm_hwm_kb(&s))
                {
                    peak.fetch_max(kb * 1024, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    // Wait for the exit without reaping (WNOWAIT): the zombie keeps the pid ours.
    // SAFETY: a zeroed siginfo is a valid value; waitid fills it for our own child.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    let elapsed = started.elapsed();
    done.store(true, Ordering::Release);
    let _ = reader.join();
    if r != 0 {
        bail!("waitid: {}", std::io::Error::last_os_error());
    }
    let mut status: libc::c_int = 0;
    // SAFETY: reaps our own child, which has exited.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    // The child is reaped: forget the handle without waiting again.
    std::mem::forget(child);
    if r != pid {
        bail!("waitpid: {}", std::io::Error::last_os_error());
    }
    let peak = peak.load(Ordering::Relaxed);
    Ok(Finished {
        elapsed,
        peak_rss: (peak > 0).then_some(peak),
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    })
}

/// The `VmHWM` line of a `/proc/<pid>/status`, in KiB.
fn vm_hwm_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The measured peak is the child's own, not this process's: with `ru_maxrss` a child
    /// started after this process once held 300 MB reported at least 300 MB.
    #[test]
    fn a_childs_peak_is_its_own_not_its_parents() {
        let big = vec![1u8; 300 << 20];
        let touched: u64 = big.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        assert_eq!(touched, (300 << 20) / 4096);
        drop(big);
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        // 40 MB of its own, held long enough to be read.
        cmd.args([
            "-c",
            "import time; b = bytearray(40 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)",
        ]);
        let f = run_measured(cmd, &dir.path().join("child.log")).unwrap();
        assert!(
            f.success,
            "{}",
            std::fs::read_to_string(dir.path().join("child.log")).unwrap()
        );
        let mb = f.peak_rss.expect("read while it ran") >> 20;
        assert!((40..120).contains(&mb), "child peak {mb} MB");
    }
}
