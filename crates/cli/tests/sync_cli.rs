//! The whole sync flow through the real `dirbridge` binary: a cloud it started itself
//! (`cloud init` + `cloud serve`), an agent registered with a one-time token, an OpenLDAP
//! connector against a fresh slapd, full and delta runs, the deletion threshold, events and
//! revocation.

mod common;

use std::collections::BTreeSet;

use common::{files_under, mode, run_in, write_private, Cloud, Run};
use serde_json::Value;
use testkit::slapd::{OpenLdapServiceAccount, Slapd};

/// `dirbridge args…` as the agent host: no stored admin credentials, its own config directory.
fn agent_cmd(cloud: &Cloud, args: &[&str], stdin: Option<&str>) -> Run {
    run_in(&cloud.path().join("agent-host-config"), args, stdin)
}

/// UPNs of the cloud's on-premises users.
fn onprem_upns(cloud: &Cloud) -> BTreeSet<String> {
    let page = cloud
        .run(&[
            "users",
            "list",
            "--source",
            "onPremises",
            "--all",
            "--output",
            "json",
        ])
        .ok()
        .json();
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page}"))
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap().to_string())
        .collect()
}

/// The cloud's sync runs, newest first.
fn runs(cloud: &Cloud) -> Vec<Value> {
    cloud
        .run(&["sync", "runs", "--output", "json"])
        .ok()
        .json()
        .as_array()
        .expect("runs are an array")
        .clone()
}

fn connector_add_args<'a>(
    data_dir: &'a str,
    slapd: &'a Slapd,
    url: &'a str,
    ca: &'a str,
    bind_dn: &'a str,
) -> Vec<&'a str> {
    vec![
        "agent",
        "connector",
        "add",
        "--data-dir",
        data_dir,
        "--name",
        "ldap",
        "--kind",
        "openldap",
        "--url",
        url,
        "--ca-file",
        ca,
        "--bind-dn",
        bind_dn,
        "--base-dn",
        slapd.base_dn(),
        "--include-ou",
        slapd.synced_root(),
    ]
}

#[test]
fn agent_registers_syncs_openldap_stops_at_the_deletion_threshold_and_is_revoked() {
    let slapd = Slapd::start_fresh().expect("start slapd");
    let cloud = Cloud::start();
    cloud.login();
    cloud.verify_domain_on_host("dirbridge.test");

    // On-prem users below the synced root (the fresh instance has no others).
    let ou = slapd.create_ou("cli").unwrap();
    let uids: Vec<String> = (0..5).map(|i| format!("clisync{i}")).collect();
    let mut dns = Vec::new();
    for uid in &uids {
        dns.push(slapd.create_user(&ou, uid, "Initial-Pass-1").unwrap().dn);
    }
    let expected: BTreeSet<String> = uids.iter().map(|u| format!("{u}@dirbridge.test")).collect();

    // 1. Registration: the token travels in a 0600 file and is stored nowhere.
    let host = cloud.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let token = cloud.new_token();
    let token_file = host.join("token");
    write_private(&token_file, &format!("{token}\n"));
    let data = host.join("agent");
    let data_s = data.to_str().unwrap();
    let registered = agent_cmd(
        &cloud,
        &[
            "agent",
            "register",
            "--data-dir",
            data_s,
            "--cloud",
            &cloud.url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--name",
            "cli-agent",
        ],
        None,
    )
    .ok();
    assert!(
        registered.stdout.contains("Registered agent cli-agent")
            && registered
                .stdout
                .contains("Verified domains: contoso.dirbridge.internal, dirbridge.test\n"),
        "{}",
        registered.stdout
    );
    assert!(
        !registered.stdout.contains(&token) && !registered.stderr.contains(&token),
        "the token was printed"
    );
    let keys = files_under(&data.join("keys"));
    assert!(
        !keys.is_empty(),
        "no keys in {}",
        data.join("keys").display()
    );
    #[cfg(unix)]
    for k in &keys {
        assert_eq!(mode(k), 0o600, "{} mode {:o}", k.display(), mode(k));
    }
    for f in files_under(&data) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the registration token is stored in {}",
            f.display()
        );
    }

    // Registering again into the same directory is refused, even with a fresh token.
    let token2_file = host.join("token2");
    write_private(&token2_file, &cloud.new_token());
    let again = agent_cmd(
        &cloud,
        &[
            "--cloud",
            &cloud.url,
            "agent",
            "register",
            "--data-dir",
            data_s,
            "--token-file",
            token2_file.to_str().unwrap(),
        ],
        None,
    );
    assert_ne!(again.code, 0, "{again:?}");
    assert!(
        again.stderr.contains("already registered"),
        "{}",
        again.stderr
    );

    // 2. The connector: password on stdin only.
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let url = slapd.ldaps_url();
    let ca = slapd.ca_cert_path().to_str().unwrap().to_string();
    let mut with_flag = connector_add_args(data_s, &slapd, &url, &ca, &svc.dn);
    with_flag.extend(["--password", "x"]);
    let rejected = agent_cmd(&cloud, &with_flag, None).fails(2);
    assert!(
        rejected.stderr.contains("--password"),
        "{}",
        rejected.stderr
    );

    let mut add = connector_add_args(data_s, &slapd, &url, &ca, &svc.dn);
    add.push("--password-stdin");
    let added = agent_cmd(&cloud, &add, Some(&format!("{}\n", svc.password))).ok();
    assert!(
        added.stdout.contains("Connector ldap saved"),
        "{}",
        added.stdout
    );
    let listed = agent_cmd(
        &cloud,
        &["agent", "connector", "list", "--data-dir", data_s],
        None,
    )
    .ok();
    assert!(
        listed.stdout.contains("ldap") && listed.stdout.contains(&url),
        "{}",
        listed.stdout
    );
    let tested = agent_cmd(
        &cloud,
        &["agent", "connector", "test", "--data-dir", data_s],
        None,
    )
    .ok();
    assert!(
        tested.stdout.contains("[ ok ] tls:") && tested.stdout.contains("[ ok ] bind:"),
        "{}",
        tested.stdout
    );
    assert!(!tested.stdout.contains("FAIL"), "{}", tested.stdout);

    // A wrong password (in another data directory) fails the test and says so.
    let bad = host.join("bad");
    let bad_s = bad.to_str().unwrap();
    let mut add_bad = connector_add_args(bad_s, &slapd, &url, &ca, &svc.dn);
    add_bad.push("--password-stdin");
    agent_cmd(&cloud, &add_bad, Some("not-the-password\n")).ok();
    let failed = agent_cmd(
        &cloud,
        &["agent", "connector", "test", "--data-dir", bad_s],
        None,
    );
    assert_ne!(failed.code, 0, "{failed:?}");
    assert!(failed.stdout.contains("FAIL"), "{failed:?}");
    assert!(
        failed.stdout.contains("[FAIL] bind:")
            && failed.stdout.contains("credentials were not accepted")
            && failed.stdout.contains("password"),
        "does not say what is wrong: {failed:?}"
    );
    assert!(
        failed.stderr.contains("some checks failed"),
        "{}",
        failed.stderr
    );

    // 3. A full run brings every user below the synced root to the cloud.
    let full = agent_cmd(
        &cloud,
        &["agent", "sync", "run", "--data-dir", data_s, "--full"],
        None,
    )
    .ok();
    assert!(
        full.stdout.contains("Full run Succeeded — 5 added"),
        "{}",
        full.stdout
    );
    assert_eq!(onprem_upns(&cloud), expected);
    let r = runs(&cloud);
    assert!(
        r.iter()
            .any(|x| x["kind"] == "full" && x["outcome"] == "succeeded"),
        "{r:#?}"
    );
    // The table shows how long each run took.
    let table = cloud.run(&["sync", "runs"]).ok().stdout;
    assert!(
        table.contains("DURATION") && table.contains(" s "),
        "{table}"
    );
    let agents = cloud
        .run(&["agents", "list", "--output", "json"])
        .ok()
        .json();
    let agent = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "cli-agent")
        .unwrap_or_else(|| panic!("agent not listed: {agents}"))
        .clone();
    assert_eq!(agent["revoked"], false, "{agent}");
    let agent_id = agent["id"].as_str().unwrap().to_string();

    // 4. Two deletes against a threshold of one: the run stops, nothing is deleted.
    cloud
        .run(&["sync", "settings", "set", "--deletion-threshold", "1"])
        .ok();
    slapd.admin_delete(&dns[0]).unwrap();
    slapd.admin_delete(&dns[1]).unwrap();
    let stopped = agent_cmd(
        &cloud,
        &["agent", "sync", "run", "--data-dir", data_s],
        None,
    )
    .ok();
    assert!(
        stopped.stdout.contains("StoppedDeletionThreshold"),
        "{}",
        stopped.stdout
    );
    let latest = runs(&cloud);
    assert_eq!(
        latest[0]["outcome"], "stoppedDeletionThreshold",
        "{latest:#?}"
    );
    assert_eq!(latest[0]["pendingDeletes"], 2, "{latest:#?}");
    assert_eq!(onprem_upns(&cloud), expected, "users were deleted");

    cloud.run(&["sync", "allow-deletes"]).ok();
    let deleted = agent_cmd(
        &cloud,
        &["agent", "sync", "run", "--data-dir", data_s],
        None,
    )
    .ok();
    assert!(deleted.stdout.contains("2 deleted"), "{}", deleted.stdout);
    let remaining: BTreeSet<String> = expected
        .iter()
        .filter(|u| !u.starts_with("clisync0@") && !u.starts_with("clisync1@"))
        .cloned()
        .collect();
    assert_eq!(onprem_upns(&cloud), remaining);

    // 5. The local event log records the stop.
    let events = agent_cmd(
        &cloud,
        &["agent", "events", "--data-dir", data_s, "--output", "json"],
        None,
    )
    .ok()
    .json();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["code"] == "sync.deletion_threshold"),
        "{events:#?}"
    );
    let table = agent_cmd(&cloud, &["agent", "events", "--data-dir", data_s], None).ok();
    assert!(
        table.stdout.contains("sync.deletion_threshold"),
        "{}",
        table.stdout
    );

    // Revoked: the next run fails and says to register again.
    let revoked = cloud.run(&["agents", "revoke", &agent_id]).ok();
    assert!(revoked.stdout.contains("Revoked"), "{}", revoked.stdout);
    let refused = agent_cmd(
        &cloud,
        &["agent", "sync", "run", "--data-dir", data_s],
        None,
    );
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("re-register"),
        "does not say to register again: {refused:?}"
    );
    let agents = cloud
        .run(&["agents", "list", "--output", "json"])
        .ok()
        .json();
    let agent = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == agent_id.as_str())
        .unwrap_or_else(|| panic!("agent gone from the list: {agents}"))
        .clone();
    assert_eq!(
        (&agent["revoked"], &agent["health"]),
        (&Value::Bool(true), &Value::from("revoked")),
        "{agent}"
    );
}
