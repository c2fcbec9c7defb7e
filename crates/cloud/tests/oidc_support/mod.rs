//! A user agent for the provider's pages without a browser (it keeps cookies, follows the
//! provider's own redirects and fills its sign-in and consent forms), and PKCE helpers.

#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::Engine as _;
use reqwest::StatusCode;
use sha2::Digest;

use crate::common::Cloud;

pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

pub fn pkce() -> (String, String) {
    let verifier = tenant::secrets::new_prefixed_token("").0 + "-verifier";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

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
    pub fn new(cloud: &Cloud) -> Ua {
        Ua {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: cloud.base.clone(),
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
    let q = url.split_once('?').map(|x| x.1).unwrap_or("");
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .unwrap()
        .into_iter()
        .collect()
}
