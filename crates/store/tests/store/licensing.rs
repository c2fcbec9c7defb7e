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

store_test! {
    async fn concurrent_checked_assignments_never_take_more_seats_than_there_are(store) {
        let t = new_tenant(&store, "contoso").await;
        let mut sub = subscription(&t, "sub-a", "PREMIUM", T0);
        sub.units = 5;
        store.insert_subscription(&sub).await.unwrap();
        let mut users = Vec::new();
        for i in 0..30 {
            users.push(new_user(&store, &t, &format!("u{i}@contoso.dirbridge.test")).await);
        }
        // The check a caller passes: a seat must be free among the units the subscriptions give.
        let tasks: Vec<_> = users
            .iter()
            .map(|u| {
                let store = store.clone();
                let a = assignment(&t, u, "PREMIUM", AssignmentSource::Direct);
                tokio::spawn(async move {
                    store
                        .assign_checked(&a, |subs, current| {
                            let units: u32 = subs.iter().map(|s| s.units).sum();
                            let used = current.iter().filter(|c| c.state == AssignmentState::Active).count();
                            if used as u32 >= units {
                                Err(StoreError::Conflict("no seat".into()))
                            } else {
                                Ok(())
                            }
                        })
                        .await
                })
            })
            .collect();
        let mut taken = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => taken += 1,
                Err(StoreError::Conflict(m)) => assert_eq!(m, "no seat"),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(taken, 5);
        assert_eq!(store.list_assignments(&t.id, None, Some("PREMIUM")).await.unwrap().len(), 5);
        assert_not_found(
            store
                .assign_checked(&assignment(&tenant("ghost"), &users[0], "PREMIUM", AssignmentSource::Direct), |_, _| Ok::<(), StoreError>(()))
                .await,
        );
    }
}

store_test! {
    async fn a_tenant_gets_one_trial_per_sku_however_starts_interleave(store) {
        let t = new_tenant(&store, "contoso").await;
        let trial = |id: &str| Subscription { kind: SubscriptionKind::Trial, ..subscription(&t, id, "PREMIUM", T0) };
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let s = trial(&format!("trial-{i}"));
                tokio::spawn(async move { store.insert_subscription(&s).await })
            })
            .collect();
        let mut started = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => started += 1,
                Err(StoreError::Conflict(m)) => assert!(m.contains("already has a trial of PREMIUM"), "{m}"),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(started, 1);
        // Purchases, other SKUs' trials and other tenants' trials are not limited.
        store.insert_subscription(&subscription(&t, "bought", "PREMIUM", T0)).await.unwrap();
        store.insert_subscription(&Subscription { sku_id: "OTHER".into(), ..trial("trial-other") }).await.unwrap();
        let other = new_tenant(&store, "fabrikam").await;
        store.insert_subscription(&Subscription { tenant_id: other.id.clone(), ..trial("trial-fab") }).await.unwrap();
        assert_eq!(store.list_subscriptions(&t.id).await.unwrap().len(), 3);
    }
}

/// Trials earlier versions could duplicate (several instances): a tenant, three trials of one SKU
/// and one of another.
const OLD_TRIALS: [&str; 2] = [
    "INSERT INTO tenants (id, name, name_key, initial_domain, initial_domain_key, default_usage_location, soft_match_enabled, created_at) \
     VALUES ('t1', 'contoso', 'contoso', 'contoso.x.test', 'contoso.x.test', NULL, false, 1)",
    "INSERT INTO subscriptions (id, tenant_id, sku_id, kind, units, starts_at, ends_at, created_at) VALUES \
     ('c', 't1', 'PREMIUM', 'trial', 100, 2, 9, 2), ('b', 't1', 'PREMIUM', 'trial', 100, 2, 9, 2), \
     ('a', 't1', 'PREMIUM', 'trial', 100, 1, 9, 1), ('d', 't1', 'OTHER', 'trial', 100, 3, 9, 3)",
];

async fn assert_one_trial_kept(store: &store::Store) {
    let kinds: Vec<(String, SubscriptionKind)> = store
        .list_subscriptions("t1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.kind))
        .collect();
    use SubscriptionKind::{Purchased, Trial};
    assert_eq!(
        kinds,
        vec![
            ("a".into(), Trial),
            ("b".into(), Purchased),
            ("c".into(), Purchased),
            ("d".into(), Trial)
        ]
    );
}

#[tokio::test]
async fn duplicate_trials_of_earlier_versions_become_purchased_on_sqlite() {
    let (_migrations, m) = schema_before("sqlite", "0008").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dirbridge.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    m.run(&pool).await.unwrap();
    for q in OLD_TRIALS {
        sqlx::query(q).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = store::Store::open_sqlite(&path).await.unwrap();
    assert_one_trial_kept(&store).await;
    store.close().await;
}

#[tokio::test]
async fn duplicate_trials_of_earlier_versions_become_purchased_on_postgres() {
    let (_migrations, m) = schema_before("postgres", "0008").await;
    let pg = testkit::postgres::Postgres::start().unwrap();
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    m.run(&pool).await.unwrap();
    for q in OLD_TRIALS {
        sqlx::query(q).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = store::Store::open_postgres(&pg.url()).await.unwrap();
    assert_one_trial_kept(&store).await;
    store.close().await;
}

store_test! {
    async fn recomputing_some_users_writes_only_their_changed_rows(store) {
        let t = new_tenant(&store, "contoso").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let bob = new_user(&store, &t, "bob@contoso.dirbridge.test").await;
        let cy = new_user(&store, &t, "cy@contoso.dirbridge.test").await;
        let g = new_group(&store, &t, "Licensed").await;
        let via = |u: &User| assignment(&t, u, "PREMIUM", AssignmentSource::Group(g.id.clone()));
        for u in [&ada, &bob, &cy] {
            store.upsert_assignment(&via(u)).await.unwrap();
        }
        let bob_direct = assignment(&t, &bob, "PREMIUM", AssignmentSource::Direct);
        store.upsert_assignment(&bob_direct).await.unwrap();
        let before = store.list_assignments(&t.id, None, None).await.unwrap();

        // Ada keeps her row unchanged, Bob loses his group row: one row written; Cy is not
        // touched, and Bob's direct assignment stays.
        let scope: std::collections::BTreeSet<String> = [ada.id.clone(), bob.id.clone()].into();
        let written = store
            .reconcile_group_assignments_of(&t.id, &scope, |_, current| {
                assert_eq!(current.len(), 4);
                Some(vec![via(&ada)])
            })
            .await
            .unwrap();
        assert_eq!(written, Some(1));
        let now = store.list_assignments(&t.id, None, None).await.unwrap();
        assert_eq!(now.len(), 3);
        assert!(now.contains(&via(&ada)) && now.contains(&via(&cy)) && now.contains(&bob_direct));

        // A changed row is one delete and one insert.
        let mut failed = via(&ada);
        failed.state = AssignmentState::Error;
        failed.error = Some(LicenseErrorKind::CountViolation);
        let written = store
            .reconcile_group_assignments_of(&t.id, &scope, |_, _| Some(vec![failed.clone()]))
            .await
            .unwrap();
        assert_eq!(written, Some(2));

        // `None`: nothing changes. A row of a user outside the scope is refused.
        let now = store.list_assignments(&t.id, None, None).await.unwrap();
        assert_eq!(store.reconcile_group_assignments_of(&t.id, &scope, |_, _| None).await.unwrap(), None);
        assert!(matches!(
            store.reconcile_group_assignments_of(&t.id, &scope, |_, _| Some(vec![via(&cy)])).await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(store.list_assignments(&t.id, None, None).await.unwrap(), now);
        assert_ne!(now, before);
    }
}
