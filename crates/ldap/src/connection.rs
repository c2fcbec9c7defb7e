//! Connecting (LDAPS or StartTLS, certificate verification always on), binding, paged search,
//! and the generic operations the directory-specific modules build on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::RawControl;
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Mod, Scope, SearchEntry, StdStream,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};

use crate::controls;
use crate::error::{from_ldap3, from_result, LdapError};

/// How the TLS session is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (`ldaps://`, port 636).
    Ldaps,
    /// Plain connection upgraded with StartTLS before anything else (`ldap://`, port 389).
    StartTls,
}

/// The CA certificates that may vouch for the directory's certificate.
#[derive(Clone, Debug)]
pub enum CaBundle {
    /// PEM text (one or more certificates).
    Pem(String),
    /// A PEM file.
    File(PathBuf),
}

/// Where the directory is and how to reach it.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `ldaps://host[:port]` or `ldap://host[:port]` (the latter always with StartTLS).
    pub url: String,
    pub ca: CaBundle,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>, ca: CaBundle) -> ConnectOptions {
        ConnectOptions {
            url: url.into(),
            ca,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(60),
        }
    }

    /// The TLS mode the URL implies.
    pub fn tls_mode(&self) -> Result<TlsMode, LdapError> {
        let lower = self.url.to_ascii_lowercase();
        if lower.starts_with("ldaps://") {
            Ok(TlsMode::Ldaps)
        } else if lower.starts_with("ldap://") {
            Ok(TlsMode::StartTls)
        } else {
            Err(LdapError::Config(format!(
                "{} is not an ldaps:// or ldap:// URL",
                self.url
            )))
        }
    }
}

/// A rustls client configuration that trusts exactly the given CA bundle (ring provider).
pub fn tls_config(ca: &CaBundle) -> Result<rustls::ClientConfig, LdapError> {
    let pem = match ca {
        CaBundle::Pem(p) => p.clone().into_bytes(),
        CaBundle::File(path) => std::fs::read(path).map_err(|e| {
            LdapError::Config(format!("cannot read the CA bundle {}: {e}", path.display()))
        })?,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| LdapError::Config(format!("the CA bundle is not valid PEM: {e}")))?;
        roots.add(cert).map_err(|e| {
            LdapError::Config(format!("the CA bundle holds a bad certificate: {e}"))
        })?;
    }
    if roots.is_empty() {
        return Err(LdapError::Config(
            "the CA bundle holds no certificate".into(),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| LdapError::Config(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

/// One entry of a search result. Attribute names are lower-cased.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: BTreeMap<String, Vec<Vec<u8>>>,
}

impl Entry {
    pub(crate) fn from_search_entry(e: SearchEntry) -> Entry {
        let mut attrs: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, vs) in e.attrs {
            attrs
                .entry(k.to_ascii_lowercase())
                .or_default()
                .extend(vs.into_iter().map(String::into_bytes));
        }
        for (k, vs) in e.bin_attrs {
            attrs.entry(k.to_ascii_lowercase()).or_default().extend(vs);
        }
        Entry { dn: e.dn, attrs }
    }

    /// All values of `name` (case-insensitive).
    pub fn values(&self, name: &str) -> &[Vec<u8>] {
        self.attrs
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The first value of `name` as text, if it is UTF-8.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values(name)
            .first()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Opens the TCP connection of `url` with Nagle's algorithm off. LDAP is request / answer: with
/// Nagle on, a request written right after the TLS handshake waits for the server's delayed
/// acknowledgement of the handshake's last segment (40 ms on Linux). Measured against a local
/// slapd: connect + TLS + bind + read + password modify on a fresh connection took 44–52 ms
/// before, about 2 ms with this (docs/benchmarks.md).
async fn tcp_connect(url: &str) -> Result<std::net::TcpStream, ldap3::LdapError> {
    let stream = tokio::net::TcpStream::connect(socket_address(url).as_str()).await?;
    stream.set_nodelay(true)?;
    Ok(stream.into_std()?)
}

/// `host:port` of an `ldaps://` or `ldap://` URL, with the scheme's default port.
fn socket_address(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let default_port = if url.to_ascii_lowercase().starts_with("ldaps://") {
        636
    } else {
        389
    };
    // host, host:port, [v6], [v6]:port
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    }
}

/// An open, TLS-protected connection to a directory.
pub struct Connection {
    pub(crate) ldap: Ldap,
    pub(crate) url: String,
}

impl Connection {
    /// Connects and sets up TLS, verifying the server's certificate against `options.ca`.
    pub async fn connect(options: &ConnectOptions) -> Result<Connection, LdapError> {
        let mode = options.tls_mode()?;
        let config = tls_config(&options.ca)?;
        let started = tokio::time::Instant::from_std(tenant::clock::monotonic());
        let stream = tokio::time::timeout(options.connect_timeout, tcp_connect(&options.url))
            .await
            .map_err(|e| from_ldap3(e.into(), &options.url))?
            .map_err(|e| from_ldap3(e, &options.url))?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(options.connect_timeout.saturating_sub(started.elapsed()))
            .set_starttls(mode == TlsMode::StartTls)
            .set_config(Arc::new(config))
            .set_std_stream(StdStream::Tcp(stream));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &options.url)
            .await
            .map_err(|e| from_ldap3(e, &options.url))?;
        tokio::spawn(async move {
            // Ends when the connection closes; errors surface on the next operation.
            let _ = conn.drive().await;
        });
        ldap.with_timeout(options.operation_timeout);
        Ok(Connection {
            ldap,
            url: options.url.clone(),
        })
    }

    pub(crate) fn map(&self, e: ldap3::LdapError) -> LdapError {
        from_ldap3(e, &self.url)
    }

    pub(crate) fn check(res: LdapResult) -> Result<LdapResult, LdapError> {
        if res.rc == 0 {
            Ok(res)
        } else {
            Err(from_result(&res))
        }
    }

    /// Simple bind.
    pub async fn simple_bind(
        &mut self,
        dn: &str,
        password: &SecretString,
    ) -> Result<(), LdapError> {
        if password.expose_secret().is_empty() {
            // An empty password is an unauthenticated bind, which "succeeds": never allow it.
            return Err(LdapError::InvalidCredentials {
                problem: crate::error::BindProblem::WrongPassword,
                diagnostic: "empty password refused by dirbridge".into(),
            });
        }
        let res = self
            .ldap
            .simple_bind(dn, password.expose_secret())
            .await
            .map_err(|e| self.map(e))?;
        Self::check(res).map(|_| ())
    }

    /// Reads one entry.
    pub async fn read(&mut self, dn: &str, attrs: &[&str]) -> Result<Entry, LdapError> {
        let (entries, res) = self
            .ldap
            .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
            .await
            .map_err(|e| self.map(e))?
            .non_error()
            .map_err(|e| self.map(e))?;
        Self::check(res)?;
        entries
            .into_iter()
            .next()
            .map(|e| Entry::from_search_entry(SearchEntry::construct(e)))
            .ok_or_else(|| LdapError::NoSuchObject {
                matched: String::new(),
                diagnostic: "empty result".into(),
            })
    }

    /// Reads one entry if it matches `filter` (None when it exists but does not match).
    /// A missing entry is [`LdapError::NoSuchObject`].
    pub async fn read_matching(
        &mut self,
        dn: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Option<Entry>, LdapError> {
        let (entries, res) = self
            .ldap
            .search(dn, Scope::Base, filter, attrs.to_vec())
            .await
            .map_err(|e| self.map(e))?
            .non_error()
            .map_err(|e| self.map(e))?;
        Self::check(res)?;
        Ok(entries
            .into_iter()
            .next()
            .map(|e| Entry::from_search_entry(SearchEntry::construct(e))))
    }

    /// A search that pages through the whole result (RFC 2696), `page_size` entries at a time.
    pub async fn search_paged(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        page_size: i32,
    ) -> Result<Vec<Entry>, LdapError> {
        let mut out = Vec::new();
        let mut cookie: Vec<u8> = Vec::new();
        loop {
            let res = self
                .ldap
                .with_controls(controls::paged_request(page_size, &cookie))
                .search(base, scope, filter, attrs.to_vec())
                .await
                .map_err(|e| self.map(e))?;
            let (entries, result) = (res.0, res.1);
            let result = Self::check(result)?;
            out.extend(
                entries
                    .into_iter()
                    .filter(|e| !e.is_ref() && !e.is_intermediate())
                    .map(|e| Entry::from_search_entry(SearchEntry::construct(e))),
            );
            let Some(value) = controls::find(&result.ctrls, controls::PAGED_RESULTS_OID) else {
                // The server ignored paging: that was the whole result.
                break;
            };
            cookie = controls::parse_paged_response(value)
                .map_err(|e| LdapError::Protocol(format!("paged results control: {e}")))?;
            if cookie.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// One page of a paged search (RFC 2696): the entries and the cookie for the next page
    /// (empty when this was the last). Start with an empty cookie. For callers that process a
    /// large result page by page instead of holding it whole.
    pub async fn search_page(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        page_size: i32,
        cookie: &[u8],
    ) -> Result<(Vec<Entry>, Vec<u8>), LdapError> {
        let res = self
            .ldap
            .with_controls(controls::paged_request(page_size, cookie))
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| self.map(e))?;
        let (entries, result) = (res.0, res.1);
        let result = Self::check(result)?;
        let entries = entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(|e| Entry::from_search_entry(SearchEntry::construct(e)))
            .collect();
        let next = match controls::find(&result.ctrls, controls::PAGED_RESULTS_OID) {
            Some(value) => controls::parse_paged_response(value)
                .map_err(|e| LdapError::Protocol(format!("paged results control: {e}")))?,
            None => Vec::new(),
        };
        Ok((entries, next))
    }

    /// Adds an entry.
    pub async fn add(
        &mut self,
        dn: &str,
        attrs: Vec<(String, Vec<Vec<u8>>)>,
    ) -> Result<(), LdapError> {
        let attrs: Vec<(Vec<u8>, std::collections::HashSet<Vec<u8>>)> = attrs
            .into_iter()
            .map(|(k, vs)| (k.into_bytes(), vs.into_iter().collect()))
            .collect();
        let res = self.ldap.add(dn, attrs).await.map_err(|e| self.map(e))?;
        Self::check(res).map(|_| ())
    }

    /// Deletes an entry.
    pub async fn delete(&mut self, dn: &str) -> Result<(), LdapError> {
        let res = self.ldap.delete(dn).await.map_err(|e| self.map(e))?;
        Self::check(res).map(|_| ())
    }

    /// Renames and/or moves an entry (modify DN): `new_rdn` like `CN=New Name`, `new_superior`
    /// the new parent (None: stays where it is).
    pub async fn rename(
        &mut self,
        dn: &str,
        new_rdn: &str,
        new_superior: Option<&str>,
    ) -> Result<(), LdapError> {
        let res = self
            .ldap
            .modifydn(dn, new_rdn, true, new_superior)
            .await
            .map_err(|e| self.map(e))?;
        Self::check(res).map(|_| ())
    }

    /// A modify with optional request controls.
    pub async fn modify(
        &mut self,
        dn: &str,
        mods: Vec<Mod<Vec<u8>>>,
        ctrls: Vec<RawControl>,
    ) -> Result<(), LdapError> {
        let ldap = if ctrls.is_empty() {
            &mut self.ldap
        } else {
            self.ldap.with_controls(ctrls)
        };
        let res = ldap.modify(dn, mods).await;
        let res = res.map_err(|e| from_ldap3(e, &self.url))?;
        Self::check(res).map(|_| ())
    }

    /// Ends the session politely.
    pub async fn unbind(mut self) -> Result<(), LdapError> {
        self.ldap
            .unbind()
            .await
            .map_err(|e| from_ldap3(e, &self.url))
    }
}

#[cfg(test)]
mod tests {
    use super::socket_address;

    #[test]
    fn socket_addresses_take_the_schemes_default_port() {
        for (url, want) in [
            ("ldaps://dc1.corp.example", "dc1.corp.example:636"),
            ("LDAPS://dc1.corp.example/", "dc1.corp.example:636"),
            ("ldap://dc1.corp.example", "dc1.corp.example:389"),
            ("ldaps://127.0.0.2:3269", "127.0.0.2:3269"),
            ("ldap://[::1]", "[::1]:389"),
            ("ldaps://[fd00::5]:1636/dc=x??base", "[fd00::5]:1636"),
        ] {
            assert_eq!(socket_address(url), want, "{url}");
        }
    }
}
