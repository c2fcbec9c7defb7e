//! The store test suite. Every test runs twice, on SQLite (a file in a temporary directory) and
//! on PostgreSQL (a throwaway cluster from `testkit::postgres`): `store_test!` makes the pair.

extern crate dirbridge_store as store;

#[macro_use]
mod common;

mod agents;
mod audit;
mod groups;
mod licensing;
mod oidc;
mod open;
mod policy;
mod scale;
mod sign_in;
mod sync;
mod tenants;
mod tokens;
mod users;
mod users_paging;
