//! Real servers for tests and the demo, started as child processes in temporary directories:
//! PostgreSQL, Samba AD DC, OpenLDAP (slapd), and the test certificate authority they share.
//! Each fixture stops its server when dropped; process-wide shared instances are stopped when
//! the test process exits (and die with it if it is killed).
//!
//! * [`ca`]: the test CA and server certificates with subjectAltNames.
//! * [`samba`]: a Samba AD DC on its own loopback address, with delegated service accounts.
//! * [`slapd`]: OpenLDAP with ppolicy and syncprov.
//! * [`smtp`]: an SMTP server (aiosmtpd) writing what it receives to a Maildir.
//! * [`http_sink`]: an HTTP receiver keeping what it gets (an SMS or voice gateway's stand-in).
//! * [`dataset`]: the deterministic sample users and groups both directories are loaded with.
//! * [`cache`]: the cross-process cache of provisioned templates (`target/testkit-cache`).
//! * [`requirements`]: the table of programs and files the machine must have, and its guard.
//!
//! The testkit never uses `dirbridge-ldap`, the code under test, for its own setup.
//!
//! Needs what `scripts/requirements.tsv` lists (`scripts/deps.sh` installs and checks it; see
//! [`requirements`]); the Samba fixture needs root. `testkit samba up` and
//! `testkit slapd up` (the `testkit` binary) bring a server up by hand.
// Test infrastructure: it waits for real servers with deadlines on the real clock.
#![allow(clippy::disallowed_methods)]

pub mod oidc_rp;
pub mod postgres;

pub mod browser;
pub mod ca;
pub mod cache;
pub mod dataset;
pub mod dns;
pub mod http_sink;
mod ldapc;
pub mod process;
pub mod proxy;
pub mod requirements;
pub mod samba;
pub mod slapd;
pub mod smtp;

pub use ldapc::client_config;
