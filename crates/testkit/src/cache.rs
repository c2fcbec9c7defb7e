//! A cross-process cache of built server templates (a provisioned Samba domain, a loaded
//! dataset). Test runners such as nextest run every test in its own process, so an in-process
//! `OnceLock` alone would provision once per test; a template built once and copied per
//! instance makes each start take well under a second.
//!
//! Location: `$DIRBRIDGE_TESTKIT_CACHE`, else `<cargo target dir>/testkit-cache`. Entries are
//! keyed by a hash of everything that shapes them; an entry is built in a temporary directory
//! under an exclusive `flock` and renamed into place, so concurrent test processes build it once.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Bump when the layout or content of any cached template changes.
pub(crate) const CACHE_FORMAT: u32 = 3;

static ROOT_OVERRIDE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Uses `dir` as the cache root for the rest of this process (tests that must build from
/// scratch, benchmarks of cold builds).
pub fn set_cache_root(dir: &Path) {
    *ROOT_OVERRIDE.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.to_path_buf());
}

/// The cache root.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = ROOT_OVERRIDE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        return dir;
    }
    if let Some(dir) = std::env::var_os("DIRBRIDGE_TESTKIT_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("testkit-cache");
    }
    // crates/testkit → workspace root → target
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    workspace.join("target/testkit-cache")
}

/// A short stable key for `parts`.
pub(crate) fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(CACHE_FORMAT.to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    digest[..10].iter().map(|b| format!("{b:02x}")).collect()
}

/// Returns the directory `<root>/<name>-<key>`, building it with `build` (given an empty
/// directory to fill) if it does not exist yet. Safe against concurrent callers in other
/// processes.
pub(crate) fn get_or_build(
    name: &str,
    key: &str,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let root = cache_root();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let dir = root.join(format!("{name}-{key}"));
    if dir.join(".complete").exists() {
        touch(&dir.join(".complete"));
        return Ok(dir);
    }
    let lock_path = root.join(format!("{name}-{key}.lock"));
    let lock =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!(
            "locking {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        );
    }
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let tmp = root.join(format!("{name}-{key}.building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    if let Err(e) = build(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("building the cached {name} template")));
    }
    std::fs::write(tmp.join(".complete"), b"")?;
    std::fs::rename(&tmp, &dir).with_context(|| format!("moving {} into place", tmp.display()))?;
    drop(lock);
    prune(&root, name, &dir);
    Ok(dir)
}

/// Entries not used for this long are removed when a sibling is built.
const UNUSED_FOR: Duration = Duration::from_secs(3 * 24 * 3600);

fn touch(path: &Path) {
    if let Ok(f) = File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Removes other entries of `name` (older keys) that have not been used for [`UNUSED_FOR`],
/// and half-built ones left by processes that died.
fn prune(root: &Path, name: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let prefix = format!("{name}-");
    for entry in entries.flatten() {
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if path == keep || !file_name.starts_with(&prefix) || file_name.ends_with(".lock") {
            continue;
        }
        if let Some((_, pid)) = file_name.split_once(".building-") {
            let alive = pid
                .parse::<i32>()
                .map(crate::process::pid_alive)
                .unwrap_or(false);
            if !alive {
                let _ = std::fs::remove_dir_all(&path);
            }
            continue;
        }
        let unused = std::fs::metadata(path.join(".complete"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age > UNUSED_FOR);
        if unused {
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(root.join(format!("{file_name}.lock")));
        }
    }
}

/// Copies the contents of directory `from` into `to` (created if missing); sparse files stay
/// sparse, attributes are preserved.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    crate::process::run(
        Command::new("cp")
            .arg("-a")
            .arg("--sparse=always")
            .arg("--reflink=auto")
            .arg(from.join("."))
            .arg(to),
    )?;
    Ok(())
}

/// `tool --version`-style output, to key caches on the installed server version.
pub(crate) fn tool_version(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or_default().to_owned()
        })
        .unwrap_or_else(|_| "unknown".into())
}
