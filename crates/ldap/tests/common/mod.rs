//! Helpers shared by the integration tests: connect to a testkit server and bind.

#![allow(dead_code)]

use dirbridge_ldap::{CaBundle, ConnectOptions, Connection, LdapError, SecretString};
use testkit::samba::Credentials;

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

pub async fn connect(url: &str, ca_pem: &str) -> Result<Connection, LdapError> {
    Connection::connect(&ConnectOptions::new(url, CaBundle::Pem(ca_pem.to_owned()))).await
}

/// Connects and binds with `who`'s DN.
pub async fn bind(url: &str, ca_pem: &str, who: &Credentials) -> Result<Connection, LdapError> {
    let mut c = connect(url, ca_pem).await?;
    c.simple_bind(&who.dn, &secret(&who.password)).await?;
    Ok(c)
}

/// Connects and binds as `dn` with `password`.
pub async fn bind_as(
    url: &str,
    ca_pem: &str,
    dn: &str,
    password: &str,
) -> Result<Connection, LdapError> {
    let mut c = connect(url, ca_pem).await?;
    c.simple_bind(dn, &secret(password)).await?;
    Ok(c)
}
