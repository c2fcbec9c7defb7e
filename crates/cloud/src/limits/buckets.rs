//! The per-process token buckets of the per-address limits (held by the process state), and
//! which rule a request falls under.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::{Method, StatusCode};

/// Most addresses tracked per rule.
pub const MAX_ADDRESSES: usize = 100_000;

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
    pub(crate) fn of(method: &Method, path: &str) -> Option<Rule> {
        if method != Method::POST {
            return None;
        }
        match path {
            // The portal's sign-in form is the same sign-in, answered with the same statuses.
            "/api/v1/auth/token"
            | "/api/v1/sspr/change"
            | "/signin"
            | "/t/{domain}/oauth2/signin" => Some(Rule::SignIn),
            "/api/v1/sspr/start" => Some(Rule::SsprStart),
            _ => None,
        }
    }

    /// Whether an answer with this status (and marker) uses up the token taken for the request.
    pub(crate) fn counts(self, status: StatusCode, refused_password: bool) -> bool {
        match self {
            Rule::SignIn => {
                refused_password
                    || status == StatusCode::UNAUTHORIZED
                    || status == StatusCode::TOO_MANY_REQUESTS
            }
            Rule::SsprStart => true,
        }
    }

    pub(crate) fn what(self) -> &'static str {
        match self {
            Rule::SignIn => "failed sign-ins or password changes",
            Rule::SsprStart => "password reset requests",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub(crate) tokens: f64,
    pub(crate) at: f64,
}

/// The buckets of one process.
pub struct AddressLimits {
    started: Instant,
    pub(crate) buckets: Mutex<HashMap<(Rule, IpAddr), Bucket>>,
}

impl Default for AddressLimits {
    fn default() -> Self {
        AddressLimits {
            started: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for AddressLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressLimits")
    }
}

impl AddressLimits {
    pub(crate) fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Takes one token for `addr`; `Err(seconds)` until the next token when there is none.
    pub(crate) fn take(
        &self,
        rule: Rule,
        addr: IpAddr,
        per_minute: u32,
        now: f64,
    ) -> Result<(), u64> {
        let cap = f64::from(per_minute);
        let rate = cap / 60.0;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&(rule, addr)) {
            map.retain(|_, b| b.tokens + (now - b.at) * rate < cap);
            if map.len() >= MAX_ADDRESSES {
                tracing::warn!(
                    "the per-address limit tracks {MAX_ADDRESSES} addresses already; a new address passes unlimited"
                );
                return Ok(());
            }
        }
        let b = map.entry((rule, addr)).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        b.tokens = (b.tokens + (now - b.at).max(0.0) * rate).min(cap);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    /// Gives back the token of a request the rule does not count.
    pub(crate) fn give_back(&self, rule: Rule, addr: IpAddr, per_minute: u32) {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get_mut(&(rule, addr)) {
            b.tokens = (b.tokens + 1.0).min(f64::from(per_minute));
        }
    }
}

/// The key an address is limited under: IPv4 as is, IPv6 by its /64 (one customer's network).
pub(crate) fn key(ip: IpAddr) -> IpAddr {
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
