use proto::{AssignmentSource, AssignmentState, LicenseAssignment, MemberKind, MemberRef, Role};
use store::TokenRecord;

use crate::common::*;

store_test! {
    async fn synced_user_round_trips_with_every_field(store) {
        let t = new_tenant(&store, "contoso").await;
        let u = synced_user(&t, "Ada.Lovelace@Contoso.dirbridge.test", "AbC+/dEf==");
        store.insert_user(&u, None).await.unwrap();
        assert_eq!(store.get_user(&t.id, &u.id).await.unwrap(), Some(u.clone()));

        let cloud = new_user(&store, &t, "bob@contoso.dirbridge.test").await;
        let stored = store.get_user(&t.id, &cloud.id).await.unwrap().unwrap();
        assert_eq!(stored, cloud);
        assert_eq!(stored.on_premises, None);

        // An on-premises record with nothing but the anchor comes back as it went in.
        let mut bare = user(&t, "carol@contoso.dirbridge.test");
        bare.on_premises = Some(proto::OnPremises { immutable_id: "Q2Fyb2w=".into(), ..Default::default() });
        store.insert_user(&bare, None).await.unwrap();
        assert_eq!(store.get_user(&t.id, &bare.id).await.unwrap(), Some(bare));
    }
}

store_test! {
    async fn users_are_found_by_upn_ignoring_case_and_by_anchor_exactly(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        let u = synced_user(&t, "Ada.Lovelace@Contoso.dirbridge.test", "AbC+/dEf==");
        store.insert_user(&u, None).await.unwrap();

        for upn in ["ada.lovelace@contoso.dirbridge.test", "ADA.LOVELACE@CONTOSO.DIRBRIDGE.TEST", &u.user_principal_name] {
            assert_eq!(store.get_user_by_upn(&t.id, upn).await.unwrap().map(|x| x.id), Some(u.id.clone()), "{upn}");
        }
        assert_eq!(store.get_user_by_upn(&other.id, &u.user_principal_name).await.unwrap(), None);
        assert_eq!(store.get_user_by_upn(&t.id, "ada@contoso.dirbridge.test").await.unwrap(), None);

        assert_eq!(store.get_user_by_immutable_id(&t.id, "AbC+/dEf==").await.unwrap().map(|x| x.id), Some(u.id.clone()));
        assert_eq!(store.get_user_by_immutable_id(&t.id, "abc+/def==").await.unwrap(), None);
        assert_eq!(store.get_user_by_immutable_id(&other.id, "AbC+/dEf==").await.unwrap(), None);
        assert_eq!(store.get_user(&other.id, &u.id).await.unwrap(), None);
    }
}

store_test! {
    async fn duplicate_upn_differing_only_in_case_is_a_conflict(store) {
        let t = new_tenant(&store, "contoso").await;
        let first = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let dup = user(&t, "ADA@Contoso.dirbridge.test");
        let text = conflict_text(store.insert_user(&dup, Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")).await);
        assert_eq!(text, "a user with UPN ADA@Contoso.dirbridge.test already exists");
        assert!(!text.contains("argon2"));
        assert_eq!(store.count_users(&t.id).await.unwrap(), 1);
        assert_eq!(store.get_user_by_upn(&t.id, "ada@contoso.dirbridge.test").await.unwrap(), Some(first));

        // Another tenant may have the same UPN.
        let other = new_tenant(&store, "fabrikam").await;
        store.insert_user(&user(&other, "ada@contoso.dirbridge.test"), None).await.unwrap();
        assert_eq!(store.count_users(&other.id).await.unwrap(), 1);
    }
}

store_test! {
    async fn duplicate_immutable_id_is_a_conflict_but_anchors_are_case_sensitive(store) {
        let t = new_tenant(&store, "contoso").await;
        store.insert_user(&synced_user(&t, "ada@contoso.dirbridge.test", "AAAA"), None).await.unwrap();

        let text = conflict_text(store.insert_user(&synced_user(&t, "bob@contoso.dirbridge.test", "AAAA"), None).await);
        assert_eq!(text, "a user with immutableId AAAA already exists");

        store.insert_user(&synced_user(&t, "carol@contoso.dirbridge.test", "aaaa"), None).await.unwrap();
        // Cloud users have no anchor and never clash with each other on it.
        new_user(&store, &t, "dave@contoso.dirbridge.test").await;
        new_user(&store, &t, "erin@contoso.dirbridge.test").await;
        assert_eq!(store.count_users(&t.id).await.unwrap(), 4);
    }
}

store_test! {
    async fn duplicate_user_id_is_a_conflict(store) {
        let t = new_tenant(&store, "contoso").await;
        let a = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let mut b = user(&t, "bob@contoso.dirbridge.test");
        b.id = a.id.clone();
        let text = conflict_text(store.insert_user(&b, None).await);
        assert!(text.contains(&a.id), "{text}");
    }
}

store_test! {
    async fn user_of_a_missing_tenant_is_refused(store) {
        let ghost = tenant("ghost");
        assert_not_found(store.insert_user(&user(&ghost, "ada@ghost.dirbridge.test"), None).await);
    }
}

store_test! {
    async fn update_user_replaces_fields_keeps_created_at_and_refuses_clashes(store) {
        let t = new_tenant(&store, "contoso").await;
        let mut u = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let bob = store.insert_user(&synced_user(&t, "bob@contoso.dirbridge.test", "Qm9i"), None).await;
        bob.unwrap();

        u.user_principal_name = "Ada.L@contoso.dirbridge.test".into();
        u.display_name = "Ada L".into();
        u.mail = Some("ada@example.com".into());
        u.account_enabled = false;
        u.roles = vec![Role::GlobalAdministrator];
        u.on_premises = Some(proto::OnPremises {
            immutable_id: "QWRh".into(),
            distinguished_name: Some("CN=Ada,OU=Staff,DC=corp".into()),
            sam_account_name: Some("ada".into()),
            last_sync_at: Some(T0 + 5),
            owned_attributes: vec!["mail".into()],
        });
        u.source = proto::Source::OnPremises;
        u.updated_at = T0 + 10;
        let mut sent = u.clone();
        sent.created_at = 42;
        store.update_user(&sent).await.unwrap();
        assert_eq!(store.get_user(&t.id, &u.id).await.unwrap(), Some(u.clone()));
        assert_eq!(store.get_user_by_upn(&t.id, "ada@contoso.dirbridge.test").await.unwrap(), None);
        assert_eq!(store.get_user_by_upn(&t.id, "ada.l@contoso.dirbridge.test").await.unwrap().map(|x| x.id), Some(u.id.clone()));

        // Changing only the case of one's own UPN is fine.
        let mut recased = u.clone();
        recased.user_principal_name = "ADA.L@contoso.dirbridge.test".into();
        store.update_user(&recased).await.unwrap();

        let mut clash = recased.clone();
        clash.user_principal_name = "BOB@contoso.dirbridge.test".into();
        assert_eq!(conflict_text(store.update_user(&clash).await), "a user with UPN BOB@contoso.dirbridge.test already exists");

        let mut anchor_clash = recased.clone();
        anchor_clash.on_premises.as_mut().unwrap().immutable_id = "Qm9i".into();
        assert_eq!(conflict_text(store.update_user(&anchor_clash).await), "a user with immutableId Qm9i already exists");
        assert_eq!(store.get_user(&t.id, &u.id).await.unwrap(), Some(recased));

        assert_not_found(store.update_user(&user(&t, "ghost@contoso.dirbridge.test")).await);
    }
}

store_test! {
    async fn password_hash_is_set_read_and_cleared(store) {
        let t = new_tenant(&store, "contoso").await;
        let with = user(&t, "ada@contoso.dirbridge.test");
        store.insert_user(&with, Some("$argon2id$v=19$first")).await.unwrap();
        let without = new_user(&store, &t, "bob@contoso.dirbridge.test").await;

        assert_eq!(store.password_hash(&t.id, &with.id).await.unwrap().as_deref(), Some("$argon2id$v=19$first"));
        assert_eq!(store.password_hash(&t.id, &without.id).await.unwrap(), None);
        assert_eq!(store.password_hash(&t.id, "no-such-user").await.unwrap(), None);

        store.set_password_hash(&t.id, &without.id, Some("$argon2id$v=19$second")).await.unwrap();
        assert_eq!(store.password_hash(&t.id, &without.id).await.unwrap().as_deref(), Some("$argon2id$v=19$second"));
        store.set_password_hash(&t.id, &with.id, None).await.unwrap();
        assert_eq!(store.password_hash(&t.id, &with.id).await.unwrap(), None);

        // Updating the user leaves the password alone.
        let mut w = store.get_user(&t.id, &without.id).await.unwrap().unwrap();
        w.display_name = "Bobby".into();
        store.update_user(&w).await.unwrap();
        assert_eq!(store.password_hash(&t.id, &without.id).await.unwrap().as_deref(), Some("$argon2id$v=19$second"));

        assert_not_found(store.set_password_hash(&t.id, "no-such-user", Some("x")).await);
        let other = new_tenant(&store, "fabrikam").await;
        assert_not_found(store.set_password_hash(&other.id, &with.id, Some("x")).await);
        assert_eq!(store.password_hash(&other.id, &without.id).await.unwrap(), None);
    }
}

store_test! {
    async fn deleting_a_user_removes_memberships_licences_tokens_and_password(store) {
        let t = new_tenant(&store, "contoso").await;
        let ada = user(&t, "ada@contoso.dirbridge.test");
        store.insert_user(&ada, Some("$argon2id$hash")).await.unwrap();
        let bob = new_user(&store, &t, "bob@contoso.dirbridge.test").await;
        let g = new_group(&store, &t, "Staff").await;
        let ada_ref = MemberRef { kind: MemberKind::User, id: ada.id.clone() };
        let bob_ref = MemberRef { kind: MemberKind::User, id: bob.id.clone() };
        assert!(store.add_member(&t.id, &g.id, &ada_ref).await.unwrap());
        assert!(store.add_member(&t.id, &g.id, &bob_ref).await.unwrap());
        for (u, source) in [(&ada, AssignmentSource::Direct), (&ada, AssignmentSource::Group(g.id.clone())), (&bob, AssignmentSource::Direct)] {
            store
                .upsert_assignment(&LicenseAssignment {
                    tenant_id: t.id.clone(),
                    user_id: u.id.clone(),
                    sku_id: "PREMIUM".into(),
                    source,
                    state: AssignmentState::Active,
                    error: None,
                    effective_usage_location: None,
                    updated_at: T0,
                })
                .await
                .unwrap();
        }
        for (id, u) in [("tok-ada", &ada), ("tok-bob", &bob)] {
            store
                .insert_token(&TokenRecord {
                    id: id.into(),
                    tenant_id: t.id.clone(),
                    user_id: u.id.clone(),
                    hash: format!("hash-{id}"),
                    created_at: T0,
                    expires_at: T0 + 3600,
                    revoked: false,
                    idle_timeout: 0,
                    last_used_at: T0,
                })
                .await
                .unwrap();
        }

        assert!(store.delete_user(&t.id, &ada.id).await.unwrap());
        assert_eq!(store.get_user(&t.id, &ada.id).await.unwrap(), None);
        assert_eq!(store.password_hash(&t.id, &ada.id).await.unwrap(), None);
        assert_eq!(store.list_members(&t.id, &g.id).await.unwrap(), vec![bob_ref.clone()]);
        assert!(store.groups_of(&t.id, &ada_ref).await.unwrap().is_empty());
        assert!(store.list_assignments(&t.id, Some(&ada.id), None).await.unwrap().is_empty());
        assert_eq!(store.list_assignments(&t.id, None, None).await.unwrap().len(), 1);
        assert_eq!(store.token_by_hash("hash-tok-ada").await.unwrap(), None);
        assert!(store.token_by_hash("hash-tok-bob").await.unwrap().is_some());
        assert_eq!(store.count_users(&t.id).await.unwrap(), 1);

        // The UPN is free again.
        new_user(&store, &t, "ADA@contoso.dirbridge.test").await;

        assert!(!store.delete_user(&t.id, &ada.id).await.unwrap());
        let other = new_tenant(&store, "fabrikam").await;
        assert!(!store.delete_user(&other.id, &bob.id).await.unwrap());
        assert!(store.get_user(&t.id, &bob.id).await.unwrap().is_some());
    }
}

store_test! {
    async fn count_users_counts_per_tenant(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        assert_eq!(store.count_users(&t.id).await.unwrap(), 0);
        for i in 0..7 {
            new_user(&store, &t, &format!("u{i}@contoso.dirbridge.test")).await;
        }
        new_user(&store, &other, "x@fabrikam.dirbridge.test").await;
        assert_eq!(store.count_users(&t.id).await.unwrap(), 7);
        assert_eq!(store.count_users(&other.id).await.unwrap(), 1);
        assert_eq!(store.count_users("no-such-tenant").await.unwrap(), 0);
    }
}

store_test! {
    async fn concurrent_writers_all_succeed(store) {
        let t = new_tenant(&store, "contoso").await;
        let g = new_group(&store, &t, "Everyone").await;
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            let t = t.clone();
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let u = new_user(&store, &t, &format!("w{w}-u{i}@contoso.dirbridge.test")).await;
                    let m = MemberRef { kind: MemberKind::User, id: u.id.clone() };
                    assert!(store.add_member(&t.id, &g.id, &m).await.unwrap());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.count_users(&t.id).await.unwrap(), 200);
        assert_eq!(store.list_members(&t.id, &g.id).await.unwrap().len(), 200);
    }
}
