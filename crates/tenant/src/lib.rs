//! tenant: the cloud's domain logic, with no I/O.
//!
//! It owns the decisions: which input is valid (UPNs, usage locations, names, passwords), who
//! may do what (admin roles), licensing (catalogue, trials and subscriptions, seat counting,
//! direct and group-based assignment, the SSPR-with-writeback entitlement), the self-service
//! password reset policy rules, and the secret primitives (password hashes, API tokens, ids).
//!
//! It must not know about HTTP, databases, sockets or the wall clock: callers pass in the rows
//! they loaded and the current time (an `Epoch` argument or a [`clock::Clock`]), and get back a
//! value or a [`refusal::Refusal`] whose message an admin can act on. `cloud` and `agent` move
//! bytes; this crate decides.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod clock;
pub mod country;
pub mod licensing;
pub mod oidc;
pub mod policy;
pub mod refusal;
pub mod roles;
pub mod secrets;
pub mod sspr;
pub mod sync;
pub mod validate;
pub mod writeback;

pub use refusal::Refusal;
