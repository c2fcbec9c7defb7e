//! A relying party for testing the OpenID Connect provider: `tools/web-check/oidc-rp.mjs` on
//! openid-client (panva), an independent implementation that validates what the provider sends.
//! It listens on a loopback port of its own; [`RelyingParty::configure`] gives it the issuer
//! and client (the secret on its stdin, never on a command line).

use std::process::Stdio;

use anyhow::{bail, Context, Result};
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

impl RelyingParty {
    pub async fn start() -> Result<RelyingParty> {
        let mut child = tokio::process::Command::new(crate::process::find_program("node")?)
            .arg(web_check_dir().join("oidc-rp.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context(
                "starting the relying party (node; bash scripts/deps.sh installs openid-client)",
            )?;
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
        .context("the relying party exited (is openid-client installed? bash scripts/deps.sh)")?;
    serde_json::from_str(&line).with_context(|| format!("the relying party said {line:?}"))
}
