//! `dirbridge agent connector test` through the real binary against the real Samba AD DC: the
//! Samba warnings, and the writeback rights as a section of their own with commands that work
//! from any host.

mod common;

use common::{run_in, write_private, Run};
use testkit::samba::{AdRight, Samba, ServiceAccount};

fn add_connector(host: &std::path::Path, samba: &Samba, account: ServiceAccount) -> String {
    let svc = samba.service_account(account);
    let data = host.join("agent");
    let pw = host.join("svc-password");
    write_private(&pw, &svc.password);
    run_in(
        &host.join("config"),
        &[
            "agent",
            "connector",
            "add",
            "--data-dir",
            data.to_str().unwrap(),
            "--name",
            "corp",
            "--kind",
            "ad",
            "--url",
            &samba.ldaps_url(),
            "--ca-file",
            samba.ca_cert_path().to_str().unwrap(),
            "--bind-dn",
            &svc.dn,
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
    data.to_str().unwrap().to_string()
}

fn connector_test(host: &std::path::Path, data: &str, extra: &[&str]) -> Run {
    let mut args = vec!["agent", "connector", "test", "--data-dir", data];
    args.extend(extra);
    run_in(&host.join("config"), &args, None)
}

#[test]
fn connector_test_warns_about_samba_and_checks_writeback_rights_on_request() {
    let samba = Samba::shared();
    let host = tempfile::tempdir().unwrap();
    let account = ServiceAccount::Missing(AdRight::ResetPassword);
    let data = add_connector(host.path(), samba, account);

    let plain = connector_test(host.path(), &data, &[]);
    for part in [
        "[warn] old-password: this is a Samba DC",
        "`old password allowed period = 0`",
        "[warn] reset-history:",
    ] {
        assert!(plain.stdout.contains(part), "{part}: {plain:?}");
    }
    assert!(!plain.stdout.contains("writeback rights"), "{plain:?}");

    let wb = connector_test(host.path(), &data, &["--writeback"]);
    assert_ne!(wb.code, 0, "{wb:?}");
    let section = wb
        .stdout
        .split("connector corp, writeback rights:")
        .nth(1)
        .unwrap_or_else(|| panic!("no writeback section: {wb:?}"));
    let failed: Vec<&str> = section.lines().filter(|l| l.contains("[FAIL]")).collect();
    assert_eq!(failed.len(), 1, "{section}");
    for part in [
        "[FAIL] resetPassword:",
        "lacks Reset Password on users below OU=Corp,DC=dirbridge,DC=test",
        &format!(
            "samba-tool dsacl set -H {} -U Administrator --objectdn='OU=Corp,DC=dirbridge,DC=test'",
            samba.ldaps_url()
        ),
        &format!(
            "dsacls \"OU=Corp,DC=dirbridge,DC=test\" /I:S /G \"DIRBRIDGE\\{}:CA;Reset Password;user\"",
            account.name()
        ),
    ] {
        assert!(failed[0].contains(part), "{part}: {}", failed[0]);
    }
    assert!(section.contains("[ ok ] changePassword:"), "{section}");
    assert!(wb.stderr.contains("some checks failed"), "{wb:?}");
}
