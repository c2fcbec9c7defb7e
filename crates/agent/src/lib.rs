//! The on-prem agent: enrolment and keys ([`identity`]), the signed client of the cloud's agent
//! API ([`link`]), directory connectors ([`connector`]), the local connector space ([`space`]),
//! the sync engine ([`sync`]: full and delta import, mapping, diff, export in batches, deletion
//! threshold, staging), password writeback ([`writeback`]: open, claim, run in the directory,
//! report) and the local event log ([`events`]).
//!
//! Must not know about: how the cloud stores or decides anything. It speaks only the wire
//! contracts in `proto::sync` and `proto::writeback` and reads directories only through `ldap`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod connector;
pub mod enable;
pub mod error;
pub mod events;
pub mod identity;
pub mod link;
pub mod push;
pub mod service;
pub mod space;
pub mod sync;
pub mod writeback;

pub use error::AgentError;

use std::path::Path;

/// Creates a directory (and its parents) with mode 0700.
pub(crate) fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes a file readable by the owner only (0600), replacing it.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

/// Seconds since the epoch, from the system clock (the only place the agent reads it).
pub fn now() -> proto::Epoch {
    tenant::clock::Clock::now(&tenant::clock::SystemClock)
}
