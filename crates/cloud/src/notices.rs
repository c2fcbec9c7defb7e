//! The password notices (issue 13): the mails telling a person that their password was reset or
//! changed, and the Global Administrators that an administrator's was reset. Their texts are
//! minijinja templates from `[notifications]` in the cloud config (docs/operations.md,
//! "Notification mails"), rendered sandboxed (no loader, bounded fuel, strict variables) with
//! HTML autoescaping; built-in defaults otherwise. Who is mailed when is decided in
//! `crate::app::sspr::notify_password`; sending is [`crate::mail`].

use serde::Deserialize;
use zeroize::Zeroizing;

/// `[notifications]`: the templates of the mails sent when a password is reset or changed
/// (docs/operations.md, "Notification mails"). Each is optional: absent, the built-in text is
/// used. Templates are minijinja, sandboxed and autoescaped; `Config::load` refuses one that
/// does not render.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// To the person, after their password was reset (self-service or by an administrator) or
    /// their account unlocked.
    pub password_reset: Option<MailTemplate>,
    /// To the person, after they changed their password.
    pub password_changed: Option<MailTemplate>,
    /// To every Global Administrator, after an administrator's password was reset.
    pub admin_password_reset: Option<MailTemplate>,
}

/// A mail's subject and plain-text body, as minijinja templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailTemplate {
    pub subject: String,
    pub body: String,
}

/// Which password notice: to the person after a reset (or unlock) or a change of their password,
/// or to a Global Administrator after an administrator's password was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordNotice {
    Reset,
    Changed,
    AdminReset,
}

/// What a password notice's template may use (docs/operations.md, "Notification mails").
#[derive(Debug, Clone, serde::Serialize)]
pub struct NoticeFacts {
    /// The account whose password was reset or changed.
    pub user_principal_name: String,
    pub display_name: String,
    /// The administrator who reset it; none for self-service.
    pub by: Option<String>,
    /// Unlocked only, the password unchanged.
    pub unlocked: bool,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The request's tracking id (the support code).
    pub tracking_id: String,
}

const DEFAULT_RESET: (&str, &str) = (
    "Your account was {% if unlocked %}unlocked{% else %}reset{% endif %}",
    "The account {{ user_principal_name }} was {% if unlocked %}unlocked{% else %}reset{% endif %} \
{% if by %}by the administrator {{ by }}{% else %}through self-service password reset{% endif %} at {{ at }}.\r\n\r\n\
If this was not you, contact your administrator at once and give them the support code {{ tracking_id }}.\r\n",
);

const DEFAULT_CHANGED: (&str, &str) = (
    "Your password was changed",
    "The password of the account {{ user_principal_name }} was changed at {{ at }}.\r\n\r\n\
If this was not you, contact your administrator at once and give them the support code {{ tracking_id }}.\r\n",
);

const DEFAULT_ADMIN_RESET: (&str, &str) = (
    "An administrator's password was reset: {{ user_principal_name }}",
    "The password of the administrator {{ display_name }} ({{ user_principal_name }}) was reset \
{% if by %}by the administrator {{ by }}{% else %}through self-service password reset{% endif %} at {{ at }}.\r\n\r\n\
You get this mail as a Global Administrator. If you did not expect it, check the audit log \
(tracking id {{ tracking_id }}).\r\n",
);

/// The most work one template may do (minijinja's fuel: about one unit per instruction), so a
/// template with a runaway loop fails instead of spinning.
const TEMPLATE_FUEL: u64 = 50_000;

fn environment() -> minijinja::Environment<'static> {
    // The default filters, tests and functions; no loader, so nothing outside the template
    // (no file, no other template) can be reached.
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env
}

fn render_pair(
    subject: &str,
    body: &str,
    facts: &NoticeFacts,
) -> Result<(String, String), minijinja::Error> {
    let env = environment();
    let subject = env.render_str(subject, facts)?;
    let body = env.render_str(body, facts)?;
    // A subject is one line.
    let subject = subject
        .split(['\r', '\n'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok((subject, body))
}

fn sources(
    c: &NotificationsConfig,
    kind: PasswordNotice,
) -> (Option<&MailTemplate>, (&'static str, &'static str)) {
    match kind {
        PasswordNotice::Reset => (c.password_reset.as_ref(), DEFAULT_RESET),
        PasswordNotice::Changed => (c.password_changed.as_ref(), DEFAULT_CHANGED),
        PasswordNotice::AdminReset => (c.admin_password_reset.as_ref(), DEFAULT_ADMIN_RESET),
    }
}

/// The subject and body of a password notice: the configured template, or the built-in one
/// (also when the configured one fails to render, which is logged).
pub fn password_notice(
    c: &NotificationsConfig,
    kind: PasswordNotice,
    facts: &NoticeFacts,
) -> (String, Zeroizing<String>) {
    let (configured, default) = sources(c, kind);
    if let Some(t) = configured {
        match render_pair(&t.subject, &t.body, facts) {
            Ok((s, b)) => return (s, Zeroizing::new(b)),
            Err(e) => {
                tracing::error!(tracking_id = %facts.tracking_id, error = %e, "a [notifications] template failed to render; the built-in text is sent");
            }
        }
    }
    match render_pair(default.0, default.1, facts) {
        Ok((s, b)) => (s, Zeroizing::new(b)),
        Err(_) => (default.0.to_string(), Zeroizing::new(String::new())),
    }
}

/// Checks that every configured template renders (syntax, known variables, within its fuel),
/// so a mistake stops the cloud at start with the template's key instead of at the first reset.
pub fn check_templates(c: &NotificationsConfig) -> anyhow::Result<()> {
    let sample = NoticeFacts {
        user_principal_name: "ada@contoso.example".into(),
        display_name: "Ada".into(),
        by: Some("admin@contoso.example".into()),
        unlocked: false,
        at: "2026-01-01T00:00:00Z".into(),
        tracking_id: "00000000-0000-0000-0000-000000000000".into(),
    };
    for (key, kind) in [
        ("password_reset", PasswordNotice::Reset),
        ("password_changed", PasswordNotice::Changed),
        ("admin_password_reset", PasswordNotice::AdminReset),
    ] {
        if let (Some(t), _) = sources(c, kind) {
            for facts in [
                sample.clone(),
                NoticeFacts {
                    by: None,
                    unlocked: true,
                    ..sample.clone()
                },
            ] {
                render_pair(&t.subject, &t.body, &facts).map_err(|e| {
                    anyhow::anyhow!("[notifications.{key}] does not render: {e}. Fix the template (docs/operations.md, \"Notification mails\") or remove it to use the built-in text.")
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NoticeFacts {
        NoticeFacts {
            user_principal_name: "ada@contoso.example".into(),
            display_name: "<b>Ada & co</b>".into(),
            by: None,
            unlocked: false,
            at: "2026-12-07T12:00:00Z".into(),
            tracking_id: "t-1".into(),
        }
    }

    #[test]
    fn the_built_in_notices_say_what_happened_and_who_did_it() {
        let c = NotificationsConfig::default();
        let (s, b) = password_notice(&c, PasswordNotice::Reset, &facts());
        assert_eq!(s, "Your account was reset");
        assert!(
            b.contains("through self-service password reset at 2026-12-07T12:00:00Z"),
            "{}",
            *b
        );
        let by = NoticeFacts {
            by: Some("pa@contoso.example".into()),
            unlocked: true,
            ..facts()
        };
        let (s, b) = password_notice(&c, PasswordNotice::Reset, &by);
        assert_eq!(s, "Your account was unlocked");
        assert!(
            b.contains("by the administrator pa@contoso.example"),
            "{}",
            *b
        );
        let (s, _) = password_notice(&c, PasswordNotice::Changed, &facts());
        assert_eq!(s, "Your password was changed");
        let (s, b) = password_notice(&c, PasswordNotice::AdminReset, &facts());
        assert_eq!(
            s,
            "An administrator's password was reset: ada@contoso.example"
        );
        // Autoescaped: a display name cannot inject markup.
        assert!(b.contains("&lt;b&gt;Ada &amp; co&lt;&#x2f;b&gt;"), "{}", *b);
    }

    #[test]
    fn a_configured_template_is_used_checked_at_load_and_sandboxed() {
        let t = |subject: &str, body: &str| NotificationsConfig {
            password_changed: Some(MailTemplate {
                subject: subject.into(),
                body: body.into(),
            }),
            ..Default::default()
        };
        let c = t(
            "Changed: {{ user_principal_name }}\nBcc: x@evil.example",
            "Hi {{ display_name }}",
        );
        check_templates(&c).unwrap();
        let (s, b) = password_notice(&c, PasswordNotice::Changed, &facts());
        assert_eq!(s, "Changed: ada@contoso.example", "one line");
        assert_eq!(*b, "Hi &lt;b&gt;Ada &amp; co&lt;&#x2f;b&gt;");
        // Broken syntax, an unknown variable, a runaway loop, a file include: refused at load.
        for bad in [
            t("{% if %}", "x"),
            t("ok", "{{ password }}"),
            t(
                "ok",
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            ),
            t("ok", "{% include '/etc/passwd' %}"),
        ] {
            let e = check_templates(&bad).unwrap_err().to_string();
            assert!(e.contains("[notifications.password_changed]"), "{e}");
            // At run time the built-in text goes out instead.
            let (s, _) = password_notice(&bad, PasswordNotice::Changed, &facts());
            assert_eq!(s, "Your password was changed");
        }
    }
}
