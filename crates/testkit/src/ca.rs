//! A throwaway certificate authority for test servers.
//!
//! Real directories are reached over TLS with certificate verification on, so every test server
//! gets a server certificate with subjectAltNames (its DNS name and its IP address) issued by a
//! CA that the client is told to trust. One CA per test process (`TestCa::shared`) is enough;
//! `TestCa::new` makes an unrelated one, for "wrong CA" tests.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// A CA certificate and its key, able to issue server certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    cert_pem: String,
}

/// A server certificate and its private key, both PEM.
#[derive(Clone)]
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where [`ServerCert::write`] put the files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl TestCa {
    /// A new CA named `common_name`.
    pub fn new(common_name: &str) -> Result<TestCa> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "dirbridge testkit");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            CertifiedIssuer::self_signed(params, key).context("self-signing the test CA")?;
        let cert_pem = issuer.pem();
        Ok(TestCa { issuer, cert_pem })
    }

    /// The CA every fixture of this process uses.
    pub fn shared() -> &'static TestCa {
        static CA: OnceLock<TestCa> = OnceLock::new();
        CA.get_or_init(|| TestCa::new("dirbridge testkit CA").expect("creating the test CA"))
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the CA certificate (PEM) to `path`.
    pub fn write_cert(&self, path: &Path) -> Result<()> {
        std::fs::write(path, &self.cert_pem).with_context(|| format!("writing {}", path.display()))
    }

    /// Issues a TLS server certificate valid for the given DNS names and IP addresses.
    pub fn issue_server_cert(&self, dns_names: &[&str], ips: &[IpAddr]) -> Result<ServerCert> {
        let key = KeyPair::generate().context("generating a server key")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "dirbridge testkit");
        dn.push(
            DnType::CommonName,
            dns_names.first().copied().unwrap_or("localhost"),
        );
        params.distinguished_name = dn;
        for name in dns_names {
            params.subject_alt_names.push(SanType::DnsName(
                (*name)
                    .try_into()
                    .with_context(|| format!("{name} is not a DNS name"))?,
            ));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the server certificate")?;
        Ok(ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl ServerCert {
    /// Writes `<stem>-cert.pem`, `<stem>-key.pem` (mode 0600, as Samba insists) and `ca.pem`
    /// into `dir`.
    pub fn write(&self, dir: &Path, stem: &str, ca: &TestCa) -> Result<CertFiles> {
        use std::os::unix::fs::PermissionsExt;
        let files = CertFiles {
            cert: dir.join(format!("{stem}-cert.pem")),
            key: dir.join(format!("{stem}-key.pem")),
            ca: dir.join("ca.pem"),
        };
        std::fs::write(&files.cert, &self.cert_pem)
            .with_context(|| format!("writing {}", files.cert.display()))?;
        std::fs::write(&files.key, &self.key_pem)
            .with_context(|| format!("writing {}", files.key.display()))?;
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600))?;
        ca.write_cert(&files.ca)?;
        Ok(files)
    }
}
