use crate::common::*;

store_test! {
    async fn sign_in_attempts_are_limited_per_window_given_back_and_cleared(store) {
        let (w, limit) = (900, 3);
        for i in 0..3 {
            assert_eq!(store.reserve_sign_in_attempt("a", T0 + i, w, limit).await.unwrap(), None);
        }
        // Over the limit: refused until the window (begun at the first attempt) ends, and the
        // refusal itself is not counted.
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 10, w, limit).await.unwrap(), Some(T0 + w));
        assert_eq!(store.reserve_sign_in_attempt("b", T0 + 10, w, limit).await.unwrap(), None);
        // An attempt given back can be used again.
        store.release_sign_in_attempt("a").await.unwrap();
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + 11, w, limit).await.unwrap(), None);
        assert!(store.reserve_sign_in_attempt("a", T0 + 12, w, limit).await.unwrap().is_some());
        // A new window starts once the old one has ended.
        assert_eq!(store.reserve_sign_in_attempt("a", T0 + w, w, limit).await.unwrap(), None);
        store.clear_sign_in_attempts("a").await.unwrap();
        for i in 0..3 {
            assert_eq!(store.reserve_sign_in_attempt("a", T0 + w + 1 + i, w, limit).await.unwrap(), None);
        }
        assert!(store.reserve_sign_in_attempt("a", T0 + w + 5, w, limit).await.unwrap().is_some());
    }
}

store_test! {
    async fn concurrent_sign_in_attempts_share_the_limit(store) {
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.reserve_sign_in_attempt("c", T0, 900, 5).await.unwrap() })
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
