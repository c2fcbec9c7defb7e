//! A real DNS server (Debian's `dnsmasq`) on a free port of 127.0.0.1 that answers only the TXT
//! records a test gives it — what a domain's owner publishes to prove the domain. dnsmasq reads
//! its records at start, so changing them restarts it on the same port.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process::{self, ServerProcess};

pub struct Dns {
    port: u16,
    records: Vec<(String, String)>,
    program: PathBuf,
    process: ServerProcess,
    dir: tempfile::TempDir,
}

impl Dns {
    /// Starts a server with no records (every name is refused) and waits until it answers.
    pub fn start() -> Result<Dns> {
        let program = process::find_program("dnsmasq").context(
            "the DNS test server needs dnsmasq: install the Debian package dnsmasq-base \
             (scripts/deps.sh does)",
        )?;
        let dir = process::instance_dir("dns")?;
        let port = process::free_port(Ipv4Addr::LOCALHOST)?;
        let process = spawn(&program, &dir, port, &[])?;
        Ok(Dns {
            port,
            records: Vec::new(),
            program,
            process,
            dir,
        })
    }

    /// The address to give a resolver (`127.0.0.1:PORT`, UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Publishes TXT records `(name, text)` besides the ones already there.
    pub fn publish(&mut self, records: &[(&str, &str)]) -> Result<()> {
        self.records
            .extend(records.iter().map(|(n, t)| (n.to_string(), t.to_string())));
        self.process.stop();
        self.process = spawn(&self.program, &self.dir, self.port, &self.records)?;
        Ok(())
    }
}

fn spawn(
    program: &PathBuf,
    dir: &tempfile::TempDir,
    port: u16,
    records: &[(String, String)],
) -> Result<ServerProcess> {
    let log_path = dir.path().join("dnsmasq.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(program);
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--pid-file=",
        "--user=root",
        "--log-facility=-",
    ])
    .arg(format!("--port={port}"));
    for (name, text) in records {
        // Passed without a shell: no quotes (dnsmasq would keep them); a comma would split strings.
        cmd.arg(format!("--txt-record={name},{text}"));
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = process::spawn_server(cmd).context("starting dnsmasq")?;
    let mut process = ServerProcess::new("dnsmasq", child);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    process::wait_until("dnsmasq to answer", Duration::from_secs(20), || {
        process
            .ensure_running()
            .with_context(|| std::fs::read_to_string(&log_path).unwrap_or_default())?;
        Ok(process::port_open(addr))
    })?;
    Ok(process)
}
