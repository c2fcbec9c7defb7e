use proto::{AuthMethod, SsprPolicy, SsprScope};

use crate::common::*;

fn policy() -> SsprPolicy {
    SsprPolicy {
        enabled_for: SsprScope::Group,
        group_id: Some("g-1".into()),
        methods_required: 2,
        methods: vec![
            AuthMethod::Email,
            AuthMethod::MobilePhone,
            AuthMethod::SecurityQuestions,
        ],
        questions_to_register: 5,
        questions_to_answer: 3,
        security_questions: vec![
            "In what city were you born?".into(),
            "Custom: first pet's name?".into(),
        ],
        require_registration_at_sign_in: true,
        reconfirm_days: 180,
        notify_users_on_reset: true,
        notify_admins_on_admin_reset: false,
        helpdesk_url: Some("https://help.example/reset".into()),
        helpdesk_email: None,
        writeback_enabled: true,
        allow_unlock_without_reset: false,
    }
}

store_test! {
    async fn policy_is_absent_until_put_then_replaced_whole(store) {
        let t = new_tenant(&store, "contoso").await;
        let other = new_tenant(&store, "fabrikam").await;
        assert_eq!(store.get_policy(&t.id).await.unwrap(), None);

        let mut p = policy();
        store.put_policy(&t.id, &p).await.unwrap();
        assert_eq!(store.get_policy(&t.id).await.unwrap(), Some(p.clone()));
        assert_eq!(store.get_policy(&other.id).await.unwrap(), None);

        p.enabled_for = SsprScope::All;
        p.group_id = None;
        p.methods = vec![AuthMethod::AuthenticatorApp];
        p.methods_required = 1;
        store.put_policy(&t.id, &p).await.unwrap();
        assert_eq!(store.get_policy(&t.id).await.unwrap(), Some(p));
    }
}

store_test! {
    async fn policy_of_a_missing_tenant_is_refused(store) {
        assert_not_found(store.put_policy("no-such-tenant", &policy()).await);
    }
}
