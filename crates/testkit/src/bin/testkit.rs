//! `testkit`: bring up the test directories by hand, for development and the demo.
//!
//! ```text
//! testkit samba up --users 1000        # Samba AD DC with 1,000 sample users
//! testkit slapd up --users 100000 --json
//! testkit cache-dir
//! testkit ldif --format ad --users 10000 > users.ldif
//! ```
//!
//! Prints the connection details and keeps the server running until Ctrl-C (or SIGTERM).
// Test infrastructure: it times real servers starting.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use anyhow::Result;
use clap::{Parser, Subcommand};
use dirbridge_testkit::dataset::{Dataset, DatasetSpec};
use dirbridge_testkit::samba::{Samba, SambaOptions, ServiceAccount};
use dirbridge_testkit::slapd::{OpenLdapServiceAccount, Slapd, SlapdOptions};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "testkit",
    about = "Throwaway directories for dirbridge development and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// A Samba AD domain controller on its own loopback address.
    Samba {
        #[command(subcommand)]
        action: Action,
    },
    /// An OpenLDAP server (ppolicy, syncprov) on free ports of 127.0.0.1.
    Slapd {
        #[command(subcommand)]
        action: Action,
    },
    /// Print where built templates and datasets are cached.
    CacheDir,
    /// Write a dataset as LDIF to standard output (what the fixtures load).
    Ldif {
        /// `ad` (Samba's offline loader: NT hashes, pwdLastSet -1) or `openldap` (slapadd).
        #[arg(long, value_parser = ["ad", "openldap"])]
        format: String,
        #[arg(long, default_value_t = 300)]
        users: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum Action {
    /// Start the server, print how to reach it, run until Ctrl-C.
    Up(UpArgs),
}

#[derive(clap::Args)]
struct UpArgs {
    /// Number of sample users to load (0: none).
    #[arg(long, default_value_t = 300)]
    users: usize,
    /// Seed of the sample data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the details as JSON.
    #[arg(long)]
    json: bool,
    /// Samba only: let the full service account list and read CN=Deleted Objects, as AD admins
    /// do for sync accounts, so deltas see deletes (the template does not grant it).
    #[arg(long)]
    grant_deleted_objects: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Top::Ldif {
            format,
            users,
            seed,
        } => {
            let data = Dataset::generate(DatasetSpec::new(users, seed));
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if format == "ad" {
                data.write_ad_ldif(
                    &mut out,
                    dirbridge_testkit::samba::SYNCED_ROOT,
                    dirbridge_testkit::samba::BASE_DN,
                    dirbridge_testkit::samba::DNS_DOMAIN,
                )?;
            } else {
                data.write_openldap_ldif(&mut out, dirbridge_testkit::slapd::SYNCED_ROOT)?;
            }
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        Top::CacheDir => {
            println!("{}", dirbridge_testkit::cache::cache_root().display());
            Ok(())
        }
        Top::Samba {
            action: Action::Up(args),
        } => {
            let signals = block_signals();
            let t = Instant::now();
            let samba = Samba::start(&SambaOptions {
                dataset: dataset(&args),
                ..SambaOptions::default()
            })?;
            if args.grant_deleted_objects {
                let svc = samba.service_account(ServiceAccount::Full);
                samba.grant_deleted_objects_read(&svc.dn)?;
            }
            let accounts: Vec<_> = ServiceAccount::all()
                .into_iter()
                .map(|a| {
                    let c = samba.service_account(a);
                    json!({ "variant": format!("{a:?}"), "rights": a.rights(), "dn": c.dn, "login": c.login, "password": c.password })
                })
                .collect();
            let details = json!({
                "server": "samba-ad-dc",
                "ldaps_url": samba.ldaps_url(),
                "starttls_url": samba.ldap_url(),
                "ca_file": samba.ca_cert_path(),
                "base_dn": samba.base_dn(),
                "synced_root": samba.synced_root(),
                "admin": samba.admin(),
                "service_account": samba.service_account(ServiceAccount::Full),
                "service_account_variants": accounts,
                "sample_user": samba.sample_user(),
                "users": samba.dataset().map(|d| d.users.len()).unwrap_or(0),
                "pid": samba.pid(),
                "dir": samba.dir(),
                "timings": samba.timings(),
                "ready_after_secs": t.elapsed().as_secs_f64(),
            });
            print(&details, args.json);
            wait(signals);
            drop(samba);
            Ok(())
        }
        Top::Slapd {
            action: Action::Up(args),
        } => {
            let signals = block_signals();
            let t = Instant::now();
            let slapd = Slapd::start(&SlapdOptions {
                dataset: dataset(&args),
            })?;
            let accounts: Vec<_> = OpenLdapServiceAccount::ALL
                .into_iter()
                .map(|a| {
                    let c = slapd.service_account(a);
                    json!({ "variant": format!("{a:?}"), "dn": c.dn, "password": c.password })
                })
                .collect();
            let details = json!({
                "server": "openldap",
                "ldaps_url": slapd.ldaps_url(),
                "starttls_url": slapd.ldap_url(),
                "ca_file": slapd.ca_cert_path(),
                "base_dn": slapd.base_dn(),
                "synced_root": slapd.synced_root(),
                "admin": slapd.admin(),
                "service_account": slapd.service_account(OpenLdapServiceAccount::Full),
                "service_account_variants": accounts,
                "sample_user": slapd.sample_user(),
                "users": slapd.dataset().map(|d| d.users.len()).unwrap_or(0),
                "pid": slapd.pid(),
                "dir": slapd.dir(),
                "timings": slapd.timings(),
                "ready_after_secs": t.elapsed().as_secs_f64(),
            });
            print(&details, args.json);
            wait(signals);
            drop(slapd);
            Ok(())
        }
    }
}

fn dataset(args: &UpArgs) -> Option<DatasetSpec> {
    (args.users > 0).then(|| DatasetSpec::new(args.users, args.seed))
}

fn print(details: &serde_json::Value, as_json: bool) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(details).unwrap_or_default()
        );
        return;
    }
    let s = |k: &str| details[k].as_str().unwrap_or("").to_owned();
    println!("{} is up (pid {})", s("server"), details["pid"]);
    println!("  LDAPS          {}", s("ldaps_url"));
    println!("  StartTLS       {}", s("starttls_url"));
    println!("  CA file        {}", s("ca_file"));
    println!("  base DN        {}", s("base_dn"));
    println!("  synced root    {}", s("synced_root"));
    println!(
        "  admin          {}  password {}",
        details["admin"]["dn"].as_str().unwrap_or(""),
        details["admin"]["password"].as_str().unwrap_or("")
    );
    println!(
        "  service acct   {}  password {}",
        details["service_account"]["dn"].as_str().unwrap_or(""),
        details["service_account"]["password"]
            .as_str()
            .unwrap_or("")
    );
    if let Some(variants) = details["service_account_variants"].as_array() {
        for v in variants.iter().skip(1) {
            println!(
                "    variant {:<40} {}",
                v["variant"].as_str().unwrap_or(""),
                v["dn"].as_str().unwrap_or("")
            );
        }
    }
    if details["sample_user"].is_object() {
        println!(
            "  sample user    {}  password {}",
            details["sample_user"]["login"].as_str().unwrap_or(""),
            details["sample_user"]["password"].as_str().unwrap_or("")
        );
    }
    println!("  users loaded   {}", details["users"]);
    println!("  directory      {}", s("dir"));
    println!(
        "Try: LDAPTLS_CACERT={} ldapsearch -H {} -x -D '{}' -w '{}' -b '{}' '(objectClass=user)' cn",
        s("ca_file"),
        s("ldaps_url"),
        details["service_account"]["dn"].as_str().unwrap_or(""),
        details["service_account"]["password"].as_str().unwrap_or(""),
        s("synced_root"),
    );
    println!("Press Ctrl-C to stop.");
}

/// Blocks SIGINT and SIGTERM in this thread (and threads started later) so they can be
/// collected with `sigwait` instead of killing the process before the server is stopped.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain signal-mask calls on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait(set: libc::sigset_t) {
    let mut sig: libc::c_int = 0;
    // SAFETY: waits for one of the blocked signals.
    unsafe {
        libc::sigwait(&set, &mut sig);
    }
    eprintln!("stopping");
}
