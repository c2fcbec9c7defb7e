use proto::{AuditFilter, AuditRecord, AuditResult, Tenant};
use store::{Store, StoreError};

use crate::common::*;

const ACTORS: [&str; 3] = [
    "admin@contoso.dirbridge.test",
    "helpdesk@contoso.dirbridge.test",
    "system",
];
const ACTIONS: [&str; 5] = [
    "user.create",
    "user.update",
    "license.assign",
    "signIn",
    "user",
];

/// 300 records over 60 distinct seconds (five per second, so ties on time are common),
/// inserted in a scrambled order.
async fn seed(store: &Store, t: &Tenant) -> Vec<AuditRecord> {
    let mut records = Vec::new();
    for i in 0..300usize {
        records.push(AuditRecord {
            id: format!("rec-{:03}", (i * 7919) % 1000),
            tenant_id: t.id.clone(),
            time: T0 + (i / 5) as i64,
            actor: ACTORS[i % 3].into(),
            action: ACTIONS[i % 5].into(),
            target: if i % 4 == 0 {
                None
            } else {
                Some(format!("user{}@contoso.dirbridge.test", i % 6))
            },
            result: if i % 9 == 0 {
                AuditResult::Failure
            } else {
                AuditResult::Success
            },
            tracking_id: format!("trk-{}", i / 10),
            details: if i % 2 == 0 {
                Some(format!("detail {i}"))
            } else {
                None
            },
        });
    }
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|i| (i * 37) % 301);
    for i in order {
        store.insert_audit(&records[i]).await.unwrap();
    }
    records
}

fn newest_first(records: &[AuditRecord], keep: impl Fn(&AuditRecord) -> bool) -> Vec<AuditRecord> {
    let mut v: Vec<AuditRecord> = records.iter().filter(|r| keep(r)).cloned().collect();
    v.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));
    v
}

async fn walk(store: &Store, t: &Tenant, filter: &AuditFilter, limit: u32) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    let mut after = None;
    let effective = if limit == 0 { 100 } else { limit as usize };
    loop {
        let p = store
            .list_audit(&t.id, filter, &page(after, limit))
            .await
            .unwrap();
        out.extend(p.items.iter().cloned());
        match p.next {
            Some(n) => {
                assert_eq!(p.items.len(), effective);
                let last = p.items.last().unwrap();
                assert_eq!(n, format!("{}:{}", last.time, last.id));
                after = Some(n);
            }
            None => return out,
        }
    }
}

store_test! {
    async fn audit_is_listed_newest_first_across_pages(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        let records = seed(&store, &t).await;
        let mut foreign = records[0].clone();
        foreign.id = "foreign".into();
        foreign.tenant_id = other.id.clone();
        foreign.time = T0 + 1000;
        store.insert_audit(&foreign).await.unwrap();

        let all = newest_first(&records, |_| true);
        assert_eq!(walk(&store, &t, &AuditFilter::default(), 7).await, all);
        assert_eq!(walk(&store, &t, &AuditFilter::default(), 100).await, all);
        assert_eq!(walk(&store, &t, &AuditFilter::default(), 0).await, all);
        assert_eq!(walk(&store, &other, &AuditFilter::default(), 10).await, vec![foreign]);
    }
}

store_test! {
    async fn audit_filters_each_narrow_the_log(store) {
        let t = new_tenant(&store, "contoso").await;
        let records = seed(&store, &t).await;
        let check = |filter: AuditFilter, keep: Box<dyn Fn(&AuditRecord) -> bool>| {
            let store = store.clone();
            let t = t.clone();
            let want = newest_first(&records, keep);
            async move {
                assert!(!want.is_empty(), "{filter:?} should match something");
                assert_eq!(walk(&store, &t, &filter, 11).await, want, "{filter:?}");
            }
        };
        check(AuditFilter { actor: Some("system".into()), ..Default::default() }, Box::new(|r| r.actor == "system")).await;
        check(AuditFilter { action: Some("user.create".into()), ..Default::default() }, Box::new(|r| r.action == "user.create")).await;
        // Ending with '.', a prefix: "user." matches user.create and user.update, not "user".
        check(AuditFilter { action: Some("user.".into()), ..Default::default() }, Box::new(|r| r.action.starts_with("user."))).await;
        check(AuditFilter { action: Some("user".into()), ..Default::default() }, Box::new(|r| r.action == "user")).await;
        let target = "user3@contoso.dirbridge.test";
        check(AuditFilter { target: Some(target.into()), ..Default::default() }, Box::new(move |r| r.target.as_deref() == Some(target))).await;
        check(AuditFilter { since: Some(T0 + 10), ..Default::default() }, Box::new(|r| r.time >= T0 + 10)).await;
        check(AuditFilter { until: Some(T0 + 10), ..Default::default() }, Box::new(|r| r.time <= T0 + 10)).await;
        check(
            AuditFilter { since: Some(T0 + 10), until: Some(T0 + 10), ..Default::default() },
            Box::new(|r| r.time == T0 + 10),
        )
        .await;
        check(AuditFilter { tracking_id: Some("trk-7".into()), ..Default::default() }, Box::new(|r| r.tracking_id == "trk-7")).await;
        check(
            AuditFilter {
                actor: Some(ACTORS[0].into()),
                action: Some("user.".into()),
                since: Some(T0 + 5),
                until: Some(T0 + 50),
                ..Default::default()
            },
            Box::new(|r| r.actor == ACTORS[0] && r.action.starts_with("user.") && (T0 + 5..=T0 + 50).contains(&r.time)),
        )
        .await;

        let nothing = AuditFilter { action: Some("User.".into()), ..Default::default() };
        assert!(store.list_audit(&t.id, &nothing, &page(None, 10)).await.unwrap().items.is_empty());
    }
}

store_test! {
    async fn audit_refuses_bad_cursors_and_duplicate_ids(store) {
        let t = new_tenant(&store, "contoso").await;
        let records = seed(&store, &t).await;
        for bad in ["", "abc", "12", "x:rec-1"] {
            let r = store.list_audit(&t.id, &AuditFilter::default(), &page(Some(bad.into()), 10)).await;
            assert!(matches!(r, Err(StoreError::Invalid(_))), "{bad:?}: {r:?}");
        }
        // A cursor past the oldest record: an empty last page.
        let p = store.list_audit(&t.id, &AuditFilter::default(), &page(Some(format!("{}:a", T0 - 1)), 10)).await.unwrap();
        assert!(p.items.is_empty() && p.next.is_none());
        assert!(conflict_text(store.insert_audit(&records[0]).await).contains(&records[0].id));
    }
}
