use proto::{
    AssignmentSource, AssignmentState, GroupLicense, LicenseAssignment, MemberKind, MemberRef,
    OnPremises, Source,
};

use crate::common::*;

fn user_ref(u: &proto::User) -> MemberRef {
    MemberRef {
        kind: MemberKind::User,
        id: u.id.clone(),
    }
}
fn group_ref(g: &proto::Group) -> MemberRef {
    MemberRef {
        kind: MemberKind::Group,
        id: g.id.clone(),
    }
}

store_test! {
    async fn group_round_trips_updates_and_refuses_duplicate_anchor(store) {
        let t = new_tenant(&store, "contoso").await;
        let mut g = group(&t, "Sales");
        g.description = Some("Everyone in sales".into());
        g.source = Source::OnPremises;
        g.on_premises = Some(OnPremises {
            immutable_id: "R3JvdXA=".into(),
            distinguished_name: Some("CN=Sales,OU=Groups,DC=corp".into()),
            sam_account_name: Some("sales".into()),
            last_sync_at: Some(T0),
            owned_attributes: vec!["displayName".into()],
        });
        store.insert_group(&g).await.unwrap();
        assert_eq!(store.get_group(&t.id, &g.id).await.unwrap(), Some(g.clone()));
        let other = new_tenant(&store, "fabrikam").await;
        assert_eq!(store.get_group(&other.id, &g.id).await.unwrap(), None);

        // Display names need not be unique; anchors must.
        new_group(&store, &t, "Sales").await;
        let mut dup = group(&t, "Sales (copy)");
        dup.on_premises = Some(OnPremises { immutable_id: "R3JvdXA=".into(), ..Default::default() });
        assert_eq!(conflict_text(store.insert_group(&dup).await), "a group with immutableId R3JvdXA= already exists");
        let mut same_id = group(&t, "Other");
        same_id.id = g.id.clone();
        assert!(conflict_text(store.insert_group(&same_id).await).contains(&g.id));

        g.display_name = "Sales EMEA".into();
        g.description = None;
        g.created_at = 7; // not rewritten
        store.update_group(&g).await.unwrap();
        let stored = store.get_group(&t.id, &g.id).await.unwrap().unwrap();
        assert_eq!(stored.display_name, "Sales EMEA");
        assert_eq!(stored.description, None);
        assert_eq!(stored.created_at, T0);

        let mut anchored = new_group(&store, &t, "Marketing").await;
        anchored.on_premises = Some(OnPremises { immutable_id: "R3JvdXA=".into(), ..Default::default() });
        assert_eq!(conflict_text(store.update_group(&anchored).await), "a group with immutableId R3JvdXA= already exists");

        assert_not_found(store.update_group(&group(&t, "Ghost")).await);
        assert_not_found(store.insert_group(&group(&tenant("ghost"), "Ghost")).await);
    }
}

store_test! {
    async fn groups_are_paged_by_id_with_a_literal_name_prefix(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        new_group(&store, &other, "Sales elsewhere").await;
        let mut all = Vec::new();
        for i in 0..230 {
            let name = match i % 3 {
                0 => format!("Sales {i}"),
                1 => format!("sales_{i}"),
                _ => format!("Support {i}"),
            };
            all.push(new_group(&store, &t, &name).await);
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));

        let walk = |prefix: Option<&'static str>, limit: u32| {
            let store = store.clone();
            let t = t.clone();
            async move {
                let mut ids = Vec::new();
                let mut after = None;
                loop {
                    let p = store.list_groups(&t.id, prefix, &page(after, limit)).await.unwrap();
                    assert!(p.items.len() <= limit as usize);
                    ids.extend(p.items.iter().map(|g| g.id.clone()));
                    match p.next {
                        Some(n) => {
                            assert_eq!(p.items.len(), limit as usize);
                            assert_eq!(&n, &p.items.last().unwrap().id);
                            after = Some(n);
                        }
                        None => return ids,
                    }
                }
            }
        };
        let ids = |keep: &dyn Fn(&str) -> bool| -> Vec<String> {
            all.iter().filter(|g| keep(&g.display_name)).map(|g| g.id.clone()).collect()
        };
        assert_eq!(walk(None, 50).await, ids(&|_| true));
        assert_eq!(walk(Some("SALES"), 17).await, ids(&|n| n.to_lowercase().starts_with("sales")));
        assert_eq!(walk(Some("sales_"), 100).await, ids(&|n| n.starts_with("sales_")));
        assert_eq!(walk(Some("s%"), 100).await, Vec::<String>::new());
        assert_eq!(walk(Some("Support 2"), 5).await, ids(&|n| n.starts_with("Support 2")));
    }
}

store_test! {
    async fn members_are_added_once_listed_and_removed(store) {
        let t = new_tenant(&store, "contoso").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let bob = new_user(&store, &t, "bob@contoso.dirbridge.test").await;
        let staff = new_group(&store, &t, "Staff").await;
        let sales = new_group(&store, &t, "Sales").await;

        assert!(store.add_member(&t.id, &staff.id, &user_ref(&ada)).await.unwrap());
        assert!(!store.add_member(&t.id, &staff.id, &user_ref(&ada)).await.unwrap());
        assert!(store.add_member(&t.id, &staff.id, &group_ref(&sales)).await.unwrap());
        assert!(store.add_member(&t.id, &staff.id, &user_ref(&bob)).await.unwrap());
        assert!(store.add_member(&t.id, &sales.id, &user_ref(&bob)).await.unwrap());

        let mut want = vec![user_ref(&ada), user_ref(&bob), group_ref(&sales)];
        want.sort();
        assert_eq!(store.list_members(&t.id, &staff.id).await.unwrap(), want);
        assert_eq!(store.list_members(&t.id, &sales.id).await.unwrap(), vec![user_ref(&bob)]);

        let mut bobs = vec![staff.id.clone(), sales.id.clone()];
        bobs.sort();
        assert_eq!(store.groups_of(&t.id, &user_ref(&bob)).await.unwrap(), bobs);
        assert_eq!(store.groups_of(&t.id, &group_ref(&sales)).await.unwrap(), vec![staff.id.clone()]);

        let mut memberships = vec![
            (staff.id.clone(), user_ref(&ada)),
            (staff.id.clone(), user_ref(&bob)),
            (staff.id.clone(), group_ref(&sales)),
            (sales.id.clone(), user_ref(&bob)),
        ];
        memberships.sort();
        assert_eq!(store.list_memberships(&t.id).await.unwrap(), memberships);

        assert!(store.remove_member(&t.id, &staff.id, &user_ref(&ada)).await.unwrap());
        assert!(!store.remove_member(&t.id, &staff.id, &user_ref(&ada)).await.unwrap());
        // Same id, wrong kind: not a member.
        let wrong_kind = MemberRef { kind: MemberKind::Group, id: bob.id.clone() };
        assert!(!store.remove_member(&t.id, &staff.id, &wrong_kind).await.unwrap());
        assert_eq!(store.list_memberships(&t.id).await.unwrap().len(), 3);
        let other = new_tenant(&store, "fabrikam").await;
        assert!(store.list_memberships(&other.id).await.unwrap().is_empty());
    }
}

store_test! {
    async fn membership_needs_a_group_and_member_of_the_same_tenant(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let foreign = new_user(&store, &other, "x@fabrikam.dirbridge.test").await;
        let g = new_group(&store, &t, "Staff").await;
        let foreign_group = new_group(&store, &other, "Theirs").await;

        assert_not_found(store.add_member(&t.id, "no-such-group", &user_ref(&ada)).await);
        assert_not_found(store.add_member(&t.id, &g.id, &user_ref(&foreign)).await);
        assert_not_found(store.add_member(&t.id, &g.id, &group_ref(&foreign_group)).await);
        assert_not_found(store.add_member(&other.id, &g.id, &user_ref(&ada)).await);
        // A user id offered as a group.
        assert_not_found(store.add_member(&t.id, &g.id, &MemberRef { kind: MemberKind::Group, id: ada.id.clone() }).await);
        assert!(store.list_members(&t.id, &g.id).await.unwrap().is_empty());
    }
}

store_test! {
    async fn deleting_a_group_removes_members_memberships_and_its_licences(store) {
        let t = new_tenant(&store, "contoso").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let parent = new_group(&store, &t, "All staff").await;
        let sales = new_group(&store, &t, "Sales").await;
        let keep = new_group(&store, &t, "Keep").await;
        store.add_member(&t.id, &sales.id, &user_ref(&ada)).await.unwrap();
        store.add_member(&t.id, &parent.id, &group_ref(&sales)).await.unwrap();
        store.add_member(&t.id, &keep.id, &user_ref(&ada)).await.unwrap();
        for g in [&sales, &keep] {
            let l = GroupLicense { tenant_id: t.id.clone(), group_id: g.id.clone(), sku_id: "PREMIUM".into(), created_at: T0 };
            assert!(store.add_group_license(&l).await.unwrap());
        }
        let assignment = |source| LicenseAssignment {
            tenant_id: t.id.clone(),
            user_id: ada.id.clone(),
            sku_id: "PREMIUM".into(),
            source,
            state: AssignmentState::Active,
            error: None,
            effective_usage_location: None,
            updated_at: T0,
        };
        for source in [AssignmentSource::Direct, AssignmentSource::Group(sales.id.clone()), AssignmentSource::Group(keep.id.clone())] {
            store.upsert_assignment(&assignment(source)).await.unwrap();
        }

        assert!(store.delete_group(&t.id, &sales.id).await.unwrap());
        assert_eq!(store.get_group(&t.id, &sales.id).await.unwrap(), None);
        assert!(store.list_members(&t.id, &parent.id).await.unwrap().is_empty());
        assert_eq!(store.groups_of(&t.id, &user_ref(&ada)).await.unwrap(), vec![keep.id.clone()]);
        let licences = store.list_group_licenses(&t.id).await.unwrap();
        assert_eq!(licences.iter().map(|l| l.group_id.clone()).collect::<Vec<_>>(), vec![keep.id.clone()]);
        let sources: Vec<AssignmentSource> =
            store.list_assignments(&t.id, Some(&ada.id), None).await.unwrap().into_iter().map(|a| a.source).collect();
        assert_eq!(sources, vec![AssignmentSource::Direct, AssignmentSource::Group(keep.id.clone())]);

        assert!(!store.delete_group(&t.id, &sales.id).await.unwrap());
        // A new group can take the deleted one's anchor-free place; members can be re-added.
        assert!(store.add_member(&t.id, &parent.id, &group_ref(&keep)).await.unwrap());
    }
}
