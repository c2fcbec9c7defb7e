//! Fixtures shared by the suite: a store on each backend, and records to put in it.

#![allow(dead_code)]

use proto::{OnPremises, Role, Source, Tenant, User};
use store::Store;

/// A store and whatever keeps its database alive. Fields drop in order: the pool first, then
/// the PostgreSQL server or the SQLite directory.
pub struct TestDb {
    pub store: Store,
    pub pg: Option<testkit::postgres::Postgres>,
    pub dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open_sqlite(&dir.path().join("data").join("dirbridge.db"))
        .await
        .expect("open SQLite store");
    assert_eq!(store.backend_name(), "sqlite");
    TestDb {
        store,
        pg: None,
        dir: Some(dir),
    }
}

pub async fn postgres() -> TestDb {
    let pg = testkit::postgres::Postgres::start().expect("start PostgreSQL");
    // A fresh cluster per test: its `postgres` database is empty.
    let store = Store::open_postgres(&pg.url())
        .await
        .expect("open PostgreSQL store");
    assert_eq!(store.backend_name(), "postgres");
    TestDb {
        store,
        pg: Some(pg),
        dir: None,
    }
}

/// `store_test! { async fn name(store) { … } }` → `name::sqlite` and `name::postgres`.
macro_rules! store_test {
    ($(#[$meta:meta])* async fn $name:ident($store:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::sqlite().await;
                let $store = db.store.clone();
                $body
                db.store.close().await;
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::common::postgres().await;
                let $store = db.store.clone();
                $body
                db.store.close().await;
            }
        }
    };
}

pub const T0: i64 = 1_795_600_000;

pub fn tenant(name: &str) -> Tenant {
    Tenant {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        initial_domain: format!("{name}.dirbridge.test"),
        domains: vec![format!("{name}.dirbridge.test")],
        default_usage_location: None,
        soft_match_enabled: false,
        created_at: T0,
    }
}

/// Create and store a tenant.
pub async fn new_tenant(store: &Store, name: &str) -> Tenant {
    let t = tenant(name);
    store.create_tenant(&t).await.expect("create tenant");
    t
}

pub fn user(tenant: &Tenant, upn: &str) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        user_principal_name: upn.to_string(),
        display_name: upn.split('@').next().unwrap_or(upn).to_string(),
        given_name: None,
        surname: None,
        mail: None,
        mobile_phone: None,
        office_phone: None,
        usage_location: None,
        account_enabled: true,
        source: Source::Cloud,
        roles: vec![],
        on_premises: None,
        created_at: T0,
        updated_at: T0,
    }
}

/// A user as sync would create it, with every on-premises field set.
pub fn synced_user(tenant: &Tenant, upn: &str, immutable_id: &str) -> User {
    User {
        source: Source::OnPremises,
        given_name: Some("Ada".into()),
        surname: Some("Lovelace".into()),
        mail: Some(upn.to_string()),
        mobile_phone: Some("+44 7700 900123".into()),
        office_phone: Some("+44 20 7946 0000".into()),
        usage_location: Some("GB".into()),
        roles: vec![Role::UserAdministrator, Role::PasswordAdministrator],
        on_premises: Some(OnPremises {
            immutable_id: immutable_id.to_string(),
            distinguished_name: Some(format!("CN={upn},OU=Staff,DC=corp,DC=example")),
            sam_account_name: Some(upn.split('@').next().unwrap_or(upn).to_string()),
            last_sync_at: Some(T0 + 60),
            owned_attributes: vec![
                "displayName".into(),
                "mail".into(),
                "userPrincipalName".into(),
            ],
        }),
        ..user(tenant, upn)
    }
}

/// Create and store a user.
pub async fn new_user(store: &Store, tenant: &Tenant, upn: &str) -> User {
    let u = user(tenant, upn);
    store.insert_user(&u, None).await.expect("insert user");
    u
}

pub fn group(tenant: &Tenant, name: &str) -> proto::Group {
    proto::Group {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        display_name: name.to_string(),
        description: None,
        source: Source::Cloud,
        on_premises: None,
        created_at: T0,
    }
}

pub async fn new_group(store: &Store, tenant: &Tenant, name: &str) -> proto::Group {
    let g = group(tenant, name);
    store.insert_group(&g).await.expect("insert group");
    g
}

/// The conflict text of an error, or a panic saying what came instead.
#[track_caller]
pub fn conflict_text<T: std::fmt::Debug>(r: store::Result<T>) -> String {
    match r {
        Err(store::StoreError::Conflict(text)) => text,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(r: store::Result<T>) {
    match r {
        Err(store::StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub fn page(after: Option<String>, limit: u32) -> proto::PageRequest {
    proto::PageRequest { after, limit }
}

/// The schema of `backend` before migration `first_missing` (the migrations named below it) in a
/// fresh directory, to fill with data a newer migration must carry over.
pub async fn schema_before(
    backend: &str,
    first_missing: &str,
) -> (tempfile::TempDir, sqlx::migrate::Migrator) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < first_missing {
            std::fs::copy(&p, dir.path().join(name)).unwrap();
        }
    }
    let m = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    (dir, m)
}
