//! The portal's cookies and CSRF tokens.
//!
//! * **Session**: the API token handed out at sign-in, in `__Host-dirbridge-session`
//!   (`Secure; HttpOnly; SameSite=Lax; Path=/`). The store keeps only its hash, so any cloud
//!   instance serves the session, and it ends when the token expires or is revoked.
//! * **CSRF, signed in**: every form carries `SHA-256("dirbridge-csrf:" ‖ session token)`. Only
//!   the holder of the HttpOnly cookie can compute it; nothing per session is stored.
//! * **CSRF, before sign-in** (the sign-in form itself, against login CSRF): a random value in
//!   `__Host-dirbridge-csrf` and its hash in the form; the POST must carry both.
//!
//! With `[portal] insecure_cookies` (development over plain HTTP off loopback) the cookies lose
//! `Secure` and, because browsers require it for the prefix, the `__Host-` prefix.

use axum::http::{header, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use crate::state::AppState;

const SESSION: &str = "dirbridge-session";
const ANON_CSRF: &str = "dirbridge-csrf";
/// The self-service reset session (`/sspr`, crate::portal::sspr): its secret never goes in a URL.
const SSPR: &str = "dirbridge-sspr";

/// The cookies of one request, and how this cloud writes them.
pub struct Cookies {
    secure: bool,
    session: Option<String>,
    anon_csrf: Option<String>,
    sspr: Option<String>,
}

impl Cookies {
    pub fn new(state: &AppState, headers: &HeaderMap) -> Cookies {
        let secure = !state.config.portal.insecure_cookies;
        let (session_name, csrf_name) = (name(secure, SESSION), name(secure, ANON_CSRF));
        let mut session = None;
        let mut anon_csrf = None;
        let mut sspr = None;
        let sspr_name = name(secure, SSPR);
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for pair in value.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k == session_name && !v.is_empty() {
                    session = Some(v.to_owned());
                } else if k == csrf_name && !v.is_empty() {
                    anon_csrf = Some(v.to_owned());
                } else if k == sspr_name && !v.is_empty() {
                    sspr = Some(v.to_owned());
                }
            }
        }
        Cookies {
            secure,
            session,
            anon_csrf,
            sspr,
        }
    }

    /// The self-service reset session's cookie value, if the browser sent one.
    pub fn sspr(&self) -> Option<&str> {
        self.sspr.as_deref()
    }

    /// `Set-Cookie` for a self-service reset session lasting `max_age_secs`.
    pub fn sspr_cookie(&self, value: &str, max_age_secs: i64) -> HeaderValue {
        self.cookie(SSPR, value, max_age_secs.max(0))
    }

    pub fn clear_sspr(&self) -> HeaderValue {
        self.cookie(SSPR, "", 0)
    }

    /// The session token, if the browser sent one.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// `Set-Cookie` for a new session lasting `max_age_secs`.
    pub fn session_cookie(&self, token: &str, max_age_secs: i64) -> HeaderValue {
        self.cookie(SESSION, token, max_age_secs.max(0))
    }

    pub fn clear_session(&self) -> HeaderValue {
        self.cookie(SESSION, "", 0)
    }

    /// The CSRF value for the sign-in form, and the cookie to set when the browser has none
    /// yet (a fresh random value; a browser that has one keeps it, so two open tabs both work).
    pub fn anonymous_csrf(&self) -> (String, Option<HeaderValue>) {
        match &self.anon_csrf {
            Some(v) => (digest("dirbridge-csrf-anonymous:", v), None),
            None => {
                let (v, _) = tenant::secrets::new_token();
                let form = digest("dirbridge-csrf-anonymous:", &v);
                (form, Some(self.cookie(ANON_CSRF, &v, 3600)))
            }
        }
    }

    /// Whether the sign-in form's CSRF value belongs to this browser's cookie.
    pub fn anonymous_csrf_matches(&self, form: &str) -> bool {
        self.anon_csrf
            .as_deref()
            .is_some_and(|v| constant_time_eq(&digest("dirbridge-csrf-anonymous:", v), form))
    }

    pub fn clear_anonymous_csrf(&self) -> HeaderValue {
        self.cookie(ANON_CSRF, "", 0)
    }

    fn cookie(&self, base: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            name(self.secure, base)
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

fn name(secure: bool, base: &str) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn digest(purpose: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update(value.as_bytes());
    hex::encode(h.finalize())
}

/// The CSRF token of the forms shown to the holder of `session_token`.
pub fn csrf_for_session(session_token: &str) -> String {
    digest("dirbridge-csrf:", session_token)
}

/// Whether `form` is the CSRF token of `session_token`.
pub fn csrf_matches_session(session_token: &str, form: &str) -> bool {
    constant_time_eq(&csrf_for_session(session_token), form)
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_csrf_token_is_bound_to_its_session() {
        let t = csrf_for_session("dbt_one");
        assert!(csrf_matches_session("dbt_one", &t));
        assert!(!csrf_matches_session("dbt_two", &t));
        assert!(!csrf_matches_session("dbt_one", ""));
        assert!(!csrf_matches_session("dbt_one", &t[..10]));
    }

    #[test]
    fn cookie_names_carry_the_host_prefix_only_when_secure() {
        assert_eq!(name(true, SESSION), "__Host-dirbridge-session");
        assert_eq!(name(false, SESSION), "dirbridge-session");
    }
}
