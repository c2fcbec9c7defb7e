use store::{Store, TenantChanges};

use crate::common::*;

store_test! {
    async fn tenant_round_trips_and_is_found_by_id_and_name(store) {
        let mut t = tenant("Contoso");
        t.domains.push("contoso.example".into());
        t.default_usage_location = Some("NL".into());
        t.soft_match_enabled = true;
        store.create_tenant(&t).await.unwrap();

        assert_eq!(store.get_tenant(&t.id).await.unwrap(), Some(t.clone()));
        assert_eq!(store.get_tenant_by_name("contoso").await.unwrap(), Some(t.clone()));
        assert_eq!(store.get_tenant_by_name("CONTOSO").await.unwrap(), Some(t.clone()));
        assert_eq!(store.get_tenant("no-such-id").await.unwrap(), None);
        assert_eq!(store.get_tenant_by_name("fabrikam").await.unwrap(), None);
    }
}

store_test! {
    async fn tenants_are_listed_by_name(store) {
        let b = new_tenant(&store, "beta").await;
        let a = new_tenant(&store, "Alpha").await;
        let c = new_tenant(&store, "gamma").await;
        let names: Vec<String> = store.list_tenants().await.unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(names, vec![a.id, b.id, c.id]);
    }
}

store_test! {
    async fn tenant_name_and_initial_domain_are_unique_ignoring_case(store) {
        let t = new_tenant(&store, "contoso").await;

        let mut same_name = tenant("CONTOSO");
        same_name.initial_domain = "other.dirbridge.test".into();
        let text = conflict_text(store.create_tenant(&same_name).await);
        assert!(text.contains("CONTOSO") && text.contains("named"), "{text}");

        let mut same_domain = tenant("fabrikam");
        same_domain.initial_domain = t.initial_domain.to_uppercase();
        let text = conflict_text(store.create_tenant(&same_domain).await);
        assert!(text.contains("initial domain") && text.contains(&same_domain.initial_domain), "{text}");

        let mut same_id = tenant("woodgrove");
        same_id.id = t.id.clone();
        let text = conflict_text(store.create_tenant(&same_id).await);
        assert!(text.contains(&t.id), "{text}");

        assert_eq!(store.list_tenants().await.unwrap(), vec![t]);
    }
}

store_test! {
    async fn update_tenant_changes_fields_and_refuses_clashes(store) {
        let mut t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;

        t.domains.push("contoso.example".into()); // not written: domains are added one by one
        t.default_usage_location = Some("US".into());
        t.soft_match_enabled = true;
        t.created_at = 1; // not rewritten
        store.update_tenant(&t).await.unwrap();
        let stored = store.get_tenant(&t.id).await.unwrap().unwrap();
        assert_eq!(stored.domains, vec!["contoso.dirbridge.test".to_string()]);
        assert_eq!(stored.default_usage_location.as_deref(), Some("US"));
        assert!(stored.soft_match_enabled);
        assert_eq!(stored.created_at, T0);

        let mut clash = stored.clone();
        clash.name = "Fabrikam".into();
        let text = conflict_text(store.update_tenant(&clash).await);
        assert!(text.contains("Fabrikam"), "{text}");
        assert_eq!(store.get_tenant(&t.id).await.unwrap().unwrap().name, "contoso");
        assert_eq!(store.get_tenant(&other.id).await.unwrap().unwrap(), other);

        let ghost = tenant("ghost");
        assert_not_found(store.update_tenant(&ghost).await);
    }
}

store_test! {
    async fn domains_count_once_verified_in_order_and_in_any_case(store) {
        let t = new_tenant(&store, "contoso").await;
        store.add_tenant_domain(&t.id, "contoso.example", "c1").await.unwrap();
        store.add_tenant_domain(&t.id, "Contoso.Org", "c2").await.unwrap();
        // Claimed, not proven: listed with their challenges, trusted nowhere.
        let claimed = store.get_tenant(&t.id).await.unwrap().unwrap();
        assert_eq!(claimed.domains, vec!["contoso.dirbridge.test"]);
        assert_eq!(store.get_tenant_by_domain("contoso.org").await.unwrap(), None);
        let listed = store.tenant_domains(&t.id).await.unwrap();
        let shown: Vec<_> = listed.iter().map(|d| (d.domain.as_str(), d.verified_at.is_some(), d.challenge.as_deref())).collect();
        assert_eq!(shown, vec![("contoso.dirbridge.test", true, None), ("contoso.example", false, Some("c1")), ("Contoso.Org", false, Some("c2"))]);

        store.verify_tenant_domain(&t.id, "CONTOSO.example", 100).await.unwrap();
        store.verify_tenant_domain(&t.id, "contoso.org", 101).await.unwrap();
        store.verify_tenant_domain(&t.id, "contoso.org", 102).await.unwrap(); // already: no-op
        let stored = store.get_tenant(&t.id).await.unwrap().unwrap();
        assert_eq!(stored.domains, vec!["contoso.dirbridge.test", "contoso.example", "Contoso.Org"]);
        let listed = store.tenant_domains(&t.id).await.unwrap();
        assert_eq!((listed[2].verified_at, listed[2].challenge.as_deref()), (Some(101), None));
        assert_eq!(store.get_tenant_by_domain("CONTOSO.org").await.unwrap(), Some(stored.clone()));
        assert_eq!(store.get_tenant_by_domain("contoso.dirbridge.test").await.unwrap(), Some(stored.clone()));
        assert_eq!(store.get_tenant_by_domain("fabrikam.example").await.unwrap(), None);
        assert_eq!(store.list_tenants().await.unwrap(), vec![stored]);
        let text = conflict_text(store.add_tenant_domain(&t.id, "CONTOSO.EXAMPLE", "c3").await);
        assert!(text.contains("already a domain of this tenant"), "{text}");
        let other = new_tenant(&store, "fabrikam").await;
        let text = conflict_text(store.add_tenant_domain(&other.id, "contoso.example", "c4").await);
        assert!(text.contains("belongs to another tenant"), "{text}");
        let mut clash = tenant("woodgrove");
        clash.domains.push("contoso.org".into());
        let text = conflict_text(store.create_tenant(&clash).await);
        assert!(text.contains("contoso.org") && text.contains("another tenant"), "{text}");
        assert_eq!(store.get_tenant(&clash.id).await.unwrap(), None, "nothing of it was kept");
        assert_not_found(store.add_tenant_domain("no-such-tenant", "x.example", "c5").await);
        assert_not_found(store.verify_tenant_domain(&other.id, "never-claimed.example", 1).await);
    }
}

store_test! {
    async fn claims_do_not_hold_a_domain_and_one_tenant_at_most_verifies_it(store) {
        let a = new_tenant(&store, "contoso").await;
        let b = new_tenant(&store, "fabrikam").await;
        for i in 0..8 {
            // A claim holds nothing: both tenants may claim a domain (a squatter cannot block
            // its owner) ...
            let d = format!("race{i}.example");
            store.add_tenant_domain(&a.id, &d, "ca").await.unwrap();
            store.add_tenant_domain(&b.id, &d, "cb").await.unwrap();
            // ... and of two verifications at once exactly one wins; the loser's claim is gone.
            let (ra, rb) = tokio::join!(
                store.verify_tenant_domain(&a.id, &d, 10),
                store.verify_tenant_domain(&b.id, &d, 10)
            );
            assert_eq!(ra.is_ok() as u8 + rb.is_ok() as u8, 1, "{d}: {ra:?} {rb:?}");
            let loser = if ra.is_ok() { &b.id } else { &a.id };
            let text = conflict_text(if ra.is_ok() { rb } else { ra });
            assert!(text.contains("verified by another tenant"), "{text}");
            assert!(!store.tenant_domains(loser).await.unwrap().iter().any(|x| x.domain == d), "{d}");
            // One tenant claims two domains at once: both are kept.
            let (x, y) = (format!("x{i}.example"), format!("y{i}.example"));
            let (rx, ry) = tokio::join!(
                store.add_tenant_domain(&a.id, &x, "cx"),
                store.add_tenant_domain(&a.id, &y, "cy")
            );
            rx.unwrap();
            ry.unwrap();
        }
        let ta = store.get_tenant(&a.id).await.unwrap().unwrap();
        let tb = store.get_tenant(&b.id).await.unwrap().unwrap();
        let claims: Vec<String> = store.tenant_domains(&a.id).await.unwrap().into_iter().map(|d| d.domain).collect();
        for i in 0..8 {
            let d = format!("race{i}.example");
            assert_ne!(ta.domains.contains(&d), tb.domains.contains(&d), "{d}");
            assert!(claims.contains(&format!("x{i}.example")));
            assert!(claims.contains(&format!("y{i}.example")));
        }
    }
}

store_test! {
    async fn concurrent_patches_of_different_fields_both_stay(store) {
        let t = new_tenant(&store, "contoso").await;
        for (i, country) in ["NO", "SE", "DK", "FI", "IS", "NL"].into_iter().enumerate() {
            let on = i % 2 == 0;
            let (a, b) = (store.clone(), store.clone());
            let (ia, ib) = (t.id.clone(), t.id.clone());
            let x = tokio::spawn(async move {
                let c = TenantChanges { default_usage_location: Some(Some(country.into())), ..Default::default() };
                a.patch_tenant(&ia, &c).await
            });
            let y = tokio::spawn(async move {
                let c = TenantChanges { soft_match_enabled: Some(on), ..Default::default() };
                b.patch_tenant(&ib, &c).await
            });
            x.await.unwrap().unwrap();
            y.await.unwrap().unwrap();
            let now = store.get_tenant(&t.id).await.unwrap().unwrap();
            assert_eq!((now.default_usage_location.as_deref(), now.soft_match_enabled), (Some(country), on));
            assert_eq!((now.name.as_str(), &now.domains), (t.name.as_str(), &t.domains));
        }
        let clear = TenantChanges { default_usage_location: Some(None), ..Default::default() };
        store.patch_tenant(&t.id, &clear).await.unwrap();
        assert_eq!(store.get_tenant(&t.id).await.unwrap().unwrap().default_usage_location, None);
        store.patch_tenant(&t.id, &TenantChanges::default()).await.unwrap();
        assert_not_found(store.patch_tenant("ghost", &TenantChanges::default()).await);
        assert_not_found(store.patch_tenant("ghost", &clear).await);
    }
}

const OLD_TENANTS: &str = "INSERT INTO tenants (id, name, name_key, initial_domain, initial_domain_key, domains, default_usage_location, soft_match_enabled, created_at) VALUES \
    ('t1', 'contoso', 'contoso', 'contoso.x.test', 'contoso.x.test', '[\"contoso.x.test\",\"Shared.example\",\"contoso.example\"]', NULL, false, 1), \
    ('t2', 'fabrikam', 'fabrikam', 'fabrikam.x.test', 'fabrikam.x.test', '[\"fabrikam.x.test\",\"shared.example\"]', NULL, false, 2)";

async fn assert_domains_moved(store: &Store) {
    let t1 = store.get_tenant("t1").await.unwrap().unwrap();
    let t2 = store.get_tenant("t2").await.unwrap().unwrap();
    assert_eq!(
        t1.domains,
        vec!["contoso.x.test", "Shared.example", "contoso.example"]
    );
    // The domain both held stays with the tenant created first.
    assert_eq!(t2.domains, vec!["fabrikam.x.test"]);
    assert_eq!(
        store
            .get_tenant_by_domain("shared.EXAMPLE")
            .await
            .unwrap()
            .unwrap()
            .id,
        "t1"
    );
    let text = conflict_text(store.add_tenant_domain("t2", "contoso.example", "c").await);
    assert!(text.contains("another tenant"), "{text}");
}

#[tokio::test]
async fn domains_of_the_json_column_move_to_tenant_domains_on_sqlite() {
    let (migrations, m) = schema_before("sqlite", "0005").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dirbridge.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    m.run(&pool).await.unwrap();
    sqlx::query(OLD_TENANTS).execute(&pool).await.unwrap();
    pool.close().await;
    drop(migrations);
    let store = Store::open_sqlite(&path).await.unwrap();
    assert_domains_moved(&store).await;
    store.close().await;
}

#[tokio::test]
async fn domains_of_the_json_column_move_to_tenant_domains_on_postgres() {
    let (_migrations, m) = schema_before("postgres", "0005").await;
    let pg = testkit::postgres::Postgres::start().unwrap();
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    m.run(&pool).await.unwrap();
    sqlx::query(OLD_TENANTS).execute(&pool).await.unwrap();
    pool.close().await;
    let store = Store::open_postgres(&pg.url()).await.unwrap();
    assert_domains_moved(&store).await;
    store.close().await;
}
