//! Talking to on-prem directories (Active Directory / Samba AD and OpenLDAP).
//!
//! Owns: connecting over LDAPS or StartTLS with a CA bundle (verification always on), binding,
//! paged search, AD password reset and change (`unicodePwd`), OpenLDAP password modify with the
//! ppolicy control, the delta mechanisms (AD DirSync, OpenLDAP syncrepl refreshOnly), and the
//! mapping of every server answer to the typed [`LdapError`]. Control values are parsed with our
//! own non-panicking BER code ([`ber`]). Change notification ([`notify`]: syncrepl
//! refreshAndPersist, AD's notification control) wakes the delta without deciding anything.
//!
//! Must not know about: the cloud, tenants, sync decisions. Callers match on [`LdapError`] and
//! never look at LDAP result codes or server texts themselves.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod ad;
pub mod ber;
pub mod connection;
pub mod controls;
pub mod dn;
pub mod error;
pub mod notify;
pub mod openldap;
pub mod rights;

pub use connection::{tls_config, CaBundle, ConnectOptions, Connection, Entry, TlsMode};
pub use error::{BindProblem, LdapError, PolicyReason};
pub use ldap3::Scope;
pub use secrecy::SecretString;
