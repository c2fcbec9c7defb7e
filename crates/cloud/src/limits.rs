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
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// The known-device cookie's name. `__Host-`: the browser only keeps it when it is `Secure`,
/// for the whole host (`Path=/`) and set by this host itself (no `Domain`).
pub const DEVICE_COOKIE: &str = "__Host-dirbridge-device";

/// The key known-device cookies are signed with: created once, kept in the database (every
/// instance signs and checks with the same one), read once per process.
async fn device_key(state: &AppState) -> ApiResult<&String> {
    state
        .device_key
        .get_or_try_init(|| async {
            let (candidate, _) = tenant::sspr::new_session_secret();
            state.store.sspr_key("device", &candidate).await
        })
        .await
        .map_err(AppError::from)
}

/// The `Set-Cookie` value that makes the caller's browser a known device for `upn` (sent with
/// a successful sign-in; clients without cookies, such as the CLI, ignore it).
pub async fn device_cookie(state: &AppState, upn: &str) -> ApiResult<HeaderValue> {
    let key = device_key(state).await?;
    let max_age = tenant::secrets::DEVICE_SECS;
    let token = tenant::secrets::device_token(key.as_bytes(), upn, state.now() + max_age);
    HeaderValue::from_str(&format!(
        "{DEVICE_COOKIE}={token}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .map_err(|_| AppError::internal())
}

/// The known-device cookie the request carries, if any.
fn device_cookie_sent(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == DEVICE_COOKIE)
        .map(|(_, value)| value.to_string())
}

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

/// Which limit a request falls under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Password checks: sign-in and self-service change.
    SignIn,
    SsprStart,
}

/// Marks a response whose status is a success but which refused a password (a self-service
/// change answered `wrongCurrentPassword`): the password-check rule counts it like a 401.
#[derive(Clone, Copy, Debug)]
pub struct RefusedPassword;

impl Rule {
    fn of(method: &Method, path: &str) -> Option<Rule> {
        if method != Method::POST {
            return None;
        }
        match path {
            // The portal's sign-in form is the same sign-in, answered with the same statuses.
            "/api/v1/auth/token" | "/api/v1/sspr/change" | "/signin" => Some(Rule::SignIn),
            "/api/v1/sspr/start" => Some(Rule::SsprStart),
            _ => None,
        }
    }

    /// Whether an answer with this status (and marker) uses up the token taken for the request.
    fn counts(self, status: StatusCode, refused_password: bool) -> bool {
        match self {
            Rule::SignIn => {
                refused_password
                    || status == StatusCode::UNAUTHORIZED
                    || status == StatusCode::TOO_MANY_REQUESTS
            }
            Rule::SsprStart => true,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Rule::SignIn => "failed sign-ins or password changes",
            Rule::SsprStart => "password reset requests",
        }
    }
}

impl Rule {
    /// The rule's name in the database.
    fn name(self) -> &'static str {
        match self {
            Rule::SignIn => "signIn",
            Rule::SsprStart => "ssprStart",
        }
    }
}

/// This process's side of the per-address limits: when it last deleted full buckets.
#[derive(Debug, Default)]
pub struct AddressLimits {
    last_cleanup_ms: AtomicI64,
}

/// Full buckets are deleted at most this often by one process (milliseconds).
const CLEANUP_EVERY_MS: i64 = 60_000;

impl AddressLimits {
    /// Takes one token for `addr`; `Err(seconds)` until the next token when there is none.
    async fn take(
        &self,
        state: &AppState,
        rule: Rule,
        addr: IpAddr,
        per_minute: u32,
    ) -> ApiResult<Result<(), u64>> {
        let now_ms = state.now().saturating_mul(1000);
        let last = self.last_cleanup_ms.load(Ordering::Relaxed);
        if now_ms - last >= CLEANUP_EVERY_MS
            && self
                .last_cleanup_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            if let Err(e) = state.store.forget_full_address_buckets(now_ms).await {
                tracing::warn!(error = %e, "could not delete full per-address buckets");
            }
        }
        let wait = state
            .store
            .take_address_token(rule.name(), &addr.to_string(), per_minute, now_ms)
            .await?;
        Ok(match wait {
            None => Ok(()),
            Some(ms) => Err(u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)),
        })
    }

    /// Gives back the token of a request the rule does not count.
    async fn give_back(&self, state: &AppState, rule: Rule, addr: IpAddr, per_minute: u32) {
        if let Err(e) = state
            .store
            .give_back_address_token(rule.name(), &addr.to_string(), per_minute)
            .await
        {
            tracing::warn!(error = %e, "could not give back a per-address token");
        }
    }
}

/// The key an address is limited under: IPv4 as is, IPv6 by its /64 (one customer's network).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
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
    let taken = match limits.take(&state, rule, addr, per_minute).await {
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
        limits.give_back(&state, rule, addr, per_minute).await;
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
