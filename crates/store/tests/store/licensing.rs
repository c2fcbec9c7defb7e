use proto::{
    AssignmentSource, AssignmentState, GroupLicense, LicenseAssignment, LicenseErrorKind,
    Subscription, SubscriptionKind, Tenant, User,
};
use store::StoreError;

use crate::common::*;

fn subscription(t: &Tenant, id: &str, sku: &str, created_at: i64) -> Subscription {
    Subscription {
        id: id.into(),
        tenant_id: t.id.clone(),
        sku_id: sku.into(),
        kind: SubscriptionKind::Purchased,
        units: 25,
        starts_at: created_at,
        ends_at: created_at + 365 * 86_400,
        created_at,
    }
}

fn assignment(t: &Tenant, u: &User, sku: &str, source: AssignmentSource) -> LicenseAssignment {
    LicenseAssignment {
        tenant_id: t.id.clone(),
        user_id: u.id.clone(),
        sku_id: sku.into(),
        source,
        state: AssignmentState::Active,
        error: None,
        effective_usage_location: Some("US".into()),
        updated_at: T0,
    }
}

store_test! {
    async fn subscriptions_are_stored_and_listed_oldest_first(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        let later = subscription(&t, "sub-b", "PREMIUM", T0 + 10);
        let mut trial = subscription(&t, "sub-a", "PREMIUM", T0);
        trial.kind = SubscriptionKind::Trial;
        trial.units = u32::MAX;
        store.insert_subscription(&later).await.unwrap();
        store.insert_subscription(&trial).await.unwrap();
        store.insert_subscription(&subscription(&other, "sub-c", "BASIC", T0)).await.unwrap();

        assert_eq!(store.list_subscriptions(&t.id).await.unwrap(), vec![trial.clone(), later]);
        assert!(conflict_text(store.insert_subscription(&trial).await).contains("sub-a"));
        assert_not_found(store.insert_subscription(&subscription(&tenant("ghost"), "sub-d", "X", T0)).await);
    }
}

store_test! {
    async fn assignments_are_upserted_by_user_sku_and_source(store) {
        let t = new_tenant(&store, "contoso").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let bob = new_user(&store, &t, "bob@contoso.dirbridge.test").await;
        let g = new_group(&store, &t, "Licensed").await;

        let direct = assignment(&t, &ada, "PREMIUM", AssignmentSource::Direct);
        let via_group = assignment(&t, &ada, "PREMIUM", AssignmentSource::Group(g.id.clone()));
        let bob_basic = assignment(&t, &bob, "BASIC", AssignmentSource::Direct);
        for a in [&direct, &via_group, &bob_basic] {
            store.upsert_assignment(a).await.unwrap();
        }

        // Same key: updated in place.
        let mut failed = direct.clone();
        failed.state = AssignmentState::Error;
        failed.error = Some(LicenseErrorKind::ProhibitedInUsageLocationViolation);
        failed.effective_usage_location = None;
        failed.updated_at = T0 + 99;
        store.upsert_assignment(&failed).await.unwrap();

        assert_eq!(store.list_assignments(&t.id, Some(&ada.id), None).await.unwrap(), vec![failed.clone(), via_group.clone()]);
        assert_eq!(store.list_assignments(&t.id, None, Some("BASIC")).await.unwrap(), vec![bob_basic.clone()]);
        assert_eq!(store.list_assignments(&t.id, Some(&bob.id), Some("PREMIUM")).await.unwrap(), vec![]);
        assert_eq!(store.list_assignments(&t.id, None, None).await.unwrap().len(), 3);

        // Deleting names the source exactly.
        assert!(!store.delete_assignment(&t.id, &ada.id, "PREMIUM", &AssignmentSource::Group("other".into())).await.unwrap());
        assert!(store.delete_assignment(&t.id, &ada.id, "PREMIUM", &AssignmentSource::Direct).await.unwrap());
        assert!(!store.delete_assignment(&t.id, &ada.id, "PREMIUM", &AssignmentSource::Direct).await.unwrap());
        assert_eq!(store.list_assignments(&t.id, Some(&ada.id), None).await.unwrap(), vec![via_group]);

        let other = new_tenant(&store, "fabrikam").await;
        assert!(store.list_assignments(&other.id, None, None).await.unwrap().is_empty());
        assert_not_found(store.upsert_assignment(&assignment(&other, &ada, "PREMIUM", AssignmentSource::Direct)).await);
    }
}

store_test! {
    async fn replacing_group_assignments_keeps_direct_ones_and_is_all_or_nothing(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let bob = new_user(&store, &t, "bob@contoso.dirbridge.test").await;
        let outsider = new_user(&store, &other, "x@fabrikam.dirbridge.test").await;
        let g1 = new_group(&store, &t, "One").await;
        let g2 = new_group(&store, &t, "Two").await;

        let direct = assignment(&t, &ada, "PREMIUM", AssignmentSource::Direct);
        store.upsert_assignment(&direct).await.unwrap();
        let old = assignment(&t, &ada, "PREMIUM", AssignmentSource::Group(g1.id.clone()));
        store.upsert_assignment(&old).await.unwrap();
        let theirs = assignment(&other, &outsider, "PREMIUM", AssignmentSource::Group("their-group".into()));
        store.upsert_assignment(&theirs).await.unwrap();

        // 450 rows (more than one INSERT batch), plus a repeated key where the last one wins.
        let mut next = Vec::new();
        for i in 0..450 {
            let u = if i % 2 == 0 { &ada } else { &bob };
            next.push(assignment(&t, u, &format!("SKU{i:03}"), AssignmentSource::Group(g2.id.clone())));
        }
        let mut last = next[0].clone();
        last.state = AssignmentState::Error;
        last.error = Some(LicenseErrorKind::CountViolation);
        next.push(last.clone());
        store.replace_group_assignments(&t.id, &next).await.unwrap();

        let now = store.list_assignments(&t.id, None, None).await.unwrap();
        assert_eq!(now.len(), 451);
        assert!(now.contains(&direct));
        assert!(!now.contains(&old));
        assert!(now.contains(&last));
        assert!(!now.contains(&next[0]));
        assert_eq!(store.list_assignments(&other.id, None, None).await.unwrap(), vec![theirs.clone()]);

        // A row naming a missing user fails the whole replacement: nothing changes.
        let before = store.list_assignments(&t.id, None, None).await.unwrap();
        let mut broken = vec![assignment(&t, &ada, "NEW", AssignmentSource::Group(g1.id.clone()))];
        broken.push(assignment(&t, &user(&t, "ghost@contoso.dirbridge.test"), "NEW", AssignmentSource::Group(g1.id.clone())));
        assert_not_found(store.replace_group_assignments(&t.id, &broken).await);
        assert_eq!(store.list_assignments(&t.id, None, None).await.unwrap(), before);

        // Direct assignments and other tenants' assignments are refused before anything is touched.
        let with_direct = vec![assignment(&t, &bob, "NEW", AssignmentSource::Direct)];
        assert!(matches!(store.replace_group_assignments(&t.id, &with_direct).await, Err(StoreError::Invalid(_))));
        let foreign = vec![assignment(&other, &outsider, "NEW", AssignmentSource::Group("g".into()))];
        assert!(matches!(store.replace_group_assignments(&t.id, &foreign).await, Err(StoreError::Invalid(_))));
        assert_eq!(store.list_assignments(&t.id, None, None).await.unwrap(), before);

        // Empty: every group assignment goes, direct ones stay.
        store.replace_group_assignments(&t.id, &[]).await.unwrap();
        assert_eq!(store.list_assignments(&t.id, None, None).await.unwrap(), vec![direct]);
        assert_eq!(store.list_assignments(&other.id, None, None).await.unwrap(), vec![theirs]);
    }
}

store_test! {
    async fn group_licences_are_added_once_and_removed(store) {
        let t = new_tenant(&store, "contoso").await;
        let g1 = new_group(&store, &t, "One").await;
        let g2 = new_group(&store, &t, "Two").await;
        let lic = |g: &proto::Group, sku: &str| GroupLicense {
            tenant_id: t.id.clone(),
            group_id: g.id.clone(),
            sku_id: sku.into(),
            created_at: T0,
        };
        assert!(store.add_group_license(&lic(&g1, "PREMIUM")).await.unwrap());
        assert!(!store.add_group_license(&lic(&g1, "PREMIUM")).await.unwrap());
        assert!(store.add_group_license(&lic(&g1, "BASIC")).await.unwrap());
        assert!(store.add_group_license(&lic(&g2, "PREMIUM")).await.unwrap());

        let mut want = vec![lic(&g1, "BASIC"), lic(&g1, "PREMIUM"), lic(&g2, "PREMIUM")];
        want.sort_by(|a, b| (&a.group_id, &a.sku_id).cmp(&(&b.group_id, &b.sku_id)));
        assert_eq!(store.list_group_licenses(&t.id).await.unwrap(), want);

        assert!(store.remove_group_license(&t.id, &g1.id, "PREMIUM").await.unwrap());
        assert!(!store.remove_group_license(&t.id, &g1.id, "PREMIUM").await.unwrap());
        assert_eq!(store.list_group_licenses(&t.id).await.unwrap().len(), 2);

        assert_not_found(store.add_group_license(&lic(&group(&t, "ghost"), "PREMIUM")).await);
        let other = new_tenant(&store, "fabrikam").await;
        assert!(store.list_group_licenses(&other.id).await.unwrap().is_empty());
    }
}
