use proto::oidc::{App, ClientType};
use store::{AppTokenRecord, CodeRecord, CodeUse};

use crate::common::*;

fn app(t: &proto::Tenant, id: &str) -> App {
    App {
        id: id.into(),
        tenant_id: t.id.clone(),
        name: "Grafana".into(),
        client_type: ClientType::Confidential,
        redirect_uris: vec!["https://grafana.contoso.com/cb".into()],
        post_logout_redirect_uris: vec![],
        allowed_scopes: vec!["openid".into(), "email".into()],
        access_group_id: None,
        access_token_lifetime_secs: 3600,
        id_token_lifetime_secs: 3600,
        refresh_token_lifetime_secs: 86_400,
        skip_consent: false,
        id_token_signing_alg: "ES256".into(),
        secrets: vec![],
        created_at: T0,
        updated_at: T0,
    }
}

fn app_token(
    t: &proto::Tenant,
    u: &proto::User,
    app: &str,
    hash: &str,
    kind: &str,
    grant: &str,
) -> AppTokenRecord {
    AppTokenRecord {
        hash: hash.into(),
        id: format!("id-{hash}"),
        tenant_id: t.id.clone(),
        app_id: app.into(),
        user_id: u.id.clone(),
        grant_id: grant.into(),
        kind: kind.into(),
        scopes: vec!["openid".into()],
        auth_time: T0,
        created_at: T0,
        expires_at: T0 + 60,
        revoked: false,
    }
}

store_test! {
    async fn apps_round_trip_and_belong_to_their_tenant(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        let mut a = app(&t, "app-1");
        store.insert_app(&a).await.unwrap();
        store.insert_app_secret(&a.id, "s1", "hash-1", T0).await.unwrap();
        let got = store.get_app(&t.id, "app-1").await.unwrap().unwrap();
        assert_eq!(got.secrets.len(), 1);
        assert_eq!(App { secrets: vec![], ..got }, a);
        assert_eq!(store.get_app(&other.id, "app-1").await.unwrap(), None);
        assert!(store.app_secret_matches("app-1", "hash-1").await.unwrap());
        assert!(!store.app_secret_matches("app-1", "hash-2").await.unwrap());
        assert!(!store.delete_app_secret(&other.id, "app-1", "s1").await.unwrap());

        a.access_group_id = Some("g".into());
        a.skip_consent = true;
        store.update_app(&a).await.unwrap();
        assert_eq!(store.list_apps(&t.id).await.unwrap()[0].access_group_id.as_deref(), Some("g"));
        assert!(store.list_apps(&other.id).await.unwrap().is_empty());
        assert!(!store.delete_app(&other.id, "app-1").await.unwrap());
        assert!(store.delete_app(&t.id, "app-1").await.unwrap());
        assert!(!store.app_secret_matches("app-1", "hash-1").await.unwrap());
    }
}

store_test! {
    async fn codes_and_refresh_tokens_are_spent_exactly_once(store) {
        let t = new_tenant(&store, "contoso").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        store.insert_app(&app(&t, "app-1")).await.unwrap();
        let code = CodeRecord {
            hash: "code-hash".into(),
            tenant_id: t.id.clone(),
            app_id: "app-1".into(),
            user_id: ada.id.clone(),
            grant_id: "grant-1".into(),
            request: "{}".into(),
            created_at: T0,
            expires_at: T0 + 60,
        };
        store.insert_code(&code).await.unwrap();
        assert_eq!(store.consume_code("code-hash").await.unwrap(), CodeUse::Fresh(code.clone()));
        assert_eq!(store.consume_code("code-hash").await.unwrap(), CodeUse::Reused(code));
        assert_eq!(store.consume_code("other").await.unwrap(), CodeUse::Unknown);

        store.insert_app_token(&app_token(&t, &ada, "app-1", "r1", "refresh", "grant-1")).await.unwrap();
        store.insert_app_token(&app_token(&t, &ada, "app-1", "a1", "access", "grant-1")).await.unwrap();
        store.insert_app_token(&app_token(&t, &ada, "app-1", "a2", "access", "grant-2")).await.unwrap();
        assert!(!store.use_refresh_token("a1").await.unwrap(), "an access token is not a refresh token");
        assert!(store.use_refresh_token("r1").await.unwrap());
        assert!(!store.use_refresh_token("r1").await.unwrap());
        assert_eq!(store.revoke_grant("grant-1").await.unwrap(), 1);
        assert!(store.app_token_by_hash("a1").await.unwrap().unwrap().revoked);
        assert!(!store.app_token_by_hash("a2").await.unwrap().unwrap().revoked);

        // Revoking a user's tokens takes the app tokens with the API tokens.
        assert_eq!(store.revoke_user_tokens(&t.id, &ada.id).await.unwrap(), 1);
        assert!(store.app_token_by_hash("a2").await.unwrap().unwrap().revoked);
    }
}

store_test! {
    async fn consents_are_kept_per_user_and_app(store) {
        let t = new_tenant(&store, "contoso").await;
        let ada = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        store.insert_app(&app(&t, "app-1")).await.unwrap();
        assert_eq!(store.get_consent(&t.id, &ada.id, "app-1").await.unwrap(), None);
        store.put_consent(&t.id, &ada.id, "app-1", &["openid".into()], T0).await.unwrap();
        store.put_consent(&t.id, &ada.id, "app-1", &["openid".into(), "email".into()], T0 + 1).await.unwrap();
        assert_eq!(
            store.get_consent(&t.id, &ada.id, "app-1").await.unwrap(),
            Some(vec!["openid".to_string(), "email".to_string()])
        );
    }
}

store_test! {
    async fn retired_signing_keys_stay_until_their_publish_time(store) {
        let t = new_tenant(&store, "contoso").await;
        let key = |kid: &str, at: i64| store::SigningKeyRecord {
            tenant_id: t.id.clone(),
            kid: kid.into(),
            alg: "ES256".into(),
            public_jwk: "{}".into(),
            sealed_private: "v1.x".into(),
            created_at: at,
            retired_at: None,
            publish_until: None,
        };
        store.insert_signing_key(&key("k1", T0)).await.unwrap();
        store.insert_signing_key(&key("k2", T0 + 1)).await.unwrap();
        assert_eq!(store.retire_signing_keys(&t.id, &["k2".into()], T0 + 2, T0 + 100).await.unwrap(), 1);
        let keys = store.list_signing_keys(&t.id).await.unwrap();
        assert_eq!(keys[0].kid, "k2");
        assert_eq!(keys[1].retired_at, Some(T0 + 2));
        store.insert_signing_key(&key("k3", T0 + 200)).await.unwrap();
        store.retire_signing_keys(&t.id, &["k3".into()], T0 + 200, T0 + 300).await.unwrap();
        let kids: Vec<String> = store.list_signing_keys(&t.id).await.unwrap().into_iter().map(|k| k.kid).collect();
        assert_eq!(kids, ["k3", "k2"], "k1's publish time has passed: deleted");
    }
}
