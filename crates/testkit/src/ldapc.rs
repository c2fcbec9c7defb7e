//! The small LDAP client the fixtures use for their own setup work (readiness checks, creating
//! OUs and users as the directory administrator). Blocking, and callable from inside an async
//! test: every call runs on its own short-lived thread with its own runtime.
//!
//! This is deliberately not `dirbridge-ldap`: the fixtures must not depend on the code under
//! test.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub url: String,
    pub ca_pem: String,
    pub starttls: bool,
    pub bind: Option<(String, String)>,
}

/// Runs `f` to completion on a fresh thread with a current-thread runtime.
pub(crate) fn block_on<F>(f: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a tokio runtime")
                .block_on(f)
        })
        .join()
        .expect("testkit LDAP thread panicked")
    })
}

/// A rustls client configuration trusting only `ca_pem` (ring provider).
pub fn client_config(ca_pem: &str) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.context("parsing the CA PEM")?)
            .context("adding the CA certificate")?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

pub(crate) async fn connect(t: &Target) -> Result<Ldap> {
    let settings = LdapConnSettings::new()
        .set_conn_timeout(Duration::from_secs(5))
        .set_starttls(t.starttls)
        .set_config(Arc::new(client_config(&t.ca_pem)?));
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &t.url)
        .await
        .with_context(|| format!("connecting to {}", t.url))?;
    ldap3::drive!(conn);
    ldap.with_timeout(Duration::from_secs(30));
    if let Some((dn, pw)) = &t.bind {
        ldap.simple_bind(dn, pw)
            .await?
            .success()
            .with_context(|| format!("binding as {dn}"))?;
    }
    Ok(ldap)
}

/// Reads the root DSE: proves the server answers LDAP over TLS.
pub(crate) fn root_dse(t: &Target) -> Result<SearchEntry> {
    block_on(async {
        let mut ldap = connect(t).await?;
        let (mut entries, _) = ldap
            .search("", Scope::Base, "(objectClass=*)", vec!["*", "+"])
            .await?
            .success()?;
        let _ = ldap.unbind().await;
        let e = entries.pop().ok_or_else(|| anyhow!("empty root DSE"))?;
        Ok(SearchEntry::construct(e))
    })
}

/// An attribute list for [`add`]: text values.
pub(crate) type Attrs = Vec<(Vec<u8>, HashSet<Vec<u8>>)>;

pub(crate) fn attr(name: &str, values: &[&[u8]]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (
        name.as_bytes().to_vec(),
        values.iter().map(|v| v.to_vec()).collect(),
    )
}

pub(crate) fn add(t: &Target, dn: &str, attrs: Attrs) -> Result<()> {
    block_on(async {
        let mut ldap = connect(t).await?;
        let res = ldap.add(dn, attrs).await?;
        let _ = ldap.unbind().await;
        res.success().with_context(|| format!("adding {dn}"))?;
        Ok(())
    })
}

pub(crate) fn modify(t: &Target, dn: &str, mods: Vec<Mod<Vec<u8>>>) -> Result<()> {
    block_on(async {
        let mut ldap = connect(t).await?;
        let res = ldap.modify(dn, mods).await?;
        let _ = ldap.unbind().await;
        res.success().with_context(|| format!("modifying {dn}"))?;
        Ok(())
    })
}

pub(crate) fn delete(t: &Target, dn: &str) -> Result<()> {
    block_on(async {
        let mut ldap = connect(t).await?;
        let res = ldap.delete(dn).await?;
        let _ = ldap.unbind().await;
        res.success().with_context(|| format!("deleting {dn}"))?;
        Ok(())
    })
}

/// Renames `dn` to `new_rdn` under the same parent (modrdn, deleting the old RDN value).
pub(crate) fn rename(t: &Target, dn: &str, new_rdn: &str) -> Result<()> {
    block_on(async {
        let mut ldap = connect(t).await?;
        let res = ldap.modifydn(dn, new_rdn, true, None).await?;
        let _ = ldap.unbind().await;
        res.success()
            .with_context(|| format!("renaming {dn} to {new_rdn}"))?;
        Ok(())
    })
}

#[allow(dead_code)]
pub(crate) fn search(
    t: &Target,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
) -> Result<Vec<SearchEntry>> {
    block_on(async {
        let mut ldap = connect(t).await?;
        let (entries, res) = ldap
            .search(base, scope, filter, attrs.to_vec())
            .await?
            .non_error()?;
        let _ = ldap.unbind().await;
        if res.rc != 0 {
            bail!("searching {base}: {res}");
        }
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    })
}
