//! Outgoing mail over SMTP (lettre): self-service password reset codes and "your password was
//! reset" notices. The `[smtp]` section of the configuration says where; with no host, nothing
//! is sent and a warning is logged. Message bodies are never logged.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

use crate::config::SmtpConfig;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("no SMTP relay is configured ([smtp] host)")]
    NotConfigured,
    #[error("the address {0:?} is not a valid mailbox")]
    BadAddress(String),
    #[error("the message could not be built: {0}")]
    Build(String),
    #[error("the SMTP relay {host}:{port} refused or failed: {reason}")]
    Relay {
        host: String,
        port: u16,
        reason: String,
    },
}

fn transport(c: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let host = c.host.as_deref().ok_or(MailError::NotConfigured)?;
    let relay = |reason: String| MailError::Relay {
        host: host.to_string(),
        port: c.port,
        reason,
    };
    let builder = if c.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| relay(e.to_string()))?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
    };
    Ok(builder
        .port(c.port)
        .timeout(Some(std::time::Duration::from_secs(15)))
        .build())
}

/// Sends one plain-text message. `body` is wiped from memory after sending (it may hold a code).
pub async fn send(
    c: &SmtpConfig,
    to: &str,
    subject: &str,
    body: Zeroizing<String>,
) -> Result<(), MailError> {
    let transport = transport(c)?;
    let from: Mailbox = c
        .from
        .parse()
        .map_err(|_| MailError::BadAddress(c.from.clone()))?;
    let to_box: Mailbox = to
        .parse()
        .map_err(|_| MailError::BadAddress(to.to_string()))?;
    let message = Message::builder()
        .from(from)
        .to(to_box)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .map_err(|e| MailError::Build(e.to_string()))?;
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| MailError::Relay {
            host: c.host.clone().unwrap_or_default(),
            port: c.port,
            reason: e.to_string(),
        })
}

/// The message carrying a one-time reset code.
pub fn code_message(code: &str, minutes: i64) -> (String, Zeroizing<String>) {
    (
        "Your password reset code".to_string(),
        Zeroizing::new(format!(
            "Your verification code is {code}\r\n\r\n\
             Enter it on the password reset page within {minutes} minutes. \
             If you did not ask to reset your password, ignore this message: \
             nobody can reset it without the code.\r\n"
        )),
    )
}

/// Sends one message in the background (the caller's answer and timing do not wait for the
/// relay); a failure is logged with the request's tracking id as `what`.
pub fn send_later(
    c: &SmtpConfig,
    to: String,
    subject: String,
    body: Zeroizing<String>,
    what: &'static str,
) {
    let c = c.clone();
    let tracking = crate::error::tracking_id();
    tokio::spawn(async move {
        if let Err(e) = send(&c, &to, &subject, body).await {
            tracing::error!(tracking_id = %tracking, error = %e, "could not send {what}");
        }
    });
}

/// The notice sent to a person whenever their password reset methods change: which ones, and
/// whether they or an administrator (`by`) changed them. No value of a method is repeated.
pub fn methods_notice(
    upn: &str,
    changed: &[&str],
    by: Option<&str>,
) -> (String, Zeroizing<String>) {
    let who = match by {
        Some(admin) => format!("by the administrator {admin}"),
        None => "by you, signed in as yourself".to_string(),
    };
    (
        "Your password reset methods were changed".to_string(),
        Zeroizing::new(format!(
            "The password reset methods of the account {upn} were changed {who}: {}.\r\n\r\n\
             If you did not expect this, contact your administrator at once: whoever controls \
             these methods can reset your password.\r\n",
            changed.join(", ")
        )),
    )
}

/// The notice sent when an administrator (`by`) lifted the account's password-reset lockout.
pub fn lockout_cleared_notice(upn: &str, by: &str) -> (String, Zeroizing<String>) {
    (
        "Your password reset lockout was cleared".to_string(),
        Zeroizing::new(format!(
            "The administrator {by} cleared the password reset lockout of the account {upn}: \
             password reset can be used again at once.\r\n\r\n\
             If you did not ask for this, contact your administrator: the lockout follows \
             repeated wrong codes or answers, which may mean someone tried to reset your \
             password.\r\n"
        )),
    )
}
