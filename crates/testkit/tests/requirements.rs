//! The guard of issue 11: every external program or Python module the code, the tests, the
//! benchmarks and the scripts call is named in scripts/requirements.tsv, which scripts/deps.sh
//! installs and checks by function. A newly used program that is not in the table fails here.

use std::process::Command;

use dirbridge_testkit::requirements::{self, covered, Used};

fn table() -> Vec<requirements::Requirement> {
    let text = std::fs::read_to_string(requirements::table_path()).expect("reading the table");
    requirements::parse_table(&text).expect("parsing scripts/requirements.tsv")
}

#[test]
fn every_program_the_code_calls_is_in_the_requirements_table() {
    let table = table();
    let root = requirements::workspace_root();
    let files = requirements::files_to_scan(&root);
    assert!(
        files.len() > 50,
        "the scan found only {} files under {}",
        files.len(),
        root.display()
    );
    let mut missing = Vec::new();
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for used in requirements::scan_file(f, &text) {
            seen += 1;
            if !covered(&table, &used) {
                missing.push(format!(
                    "{used:?} in {}",
                    f.strip_prefix(&root).unwrap_or(f).display()
                ));
            }
        }
    }
    // The scan must see the programs we know are used, or it is not scanning at all.
    assert!(seen > 20, "the scan found only {seen} uses");
    assert!(
        missing.is_empty(),
        "not named in scripts/requirements.tsv (add a row with the Debian package that brings it):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_scan_sees_the_programs_the_testkit_is_known_to_use() {
    let root = requirements::workspace_root();
    let mut all = std::collections::BTreeSet::new();
    for f in requirements::files_to_scan(&root) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        all.extend(requirements::scan_file(&f, &text));
    }
    for p in [
        "samba-tool",
        "slapadd",
        "slapd",
        "initdb",
        "ldapsearch",
        "curl",
        "python3",
    ] {
        assert!(
            all.contains(&Used::Program(p.into())),
            "{p} not found by the scan"
        );
    }
    for m in ["samba", "aiosmtpd", "ldb"] {
        assert!(
            all.contains(&Used::Python(m.into())),
            "python module {m} not found by the scan"
        );
    }
}

fn deps_check(table: &std::path::Path) -> std::process::Output {
    Command::new("bash")
        .arg(requirements::workspace_root().join("scripts/deps.sh"))
        .arg("--check")
        .env("DIRBRIDGE_REQUIREMENTS", table)
        .output()
        .expect("running scripts/deps.sh --check")
}

#[test]
fn deps_check_passes_on_this_machine_and_names_a_missing_piece_and_its_package() {
    // The test command runs deps.sh first, so every row holds here.
    let ok = deps_check(&requirements::table_path());
    assert!(
        ok.status.success(),
        "deps.sh --check: {}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("requirements.tsv");
    let mut text = std::fs::read_to_string(requirements::table_path()).unwrap();
    text.push_str("file\t/usr/share/samba/setup/ad-schema/No_Such_Schema.ldf\tsamba-ad-provision\tthis test\n");
    std::fs::write(&bad, text).unwrap();
    let out = deps_check(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("No_Such_Schema.ldf") && err.contains("package samba-ad-provision"),
        "{err}"
    );

    let prog = dir.path().join("prog.tsv");
    std::fs::write(
        &prog,
        "program\tno-such-program-dirbridge\tsome-package\tthis test\n",
    )
    .unwrap();
    let out = deps_check(&prog);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no-such-program-dirbridge") && err.contains("some-package"),
        "{err}"
    );
}
