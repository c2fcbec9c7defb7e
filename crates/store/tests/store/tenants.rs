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

        t.domains.push("contoso.example".into());
        t.default_usage_location = Some("US".into());
        t.soft_match_enabled = true;
        t.created_at = 1; // not rewritten
        store.update_tenant(&t).await.unwrap();
        let stored = store.get_tenant(&t.id).await.unwrap().unwrap();
        assert_eq!(stored.domains, t.domains);
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
