//! One-time codes by text message and voice call, through an HTTP gateway the operator
//! describes in `[sms.text]` and `[sms.voice]` (docs/operations.md, "SMS and voice gateway"):
//! the request's method, URL, headers, a form or JSON body whose values are templates with
//! `{phone}`, `{message}` and `{code}`, basic or bearer authentication with the secret read from
//! a file, and what counts as accepted (statuses, optionally a text the answer must contain) —
//! the common shape of Twilio-style APIs and of privacyIDEA's and LTB's HTTP providers.
//! Neither the code, the message nor the secret is ever logged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

/// `[sms]`: the gateways. A method whose gateway is not set up cannot be used to send codes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// Text messages to the registered mobile phone.
    pub text: Option<Gateway>,
    /// Voice calls to the registered office phone.
    pub voice: Option<Gateway>,
    /// How long one request to a gateway may take.
    pub timeout_secs: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            text: None,
            voice: None,
            timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`.
    #[default]
    Form,
    /// A JSON object with string values.
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    #[default]
    None,
    /// `Authorization: Basic` with `username` and the secret file's content as the password.
    Basic,
    /// `Authorization: Bearer` with the secret file's content.
    Bearer,
}

/// One gateway request template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Where to send; may hold `{phone}` (URL-encoded when filled in).
    pub url: String,
    /// `POST` unless told otherwise.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra headers, sent as given.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub format: BodyFormat,
    /// The body's fields; each value a template with `{phone}`, `{message}`, `{code}`.
    #[serde(default)]
    pub body: BTreeMap<String, String>,
    #[serde(default)]
    pub auth: Auth,
    pub username: Option<String>,
    /// The password or token (first line, trimmed), read at each send so it can be rotated.
    pub secret_file: Option<PathBuf>,
    /// Statuses that mean "accepted" (default 200, 201, 202, 204).
    #[serde(default = "default_statuses")]
    pub success_statuses: Vec<u16>,
    /// A text the gateway's answer must contain to count as accepted (e.g. `"queued"`).
    pub success_body_contains: Option<String>,
    /// The `{message}`; holds `{code}`. Default: "Your password reset code is {code}. …".
    pub message: Option<String>,
}

fn default_method() -> String {
    "POST".into()
}

fn default_statuses() -> Vec<u16> {
    vec![200, 201, 202, 204]
}

const DEFAULT_MESSAGE: &str = "Your password reset code is {code}. It is valid for 5 minutes.";
const DEFAULT_VOICE_MESSAGE: &str =
    "Your password reset code is {code}. Again: {code}. It is valid for 5 minutes.";

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("no gateway is configured for this method ([sms.text] or [sms.voice] in the cloud configuration)")]
    NotConfigured,
    #[error("the gateway configuration is not usable: {0}")]
    Config(String),
    #[error("the gateway secret file {path} cannot be read: {reason}")]
    Secret { path: String, reason: String },
    #[error("the gateway at {host} could not be reached: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("the gateway at {host} refused the message (HTTP {status})")]
    Refused { host: String, status: u16 },
    #[error("the gateway at {host} answered HTTP {status} without the expected text")]
    Unexpected { host: String, status: u16 },
}

/// How long a gateway that failed is taken as down: sends for its channel are refused (503)
/// for everyone meanwhile, then tried again.
pub const RETRY_AFTER_SECS: i64 = 60;

/// What this cloud process last saw of each gateway. Codes are sent in the background, so the
/// answer to a send never depends on whether the account has a phone to send to (that would
/// tell who has one); it depends only on this: a gateway that failed within
/// [`RETRY_AFTER_SECS`] is down for every account alike.
#[derive(Debug, Default)]
pub struct Health {
    /// When each channel's gateway last failed (0: not since it last worked).
    text_failed_at: AtomicI64,
    voice_failed_at: AtomicI64,
}

impl Health {
    fn slot(&self, voice: bool) -> &AtomicI64 {
        if voice {
            &self.voice_failed_at
        } else {
            &self.text_failed_at
        }
    }

    /// Whether the channel's gateway failed less than [`RETRY_AFTER_SECS`] before `now`.
    pub fn is_down(&self, voice: bool, now: i64) -> bool {
        let at = self.slot(voice).load(Ordering::Relaxed);
        at != 0 && now < at + RETRY_AFTER_SECS
    }

    pub fn failed(&self, voice: bool, now: i64) {
        self.slot(voice).store(now.max(1), Ordering::Relaxed);
    }

    pub fn worked(&self, voice: bool) {
        self.slot(voice).store(0, Ordering::Relaxed);
    }
}

/// Fills `{phone}`, `{message}` and `{code}` in (the message itself holding `{code}`).
fn fill(template: &str, phone: &str, message: &str, code: &str) -> Zeroizing<String> {
    Zeroizing::new(
        template
            .replace("{message}", message)
            .replace("{phone}", phone)
            .replace("{code}", code),
    )
}

/// The phone number as gateways want it: `+` and digits only.
fn dial_string(phone: &str) -> String {
    phone
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect()
}

/// Sends `code` to `phone` through `g`; `voice` picks the spoken default message.
pub async fn send(
    g: &Gateway,
    timeout_secs: u64,
    phone: &str,
    code: &str,
    voice: bool,
) -> Result<(), SmsError> {
    let phone = dial_string(phone);
    let spaced: String = if voice {
        // Read digit by digit.
        code.chars()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        code.to_string()
    };
    let template = g.message.as_deref().unwrap_or(if voice {
        DEFAULT_VOICE_MESSAGE
    } else {
        DEFAULT_MESSAGE
    });
    let message = Zeroizing::new(template.replace("{code}", &spaced));
    let encoded = serde_urlencoded::to_string([("", &phone)]).unwrap_or_default();
    let url = g.url.replace("{phone}", encoded.trim_start_matches('='));
    let parsed = reqwest::Url::parse(&url).map_err(|e| SmsError::Config(format!("url: {e}")))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let method = reqwest::Method::from_bytes(g.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| SmsError::Config(format!("method {:?}", g.method)))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SmsError::Config(e.to_string()))?;
    let mut req = client.request(method, parsed);
    for (k, v) in &g.headers {
        req = req.header(k, v);
    }
    let fields: Vec<(String, Zeroizing<String>)> = g
        .body
        .iter()
        .map(|(k, v)| (k.clone(), fill(v, &phone, &message, code)))
        .collect();
    if !fields.is_empty() {
        req = match g.format {
            BodyFormat::Form => {
                let pairs: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let body = Zeroizing::new(
                    serde_urlencoded::to_string(&pairs)
                        .map_err(|e| SmsError::Config(format!("body: {e}")))?,
                );
                req.header("content-type", "application/x-www-form-urlencoded")
                    .body(body.to_string())
            }
            BodyFormat::Json => {
                let map: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
                    .collect();
                req.json(&map)
            }
        };
    }
    if g.auth != Auth::None {
        let path = g
            .secret_file
            .as_ref()
            .ok_or_else(|| SmsError::Config("auth needs secret_file".into()))?;
        let secret =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| SmsError::Secret {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?);
        let secret = secret.lines().next().unwrap_or_default().trim();
        req = match g.auth {
            Auth::Basic => req.basic_auth(g.username.clone().unwrap_or_default(), Some(secret)),
            _ => req.bearer_auth(secret),
        };
    }
    let resp = req.send().await.map_err(|e| SmsError::Unreachable {
        host: host.clone(),
        reason: e.without_url().to_string(),
    })?;
    let status = resp.status().as_u16();
    if !g.success_statuses.contains(&status) {
        return Err(SmsError::Refused { host, status });
    }
    if let Some(needle) = &g.success_body_contains {
        let text = resp.text().await.unwrap_or_default();
        if !text.contains(needle.as_str()) {
            return Err(SmsError::Unexpected { host, status });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_phone_message_and_code() {
        let m = "Code {code}";
        assert_eq!(
            &*fill(
                "{phone}|{message}",
                "+4791234567",
                &m.replace("{code}", "123"),
                "123"
            ),
            "+4791234567|Code 123"
        );
        assert_eq!(dial_string("+47 912 34-567"), "+4791234567");
    }

    #[test]
    fn a_failed_gateway_is_down_for_a_while_per_channel() {
        let h = Health::default();
        assert!(!h.is_down(false, 100));
        h.failed(false, 100);
        assert!(h.is_down(false, 100 + RETRY_AFTER_SECS - 1));
        assert!(!h.is_down(false, 100 + RETRY_AFTER_SECS));
        assert!(!h.is_down(true, 100));
        h.worked(false);
        assert!(!h.is_down(false, 101));
    }
}
