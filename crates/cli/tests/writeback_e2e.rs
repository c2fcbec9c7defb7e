//! Password writeback end to end through the real binaries: `dirbridge cloud serve`, agents as
//! `dirbridge agent run` processes, a real Samba AD DC. The seed's walkthrough: trial, usage
//! location, licence, policy with writeback, agent registered and synced, `agent writeback
//! enable` printing `Password reset write-back is enabled.`, then an administrator's reset, a
//! self-service reset and change, and two agents with one frozen mid-flight giving exactly one
//! execution. Then pass-through sign-in: `dirbridge login` of a synced user, checked by the
//! agent process against Samba. At the end of each a marker password is searched for in every
//! file the cloud and the agents wrote.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::agent_host::{agent_cmd, AgentHost};
use common::{files_under, run_in, write_private, Cloud, Run};
use serde_json::Value;
use testkit::samba::{Credentials, Samba};

/// The marker: every password set in this test contains it, so a search for it finds any copy.
const MARKER: &str = "Mrk7Wb";

/// True when `password` binds as `user` on the Samba (the raw `ldapsearch` tool).
fn binds(samba: &Samba, user: &Credentials, password: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    write_private(&pw, password);
    // Samba has no WhoAmI operation: a base read of the user's own entry binds the same way.
    Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            &samba.ldaps_url(),
            "-D",
            &user.dn,
            "-b",
            &user.dn,
            "-s",
            "base",
            "-y",
        ])
        .arg(&pw)
        .arg("dn")
        .env("LDAPTLS_CACERT", samba.ca_cert_path())
        .output()
        .map(|o| {
            if !o.status.success() {
                eprintln!("ldapsearch: {}", String::from_utf8_lossy(&o.stderr));
            }
            o.status.success()
        })
        .unwrap()
}

/// Polls `check` until it is true or `within` passes.
fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("not within {within:?}: {what}");
}

fn admin_reset(cloud: &Cloud, upn: &str, password: &str, extra: &[&str]) -> Run {
    let f = cloud.path().join("new-password");
    write_private(&f, password);
    let mut args = vec![
        "users",
        "reset-password",
        upn,
        "--password-file",
        f.to_str().unwrap(),
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    cloud.run(&args)
}

/// Signs the administrator in and adds the domain of the directory's users, verified on the host.
fn add_synced_domain(cloud: &Cloud) {
    cloud.login();
    cloud.verify_domain_on_host("dirbridge.test");
}

/// Prepares the tenant as in the seed: trial, policy with writeback, the synced domain.
fn seed_tenant(cloud: &Cloud) {
    add_synced_domain(cloud);
    cloud.run(&["licenses", "trial"]).ok();
    cloud
        .run(&[
            "policy",
            "set",
            "--enabled-for",
            "all",
            "--writeback",
            "true",
        ])
        .ok();
}

#[test]
fn seed_walkthrough_admin_reset_and_two_agents_one_frozen_run_each_request_once() {
    let samba = Samba::shared();
    let cloud = Cloud::start();
    seed_tenant(&cloud);
    let ou = samba.create_ou("wbe2e").unwrap();
    let user = samba
        .create_user(&ou, &format!("wbe{}", std::process::id()), "Initial-Pass-1")
        .unwrap();
    assert!(
        binds(samba, &user, "Initial-Pass-1"),
        "ldapwhoami cannot bind as the new user with its first password"
    );

    let mut a = AgentHost::register(&cloud, samba, "agent-a");
    a.full_sync(&cloud);
    cloud
        .run(&["users", "update", &user.login, "--usage-location", "NO"])
        .ok();
    cloud
        .run(&[
            "licenses",
            "assign",
            "--user",
            &user.login,
            "--sku",
            "DIRBRIDGE_PREMIUM",
        ])
        .ok();

    // Before writeback is enabled, an admin reset of a synced user says what to do.
    let before = admin_reset(&cloud, &user.login, &format!("{MARKER}-Before-1"), &[]);
    assert_ne!(before.code, 0, "{}", before.stdout);
    assert!(
        before.stderr.contains("agent writeback enable"),
        "{}",
        before.stderr
    );

    // Enabling, as the seed: the exact sentence.
    let enabled = a.enable_writeback(&cloud).ok();
    assert!(
        enabled
            .stdout
            .contains("Password reset write-back is enabled."),
        "{}",
        enabled.stdout
    );
    let policy = cloud
        .run(&["policy", "show", "--output", "json"])
        .ok()
        .json();
    assert_eq!(policy["writebackAvailable"], true, "{policy}");

    a.start();
    // The admin reset reaches AD: the user binds with the new password, not the old one.
    let new1 = format!("{MARKER}-Admin-1a");
    eventually(Duration::from_secs(30), "agent a connected", || {
        let r = admin_reset(&cloud, &user.login, &new1, &[]);
        r.code == 0
    });
    assert!(binds(samba, &user, &new1));
    assert!(!binds(samba, &user, "Initial-Pass-1"));

    // Must change at next sign-in: pwdLastSet becomes 0.
    let new2 = format!("{MARKER}-Admin-2b");
    let r = admin_reset(&cloud, &user.login, &new2, &["--must-change"]).ok();
    let result = r.json();
    assert_eq!(result["outcome"], "succeeded", "{result}");
    let tracking = result["trackingId"].as_str().unwrap().to_string();
    let events = a.events_for(&cloud, &tracking);
    assert!(
        events.iter().any(|e| e["eventId"] == 31010),
        "no 31010 for {tracking}: {events:?}"
    );
    // The cloud's audit log carries the same tracking id and the outcome.
    let audit = cloud
        .run(&["audit", "--tracking-id", &tracking, "--output", "json"])
        .ok()
        .json();
    assert!(audit.to_string().contains("adminReset"), "{audit}");

    // A second agent, also enabled; agent A frozen (SIGSTOP): its socket stays open, so the
    // cloud may dispatch to it, but it cannot claim; the request goes to B and runs once.
    let mut b = AgentHost::register(&cloud, samba, "agent-b");
    b.enable_writeback(&cloud).ok();
    b.start();
    eventually(
        Duration::from_secs(30),
        "agent b connected for writeback",
        || {
            let st = agent_cmd(
                &cloud,
                &[
                    "agent",
                    "writeback",
                    "status",
                    "--data-dir",
                    b.dir(),
                    "--output",
                    "json",
                ],
                None,
            );
            st.code == 0 && st.json().to_string().contains("\"connected\":true")
        },
    );
    a.signal("-STOP");
    let mut trackings = Vec::new();
    for i in 0..3 {
        let pw = format!("{MARKER}-Frozen-{i}x");
        let r = admin_reset(&cloud, &user.login, &pw, &[]);
        let v = r.json();
        assert_eq!(v["outcome"], "succeeded", "{v} {}", r.stderr);
        assert!(binds(samba, &user, &pw));
        trackings.push(v["trackingId"].as_str().unwrap().to_string());
    }
    a.signal("-CONT");
    // Give A time to wake and try its late claims; none may run.
    std::thread::sleep(Duration::from_secs(2));
    for t in &trackings {
        let ea = a.events_for(&cloud, t);
        let eb = b.events_for(&cloud, t);
        let runs = |ev: &[Value]| ev.iter().filter(|e| e["eventId"] == 31009).count();
        assert_eq!(
            runs(&ea) + runs(&eb),
            1,
            "request {t} ran {} times: a={ea:?} b={eb:?}",
            runs(&ea) + runs(&eb)
        );
    }

    // No copy of any password anywhere the cloud or the agents wrote.
    drop(a);
    drop(b);
    let mut hits = marker_in(cloud.path());
    // The test's own password files hold the marker by construction.
    hits.retain(|f| f.file_name().and_then(|n| n.to_str()) != Some("new-password"));
    assert!(hits.is_empty(), "marker password found in {hits:?}");
}

/// Files under `dir` that contain the marker.
fn marker_in(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap_or_default();
            bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
        })
        .collect()
}

/// Pass-through sign-in through the binaries: a synced Samba user runs `dirbridge login` with
/// the on-prem password; `dirbridge cloud serve` seals it to the `dirbridge agent run` process,
/// which binds to Samba as the user. No trial, policy or `agent writeback enable` is needed.
#[test]
fn synced_user_logs_in_with_the_on_prem_password_checked_by_the_agent() {
    let samba = Samba::shared();
    let cloud = Cloud::start();
    add_synced_domain(&cloud);
    let ou = samba.create_ou("ptlogin").unwrap();
    let password = format!("{MARKER}-OnPrem-1p");
    let user = samba
        .create_user(&ou, &format!("ptl{}", std::process::id()), &password)
        .unwrap();
    let mut a = AgentHost::register(&cloud, samba, "agent-a");
    a.full_sync(&cloud);
    a.start();

    // The person's own machine: a configuration directory of its own (searched below), the
    // passwords in files outside everything searched.
    let home = cloud.path().join("person-config");
    let secrets = tempfile::tempdir().unwrap();
    let right = secrets.path().join("right");
    write_private(&right, &password);
    let wrong = secrets.path().join("wrong");
    write_private(&wrong, &format!("{MARKER}-Wrong-2q"));
    let login = |file: &Path| {
        run_in(
            &home,
            &[
                "login",
                "--cloud",
                &cloud.url,
                "--user",
                &user.login,
                "--password-file",
                file.to_str().unwrap(),
            ],
            None,
        )
    };

    // Until the agent has connected the cloud answers 503 (which does not count as a failed
    // sign-in); then the right password signs in.
    let mut signed_in = None;
    eventually(
        Duration::from_secs(60),
        "signed in through the agent",
        || {
            let r = login(&right);
            let done = r.code == 0;
            signed_in = Some(r);
            done
        },
    );
    let r = signed_in.unwrap();
    assert!(r.stdout.contains(&user.login), "{}", r.stdout);
    let me = run_in(&home, &["whoami", "--output", "json"], None)
        .ok()
        .json();
    assert_eq!(me["userPrincipalName"], user.login.as_str(), "{me}");
    assert_eq!(me["source"], "onPremises", "{me}");

    // A wrong password: the cloud's usual sentence, and a failed exit.
    let r = login(&wrong);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr.contains("The user name or password is incorrect."),
        "{}",
        r.stderr
    );
    let tracking = r
        .stderr
        .split("tracking id ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .unwrap_or_else(|| panic!("no tracking id in {}", r.stderr))
        .to_string();
    // The agent process checked it: one refused sign-in (34002) with that tracking id.
    let events = a.events_for(&cloud, &tracking);
    let refused: Vec<_> = events.iter().filter(|e| e["eventId"] == 34002).collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert_eq!(
        refused[0]["details"]["outcome"], "wrongPassword",
        "{events:?}"
    );

    // No copy of either password in anything the cloud, the agent or the CLI wrote.
    drop(a);
    let hits = marker_in(cloud.path());
    assert!(hits.is_empty(), "marker password found in {hits:?}");
}
