//! `dirbridge users methods show|set` through the real binary against a cloud it started: an
//! administrator sets a user's contact methods (never security answers), and `login --help`
//! says who may sign in.

mod common;

use common::{run_in, Cloud};

#[test]
fn an_admin_sets_and_removes_a_users_contact_methods() {
    let cloud = Cloud::start();
    cloud.login();
    let ann = format!("ann@{}", cloud.domain);
    cloud
        .run(&["users", "create", "--upn", &ann, "--display-name", "Ann"])
        .ok();

    let set = cloud
        .run(&[
            "users",
            "methods",
            "set",
            &ann,
            "--email",
            "ann.private@example.net",
            "--mobile-phone",
            "+4790001234",
        ])
        .ok();
    assert!(set.stdout.contains("Email"), "{set:?}");
    assert!(
        !set.stdout.contains("ann.private@example.net"),
        "shown unmasked: {set:?}"
    );

    let shown = cloud
        .run(&["users", "methods", "show", &ann, "--output", "json"])
        .ok()
        .json();
    let email = shown["email"].as_str().unwrap_or_else(|| panic!("{shown}"));
    assert!(email.starts_with('a') && email.contains("***"), "{shown}");
    assert!(
        shown["mobilePhone"].as_str().unwrap().ends_with("1234"),
        "{shown}"
    );

    cloud
        .run(&["users", "methods", "set", &ann, "--remove", "mobile-phone"])
        .ok();
    let shown = cloud
        .run(&["users", "methods", "show", &ann, "--output", "json"])
        .ok()
        .json();
    assert!(shown["mobilePhone"].is_null(), "{shown}");
    assert!(shown["email"].is_string(), "unchanged: {shown}");

    // Nothing to send, or a contradiction: refused before any request.
    let r = cloud.run(&["users", "methods", "set", &ann]).fails(1);
    assert!(r.stderr.contains("nothing to change"), "{r:?}");
    let r = cloud
        .run(&[
            "users",
            "methods",
            "set",
            &ann,
            "--email",
            "a@example.net",
            "--remove",
            "email",
        ])
        .fails(1);
    assert!(r.stderr.contains("contradict"), "{r:?}");
    // There is no way to give security answers here.
    let r = cloud
        .run(&["users", "methods", "set", &ann, "--security-question", "x"])
        .fails(2);
    assert!(r.stderr.contains("--security-question"), "{r:?}");
}

#[test]
fn login_help_says_synced_and_cloud_users_sign_in_too() {
    let dir = tempfile::tempdir().unwrap();
    let help = run_in(dir.path(), &["login", "--help"], None).ok();
    assert!(
        help.stdout.contains("a user synced from on-premises"),
        "{}",
        help.stdout
    );
    assert!(
        !help.stdout.contains("as an administrator"),
        "{}",
        help.stdout
    );
}
