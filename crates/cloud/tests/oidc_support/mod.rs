//! The browser's part of the provider's tests without a browser ([`testkit::oidc_rp::Ua`]),
//! and the redirect URI the tests register.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use testkit::oidc_rp::{field, pkce, query, Ua};

pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
