//! The per-address limits' token buckets, kept in the database so that every instance on it
//! shares one budget per address, and which rule a request falls under.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::http::{Method, StatusCode};
use store::Store;

use crate::error::ApiResult;

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
            // The portal's forms are the same sign-in, change and reset start as the API,
            // answered with the same statuses (a refused current password marked).
            "/api/v1/auth/token"
            | "/api/v1/sspr/change"
            | "/signin"
            | "/my/password"
            | "/t/{domain}/oauth2/signin" => Some(Rule::SignIn),
            "/api/v1/sspr/start" | "/sspr/start" => Some(Rule::SsprStart),
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
    pub(crate) async fn take(
        &self,
        store: &Store,
        now: i64,
        rule: Rule,
        addr: IpAddr,
        per_minute: u32,
    ) -> ApiResult<Result<(), u64>> {
        let now_ms = now.saturating_mul(1000);
        let last = self.last_cleanup_ms.load(Ordering::Relaxed);
        if now_ms - last >= CLEANUP_EVERY_MS
            && self
                .last_cleanup_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            if let Err(e) = store.forget_full_address_buckets(now_ms).await {
                tracing::warn!(error = %e, "could not delete full per-address buckets");
            }
        }
        let wait = store
            .take_address_token(rule.name(), &addr.to_string(), per_minute, now_ms)
            .await?;
        Ok(match wait {
            None => Ok(()),
            Some(ms) => Err(u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)),
        })
    }

    /// Gives back the token of a request the rule does not count.
    pub(crate) async fn give_back(&self, store: &Store, rule: Rule, addr: IpAddr, per_minute: u32) {
        if let Err(e) = store
            .give_back_address_token(rule.name(), &addr.to_string(), per_minute)
            .await
        {
            tracing::warn!(error = %e, "could not give back a per-address token");
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
