use store::TokenRecord;

use crate::common::*;

fn token(t: &proto::Tenant, u: &proto::User, id: &str) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        tenant_id: t.id.clone(),
        user_id: u.id.clone(),
        hash: format!("{:0>64}", id.len()) + id,
        created_at: T0,
        expires_at: T0 + 3600,
        revoked: false,
        idle_timeout: 0,
        last_used_at: T0,
    }
}

store_test! {
    async fn token_is_found_by_hash_and_revoked(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let tok = token(&t, &ada, "tok-1");
        store.insert_token(&tok).await.unwrap();
        assert_eq!(store.token_by_hash(&tok.hash).await.unwrap(), Some(tok.clone()));
        assert_eq!(store.token_by_hash("0000").await.unwrap(), None);

        // Another tenant cannot revoke it.
        assert!(!store.revoke_token(&other.id, &tok.id).await.unwrap());
        assert!(!store.token_by_hash(&tok.hash).await.unwrap().unwrap().revoked);
        assert!(!store.revoke_token(&t.id, "no-such-token").await.unwrap());

        assert!(store.revoke_token(&t.id, &tok.id).await.unwrap());
        let stored = store.token_by_hash(&tok.hash).await.unwrap().unwrap();
        assert!(stored.revoked);
        assert_eq!(stored.expires_at, tok.expires_at);
        // Revoking again still finds it.
        assert!(store.revoke_token(&t.id, &tok.id).await.unwrap());
    }
}

store_test! {
    async fn revoking_a_users_tokens_counts_the_ones_still_valid(store) {
        let t = new_tenant(&store, "contoso").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let bob = new_user(&store, &t, "bob@contoso.dirbridge.test").await;
        for id in ["a1", "a2", "a3"] {
            store.insert_token(&token(&t, &ada, id)).await.unwrap();
        }
        store.insert_token(&token(&t, &bob, "b1")).await.unwrap();
        assert!(store.revoke_token(&t.id, "a1").await.unwrap());

        assert_eq!(store.revoke_user_tokens(&t.id, &ada.id).await.unwrap(), 2);
        assert_eq!(store.revoke_user_tokens(&t.id, &ada.id).await.unwrap(), 0);
        for id in ["a1", "a2", "a3"] {
            assert!(store.token_by_hash(&token(&t, &ada, id).hash).await.unwrap().unwrap().revoked, "{id}");
        }
        assert!(!store.token_by_hash(&token(&t, &bob, "b1").hash).await.unwrap().unwrap().revoked);
        let other = new_tenant(&store, "fabrikam").await;
        assert_eq!(store.revoke_user_tokens(&other.id, &bob.id).await.unwrap(), 0);
    }
}

store_test! {
    async fn token_needs_an_existing_user_and_unique_id_and_hash(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let tok = token(&t, &ada, "tok-1");
        store.insert_token(&tok).await.unwrap();

        let mut same_hash = token(&t, &ada, "tok-2");
        same_hash.hash = tok.hash.clone();
        let text = conflict_text(store.insert_token(&same_hash).await);
        assert!(!text.contains(&tok.hash), "the hash stays out of messages: {text}");
        let mut same_id = token(&t, &ada, "tok-1");
        same_id.hash = "f".repeat(64);
        conflict_text(store.insert_token(&same_id).await);

        // A user of another tenant, or nobody.
        let mut wrong_tenant = token(&other, &ada, "tok-3");
        wrong_tenant.hash = "e".repeat(64);
        assert_not_found(store.insert_token(&wrong_tenant).await);
        let mut ghost = token(&t, &user(&t, "ghost@contoso.dirbridge.test"), "tok-4");
        ghost.hash = "d".repeat(64);
        assert_not_found(store.insert_token(&ghost).await);
    }
}

#[test]
fn token_debug_output_hides_the_hash() {
    let t = tenant("contoso");
    let u = user(&t, "ada@contoso.dirbridge.test");
    let mut tok = token(&t, &u, "tok-1");
    tok.hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8".into();
    let shown = format!("{tok:?}");
    assert!(!shown.contains("5e884898"), "{shown}");
    assert!(shown.contains("tok-1"));
}

store_test! {
    async fn a_token_keeps_its_idle_timeout_and_is_touched_forward_only(store) {
        let t = new_tenant(&store, "contoso").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let tok = TokenRecord { idle_timeout: 1800, ..token(&t, &ada, "browser-1") };
        store.insert_token(&tok).await.unwrap();
        let stored = store.token_by_hash(&tok.hash).await.unwrap().unwrap();
        assert_eq!((stored.idle_timeout, stored.last_used_at), (1800, T0));
        store.touch_token(&tok.id, T0 + 120).await.unwrap();
        assert_eq!(store.token_by_hash(&tok.hash).await.unwrap().unwrap().last_used_at, T0 + 120);
        // A slower instance's older touch does not move it back.
        store.touch_token(&tok.id, T0 + 60).await.unwrap();
        assert_eq!(store.token_by_hash(&tok.hash).await.unwrap().unwrap().last_used_at, T0 + 120);
    }
}
