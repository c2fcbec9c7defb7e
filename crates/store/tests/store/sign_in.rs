use crate::common::*;
use store::LockoutPolicy;

const POLICY: LockoutPolicy = LockoutPolicy {
    limit: 3,
    first_lock_secs: 60,
    max_lock_secs: 240,
    quiet_secs: 900,
};

store_test! {
    async fn sign_in_attempts_lock_the_account_longer_each_time_and_are_given_back_and_cleared(store) {
        let p = &POLICY;
        for i in 0..3 {
            assert_eq!(store.reserve_sign_in_attempt("a", T0 + i, p).await.unwrap(), None);
        }
        // Over the limit: the next attempt locks the account for a minute, and is not counted.
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 10, p).await.unwrap(), Some(T0 + 70));
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 69, p).await.unwrap(), Some(T0 + 70));
        // Another account is not touched.
        assert_eq!(store.reserve_sign_in_attempt("b", T0 + 10, p).await.unwrap(), None);
        // Once the lock ends: one attempt, then a lock twice as long, then four times, capped.
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 70, p).await.unwrap(), None);
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 71, p).await.unwrap(), Some(T0 + 191));
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 191, p).await.unwrap(), None);
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 192, p).await.unwrap(), Some(T0 + 432));
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 432, p).await.unwrap(), None);
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 433, p).await.unwrap(), Some(T0 + 673));
        // An attempt given back (the password was never checked) can be used again.
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 673, p).await.unwrap(), None);
        store.release_sign_in_attempt("a").await.unwrap();
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 674, p).await.unwrap(), None);
        assert!(store.reserve_sign_in_attempt("a", T0 + 675, p).await.unwrap().is_some());
        // Cleared (a success, a reset, an unlock): the full count again, and the first lock is
        // a minute again.
        store.clear_sign_in_attempts("a").await.unwrap();
        for i in 0..3 {
            assert_eq!(store.reserve_sign_in_attempt("a", T0 + 700 + i, p).await.unwrap(), None);
        }
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 710, p).await.unwrap(), Some(T0 + 770));
        // Quiet for the quiet period after the lock: forgotten, failures and lockouts alike.
        let later = T0 + 770 + 900;
        for i in 0..3 {
            assert_eq!(store.reserve_sign_in_attempt("a", later + i, p).await.unwrap(), None);
        }
        assert_eq!(store.reserve_sign_in_attempt("a", later + 5, p).await.unwrap(), Some(later + 65));
    }
}

store_test! {
    async fn concurrent_sign_in_attempts_share_the_limit(store) {
        let policy = LockoutPolicy { limit: 5, ..POLICY };
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.reserve_sign_in_attempt("c", T0, &policy).await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for a in attempts {
            if a.await.unwrap().is_none() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
    }
}

store_test! {
    async fn address_buckets_empty_refill_evenly_and_are_shared(store) {
        let t = T0 * 1000;
        // 6 a minute: one every 10 s, 6 at once from a full bucket.
        for _ in 0..6 {
            assert_eq!(store.take_address_token("signIn", "192.0.2.1", 6, t).await.unwrap(), None);
        }
        assert_eq!(store.take_address_token("signIn", "192.0.2.1", 6, t).await.unwrap(), Some(10_000));
        assert_eq!(store.take_address_token("signIn", "192.0.2.1", 6, t + 4_000).await.unwrap(), Some(6_000));
        assert_eq!(store.take_address_token("signIn", "192.0.2.1", 6, t + 10_500).await.unwrap(), None);
        assert!(store.take_address_token("signIn", "192.0.2.1", 6, t + 10_500).await.unwrap().is_some());
        // Another address and another rule have their own buckets.
        assert_eq!(store.take_address_token("signIn", "192.0.2.2", 6, t + 10_500).await.unwrap(), None);
        assert_eq!(store.take_address_token("ssprStart", "192.0.2.1", 6, t + 10_500).await.unwrap(), None);
        // A token given back is usable at once.
        store.give_back_address_token("signIn", "192.0.2.1", 6).await.unwrap();
        assert_eq!(store.take_address_token("signIn", "192.0.2.1", 6, t + 10_500).await.unwrap(), None);
        // Full buckets are forgotten; one still in use is kept.
        assert_eq!(store.forget_full_address_buckets(t + 10_500 + 10_000).await.unwrap(), 2);
        assert_eq!(store.take_address_token("signIn", "192.0.2.1", 6, t + 20_500).await.unwrap(), None);
        assert_eq!(store.take_address_token("signIn", "192.0.2.1", 6, t + 20_500).await.unwrap(), Some(9_500));
    }
}

store_test! {
    async fn concurrent_address_takes_share_the_bucket(store) {
        let takes: Vec<_> = (0..40)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.take_address_token("signIn", "198.51.100.1", 30, T0 * 1000).await.unwrap() })
            })
            .collect();
        let mut taken = 0;
        for t in takes {
            if t.await.unwrap().is_none() {
                taken += 1;
            }
        }
        assert_eq!(taken, 30);
    }
}

store_test! {
    async fn agent_pushes_are_taken_once_by_their_agent_and_old_ones_forgotten(store) {
        store.queue_agent_pushes(&[("m1".into(), "a1".into()), ("m2".into(), "a2".into())], "{\"type\":\"syncNow\"}", 1_000).await.unwrap();
        store.queue_agent_pushes(&[("m3".into(), "a1".into())], "{\"type\":\"ping\"}", 2_000).await.unwrap();
        assert!(store.take_agent_pushes(&["zz".into()]).await.unwrap().is_empty());
        assert_eq!(
            store.take_agent_pushes(&["a1".into()]).await.unwrap(),
            vec![("a1".to_string(), "{\"type\":\"syncNow\"}".to_string()), ("a1".to_string(), "{\"type\":\"ping\"}".to_string())]
        );
        assert!(store.take_agent_pushes(&["a1".into()]).await.unwrap().is_empty());
        assert_eq!(store.forget_agent_pushes(1_500).await.unwrap(), 1);
        assert!(store.take_agent_pushes(&["a2".into()]).await.unwrap().is_empty());
    }
}
