//! The result of an admin form, kept a short while so the form can answer `303 See Other` to a
//! page that shows it: a reload of that page shows the result again instead of sending the
//! form (a second password reset, a second bulk assignment) again.
//!
//! A result holds no secret (secrets shown once — a client secret, a registration token — are
//! on the form's own answer, never kept). It is kept in this process's memory for
//! [`KEEP`], for the session that sent the form only, and at most [`MAX`] of them (the
//! oldest go first). Its key is in the page's URL with the request's tracking id; a page whose
//! result is gone (expired, or the browser reached another cloud instance) says so and links
//! the tracking id to the audit log, which has every result.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use super::Admin;
use crate::state::AppState;

/// How long a result is kept, in seconds of the state's clock.
pub const KEEP: i64 = 600;
/// How many results are kept at most.
pub const MAX: usize = 1000;

struct Entry {
    /// The session's CSRF token, a hash of its cookie: another session never sees the result.
    owner: String,
    made: proto::Epoch,
    value: Box<dyn Any + Send>,
}

static KEPT: LazyLock<Mutex<HashMap<String, Entry>>> = LazyLock::new(Default::default);

/// Keeps `value` for `admin`'s session; the key to put in the result page's URL.
pub fn put<T: Any + Send>(state: &AppState, admin: &Admin, value: T) -> String {
    let now = state.now();
    let key = tenant::secrets::new_id();
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    kept.retain(|_, e| now - e.made < KEEP);
    while kept.len() >= MAX {
        let Some(oldest) = kept
            .iter()
            .min_by_key(|(_, e)| e.made)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        kept.remove(&oldest);
    }
    kept.insert(
        key.clone(),
        Entry {
            owner: admin.csrf.clone(),
            made: now,
            value: Box::new(value),
        },
    );
    key
}

/// The result kept under `key` for `admin`'s session, if it is still kept.
pub fn get<T: Any + Clone>(state: &AppState, admin: &Admin, key: &str) -> Option<T> {
    let now = state.now();
    let kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    kept.get(key)
        .filter(|e| e.owner == admin.csrf && (0..KEEP).contains(&(now - e.made)))
        .and_then(|e| e.value.downcast_ref::<T>())
        .cloned()
}
