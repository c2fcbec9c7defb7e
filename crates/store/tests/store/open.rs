use store::{Store, StoreError};

use crate::common::*;

#[tokio::test]
async fn open_accepts_sqlite_urls_and_plain_paths_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("db.sqlite");
    let first = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(first.backend_name(), "sqlite");
    first.ping().await.unwrap();
    let t = new_tenant(&first, "contoso").await;
    first.close().await;
    assert!(path.exists());

    // Reopening (migrations already applied) finds the data.
    let again = Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(again.get_tenant(&t.id).await.unwrap(), Some(t.clone()));
    let third = Store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(third.list_tenants().await.unwrap(), vec![t]);
    assert!(matches!(Store::open("").await, Err(StoreError::Invalid(_))));
}

#[tokio::test]
async fn open_connects_to_postgres_urls_and_reopens() {
    let pg = testkit::postgres::Postgres::start().unwrap();
    let url = pg.create_database("reopen").unwrap();
    let first = Store::open(&url).await.unwrap();
    assert_eq!(first.backend_name(), "postgres");
    first.ping().await.unwrap();
    let t = new_tenant(&first, "contoso").await;
    first.close().await;

    let again = Store::open(&url.replacen("postgres://", "postgresql://", 1))
        .await
        .unwrap();
    assert_eq!(again.get_tenant(&t.id).await.unwrap(), Some(t));
    again.close().await;
}

#[tokio::test]
async fn postgres_connection_errors_do_not_echo_the_password() {
    let pg = testkit::postgres::Postgres::start().unwrap();
    let url = format!(
        "postgres://nobody:S3cret-Marker@127.0.0.1:{}/missing_db",
        pg.port()
    );
    let err = Store::open(&url).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{text}");
    assert!(!text.contains("S3cret-Marker"), "{text}");
    assert!(!format!("{err:?}").contains("S3cret-Marker"));
    let bad = Store::open("postgres://u:S3cret-Marker@[::1")
        .await
        .unwrap_err()
        .to_string();
    assert!(!bad.contains("S3cret-Marker"), "{bad}");
}

store_test! {
    async fn ping_answers(store) {
        store.ping().await.unwrap();
        let shown = format!("{store:?}");
        assert!(shown.contains(store.backend_name()), "{shown}");
    }
}
