//! The API keeps its contract (issue 20): schemathesis (PyPI, installed into
//! `tools/schemathesis/.venv` by `scripts/deps.sh`) reads `/openapi.json` of a real cloud and
//! sends it generated requests, valid and invalid, with every check it has (`--checks all`):
//! no 5xx, every status and content type documented, every response body matching its schema,
//! valid bodies accepted and invalid ones refused. Once as the Global Administrator and once
//! without a token. The few failures schemathesis cannot avoid are excluded by name in
//! `tools/schemathesis/schemathesis.toml`, each with its reason in docs/api.md.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Cloud;

/// Examples per operation and phase, and the time budget of one run: enough for every
/// operation to see valid and invalid bodies, small enough for the whole test to stay well
/// under three minutes on two shared cores.
const MAX_EXAMPLES: &str = "8";
const MAX_SECONDS: &str = "60";

/// Operations that end the run's own session (sign-out, revoking its token or the
/// administrator's tokens): left out of the administrator's run, which would otherwise test
/// everything after them without a token. The run without a token covers them, and
/// tests/api.rs tests them with one.
const OWN_SESSION: &[&str] = &["signOut", "revokeToken", "revokeUserTokens"];

fn tool_dir() -> PathBuf {
    testkit::requirements::workspace_root().join("tools/schemathesis")
}

/// Runs schemathesis against `c` with `headers`; panics with its report on any failure.
fn run(base: &str, label: &str, headers: &[String], exclude: &[&str]) {
    let dir = tool_dir();
    let bin = dir.join(".venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run 'bash scripts/deps.sh'",
        bin.display()
    );
    // Its caches (earlier crashes it would replay) and reports go to a directory of this run
    // alone, so every run starts from the same seed and nothing else.
    let reports = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(&bin);
    cmd.current_dir(reports.path())
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", base])
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--max-time", MAX_SECONDS])
        .args(["--workers", "1"])
        .args(["--seed", "20"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--suppress-health-check", "all"])
        .arg("--no-shrink")
        .arg("--no-color")
        .arg("--report-dir")
        .arg(reports.path());
    for h in headers {
        cmd.args(["--header", h]);
    }
    for id in exclude {
        cmd.args(["--exclude-operation-id", id]);
    }
    let out = cmd.output().expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis ({label}) found failures (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    // A run that tested nothing would also exit 0.
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "schemathesis ({label}) ran no test:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_documented_contract_under_schemathesis() {
    let c = Cloud::start().await;
    // Something to find: a user.
    c.user("alice", serde_json::json!({})).await;
    let base = c.base.clone();
    let auth = format!("Authorization: Bearer {}", c.admin_token);
    // schemathesis blocks; the cloud serves on this runtime meanwhile.
    let b = base.clone();
    tokio::task::spawn_blocking(move || run(&b, "Global Administrator", &[auth], OWN_SESSION))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || run(&base, "no token", &[], &[]))
        .await
        .unwrap();
}
