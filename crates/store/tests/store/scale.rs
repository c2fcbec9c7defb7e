//! How list_users behaves at 100,000 users. Ignored by default (seeding takes a while); run with
//! `cargo nextest run -p dirbridge-store --run-ignored only scale --no-capture`. It prints
//! timings for docs/benchmarks.md and asserts only results, never durations.
// Tests poll real servers with deadlines on the real clock (clippy.toml bans it in the code).
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use proto::{AssignmentSource, AssignmentState, LicenseAssignment, Source, UserFilter};

use crate::common::*;

const USERS: usize = 100_000;

store_test! {
    #[ignore = "seeds 100,000 users; run explicitly"]
    async fn listing_a_100k_user_tenant(store) {
        let t = new_tenant(&store, "contoso").await;
        let seeding = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                for i in (w..USERS).step_by(8) {
                    let mut u = user(&t, &format!("user{i:06}@contoso.dirbridge.test"));
                    u.display_name = format!("User {i:06} {}", if i % 1000 == 0 { "Rare" } else { "Common" });
                    if i % 2 == 0 {
                        u.source = Source::OnPremises;
                    }
                    store.insert_user(&u, None).await.unwrap();
                    let sku = if i % 10 == 0 { "PREMIUM" } else if i % 5000 == 7 { "RARE" } else { continue };
                    store
                        .upsert_assignment(&LicenseAssignment {
                            tenant_id: t.id.clone(),
                            user_id: u.id.clone(),
                            sku_id: sku.into(),
                            source: AssignmentSource::Direct,
                            state: AssignmentState::Active,
                            error: None,
                            effective_usage_location: None,
                            updated_at: T0,
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        println!("[{}] seeded {USERS} users in {:?}", store.backend_name(), seeding.elapsed());

        let cases: Vec<(&str, UserFilter, Option<String>, usize)> = vec![
            ("first page", UserFilter::default(), None, 100),
            ("page in the middle", UserFilter::default(), Some("user050000@contoso.dirbridge.test".into()), 100),
            ("upn prefix", UserFilter { upn_prefix: Some("USER0999".into()), ..Default::default() }, None, 100),
            ("display name, rare", UserFilter { display_name: Some("rare".into()), ..Default::default() }, None, 100),
            ("display name, common", UserFilter { display_name: Some("common".into()), ..Default::default() }, None, 100),
            ("sku, common", UserFilter { sku_id: Some("PREMIUM".into()), ..Default::default() }, None, 100),
            ("sku, common, deep", UserFilter { sku_id: Some("PREMIUM".into()), ..Default::default() }, Some("user090000@contoso.dirbridge.test".into()), 100),
            ("sku, rare", UserFilter { sku_id: Some("RARE".into()), ..Default::default() }, None, 20),
            ("source", UserFilter { source: Some(Source::Cloud), ..Default::default() }, None, 100),
        ];
        for fresh in [false, true] {
            if fresh {
                let started = Instant::now();
                store.refresh_statistics().await.unwrap();
                println!("[{}] refresh_statistics in {:?}", store.backend_name(), started.elapsed());
            }
            let stats = if fresh { "with statistics" } else { "right after loading" };
            for (name, filter, after, want) in &cases {
                // Once to warm the statement cache, then timed.
                store.list_users(&t.id, filter, &page(after.clone(), 100)).await.unwrap();
                let started = Instant::now();
                let got = store.list_users(&t.id, filter, &page(after.clone(), 100)).await.unwrap();
                let took = started.elapsed();
                println!("[{}] list_users {name} ({stats}): {} rows in {took:?}", store.backend_name(), got.items.len());
                assert_eq!(got.items.len(), *want, "{name}");
            }
        }
        let started = Instant::now();
        assert_eq!(store.count_users(&t.id).await.unwrap(), USERS as u64);
        println!("[{}] count_users in {:?}", store.backend_name(), started.elapsed());
        let started = Instant::now();
        assert!(store.get_user_by_upn(&t.id, "USER077777@contoso.dirbridge.test").await.unwrap().is_some());
        println!("[{}] get_user_by_upn in {:?}", store.backend_name(), started.elapsed());
    }
}
