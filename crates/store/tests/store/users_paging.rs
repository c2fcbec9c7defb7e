use proto::{
    AssignmentSource, AssignmentState, LicenseAssignment, LicenseErrorKind, OnPremises, Source,
    Tenant, User, UserFilter,
};
use store::Store;

use crate::common::*;

const N: usize = 2_500;
const FIRST_NAMES: [&str; 5] = ["Alice", "bob", "CAROL", "Dave", "eve"];

/// 2,500 users with mixed-case UPNs, a third of them synced, some licensed (directly, through
/// a group, or in the error state). Returns them as stored.
async fn seed(store: &Store, t: &Tenant) -> Vec<User> {
    let g = new_group(store, t, "Licensed").await;
    let mut users = Vec::with_capacity(N);
    for i in 0..N {
        let first = FIRST_NAMES[i % FIRST_NAMES.len()];
        let mut u = user(t, &format!("{first}.{i:04}@Contoso.dirbridge.test"));
        u.display_name = format!(
            "{first} {} #{i}",
            if i % 2 == 0 { "Smith" } else { "JONES" }
        );
        if i % 3 == 0 {
            u.source = Source::OnPremises;
            u.on_premises = Some(OnPremises {
                immutable_id: format!("anchor-{i}"),
                ..Default::default()
            });
        }
        store.insert_user(&u, None).await.unwrap();
        let assign = |source, state, error| LicenseAssignment {
            tenant_id: t.id.clone(),
            user_id: u.id.clone(),
            sku_id: "PREMIUM".into(),
            source,
            state,
            error,
            effective_usage_location: Some("US".into()),
            updated_at: T0,
        };
        if i % 4 == 0 {
            store
                .upsert_assignment(&assign(
                    AssignmentSource::Direct,
                    AssignmentState::Active,
                    None,
                ))
                .await
                .unwrap();
        }
        if i % 5 == 0 {
            let a = assign(
                AssignmentSource::Group(g.id.clone()),
                AssignmentState::Active,
                None,
            );
            store.upsert_assignment(&a).await.unwrap();
        }
        if i % 7 == 0 && i % 4 != 0 && i % 5 != 0 {
            let a = assign(
                AssignmentSource::Direct,
                AssignmentState::Error,
                Some(LicenseErrorKind::CountViolation),
            );
            store.upsert_assignment(&a).await.unwrap();
        }
        users.push(u);
    }
    users
}

fn index_of(u: &User) -> usize {
    u.user_principal_name
        .split(['.', '@'])
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Walk every page of a listing, checking the paging contract on the way; the UPNs in order.
async fn walk(store: &Store, t: &Tenant, filter: &UserFilter, limit: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    let effective = if limit == 0 { 100 } else { limit.min(1000) } as usize;
    loop {
        let page = store
            .list_users(&t.id, filter, &page(after.clone(), limit))
            .await
            .unwrap();
        assert!(page.items.len() <= effective);
        out.extend(page.items.iter().map(|u| u.user_principal_name.clone()));
        match page.next {
            Some(next) => {
                assert_eq!(page.items.len(), effective, "only full pages have a next");
                assert_eq!(
                    next,
                    page.items
                        .last()
                        .unwrap()
                        .user_principal_name
                        .to_lowercase()
                );
                after = Some(next);
            }
            None => return out,
        }
    }
}

fn expected(users: &[User], keep: impl Fn(usize, &User) -> bool) -> Vec<String> {
    let mut v: Vec<&User> = users.iter().filter(|u| keep(index_of(u), u)).collect();
    v.sort_by_key(|u| u.user_principal_name.to_lowercase());
    v.into_iter()
        .map(|u| u.user_principal_name.clone())
        .collect()
}

store_test! {
    async fn paging_through_2500_users_with_each_filter(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        new_user(&store, &other, "alice.0001@contoso.dirbridge.test").await;
        let users = seed(&store, &t).await;
        assert_eq!(store.count_users(&t.id).await.unwrap(), N as u64);

        // No filter: every user once, in lower-cased UPN order, 25 full pages and no empty 26th.
        let all = expected(&users, |_, _| true);
        assert_eq!(walk(&store, &t, &UserFilter::default(), 100).await, all);
        let mut pages = 0;
        let mut after = None;
        loop {
            let p = store.list_users(&t.id, &UserFilter::default(), &page(after, 100)).await.unwrap();
            assert!(!p.items.is_empty());
            pages += 1;
            match p.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(pages, 25);
        // As a sync does after a bulk load; the walks above ran on a table without statistics,
        // those below on one with them (different plans, same answers), and faster.
        store.refresh_statistics().await.unwrap();
        // Odd page sizes, the default (0 → 100) and the cap (1000).
        assert_eq!(walk(&store, &t, &UserFilter::default(), 7).await, all);
        assert_eq!(walk(&store, &t, &UserFilter::default(), 0).await, all);
        assert_eq!(walk(&store, &t, &UserFilter::default(), 50_000).await, all);
        let first = store.list_users(&t.id, &UserFilter::default(), &page(None, 0)).await.unwrap();
        assert_eq!(first.items.len(), 100);
        let capped = store.list_users(&t.id, &UserFilter::default(), &page(None, 5000)).await.unwrap();
        assert_eq!(capped.items.len(), 1000);

        // upn_prefix: case-insensitive.
        let carol = UserFilter { upn_prefix: Some("carol.1".into()), ..Default::default() };
        let want = expected(&users, |_, u| u.user_principal_name.to_lowercase().starts_with("carol.1"));
        assert!(want.len() > 50);
        assert_eq!(walk(&store, &t, &carol, 13).await, want);
        let carol_upper = UserFilter { upn_prefix: Some("CaRoL.1".into()), ..Default::default() };
        assert_eq!(walk(&store, &t, &carol_upper, 1000).await, want);
        let nobody = UserFilter { upn_prefix: Some("zed".into()), ..Default::default() };
        assert!(walk(&store, &t, &nobody, 10).await.is_empty());

        // display_name: case-insensitive substring.
        let jones = UserFilter { display_name: Some("jones #1".into()), ..Default::default() };
        let want = expected(&users, |_, u| u.display_name.to_lowercase().contains("jones #1"));
        assert!(want.len() > 100);
        assert_eq!(walk(&store, &t, &jones, 100).await, want);

        // sku_id: an active assignment, direct or through a group; the error state does not count.
        let premium = UserFilter { sku_id: Some("PREMIUM".into()), ..Default::default() };
        let want = expected(&users, |i, _| i % 4 == 0 || i % 5 == 0);
        // 1,125 active assignments: pages of 100 start from the holders, pages of 7 walk the
        // users in order (the store picks by how many hold the SKU). Same answer either way.
        assert_eq!(walk(&store, &t, &premium, 100).await, want);
        assert_eq!(walk(&store, &t, &premium, 7).await, want);
        let none = UserFilter { sku_id: Some("BASIC".into()), ..Default::default() };
        assert!(walk(&store, &t, &none, 100).await.is_empty());

        // source
        let synced = UserFilter { source: Some(Source::OnPremises), ..Default::default() };
        assert_eq!(walk(&store, &t, &synced, 100).await, expected(&users, |i, _| i % 3 == 0));
        let cloud = UserFilter { source: Some(Source::Cloud), ..Default::default() };
        assert_eq!(walk(&store, &t, &cloud, 100).await, expected(&users, |i, _| i % 3 != 0));

        // All at once.
        let combined = UserFilter {
            upn_prefix: Some("ALICE".into()),
            display_name: Some("smith".into()),
            sku_id: Some("PREMIUM".into()),
            source: Some(Source::OnPremises),
        };
        let want = expected(&users, |i, u| {
            u.user_principal_name.starts_with("Alice") && i % 2 == 0 && (i % 4 == 0 || i % 5 == 0) && i % 3 == 0
        });
        assert!(!want.is_empty());
        assert_eq!(walk(&store, &t, &combined, 3).await, want);
    }
}

store_test! {
    async fn upn_prefix_and_display_name_treat_like_wildcards_literally(store) {
        let t = new_tenant(&store, "contoso").await;
        let names = [
            ("a_b@x.test", "100% sure"),
            ("axb@x.test", "1000 sure"),
            ("a%b@x.test", "100_ sure"),
            ("azzb@x.test", "100x sure"),
            ("a\\b@x.test", "back\\slash"),
            ("a!b@x.test", "bang! here"),
            ("A!!b@x.test", "bang!! here"),
        ];
        for (upn, display) in names {
            let mut u = user(&t, upn);
            u.display_name = display.into();
            store.insert_user(&u, None).await.unwrap();
        }
        let upns = |filter: UserFilter| {
            let store = store.clone();
            let t = t.clone();
            async move {
                let page = store.list_users(&t.id, &filter, &page(None, 100)).await.unwrap();
                assert_eq!(page.next, None);
                page.items.into_iter().map(|u| u.user_principal_name).collect::<Vec<_>>()
            }
        };
        let by_prefix = |p: &str| UserFilter { upn_prefix: Some(p.into()), ..Default::default() };
        let by_name = |p: &str| UserFilter { display_name: Some(p.into()), ..Default::default() };

        assert_eq!(upns(by_prefix("a_")).await, vec!["a_b@x.test"]);
        assert_eq!(upns(by_prefix("a%")).await, vec!["a%b@x.test"]);
        assert_eq!(upns(by_prefix("a\\")).await, vec!["a\\b@x.test"]);
        assert_eq!(upns(by_prefix("a!")).await, vec!["A!!b@x.test", "a!b@x.test"]);
        assert_eq!(upns(by_prefix("a!!")).await, vec!["A!!b@x.test"]);
        assert_eq!(upns(by_prefix("a")).await.len(), names.len());

        assert_eq!(upns(by_name("100%")).await, vec!["a_b@x.test"]);
        assert_eq!(upns(by_name("0_")).await, vec!["a%b@x.test"]);
        assert_eq!(upns(by_name("k\\s")).await, vec!["a\\b@x.test"]);
        assert_eq!(upns(by_name("g!!")).await, vec!["A!!b@x.test"]);
        assert_eq!(upns(by_name("g! ")).await, vec!["a!b@x.test"]);
        assert_eq!(upns(by_name("SURE")).await.len(), 4);
    }
}

store_test! {
    async fn non_ascii_upns_are_folded_and_ordered_by_code_point(store) {
        let t = new_tenant(&store, "contoso").await;
        for upn in ["Émile@x.test", "zoe@x.test", "ÉMILIE@x.test", "emma@x.test", "Ölaf@x.test"] {
            new_user(&store, &t, upn).await;
        }
        let got: Vec<String> = store
            .list_users(&t.id, &UserFilter::default(), &page(None, 10))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|u| u.user_principal_name)
            .collect();
        assert_eq!(got, vec!["emma@x.test", "zoe@x.test", "Émile@x.test", "ÉMILIE@x.test", "Ölaf@x.test"]);
        assert_eq!(store.get_user_by_upn(&t.id, "émile@X.TEST").await.unwrap().unwrap().user_principal_name, "Émile@x.test");
        let f = UserFilter { upn_prefix: Some("éMI".into()), ..Default::default() };
        assert_eq!(store.list_users(&t.id, &f, &page(None, 10)).await.unwrap().items.len(), 2);
        let dup = user(&t, "émile@x.test");
        assert!(conflict_text(store.insert_user(&dup, None).await).contains("émile@x.test"));
    }
}
