//! Building datasets from scratch (empty cache). The small build runs in the normal suite; the
//! 10,000-user Samba and 100,000-user OpenLDAP builds are `#[ignore]`d: run them with
//! `scripts/bench-datasets.sh` (timings go to docs/benchmarks.md).
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

use std::sync::OnceLock;
use std::time::Instant;

use dirbridge_testkit::dataset::DatasetSpec;
use dirbridge_testkit::samba::{Samba, SambaOptions, ServiceAccount};
use dirbridge_testkit::slapd::{OpenLdapServiceAccount, Slapd, SlapdOptions};
use ldap::{CaBundle, ConnectOptions, Connection, Scope, SecretString};

/// Every test in this binary builds into its own empty cache.
fn fresh_cache() {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp cache dir"));
    dirbridge_testkit::cache::set_cache_root(dir.path());
}

async fn count_users(
    url: &str,
    ca: &std::path::Path,
    dn: &str,
    pw: &str,
    base: &str,
    filter: &str,
) -> usize {
    let mut c = Connection::connect(&ConnectOptions::new(url, CaBundle::File(ca.to_path_buf())))
        .await
        .unwrap();
    c.simple_bind(dn, &SecretString::from(pw.to_owned()))
        .await
        .unwrap();
    c.search_paged(base, Scope::Subtree, filter, &["1.1"], 1000)
        .await
        .unwrap()
        .len()
}

const AD_PEOPLE: &str = "(&(objectCategory=person)(objectClass=user)(givenName=*))";
const LDAP_PEOPLE: &str = "(&(objectClass=inetOrgPerson)(givenName=*))";

async fn build_samba(users: usize) {
    fresh_cache();
    let t = Instant::now();
    let samba = Samba::start(&SambaOptions {
        dataset: Some(DatasetSpec::new(users, 42)),
        ..SambaOptions::default()
    })
    .unwrap();
    let total = t.elapsed();
    assert!(
        !samba.timings().template.is_zero(),
        "the cache was empty: the template must have been built"
    );
    let svc = samba.service_account(ServiceAccount::Full);
    let t = Instant::now();
    let n = count_users(
        &samba.ldaps_url(),
        samba.ca_cert_path(),
        &svc.dn,
        &svc.password,
        samba.synced_root(),
        AD_PEOPLE,
    )
    .await;
    assert_eq!(n, users);
    eprintln!(
        "samba dataset users={users}: build+start {:.1}s (template {:.1}s, copy {:.2}s, start {:.2}s); paged read of all users {:.2}s",
        total.as_secs_f64(),
        samba.timings().template.as_secs_f64(),
        samba.timings().copy.as_secs_f64(),
        samba.timings().start.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    // A second start reuses the cached template.
    let t = Instant::now();
    let again = Samba::start(&SambaOptions {
        dataset: Some(DatasetSpec::new(users, 42)),
        ..SambaOptions::default()
    })
    .unwrap();
    assert!(again.timings().template.is_zero());
    eprintln!(
        "samba dataset users={users}: cached start {:.2}s",
        t.elapsed().as_secs_f64()
    );
}

async fn build_slapd(users: usize) {
    fresh_cache();
    let t = Instant::now();
    let slapd = Slapd::start(&SlapdOptions {
        dataset: Some(DatasetSpec::new(users, 42)),
    })
    .unwrap();
    let total = t.elapsed();
    assert!(!slapd.timings().template.is_zero());
    let svc = slapd.service_account(OpenLdapServiceAccount::Full);
    let t = Instant::now();
    let n = count_users(
        &slapd.ldaps_url(),
        slapd.ca_cert_path(),
        &svc.dn,
        &svc.password,
        slapd.synced_root(),
        LDAP_PEOPLE,
    )
    .await;
    assert_eq!(n, users);
    eprintln!(
        "slapd dataset users={users}: build+start {:.1}s (slapadd {:.1}s, copy {:.2}s, start {:.2}s); paged read of all users {:.2}s",
        total.as_secs_f64(),
        slapd.timings().template.as_secs_f64(),
        slapd.timings().copy.as_secs_f64(),
        slapd.timings().start.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let again = Slapd::start(&SlapdOptions {
        dataset: Some(DatasetSpec::new(users, 42)),
    })
    .unwrap();
    assert!(again.timings().template.is_zero());
    eprintln!(
        "slapd dataset users={users}: cached start {:.2}s",
        t.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn small_datasets_build_from_scratch() {
    build_samba(150).await;
    build_slapd(150).await;
}

#[tokio::test]
#[ignore = "large: run scripts/bench-datasets.sh"]
async fn samba_10k_dataset_builds() {
    build_samba(10_000).await;
}

#[tokio::test]
#[ignore = "large: run scripts/bench-datasets.sh"]
async fn slapd_100k_dataset_builds() {
    build_slapd(100_000).await;
}
