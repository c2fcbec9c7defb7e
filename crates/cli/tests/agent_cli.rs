//! The agent's command line through the real binary: registration from what `agents token
//! create` printed, a used token named as such, the exit status of a sync run with object
//! errors, and a closed pipe.

mod common;

use std::path::Path;

use common::{run_in, write_private, Cloud, Run};
use testkit::slapd::{OpenLdapServiceAccount, Slapd};

fn agent_cmd(cloud: &Cloud, args: &[&str]) -> Run {
    run_in(&cloud.path().join("agent-host-config"), args, None)
}

fn register(cloud: &Cloud, data: &Path, token_file: &Path) -> Run {
    agent_cmd(
        cloud,
        &[
            "agent",
            "register",
            "--data-dir",
            data.to_str().unwrap(),
            "--cloud",
            &cloud.url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--name",
            "cli-agent",
        ],
    )
}

#[test]
fn register_reads_the_token_from_what_token_create_printed_and_names_a_used_token() {
    let cloud = Cloud::start();
    cloud.login();
    let host = cloud.path().join("host");
    std::fs::create_dir_all(&host).unwrap();

    // The table form, saved as it was printed.
    let table = cloud.run(&["agents", "token", "create"]).ok();
    let table_file = host.join("token.txt");
    write_private(&table_file, &table.stdout);
    let r = register(&cloud, &host.join("a"), &table_file).ok();
    assert!(r.stdout.contains("Registered agent cli-agent"), "{r:?}");

    // The JSON form.
    let json = cloud
        .run(&["agents", "token", "create", "--output", "json"])
        .ok();
    let json_file = host.join("token.json");
    write_private(&json_file, &json.stdout);
    register(&cloud, &host.join("b"), &json_file).ok();

    // The first token again: used, and said so (nothing about signatures or clocks).
    let again = register(&cloud, &host.join("c"), &table_file).fails(1);
    assert!(
        again
            .stderr
            .contains("the cloud refused the registration token")
            && again.stderr.contains("already used"),
        "{again:?}"
    );
    assert!(!again.stderr.contains("clock"), "{again:?}");

    // Something that is no token at all.
    let junk = host.join("junk");
    write_private(&junk, "not a token at all\n");
    let r = register(&cloud, &host.join("d"), &junk).fails(1);
    assert!(
        r.stderr.contains("does not hold a registration token"),
        "{r:?}"
    );
}

#[test]
fn a_sync_run_with_object_errors_exits_3_and_points_at_sync_errors() {
    let slapd = Slapd::shared();
    let cloud = Cloud::start();
    cloud.login();
    // `dirbridge.test` claimed but never proven: every user's UPN suffix is unverified.
    let claimed = cloud.run(&["tenant", "add-domain", "dirbridge.test"]).ok();
    assert!(
        claimed.stdout.contains("dirbridge.test: not verified yet")
            && claimed
                .stdout
                .contains("_dirbridge.dirbridge.test  TXT  \"dirbridge-verification=")
            && claimed
                .stdout
                .contains("dirbridge tenant verify-domain dirbridge.test"),
        "{claimed:?}"
    );
    let ou = slapd.create_ou("cliErrors").unwrap();
    slapd.create_user(&ou, "clierr1", "Initial-Pass-1").unwrap();
    let host = cloud.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let token = host.join("token");
    write_private(&token, &cloud.new_token());
    let data = host.join("agent");
    let data_s = data.to_str().unwrap();
    let registered = register(&cloud, &data, &token).ok();
    assert!(
        registered
            .stdout
            .contains("Verified domains: contoso.dirbridge.internal\n"),
        "only verified domains are named: {registered:?}"
    );
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let pw = host.join("svc");
    write_private(&pw, &svc.password);
    agent_cmd(
        &cloud,
        &[
            "agent",
            "connector",
            "add",
            "--data-dir",
            data_s,
            "--name",
            "ldap",
            "--kind",
            "openldap",
            "--url",
            &slapd.ldaps_url(),
            "--ca-file",
            slapd.ca_cert_path().to_str().unwrap(),
            "--bind-dn",
            &svc.dn,
            "--base-dn",
            slapd.base_dn(),
            "--include-ou",
            &ou,
            "--password-file",
            pw.to_str().unwrap(),
        ],
    )
    .ok();
    let run = agent_cmd(
        &cloud,
        &["agent", "sync", "run", "--data-dir", data_s, "--full"],
    )
    .fails(3);
    assert!(run.stdout.contains("CompletedWithErrors"), "{run:?}");
    assert!(run.stderr.contains("`dirbridge sync errors`"), "{run:?}");
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::os::fd::FromRawFd;
    use std::os::unix::process::ExitStatusExt;
    // A pipe whose reading end is already closed: the first write fails with EPIPE.
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here.
    let (read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    drop(read);
    let config = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .env("DIRBRIDGE_CONFIG_DIR", config.path())
        .args(["completions", "bash"])
        .stdout(write)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}
