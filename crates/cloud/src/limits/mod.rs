//! Limits per source address on the anonymous endpoints an attacker would hammer: the password
//! checks (sign-in, `POST /api/v1/auth/token` and the portal's `POST /signin`, and self-service
//! change, `POST /api/v1/sspr/change`, which share one budget) and the start of a self-service
//! reset (`POST /api/v1/sspr/start`). The per-account throttles stop guessing against one account; these stop
//! one address from spraying many accounts, or from filling the reset queue and the mail relay.
//!
//! * Password checks count only refused attempts (401 and 429, and a change answered
//!   `wrongCurrentPassword`, marked [`RefusedPassword`]): successes are free, a password sprayer
//!   is slowed down.
//! * Reset starts count every request: the answer is the same for every account by design, so
//!   there is nothing else to count.
//! * A **known device** is exempt from the password-check limit: a browser that signed in to an
//!   account successfully gets a cookie ([`DEVICE_COOKIE`]: HMAC-signed with a server key, bound
//!   to that account, 90 days, `__Host-`, `HttpOnly`, `Secure`, `SameSite=Strict`), and its
//!   later attempts for that same account pass this limit (never the per-account throttle),
//!   so a sprayer behind the office's NAT address does not lock the office's people out. A
//!   cookie that is forged, expired or for another account counts for nothing: the request is
//!   limited like any other, so the cookie tells nothing about any account.
//!
//! Each rule is a token bucket per address (IPv4 address, IPv6 /64) holding `per_minute` tokens
//! and refilled evenly over a minute. A token is taken before the request runs (so parallel
//! requests share the budget) and given back when the answer is one the rule does not count.
//! The client's address is the TCP peer, or, when the peer is one of `trusted_proxies`, the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy: a client cannot escape
//! by sending its own header. The buckets live in the database
//! ([`store::Store::take_address_token`]: one upsert per limited request), so every cloud
//! instance on it takes from the same budget and no process's memory bounds how many addresses
//! are tracked; full buckets are deleted at most once a minute per process.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;

use crate::error::AppError;
use crate::state::AppState;

pub mod buckets;
pub mod device;

#[cfg(test)]
use axum::http::{Method, StatusCode};
use buckets::{key, Rule};
pub use buckets::{AddressLimits, RefusedPassword};
pub use device::{device_cookie, DEVICE_COOKIE};
use device::{device_cookie_sent, device_key};

/// The account a password check is for: `userPrincipalName` of its JSON body.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckedAccount {
    user_principal_name: String,
}

/// Whether a password-check request comes from a known device of the account it names. Reads
/// the body (within `max_body_bytes`) and puts it back for the handler.
async fn known_device(
    state: &AppState,
    cookie: &str,
    req: Request,
) -> Result<(Request, bool), Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| crate::extract::too_large().into_response())?;
    let known = match serde_json::from_slice::<CheckedAccount>(&bytes) {
        Ok(a) => match device_key(state).await {
            Ok(key) => tenant::secrets::device_token_valid(
                key.as_bytes(),
                &a.user_principal_name,
                cookie,
                state.now(),
            ),
            Err(e) => return Err(e.into_response()),
        },
        Err(_) => false,
    };
    Ok((Request::from_parts(parts, Body::from(bytes)), known))
}

/// The client's address: the peer, or behind trusted proxies the right-most forwarded address
/// that is not a trusted proxy.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .map(|s| s.parse::<IpAddr>().ok())
        .collect::<Option<Vec<_>>>()
        // A malformed entry: trust nothing the proxy chain said.
        .unwrap_or_default();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// Middleware over the whole router; passes everything but the limited endpoints untouched.
pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Layers on a router run per route, after matching: the matched template is the full path.
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let Some(rule) = Rule::of(req.method(), &path) else {
        return next.run(req).await;
    };
    let per_minute = match rule {
        Rule::SignIn => state.config.limits.sign_in_per_minute,
        Rule::SsprStart => state.config.limits.sspr_start_per_minute,
    };
    // Without the peer (a router served without connect info, as some tests do) there is no
    // address to limit; `crate::serve` always provides it.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (Some(peer), true) = (peer, per_minute > 0) else {
        return next.run(req).await;
    };
    let addr = key(client_address(
        peer,
        req.headers(),
        &state.config.limits.trusted_proxies,
    ));
    let req = match (rule, device_cookie_sent(req.headers())) {
        (Rule::SignIn, Some(cookie)) => match known_device(&state, &cookie, req).await {
            // The per-account throttle, in the handler, still applies.
            Ok((req, true)) => return next.run(req).await,
            Ok((req, false)) => req,
            Err(resp) => return resp,
        },
        _ => req,
    };
    let limits = &state.address_limits;
    let taken = match limits
        .take(&state.store, state.now(), rule, addr, per_minute)
        .await
    {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if let Err(wait) = taken {
        let refusal = AppError::new(
            ErrorCode::TooManyRequests,
            format!(
                "Too many {} from your network address. Try again in {wait} seconds.",
                rule.what()
            ),
        );
        let mut resp = if path.starts_with("/api/") {
            refusal.into_response()
        } else {
            crate::portal::refusal_page(&refusal)
        };
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(wait));
        return resp;
    }
    let resp = next.run(req).await;
    let refused_password = resp.extensions().get::<RefusedPassword>().is_some();
    if !rule.counts(resp.status(), refused_password) {
        limits.give_back(&state.store, rule, addr, per_minute).await;
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "203.0.113.50, 10.0.0.2".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.3".parse().unwrap());
        let proxies = [ip("10.0.0.1"), ip("10.0.0.3")];
        // Not from a proxy: the header is the client's own claim.
        assert_eq!(
            client_address(ip("198.51.100.7"), &h, &proxies),
            ip("198.51.100.7")
        );
        // From a proxy: the right-most entry the proxies did not add.
        assert_eq!(client_address(ip("10.0.0.1"), &h, &proxies), ip("10.0.0.2"));
        let mut spoof = HeaderMap::new();
        spoof.insert(
            "x-forwarded-for",
            "1.2.3.4, not-an-address".parse().unwrap(),
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &spoof, &proxies),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &HeaderMap::new(), &proxies),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(
            key(ip("2001:db8:1:2:aaaa::1")),
            key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(key(ip("2001:db8:1:2::1")), key(ip("2001:db8:1:3::1")));
        assert_eq!(key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn only_refused_sign_ins_count() {
        assert!(Rule::SignIn.counts(StatusCode::UNAUTHORIZED, false));
        assert!(!Rule::SignIn.counts(StatusCode::OK, false));
        assert!(Rule::SignIn.counts(StatusCode::OK, true));
        assert!(!Rule::SignIn.counts(StatusCode::SERVICE_UNAVAILABLE, false));
        assert!(Rule::SsprStart.counts(StatusCode::OK, false));
        assert_eq!(
            Rule::of(&Method::POST, "/api/v1/sspr/change"),
            Some(Rule::SignIn)
        );
        assert_eq!(
            Rule::of(&Method::POST, "/api/v1/sspr/start"),
            Some(Rule::SsprStart)
        );
        assert_eq!(Rule::of(&Method::DELETE, "/api/v1/auth/token"), None);
    }
}
