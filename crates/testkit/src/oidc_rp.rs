//! Relying parties for testing the OpenID Connect provider, two independent implementations
//! that validate what the provider sends: openid-client (panva, Node:
//! `tools/web-check/oidc-rp.mjs`) and Authlib (Python: `tools/oidc-rp/authlib_rp.py`). Both
//! speak the same protocol, so a test runs the same steps with either ([`Kind`]). Each listens
//! on a loopback port of its own; [`RelyingParty::configure`] gives it the issuer and client
//! (the secret on its stdin, never on a command line).

use std::collections::BTreeMap;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::browser::web_check_dir;

pub struct RelyingParty {
    /// `http://127.0.0.1:PORT`: `/login` starts a sign-in, `/callback` is its redirect URI,
    /// `/logout` starts RP-initiated logout, `/signed-out` its post-logout URI.
    pub base: String,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// Which implementation plays the relying party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// openid-client (npm), run by Node.
    OpenIdClient,
    /// Authlib (Debian's `python3-authlib`), run by Debian's Python.
    Authlib,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::OpenIdClient, Kind::Authlib];

    fn command(self) -> Result<tokio::process::Command> {
        Ok(match self {
            Kind::OpenIdClient => {
                let mut c = tokio::process::Command::new(crate::process::find_program("node")?);
                c.arg(web_check_dir().join("oidc-rp.mjs"));
                c
            }
            Kind::Authlib => {
                let mut c = tokio::process::Command::new("/usr/bin/python3");
                c.arg(crate::requirements::workspace_root().join("tools/oidc-rp/authlib_rp.py"));
                c
            }
        })
    }
}

impl RelyingParty {
    /// openid-client as the relying party.
    pub async fn start() -> Result<RelyingParty> {
        RelyingParty::start_kind(Kind::OpenIdClient).await
    }

    pub async fn start_kind(kind: Kind) -> Result<RelyingParty> {
        let mut child = kind
            .command()?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting the relying party {kind:?} (bash scripts/deps.sh installs it)")
            })?;
        let stdin = child.stdin.take().context("no stdin")?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let first = next_json(&mut lines).await?;
        let port = first["port"]
            .as_u64()
            .context("the relying party named no port")?;
        Ok(RelyingParty {
            base: format!("http://127.0.0.1:{port}"),
            child,
            stdin,
            lines,
        })
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.base)
    }

    pub fn post_logout_uri(&self) -> String {
        format!("{}/signed-out", self.base)
    }

    /// Discovery of `issuer` for the client (`secret` `None`: a public client with PKCE only);
    /// `scope` `None`: `openid profile email groups offline_access`.
    pub async fn configure(
        &mut self,
        issuer: &str,
        client_id: &str,
        secret: Option<&str>,
        scope: Option<&str>,
    ) -> Result<()> {
        let line = json!({"issuer": issuer, "clientId": client_id, "clientSecret": secret, "scope": scope});
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        let ready = next_json(&mut self.lines).await?;
        if ready["ready"] != true {
            bail!("the relying party did not take the configuration: {ready}");
        }
        Ok(())
    }

    /// What the last `/callback` found (claims, userinfo, refresh, introspection…).
    pub async fn result(&self) -> Result<Value> {
        Ok(reqwest::get(format!("{}/result", self.base))
            .await?
            .json()
            .await?)
    }
}

impl Drop for RelyingParty {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn next_json(lines: &mut Lines<BufReader<ChildStdout>>) -> Result<Value> {
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .context("the relying party did not answer within 30 s")??
        .context("the relying party exited (are openid-client and python3-authlib installed? bash scripts/deps.sh)")?;
    serde_json::from_str(&line).with_context(|| format!("the relying party said {line:?}"))
}

// ---------------------------------------------------------------- the browser's part

/// The code verifier and S256 challenge of a new PKCE pair.
pub fn pkce() -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A user agent for the provider's pages without a browser: it keeps cookies (also
/// `Secure` ones over loopback http, as browsers do), follows the provider's own redirects and
/// fills its sign-in and consent forms.
pub struct Ua {
    http: reqwest::Client,
    base: String,
    pub cookies: BTreeMap<String, String>,
}

/// One answer: status, `Location` (made absolute for the provider's own), body.
pub struct Got {
    pub status: StatusCode,
    pub location: Option<String>,
    pub html: String,
    pub csp: Option<String>,
}

impl Ua {
    /// A user agent of the provider at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Ua {
        Ua::with_headers(base, reqwest::header::HeaderMap::new())
    }

    /// A user agent whose requests come from `address` as told by a proxy the provider trusts
    /// (`X-Forwarded-For`; the benchmark harness gives each person an address of their own).
    pub fn from_address(base: &str, address: &str) -> Ua {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(v) = reqwest::header::HeaderValue::from_str(address) {
            headers.insert("x-forwarded-for", v);
        }
        Ua::with_headers(base, headers)
    }

    fn with_headers(base: &str, headers: reqwest::header::HeaderMap) -> Ua {
        Ua {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(headers)
                .build()
                .unwrap(),
            base: base.to_string(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Got {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let r = req.header("cookie", cookie).send().await.unwrap();
        for c in r.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .map(|l| {
                if l.starts_with('/') {
                    format!("{}{l}", self.base)
                } else {
                    l
                }
            });
        let csp = r
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_string());
        Got {
            status,
            location,
            html: r.text().await.unwrap(),
            csp,
        }
    }

    pub async fn get(&mut self, url: &str) -> Got {
        let req = self.http.get(url);
        self.send(req).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Got {
        let req = self.http.post(url).form(form);
        self.send(req).await
    }

    /// Follows the provider's redirects from `got` and fills its forms (sign in as `upn`,
    /// then `decision` on a consent page) until the browser would leave for the app: the
    /// address it goes to.
    pub async fn drive(
        &mut self,
        mut got: Got,
        upn: &str,
        password: &str,
        decision: &str,
    ) -> String {
        for _ in 0..10 {
            if let Some(loc) = got.location.clone() {
                if !loc.starts_with(&self.base) {
                    return loc;
                }
                got = self.get(&loc).await;
                continue;
            }
            assert_eq!(got.status, StatusCode::OK, "{}", got.html);
            let action = field(&got.html, "action=\"");
            let url = format!("{}{action}", self.base);
            let csrf = field(&got.html, "name=\"csrf\" value=\"");
            let request = field(&got.html, "name=\"request\" value=\"");
            got = if action.ends_with("/signin") {
                self.post(
                    &url,
                    &[
                        ("csrf", &csrf),
                        ("request", &request),
                        ("username", upn),
                        ("password", password),
                    ],
                )
                .await
            } else if action.ends_with("/consent") {
                self.post(
                    &url,
                    &[
                        ("csrf", &csrf),
                        ("request", &request),
                        ("decision", decision),
                    ],
                )
                .await
            } else {
                panic!("unexpected page: {}", got.html);
            };
        }
        panic!("too many steps");
    }
}

/// The value after `marker` up to the next quote.
pub fn field(html: &str, marker: &str) -> String {
    html.split(marker)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no {marker} in {html}"))
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
}

/// The query parameters of a URL.
pub fn query(url: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap_or_else(|_| panic!("not a URL: {url}"))
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
