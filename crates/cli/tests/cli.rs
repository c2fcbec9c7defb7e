//! The `dirbridge` binary against a real cloud it started itself (`cloud init` + `cloud serve`).

mod common;

use common::{row, run_in, Cloud, USER_PASSWORD};
use serde_json::Value;

#[test]
fn login_stores_a_private_token_and_whoami_uses_it() {
    let cloud = Cloud::start();
    let out = cloud.login();
    assert!(
        out.stdout
            .contains(&format!("Signed in to {} as {}", cloud.url, cloud.admin)),
        "{}",
        out.stdout
    );
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(cloud.credentials_file()).unwrap()).unwrap();
    for key in [
        "cloud",
        "accessToken",
        "tokenId",
        "expiresAt",
        "userPrincipalName",
        "tenantId",
    ] {
        assert!(creds.get(key).is_some(), "credentials lack {key}: {creds}");
    }
    assert_eq!(creds["cloud"], cloud.url.as_str());
    let stored = std::fs::read_to_string(cloud.credentials_file()).unwrap();
    assert!(
        !stored.contains(common::ADMIN_PASSWORD),
        "the password was stored"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cloud.credentials_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "credentials.json mode {:o}",
            mode & 0o777
        );
    }
    let me = cloud.run(&["whoami", "--output", "json"]).ok().json();
    assert_eq!(me["userPrincipalName"], cloud.admin.as_str());
    assert!(!cloud
        .run(&["whoami"])
        .ok()
        .stdout
        .contains(creds["accessToken"].as_str().unwrap()));
}

#[test]
fn wrong_password_is_refused_and_nothing_is_stored() {
    let cloud = Cloud::start();
    let out = cloud
        .run_with_stdin(
            &[
                "login",
                "--cloud",
                &cloud.url,
                "--user",
                &cloud.admin,
                "--password-stdin",
            ],
            "not-the-password\n",
        )
        .fails(1);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("(code unauthenticated, tracking id "),
        "{}",
        out.stderr
    );
    assert!(!cloud.credentials_file().exists());
}

#[test]
fn admin_creates_lists_shows_updates_and_deletes_a_user() {
    let cloud = Cloud::start();
    cloud.login();
    let ann = cloud.upn("ann");

    let created = cloud
        .run_with_stdin(
            &[
                "users",
                "create",
                "--upn",
                &ann,
                "--display-name",
                "Ann Lee",
                "--mail",
                "ann@example.com",
                "--password-stdin",
            ],
            &format!("{USER_PASSWORD}\n"),
        )
        .ok();
    assert!(
        created.stdout.contains("Display name:") && created.stdout.contains("Ann Lee"),
        "{}",
        created.stdout
    );

    // The new user can sign in with the password given on standard input.
    let elsewhere = cloud.path().join("ann-config");
    run_in(
        &elsewhere,
        &[
            "login",
            "--cloud",
            &cloud.url,
            "--user",
            &ann,
            "--password-stdin",
        ],
        Some(&format!("{USER_PASSWORD}\n")),
    )
    .ok();

    let table = cloud.run(&["users", "list"]).ok().stdout;
    assert!(table.starts_with("UPN "), "{table}");
    let cells = row(&table, &ann).unwrap_or_else(|| panic!("{ann} not listed:\n{table}"));
    assert_eq!(&cells[..4], [ann.as_str(), "Ann Lee", "cloud", "yes"]);

    let page = cloud
        .run(&["users", "list", "--output", "json"])
        .ok()
        .json();
    let upns: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap())
        .collect();
    assert!(
        upns.contains(&ann.as_str()) && upns.contains(&cloud.admin.as_str()),
        "{upns:?}"
    );

    let filtered = cloud
        .run(&[
            "users",
            "list",
            "--upn-prefix",
            "ann",
            "--limit",
            "1",
            "--all",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);

    let shown = cloud
        .run(&["users", "show", &ann, "--output", "json"])
        .ok()
        .json();
    assert_eq!(shown["mail"], "ann@example.com");
    let id = shown["id"].as_str().unwrap().to_string();
    assert!(cloud
        .run(&["users", "show", &id])
        .ok()
        .stdout
        .contains(&ann));

    let updated = cloud
        .run(&[
            "users",
            "update",
            &ann,
            "--display-name",
            "Ann Lee-Berg",
            "--usage-location",
            "NO",
            "--clear-mail",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(updated["displayName"], "Ann Lee-Berg");
    assert_eq!(updated["usageLocation"], "NO");
    assert_eq!(updated["mail"], Value::Null);
    // Fields not given stay as they were.
    assert_eq!(updated["accountEnabled"], true);

    let nothing = cloud.run(&["users", "update", &ann]).fails(1);
    assert!(
        nothing.stderr.contains("nothing to change"),
        "{}",
        nothing.stderr
    );

    // An administrator's reset from a file; the user signs in with the new password.
    let new_password = "N3w-Pass-word!";
    let file = cloud.path().join("new.pw");
    std::fs::write(&file, format!("{new_password}\n")).unwrap();
    cloud
        .run(&[
            "users",
            "reset-password",
            &ann,
            "--password-file",
            file.to_str().unwrap(),
        ])
        .ok();
    run_in(
        &elsewhere,
        &[
            "login",
            "--cloud",
            &cloud.url,
            "--user",
            &ann,
            "--password-stdin",
        ],
        Some(&format!("{new_password}\n")),
    )
    .ok();

    cloud.run(&["users", "delete", &ann]).ok();
    let gone = cloud.run(&["users", "show", &ann]).fails(1);
    assert!(gone.stderr.starts_with("error: "), "{}", gone.stderr);
    assert!(
        gone.stderr.contains("(code notFound, tracking id "),
        "{}",
        gone.stderr
    );
}

#[test]
fn licence_assignment_needs_a_usage_location_and_is_counted() {
    let cloud = Cloud::start();
    cloud.login();
    let bo = cloud.upn("bo");
    cloud
        .run(&["users", "create", "--upn", &bo, "--display-name", "Bo Ek"])
        .ok();

    let trial = cloud.run(&["licenses", "trial"]).ok();
    assert!(
        trial.stdout.contains("DIRBRIDGE_PREMIUM"),
        "{}",
        trial.stdout
    );

    let refused = cloud
        .run(&[
            "licenses",
            "assign",
            "--user",
            &bo,
            "--sku",
            "DIRBRIDGE_PREMIUM",
        ])
        .fails(1);
    assert!(
        refused
            .stderr
            .contains("License assignment cannot be done for user with invalid usage location."),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("(code Request_BadRequest, tracking id "),
        "{}",
        refused.stderr
    );

    cloud
        .run(&["users", "update", &bo, "--usage-location", "NO"])
        .ok();
    cloud
        .run(&[
            "licenses",
            "assign",
            "--user",
            &bo,
            "--sku",
            "DIRBRIDGE_PREMIUM",
        ])
        .ok();

    let table = cloud.run(&["licenses", "list"]).ok().stdout;
    let header = table.lines().next().unwrap();
    for column in [
        "SKU",
        "NAME",
        "ENABLED",
        "WARNING",
        "SUSPENDED",
        "LOCKED OUT",
        "CONSUMED",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let premium = row(&table, "DIRBRIDGE_PREMIUM").unwrap_or_else(|| panic!("{table}"));
    assert_eq!(premium.last(), Some(&"1"), "consumed units:\n{table}");

    let summary = cloud
        .run(&["licenses", "list", "--output", "json"])
        .ok()
        .json();
    let premium = summary
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["skuId"] == "DIRBRIDGE_PREMIUM")
        .unwrap();
    assert_eq!(premium["consumedUnits"], 1);

    let licences = cloud.run(&["users", "licenses", &bo]).ok().stdout;
    assert!(
        row(&licences, "DIRBRIDGE_PREMIUM").is_some_and(|r| r[1] == "direct" && r[2] == "active"),
        "{licences}"
    );
}

#[test]
fn groups_are_found_by_name_and_license_their_members() {
    let cloud = Cloud::start();
    cloud.login();
    let dee = cloud.upn("dee");
    cloud
        .run(&["users", "create", "--upn", &dee, "--display-name", "Dee"])
        .ok();
    cloud
        .run(&["tenant", "set", "--default-usage-location", "NO"])
        .ok();
    cloud.run(&["licenses", "trial"]).ok();
    cloud
        .run(&[
            "groups",
            "create",
            "--name",
            "SSPR users",
            "--description",
            "pilot",
        ])
        .ok();
    cloud.run(&["groups", "create", "--name", "Helpdesk"]).ok();

    cloud
        .run(&["groups", "add-member", "SSPR users", "--user", &dee])
        .ok();
    cloud
        .run(&["groups", "add-member", "sspr users", "--group", "Helpdesk"])
        .ok();
    let members = cloud.run(&["groups", "members", "SSPR users"]).ok().stdout;
    assert!(
        row(&members, "user").is_some_and(|r| r[1] == dee),
        "{members}"
    );
    assert!(
        row(&members, "group").is_some_and(|r| r[1] == "Helpdesk"),
        "{members}"
    );

    // Dee has no usage location: group licensing falls back to the tenant's.
    cloud
        .run(&[
            "licenses",
            "assign-group",
            "--group",
            "SSPR users",
            "--sku",
            "DIRBRIDGE_PREMIUM",
        ])
        .ok();
    let licences = cloud.run(&["users", "licenses", &dee]).ok().stdout;
    let premium = row(&licences, "DIRBRIDGE_PREMIUM").unwrap_or_else(|| panic!("{licences}"));
    assert_eq!(&premium[1..3], ["group SSPR users", "active"], "{licences}");
    let listed = cloud
        .run(&[
            "users",
            "list",
            "--sku",
            "DIRBRIDGE_PREMIUM",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(listed["items"][0]["userPrincipalName"], dee.as_str());

    cloud
        .run(&["groups", "remove-member", "SSPR users", &dee])
        .ok();
    let members = cloud
        .run(&["groups", "members", "SSPR users", "--output", "json"])
        .ok()
        .json();
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");

    let missing = cloud.run(&["groups", "show", "No such group"]).fails(1);
    assert!(
        missing.stderr.contains("(code notFound, tracking id "),
        "{}",
        missing.stderr
    );
}

#[test]
fn policy_set_shows_the_rule_an_invalid_combination_breaks() {
    let cloud = Cloud::start();
    cloud.login();
    let refused = cloud
        .run(&[
            "policy",
            "set",
            "--enabled-for",
            "all",
            "--methods",
            "email",
            "--methods-required",
            "2",
        ])
        .fails(1);
    assert!(
        refused
            .stderr
            .contains("allow at least as many methods as are required"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("(code validationFailed, tracking id "),
        "{}",
        refused.stderr
    );

    let saved = cloud
        .run(&[
            "policy",
            "set",
            "--enabled-for",
            "all",
            "--methods",
            "email,mobilePhone",
            "--methods-required",
            "2",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(saved["policy"]["enabledFor"], "all");
    assert_eq!(
        saved["policy"]["methods"],
        serde_json::json!(["email", "mobilePhone"])
    );
    let shown = cloud.run(&["policy", "show"]).ok().stdout;
    assert!(shown.contains("email, mobilePhone"), "{shown}");
}

#[test]
fn audit_lists_what_the_admin_did() {
    let cloud = Cloud::start();
    cloud.login();
    let cy = cloud.upn("cy");
    cloud
        .run(&["users", "create", "--upn", &cy, "--display-name", "Cy"])
        .ok();
    cloud.run(&["users", "delete", &cy]).ok();

    let table = cloud.run(&["audit"]).ok().stdout;
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("TIME") && header.contains("ACTOR") && header.ends_with("TRACKING ID"),
        "{header}"
    );
    for action in ["user.create", "user.delete"] {
        let line = table
            .lines()
            .find(|l| l.contains(action))
            .unwrap_or_else(|| panic!("no {action}:\n{table}"));
        assert!(
            line.contains(&cloud.admin) && line.contains("success"),
            "{line}"
        );
        // RFC 3339 UTC time first.
        assert!(
            line.as_bytes()[4] == b'-' && line[..20].ends_with('Z'),
            "{line}"
        );
    }

    let created = cloud
        .run(&[
            "audit",
            "--action",
            "user.create",
            "--since",
            "2000-01-01",
            "--output",
            "json",
        ])
        .ok()
        .json();
    let items = created["items"].as_array().unwrap();
    assert!(
        !items.is_empty() && items.iter().all(|r| r["action"] == "user.create"),
        "{created}"
    );
}

#[test]
fn logout_revokes_the_token_and_commands_then_ask_to_sign_in() {
    let cloud = Cloud::start();
    cloud.login();
    let saved = std::fs::read(cloud.credentials_file()).unwrap();

    cloud.run(&["logout"]).ok();
    assert!(!cloud.credentials_file().exists());
    let refused = cloud.run(&["users", "list"]).fails(1);
    assert!(
        refused
            .stderr
            .contains("You are not signed in; run dirbridge login --cloud"),
        "{}",
        refused.stderr
    );

    // The old token was revoked on the cloud, not only forgotten here.
    std::fs::write(cloud.credentials_file(), saved).unwrap();
    let revoked = cloud.run(&["users", "list"]).fails(1);
    assert!(
        revoked
            .stderr
            .contains("(code unauthenticated, tracking id "),
        "{}",
        revoked.stderr
    );
    assert!(
        revoked.stderr.contains(&format!(
            "run dirbridge login --cloud {} --user {}",
            cloud.url, cloud.admin
        )),
        "{}",
        revoked.stderr
    );
}

#[test]
fn an_expired_sign_in_says_when_and_how_to_sign_in_again() {
    let dir = tempfile::tempdir().unwrap();
    let creds = serde_json::json!({
        "cloud": "http://127.0.0.1:9", "accessToken": "x", "tokenId": "t", "expiresAt": 1_000_000_000,
        "userPrincipalName": "admin@contoso.dirbridge.internal", "tenantId": "ten"
    });
    std::fs::write(dir.path().join("credentials.json"), creds.to_string()).unwrap();
    let out = run_in(dir.path(), &["users", "list"], None).fails(1);
    assert_eq!(
        out.stderr.trim_end(),
        "error: Your sign-in expired at 2001-09-09T01:46:40Z; run dirbridge login --cloud http://127.0.0.1:9 --user admin@contoso.dirbridge.internal"
    );
}

#[test]
fn an_unreachable_cloud_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run_in(
        dir.path(),
        &[
            "login",
            "--cloud",
            &url,
            "--user",
            "a@b.c",
            "--password-stdin",
        ],
        Some("pw\n"),
    )
    .fails(1);
    assert!(
        out.stderr.contains(&format!(
            "cannot reach the cloud at {url}: is `dirbridge cloud serve` running?"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn passwords_cannot_be_given_as_arguments() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &[
            "login",
            "--cloud",
            "http://127.0.0.1:9",
            "--user",
            "a@b.c",
            "--password",
            "Secret-1",
        ][..],
        &[
            "users",
            "create",
            "--upn",
            "a@b.c",
            "--display-name",
            "A",
            "--password",
            "Secret-1",
        ],
        &["users", "reset-password", "a@b.c", "--password", "Secret-1"],
        &[
            "cloud",
            "init",
            "--data-dir",
            "d",
            "--tenant",
            "t",
            "--admin",
            "a",
            "--password",
            "Secret-1",
        ],
    ] {
        let out = run_in(dir.path(), args, None).fails(2);
        assert!(
            out.stderr.contains("unexpected argument '--password'"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Without a terminal and without --password-stdin/--password-file nothing is read silently.
    let out = run_in(
        dir.path(),
        &["login", "--cloud", "http://127.0.0.1:9", "--user", "a@b.c"],
        Some("pw\n"),
    )
    .fails(1);
    assert!(out.stderr.contains("--password-stdin"), "{}", out.stderr);
}

#[test]
fn help_on_every_level_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["users", "--help"],
        &["users", "create", "--help"],
        &["licenses", "assign", "--help"],
        &["policy", "set", "--help"],
        &["cloud", "serve", "--help"],
        &["audit", "--help"],
    ] {
        let out = run_in(dir.path(), args, None).ok();
        assert!(
            out.stdout.contains("Usage: dirbridge"),
            "{args:?}: {}",
            out.stdout
        );
        // Groups of commands list their commands; the top level and every command show examples.
        if args != ["users", "--help"] {
            assert!(
                out.stdout.contains("Example"),
                "{args:?} has no examples:\n{}",
                out.stdout
            );
        }
    }
    let top = run_in(dir.path(), &["--help"], None).ok().stdout;
    for command in [
        "cloud",
        "login",
        "logout",
        "users",
        "groups",
        "licenses",
        "policy",
        "tenant",
        "audit",
        "completions",
    ] {
        assert!(
            top.contains(command),
            "{command} missing from --help:\n{top}"
        );
    }
    let bash = run_in(dir.path(), &["completions", "bash"], None)
        .ok()
        .stdout;
    assert!(bash.contains("dirbridge") && bash.len() > 1000, "{bash}");
}

#[test]
fn apps_are_registered_shown_updated_rolled_over_and_deleted() {
    let cloud = Cloud::start();
    cloud.login();
    cloud
        .run(&["groups", "create", "--name", "Wiki users"])
        .ok();
    let human = cloud
        .run(&[
            "apps",
            "create",
            "--name",
            "Wiki",
            "--redirect-uri",
            "https://wiki.contoso.com/cb",
            "--group",
            "Wiki users",
        ])
        .ok()
        .stdout;
    assert!(
        human.contains("Client secret:") && human.contains("dbs_"),
        "{human}"
    );
    assert!(human.contains("shown this once"), "{human}");
    assert!(
        human.contains("/.well-known/openid-configuration"),
        "{human}"
    );

    let created = cloud
        .run(&[
            "apps",
            "create",
            "--name",
            "Grafana",
            "--redirect-uri",
            "https://grafana.contoso.com/login/generic_oauth",
            "--scope",
            "openid",
            "--scope",
            "email",
            "--alg",
            "RS256",
            "--output",
            "json",
        ])
        .ok()
        .json();
    let id = created["app"]["id"].as_str().unwrap().to_string();
    assert!(created["clientSecret"]
        .as_str()
        .unwrap()
        .starts_with("dbs_"));
    assert!(created["issuer"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/t/{}", cloud.domain)));

    let table = cloud.run(&["apps", "list"]).ok().stdout;
    let cells = row(&table, "Grafana").unwrap_or_else(|| panic!("{table}"));
    assert_eq!(cells[1], "confidential");
    assert!(!table.contains("dbs_"), "no secret in the list: {table}");

    let shown = cloud
        .run(&[
            "apps",
            "update",
            &id,
            "--skip-consent",
            "true",
            "--access-token-lifetime",
            "600",
        ])
        .ok()
        .stdout;
    assert!(
        shown.contains("Skip consent:") && shown.contains("yes"),
        "{shown}"
    );
    assert!(shown.contains("access 600 s"), "{shown}");
    let json = cloud
        .run(&["apps", "show", &id, "--output", "json"])
        .ok()
        .json();
    assert_eq!(json["idTokenSigningAlg"], "RS256");
    assert_eq!(
        json["allowedScopes"],
        serde_json::json!(["openid", "email"])
    );

    let bad = cloud
        .run(&[
            "apps",
            "update",
            &id,
            "--redirect-uri",
            "http://grafana.contoso.com/cb",
        ])
        .fails(1);
    assert!(bad.stderr.contains("plain http"), "{}", bad.stderr);

    let second = cloud
        .run(&["apps", "secret", "add", &id, "--output", "json"])
        .ok()
        .json();
    assert!(second["clientSecret"].as_str().unwrap().starts_with("dbs_"));
    let first = json["secrets"][0]["id"].as_str().unwrap();
    cloud.run(&["apps", "secret", "remove", &id, first]).ok();
    let rotated = cloud.run(&["apps", "rotate-keys"]).ok().stdout;
    assert!(rotated.contains("New signing keys"), "{rotated}");

    cloud.run(&["apps", "delete", &id]).ok();
    let gone = cloud.run(&["apps", "show", &id]).fails(1);
    assert!(
        gone.stderr.contains("dirbridge apps list"),
        "{}",
        gone.stderr
    );
}
