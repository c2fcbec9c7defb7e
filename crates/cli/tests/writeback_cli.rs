//! `dirbridge agent writeback enable|status|disable` through the real binary, against a cloud it
//! started itself and the real Samba AD DC: each credential is checked on its own and the one
//! that failed is named, a missing directory right refuses with the delegation command, and
//! nothing local changes (the sealing key stays) unless enabling went through.

mod common;

use std::path::PathBuf;

use common::{mode, run_in, write_private, Cloud, Run};
use serde_json::Value;
use testkit::samba::{AdRight, Samba, ServiceAccount};
use testkit::slapd::{OpenLdapServiceAccount, Slapd};

const ENABLED: &str = "Password reset write-back is enabled.";

fn agent_cmd(cloud: &Cloud, args: &[&str], stdin: Option<&str>) -> Run {
    run_in(&cloud.path().join("agent-host-config"), args, stdin)
}

struct Host {
    dir: PathBuf,
    data: PathBuf,
}

impl Host {
    /// `agent writeback status --output json`.
    fn writeback_status(&self, cloud: &Cloud) -> serde_json::Value {
        agent_cmd(
            cloud,
            &[
                "agent",
                "writeback",
                "status",
                "--data-dir",
                self.data(),
                "--output",
                "json",
            ],
            None,
        )
        .ok()
        .json()
    }

    fn data(&self) -> &str {
        self.data.to_str().unwrap()
    }

    fn sealing_key(&self) -> Vec<u8> {
        std::fs::read(self.data.join("keys/sealing.key")).unwrap()
    }

    /// Adds an AD connector `name` bound as `dn` with `password`.
    fn add_connector(&self, cloud: &Cloud, samba: &Samba, name: &str, dn: &str, password: &str) {
        let pw = self.dir.join(format!("{name}-password"));
        write_private(&pw, password);
        agent_cmd(
            cloud,
            &[
                "agent",
                "connector",
                "add",
                "--data-dir",
                self.data(),
                "--name",
                name,
                "--kind",
                "ad",
                "--url",
                &samba.ldaps_url(),
                "--ca-file",
                samba.ca_cert_path().to_str().unwrap(),
                "--bind-dn",
                dn,
                "--base-dn",
                samba.base_dn(),
                "--include-ou",
                samba.synced_root(),
                "--password-file",
                pw.to_str().unwrap(),
            ],
            None,
        )
        .ok();
    }

    fn enable(&self, cloud: &Cloud, connector: &str, upn: &str, password: &str) -> Run {
        let pw = self.dir.join("admin-password");
        write_private(&pw, password);
        agent_cmd(
            cloud,
            &[
                "agent",
                "writeback",
                "enable",
                "--data-dir",
                self.data(),
                "--connector",
                connector,
                "--admin",
                upn,
                "--password-file",
                pw.to_str().unwrap(),
            ],
            None,
        )
    }

    fn events(&self, cloud: &Cloud) -> Vec<Value> {
        agent_cmd(
            cloud,
            &[
                "agent",
                "events",
                "--data-dir",
                self.data(),
                "--output",
                "json",
            ],
            None,
        )
        .ok()
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    fn event_ids(&self, cloud: &Cloud) -> Vec<u64> {
        self.events(cloud)
            .iter()
            .filter_map(|e| e["eventId"].as_u64())
            .collect()
    }
}

/// A registered agent with an AD connector `corp` bound as the fully delegated account.
fn register(cloud: &Cloud, samba: &Samba) -> Host {
    let dir = cloud.path().join("host");
    std::fs::create_dir_all(&dir).unwrap();
    let token = cloud.new_token();
    let token_file = dir.join("token");
    write_private(&token_file, &token);
    let data = dir.join("data");
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
            "wb-agent",
        ],
        None,
    )
    .ok();
    let host = Host { dir, data };
    let svc = samba.service_account(ServiceAccount::Full);
    host.add_connector(cloud, samba, "corp", &svc.dn, &svc.password);
    host
}

#[test]
fn enable_names_the_credential_or_the_right_that_is_missing_and_changes_nothing() {
    let samba = Samba::shared();
    let cloud = Cloud::start();
    cloud.login();
    let host = register(&cloud, samba);
    let key = host.sealing_key();

    // (a) A wrong cloud administrator password: named, event 32009.
    let r = host
        .enable(&cloud, "corp", &cloud.admin, "not-the-password")
        .fails(1);
    assert!(
        r.stderr
            .contains("the cloud administrator credential was refused"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("directory credential"), "{}", r.stderr);
    assert!(!r.stderr.contains("not-the-password"), "{}", r.stderr);
    let bad = host
        .events(&cloud)
        .into_iter()
        .find(|e| e["code"] == "writeback.enable.badCloudCredential")
        .expect("a bad cloud credential event");
    assert_eq!(bad["eventId"], 32009, "{bad}");

    // Signed in, but not a Global Administrator: the role is named.
    let helpdesk = cloud.upn("helpdesk");
    cloud
        .run_with_stdin(
            &[
                "users",
                "create",
                "--upn",
                &helpdesk,
                "--display-name",
                "Helpdesk",
                "--role",
                "passwordAdministrator",
                "--password-stdin",
            ],
            &format!("{}\n", common::USER_PASSWORD),
        )
        .ok();
    let r = host
        .enable(&cloud, "corp", &helpdesk, common::USER_PASSWORD)
        .fails(1);
    assert!(
        r.stderr
            .contains("does not hold the Global Administrator role"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Password Administrator"), "{}", r.stderr);

    // (b) A wrong directory password: the connector and its bind DN are named.
    let svc = samba.service_account(ServiceAccount::Full);
    host.add_connector(&cloud, samba, "stale", &svc.dn, "Wrong-Svc-Pass-9!");
    let r = host
        .enable(&cloud, "stale", &cloud.admin, common::ADMIN_PASSWORD)
        .fails(1);
    assert!(
        r.stderr.contains(&format!(
            "the directory credential of connector stale (bind DN {}) was refused",
            svc.dn
        )),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("cloud administrator credential"),
        "{}",
        r.stderr
    );

    // A missing right: refused with the right, the OU and the delegation commands.
    let noreset = samba.service_account(ServiceAccount::Missing(AdRight::ResetPassword));
    host.add_connector(&cloud, samba, "noreset", &noreset.dn, &noreset.password);
    let r = host
        .enable(&cloud, "noreset", &cloud.admin, common::ADMIN_PASSWORD)
        .fails(1);
    for needle in [
        "lacks Reset Password on users below",
        samba.synced_root(),
        &format!(
            "samba-tool dsacl set -H {} -U Administrator --objectdn=",
            samba.ldaps_url()
        ),
        "(OA;CI;CR;00299570-246d-11d0-a768-00aa006e0529;bf967aba-0de6-11d0-a285-00aa003049e2;S-1-5-21-",
        "/I:S /G \"DIRBRIDGE\\MSOL_noreset:CA;Reset Password;user\"",
    ] {
        assert!(r.stderr.contains(needle), "{needle} not in\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("Domain Admin"), "{}", r.stderr);
    assert!(!r.stderr.contains("Change Password"), "{}", r.stderr);

    // OpenLDAP: the No-Op modify finds the missing write on userPassword; the fix is the
    // olcAccess line.
    let slapd = Slapd::shared();
    let ou = slapd.create_ou("wbcli").unwrap();
    slapd
        .create_user(&ou, "wbcli-user", "Initial-Pass-1")
        .unwrap();
    let nopw = slapd.service_account(OpenLdapServiceAccount::MissingPasswordWrite);
    let pw = host.dir.join("nopw-password");
    write_private(&pw, &nopw.password);
    agent_cmd(
        &cloud,
        &[
            "agent",
            "connector",
            "add",
            "--data-dir",
            host.data(),
            "--name",
            "ldap",
            "--kind",
            "openldap",
            "--url",
            &slapd.ldaps_url(),
            "--ca-file",
            slapd.ca_cert_path().to_str().unwrap(),
            "--bind-dn",
            &nopw.dn,
            "--base-dn",
            slapd.base_dn(),
            "--include-ou",
            &ou,
            "--password-file",
            pw.to_str().unwrap(),
        ],
        None,
    )
    .ok();
    let r = host
        .enable(&cloud, "ldap", &cloud.admin, common::ADMIN_PASSWORD)
        .fails(1);
    for needle in [
        "lacks write userPassword on users below",
        &format!(
            "olcAccess: to dn.subtree=\"{ou}\" attrs=userPassword by dn.exact=\"{}\" write",
            nopw.dn
        ),
    ] {
        assert!(r.stderr.contains(needle), "{needle} not in\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("pwdAccountLockedTime"), "{}", r.stderr);

    // Nothing was rolled or written by any refusal; no 31018 / 31005.
    assert_eq!(host.sealing_key(), key);
    assert!(!host.data.join("writeback.json").exists());
    let ids = host.event_ids(&cloud);
    assert!(ids.contains(&31004), "{ids:?}");
    assert!(!ids.contains(&31018) && !ids.contains(&31005), "{ids:?}");

    // No password in the event log, right or wrong.
    let log = std::fs::read_to_string(host.data.join("events.jsonl")).unwrap();
    for secret in [
        "not-the-password",
        common::ADMIN_PASSWORD,
        common::USER_PASSWORD,
    ] {
        assert!(!log.contains(secret), "a password is in the event log");
    }

    // No password on the command line: the flag does not exist.
    let r = agent_cmd(
        &cloud,
        &[
            "agent",
            "writeback",
            "enable",
            "--data-dir",
            host.data(),
            "--password",
            "x",
        ],
        None,
    )
    .fails(2);
    assert!(r.stderr.contains("--password"), "{}", r.stderr);
}

/// Needs the cloud's `PUT /api/v1/agents/{id}/writeback` and signed `GET|DELETE
/// /api/v1/agent/writeback` (engineer C's endpoint).
#[test]
fn enable_rolls_the_key_prints_the_sentence_and_disable_undoes_it() {
    let samba = Samba::shared();
    let cloud = Cloud::start();
    cloud.login();
    let host = register(&cloud, samba);
    let first = host.sealing_key();

    // Without a premium SKU the cloud refuses: its message is shown, the old key restored.
    let r = host
        .enable(&cloud, "corp", &cloud.admin, common::ADMIN_PASSWORD)
        .fails(1);
    assert!(
        r.stderr.contains("the cloud refused to enable writeback"),
        "{}",
        r.stderr
    );
    assert_eq!(host.sealing_key(), first, "the key was not restored");
    assert!(!host.data.join("writeback.json").exists());

    cloud.run(&["licenses", "trial"]).ok();
    let r = host
        .enable(&cloud, "corp", &cloud.admin, common::ADMIN_PASSWORD)
        .ok();
    assert_eq!(r.stdout, format!("{ENABLED}\n"));
    // A Samba 4.17 DC: the two things writeback cannot check or enforce there.
    for advice in [
        "warning: this is a Samba DC",
        "`old password allowed period = 0`",
        "cannot enforce the on-prem password history",
    ] {
        assert!(r.stderr.contains(advice), "{advice}: {}", r.stderr);
    }
    let second = host.sealing_key();
    assert_ne!(second, first, "the sealing key was not rolled");
    let state = host.data.join("writeback.json");
    #[cfg(unix)]
    {
        assert_eq!(mode(&state), 0o600);
        assert_eq!(mode(&host.data.join("keys/sealing.key")), 0o600);
    }
    let local: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(local["connector"], "corp");
    assert!(local["enabledAt"].as_i64().unwrap() > 0);
    let ids = host.event_ids(&cloud);
    let pos = |id| ids.iter().rposition(|x| *x == id);
    assert!(
        pos(31004) < pos(31018) && pos(31018) < pos(31005) && pos(31004).is_some(),
        "{ids:?}"
    );

    let st = host.writeback_status(&cloud);
    assert_eq!(st["local"]["connector"], "corp", "{st}");
    assert_eq!(st["sealingKeyPresent"], true, "{st}");
    assert_eq!(st["cloud"]["enabled"], true, "{st}");

    agent_cmd(
        &cloud,
        &["agent", "writeback", "disable", "--data-dir", host.data()],
        None,
    )
    .ok();
    assert!(!state.exists());
    let ids = host.event_ids(&cloud);
    assert!(ids.contains(&31012) && ids.contains(&31013), "{ids:?}");
    let st = host.writeback_status(&cloud);
    assert_eq!(st["cloud"]["enabled"], false, "{st}");

    // Disable → enable rolls the key again.
    host.enable(&cloud, "corp", &cloud.admin, common::ADMIN_PASSWORD)
        .ok();
    assert_ne!(host.sealing_key(), second);
}
