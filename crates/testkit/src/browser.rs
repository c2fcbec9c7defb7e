//! A real browser for tests: Debian's headless `chromium` driven by `chromedriver` over the W3C
//! WebDriver protocol (plain JSON over HTTP on loopback, so a small client is enough), and the
//! page checks every portal page must pass: axe-core (accessibility, injected into the page)
//! and html-validate (markup), both from `tools/web-check` (installed by `scripts/deps.sh`).
//!
//! A test that fails leaves a screenshot and the page's HTML under
//! `target/browser-failures/<test>/` ([`Browser::keep_on_failure`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::process::{self, ServerProcess};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver with one headless Chromium session.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    _driver: ServerProcess,
    _profile: tempfile::TempDir,
    artifacts: Option<PathBuf>,
}

/// An element on the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless session.
    pub async fn start() -> Result<Browser> {
        let driver = process::find_program("chromedriver")?;
        let chromium = process::find_program("chromium")?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let profile = process::instance_dir("chromium")?;
        let log = std::fs::File::create(profile.path().join("chromedriver.log"))?;
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut server = ServerProcess::new("chromedriver", process::spawn_server(cmd)?);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let status = format!("{base}/status");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            server.ensure_running()?;
            if let Ok(r) = http.get(&status).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if std::time::Instant::now() > deadline {
                bail!("chromedriver did not answer on {base} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let data_dir = profile.path().join("profile");
        // The flags keep Chromium off the network it cannot reach here (background services,
        // updates, sync) and let it run as root in a container.
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", data_dir.display()),
                ]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = r["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("chromedriver did not open a session: {r}"))?
            .to_owned();
        Ok(Browser {
            http,
            base,
            session,
            _driver: server,
            _profile: profile,
            artifacts: None,
        })
    }

    /// Saves a screenshot and the page's HTML under `target/browser-failures/<name>/` if the
    /// test panics while this browser is alive.
    pub fn keep_on_failure(&mut self, name: &str) {
        self.artifacts = Some(failures_dir().join(name));
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await?.json().await?;
        if let Some(err) = r["value"]["error"].as_str() {
            bail!("WebDriver {path}: {err}: {}", r["value"]["message"]);
        }
        Ok(r["value"].clone())
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post("/url", json!({ "url": url })).await.map(|_| ())
    }

    pub async fn current_url(&self) -> Result<String> {
        Ok(self
            .get("/url")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    pub async fn title(&self) -> Result<String> {
        Ok(self
            .get("/title")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The current DOM, serialised.
    pub async fn source(&self) -> Result<String> {
        Ok(self
            .get("/source")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The first element matching the CSS `selector`.
    pub async fn find(&self, selector: &str) -> Result<Element> {
        let v = self
            .post(
                "/element",
                json!({ "using": "css selector", "value": selector }),
            )
            .await
            .with_context(|| format!("finding {selector:?}"))?;
        Ok(Element(v[ELEMENT].as_str().unwrap_or_default().to_owned()))
    }

    /// Waits (polling, up to 30 s) until an element matches `selector`: after a click that
    /// submits a form, the next page may still be loading when the click returns.
    pub async fn wait_for(&self, selector: &str) -> Result<Element> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.find(selector).await {
                Ok(e) => return Ok(e),
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(e.context(format!("waiting 30 s for {selector:?}")))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Every element matching `selector`.
    pub async fn find_all(&self, selector: &str) -> Result<Vec<Element>> {
        let v = self
            .post(
                "/elements",
                json!({ "using": "css selector", "value": selector }),
            )
            .await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|e| Element(e[ELEMENT].as_str().unwrap_or_default().to_owned()))
            .collect())
    }

    /// Types `text` into the element.
    pub async fn type_into(&self, selector: &str, text: &str) -> Result<()> {
        let e = self.find(selector).await?;
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text }))
            .await
            .map(|_| ())
    }

    pub async fn click(&self, selector: &str) -> Result<()> {
        let e = self.find(selector).await?;
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await
            .map(|_| ())
    }

    /// The visible text of the element.
    pub async fn text(&self, selector: &str) -> Result<String> {
        let e = self.find(selector).await?;
        Ok(self
            .get(&format!("/element/{}/text", e.0))
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Clicks `selector`, which submits a form or follows a link, and waits (up to 30 s) until
    /// the next page has loaded: the old document is marked, the new one is not.
    pub async fn submit(&self, selector: &str) -> Result<()> {
        self.execute("window.dirbridgeOldPage = true", vec![])
            .await?;
        self.click(selector).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let loaded = self
                .execute(
                    "return window.dirbridgeOldPage === undefined && document.readyState === 'complete'",
                    vec![],
                )
                .await
                .unwrap_or(Value::Bool(false));
            if loaded == Value::Bool(true) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("no new page within 30 s after clicking {selector}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The text of `selector` once it is on the page ([`Browser::wait_for`]).
    pub async fn wait_for_text(&self, selector: &str) -> Result<String> {
        self.wait_for(selector).await?;
        self.text(selector).await
    }

    /// The current page's markup: Chromium's serialisation of the document, which for pages no
    /// script has changed is the server's markup with boolean attributes written
    /// `required=""`; those are written back the way the templates write them.
    pub async fn served_html(&self) -> Result<String> {
        let doc = self
            .execute(
                "return '<!DOCTYPE html>\\n' + document.documentElement.outerHTML",
                vec![],
            )
            .await?;
        let mut html = doc.as_str().unwrap_or_default().to_string();
        for attr in [
            "required",
            "hidden",
            "defer",
            "checked",
            "selected",
            "formnovalidate",
        ] {
            html = html.replace(&format!(" {attr}=\"\""), &format!(" {attr}"));
        }
        Ok(html)
    }

    /// What axe-core (in the browser) and html-validate (on [`Browser::served_html`]) find
    /// wrong with the current page, one line each, prefixed with `what`; empty when clean.
    pub async fn page_problems(&self, what: &str) -> Result<Vec<String>> {
        let mut problems: Vec<String> = self
            .axe_violations()
            .await?
            .into_iter()
            .map(|v| format!("{what}: axe-core: {v}"))
            .collect();
        let html = self.served_html().await?;
        problems.extend(
            html_errors(&html)?
                .into_iter()
                .map(|e| format!("{what}: html-validate: {e}")),
        );
        Ok(problems)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// The page's cookies as WebDriver reports them (name, value, secure, httpOnly, sameSite…).
    pub async fn cookies(&self) -> Result<Vec<Value>> {
        Ok(self
            .get("/cookie")
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Deletes every cookie of the current page's origin.
    pub async fn delete_cookies(&self) -> Result<()> {
        self.call(reqwest::Method::DELETE, "/cookie", None)
            .await
            .map(|_| ())
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        use base64::Engine;
        let v = self.get("/screenshot").await?;
        Ok(base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default())?)
    }

    /// Saves a screenshot and the HTML of the current page as `<dir>/<name>.png|.html`.
    pub async fn save(&self, dir: &Path, name: &str) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{name}.png")), self.screenshot().await?)?;
        std::fs::write(dir.join(format!("{name}.html")), self.source().await?)?;
        Ok(())
    }

    /// The axe-core violations of the current page (WCAG 2.1 A and AA rules and best
    /// practices), each as `id: help (selectors)`.
    pub async fn axe_violations(&self) -> Result<Vec<String>> {
        let axe = std::fs::read_to_string(web_check_dir().join("node_modules/axe-core/axe.min.js"))
            .context("reading axe-core (bash scripts/deps.sh installs it)")?;
        // WebDriver scripts run outside the page's CSP, so the portal needs no exception.
        self.execute(&axe, vec![]).await?;
        let v = self
            .post(
                "/execute/async",
                json!({ "script": "const done = arguments[arguments.length - 1]; \
                    axe.run(document, { resultTypes: ['violations'] }) \
                    .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' (' + \
                    v.nodes.map(n => n.target.join(' ')).join(', ') + ')'))) \
                    .catch(e => done(['axe failed: ' + e]));", "args": [] }),
            )
            .await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(dir) = self.artifacts.take() {
            if std::thread::panicking() {
                // Drop cannot await: fetch the artifacts on a small runtime of our own, with a
                // client of its own (the test's client belongs to the test's runtime).
                self.http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap_or_default();
                let this = &*self;
                let saved = std::thread::scope(|s| {
                    s.spawn(|| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map(|rt| rt.block_on(this.save(&dir, "failure")))
                    })
                    .join()
                });
                match saved {
                    Ok(Ok(Ok(()))) => {
                        eprintln!("browser: screenshot and HTML in {}", dir.display())
                    }
                    _ => eprintln!(
                        "browser: could not save the failure artifacts to {}",
                        dir.display()
                    ),
                }
            }
        }
        // Stopping chromedriver's process group ends Chromium too.
    }
}

/// `tools/web-check` of this workspace.
pub fn web_check_dir() -> PathBuf {
    crate::requirements::workspace_root().join("tools/web-check")
}

/// Where failing browser tests leave their screenshots and HTML.
pub fn failures_dir() -> PathBuf {
    crate::cache::cache_root()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
        .join("browser-failures")
}

/// Where browser tests leave the screenshots docs/portal.md shows.
pub fn screenshots_dir() -> PathBuf {
    failures_dir().with_file_name("portal-screenshots")
}

/// html-validate's findings on `html` (an HTML document as the server sent it), one line each;
/// empty when the markup is valid. Rules: `html-validate:recommended` with the document's
/// own `<!doctype html>`.
pub fn html_errors(html: &str) -> Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let page = dir.path().join("page.html");
    std::fs::write(&page, html)?;
    let config = dir.path().join(".htmlvalidate.json");
    std::fs::write(
        &config,
        r#"{ "extends": ["html-validate:recommended"], "root": true }"#,
    )?;
    let out = Command::new(process::find_program("node")?)
        .arg(web_check_dir().join("node_modules/html-validate/bin/html-validate.mjs"))
        .arg("--config")
        .arg(&config)
        .arg("--formatter")
        .arg("text")
        .arg(&page)
        .current_dir(dir.path())
        .output()
        .context("running html-validate (bash scripts/deps.sh installs it)")?;
    if out.status.success() {
        return Ok(Vec::new());
    }
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        bail!("html-validate failed with {} and said nothing", out.status);
    }
    Ok(lines)
}
