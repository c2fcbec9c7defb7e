use store::{AgentRecord, Redemption};

use crate::common::*;

fn agent(t: &proto::Tenant, id: &str) -> AgentRecord {
    AgentRecord {
        id: id.into(),
        tenant_id: t.id.clone(),
        name: "dc01".into(),
        version: "0.1.0".into(),
        signing_public_key: "c2lnbmluZw==".into(),
        sealing_public_key: "c2VhbGluZw==".into(),
        registered_at: T0,
        revoked_at: None,
        last_heartbeat_at: None,
        status: None,
        last_run_outcome: None,
        last_run_message: None,
    }
}

store_test! {
    async fn registration_token_is_redeemed_once_before_it_expires(store) {
        let t = new_tenant(&store, "contoso").await;
        store.insert_registration_token("h1", &t.id, "admin@x", T0, T0 + 60).await.unwrap();
        store.insert_registration_token("h2", &t.id, "admin@x", T0, T0 + 60).await.unwrap();
        assert_eq!(
            store.redeem_registration_token("h1", T0 + 10).await.unwrap(),
            Redemption::Redeemed { tenant_id: t.id.clone() }
        );
        assert_eq!(store.redeem_registration_token("h1", T0 + 11).await.unwrap(), Redemption::AlreadyUsed);
        assert_eq!(store.redeem_registration_token("h2", T0 + 60).await.unwrap(), Redemption::Expired);
        assert_eq!(store.redeem_registration_token("nope", T0).await.unwrap(), Redemption::Unknown);
        assert_not_found(store.insert_registration_token("h3", "no-tenant", "a", T0, T0 + 1).await);
    }
}

store_test! {
    async fn agents_are_stored_listed_revoked_and_heartbeat(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        let a = agent(&t, "agent-1");
        store.insert_agent(&a).await.unwrap();
        store.insert_agent(&agent(&other, "agent-2")).await.unwrap();
        assert_eq!(store.get_agent("agent-1").await.unwrap(), Some(a.clone()));
        assert_eq!(store.list_agents(&t.id).await.unwrap(), vec![a.clone()]);

        store.record_heartbeat("agent-1", T0 + 5, "0.2.0", Some("idle")).await.unwrap();
        let got = store.get_agent("agent-1").await.unwrap().unwrap();
        assert_eq!((got.last_heartbeat_at, got.version.as_str(), got.status.as_deref()), (Some(T0 + 5), "0.2.0", Some("idle")));
        assert_not_found(store.record_heartbeat("ghost", T0, "1", None).await);

        // Another tenant cannot revoke it; revoking keeps the first time.
        assert!(!store.revoke_agent(&other.id, "agent-1", T0).await.unwrap());
        assert!(store.revoke_agent(&t.id, "agent-1", T0 + 7).await.unwrap());
        assert!(store.revoke_agent(&t.id, "agent-1", T0 + 9).await.unwrap());
        assert_eq!(store.get_agent("agent-1").await.unwrap().unwrap().revoked_at, Some(T0 + 7));
    }
}

store_test! {
    async fn a_nonce_is_accepted_once_and_old_ones_are_pruned(store) {
        assert!(store.remember_nonce("a", "n1", T0, T0 - 600).await.unwrap());
        assert!(!store.remember_nonce("a", "n1", T0 + 1, T0 - 599).await.unwrap());
        // Another agent may use the same nonce.
        assert!(store.remember_nonce("b", "n1", T0 + 1, T0 - 599).await.unwrap());
        // Once pruned, the row is gone (the timestamp check refuses such old requests anyway).
        assert!(store.remember_nonce("a", "n2", T0 + 700, T0 + 100).await.unwrap());
        assert!(store.remember_nonce("a", "n1", T0 + 700, T0 + 100).await.unwrap());
    }
}
