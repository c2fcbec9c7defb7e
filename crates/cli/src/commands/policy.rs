//! `dirbridge policy …`: the self-service password reset policy. `set` reads the policy, changes
//! the given settings and writes the whole document back; the cloud validates it.

use proto::{PolicyView, SsprPolicy, SsprScope};

use super::{resolve_group, Ctx};
use crate::args::{PolicyCommand, PolicySetArgs};
use crate::output::{self, fields, opt, wire, yes_no};

pub async fn run(cmd: PolicyCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    match cmd {
        PolicyCommand::Show => {
            let v = api.get("/api/v1/policy", &[]).await?;
            let predefined = predefined_questions(&api, ctx).await?;
            ctx.out
                .data(v, |p: PolicyView| render_policy(&p, &predefined))
        }
        PolicyCommand::Set(args) => {
            let current: PolicyView = output::decode(api.get("/api/v1/policy", &[]).await?)?;
            let group_id = match &args.group {
                Some(g) => Some(resolve_group(&api, g).await?.id),
                None => None,
            };
            let policy = apply(current.policy, &args, group_id)?;
            let v = api.put("/api/v1/policy", &policy).await?;
            let predefined = predefined_questions(&api, ctx).await?;
            ctx.out.data(v, |p: PolicyView| {
                format!("Policy saved.\n{}", render_policy(&p, &predefined))
            })
        }
        PolicyCommand::Questions => {
            let v = api.get("/api/v1/policy/questions", &[]).await?;
            ctx.out.data(v, |questions: Vec<String>| {
                questions
                    .iter()
                    .map(|q| format!("{q}\n"))
                    .collect::<String>()
            })
        }
    }
}

/// The predefined questions, to tell them apart from the tenant's own (only needed for tables).
async fn predefined_questions(api: &crate::api::Api, ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    if ctx.out.is_json() {
        return Ok(Vec::new());
    }
    output::decode(api.get("/api/v1/policy/questions", &[]).await?)
}

/// The policy with the given settings changed. `group_id` is `--group`, already resolved to an id.
pub fn apply(
    mut p: SsprPolicy,
    a: &PolicySetArgs,
    group_id: Option<String>,
) -> anyhow::Result<SsprPolicy> {
    if let Some(scope) = a.enabled_for {
        p.enabled_for = scope;
        // A group only means something for the `group` scope; leaving a stale one would be refused.
        if scope != SsprScope::Group {
            p.group_id = None;
        }
    }
    if group_id.is_some() {
        p.group_id = group_id;
    }
    if let Some(n) = a.methods_required {
        p.methods_required = n;
    }
    if let Some(m) = &a.methods {
        p.methods = m.clone();
    }
    if let Some(n) = a.questions_to_register {
        p.questions_to_register = n;
    }
    if let Some(n) = a.questions_to_answer {
        p.questions_to_answer = n;
    }
    p.security_questions
        .retain(|q| !a.remove_question.iter().any(|r| r == q));
    for q in &a.add_question {
        if !p.security_questions.contains(q) {
            p.security_questions.push(q.clone());
        }
    }
    if let Some(b) = a.registration_required {
        p.require_registration_at_sign_in = b;
    }
    if let Some(n) = a.reconfirm_days {
        p.reconfirm_days = n;
    }
    if let Some(b) = a.notify_users {
        p.notify_users_on_reset = b;
    }
    if let Some(b) = a.notify_admins {
        p.notify_admins_on_admin_reset = b;
    }
    if a.no_helpdesk {
        p.helpdesk_url = None;
        p.helpdesk_email = None;
    }
    if let Some(u) = &a.helpdesk_url {
        p.helpdesk_url = Some(u.clone());
        p.helpdesk_email = None;
    }
    if let Some(e) = &a.helpdesk_email {
        p.helpdesk_email = Some(e.clone());
        p.helpdesk_url = None;
    }
    if let Some(b) = a.writeback {
        p.writeback_enabled = b;
    }
    if let Some(b) = a.unlock_without_reset {
        p.allow_unlock_without_reset = b;
    }
    let nothing_given = a.enabled_for.is_none()
        && a.group.is_none()
        && a.methods_required.is_none()
        && a.methods.is_none()
        && a.questions_to_register.is_none()
        && a.questions_to_answer.is_none()
        && a.add_question.is_empty()
        && a.remove_question.is_empty()
        && a.registration_required.is_none()
        && a.reconfirm_days.is_none()
        && a.notify_users.is_none()
        && a.notify_admins.is_none()
        && a.helpdesk_url.is_none()
        && a.helpdesk_email.is_none()
        && !a.no_helpdesk
        && a.writeback.is_none()
        && a.unlock_without_reset.is_none();
    if nothing_given {
        anyhow::bail!("nothing to change: give at least one setting, e.g. --enabled-for all (see dirbridge policy set --help)");
    }
    Ok(p)
}

fn render_policy(v: &PolicyView, predefined: &[String]) -> String {
    let p = &v.policy;
    let methods: Vec<String> = p.methods.iter().map(wire).collect();
    let admin_methods: Vec<String> = v.admin_policy.methods.iter().map(wire).collect();
    let helpdesk = match (&p.helpdesk_url, &p.helpdesk_email) {
        (Some(u), _) => u.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => "-".into(),
    };
    let mut out = fields(&[
        ("Enabled for", wire(&p.enabled_for)),
        ("Group", opt(&p.group_id)),
        ("Methods required", p.methods_required.to_string()),
        ("Methods", output::list(&methods)),
        ("Questions to register", p.questions_to_register.to_string()),
        ("Questions to answer", p.questions_to_answer.to_string()),
        (
            "Registration at sign-in",
            yes_no(p.require_registration_at_sign_in),
        ),
        (
            "Reconfirm every",
            if p.reconfirm_days == 0 {
                "never".into()
            } else {
                format!("{} days", p.reconfirm_days)
            },
        ),
        ("Notify users on reset", yes_no(p.notify_users_on_reset)),
        (
            "Notify admins on admin reset",
            yes_no(p.notify_admins_on_admin_reset),
        ),
        ("Helpdesk", helpdesk),
        ("Writeback", yes_no(p.writeback_enabled)),
        ("Writeback available now", yes_no(v.writeback_available)),
        ("Unlock without reset", yes_no(p.allow_unlock_without_reset)),
        (
            "Administrators",
            format!(
                "{} of {}{}",
                v.admin_policy.methods_required,
                output::list(&admin_methods),
                if v.admin_policy.security_questions_allowed {
                    ""
                } else {
                    ", no security questions"
                }
            ),
        ),
    ]);
    // The predefined questions are many and always the same: count them, list only the tenant's own.
    let own: Vec<&String> = p
        .security_questions
        .iter()
        .filter(|q| !predefined.contains(q))
        .collect();
    out.push_str(&format!(
        "Security questions: {} offered, {} predefined (dirbridge policy questions lists them) and {} of your own{}\n",
        p.security_questions.len(),
        p.security_questions.len() - own.len(),
        own.len(),
        if own.is_empty() { "" } else { ":" }
    ));
    for q in own {
        out.push_str(&format!("  {q}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;
    use proto::AuthMethod;

    fn base() -> SsprPolicy {
        SsprPolicy {
            enabled_for: SsprScope::Group,
            group_id: Some("g1".into()),
            methods_required: 1,
            methods: vec![AuthMethod::Email],
            questions_to_register: 3,
            questions_to_answer: 3,
            security_questions: vec!["In what city were you born?".into()],
            require_registration_at_sign_in: true,
            reconfirm_days: 180,
            notify_users_on_reset: true,
            notify_admins_on_admin_reset: true,
            helpdesk_url: Some("https://help".into()),
            helpdesk_email: None,
            writeback_enabled: false,
            allow_unlock_without_reset: false,
        }
    }

    fn set_args(args: &[&str]) -> PolicySetArgs {
        let cli = Cli::try_parse_from(["dirbridge", "policy", "set"].iter().chain(args)).unwrap();
        let Command::Policy(PolicyCommand::Set(s)) = cli.command else {
            panic!()
        };
        s
    }

    #[test]
    fn only_given_settings_change() {
        let p = apply(
            base(),
            &set_args(&["--methods", "email,mobilePhone", "--methods-required", "2"]),
            None,
        )
        .unwrap();
        assert_eq!(p.methods, vec![AuthMethod::Email, AuthMethod::MobilePhone]);
        assert_eq!(p.methods_required, 2);
        assert_eq!(
            SsprPolicy {
                methods: base().methods,
                methods_required: 1,
                ..p
            },
            base()
        );
    }

    #[test]
    fn leaving_group_scope_drops_the_group() {
        let p = apply(base(), &set_args(&["--enabled-for", "all"]), None).unwrap();
        assert_eq!((p.enabled_for, p.group_id), (SsprScope::All, None));
    }

    #[test]
    fn helpdesk_is_a_link_or_an_address() {
        let p = apply(
            base(),
            &set_args(&["--helpdesk-email", "help@contoso.com"]),
            None,
        )
        .unwrap();
        assert_eq!(
            (p.helpdesk_url, p.helpdesk_email.as_deref()),
            (None, Some("help@contoso.com"))
        );
        let p = apply(base(), &set_args(&["--no-helpdesk"]), None).unwrap();
        assert_eq!((p.helpdesk_url, p.helpdesk_email), (None, None));
    }

    #[test]
    fn questions_are_added_once_and_removed() {
        let p = apply(
            base(),
            &set_args(&["--add-question", "Q1", "--add-question", "Q1"]),
            None,
        )
        .unwrap();
        assert_eq!(
            p.security_questions.iter().filter(|q| *q == "Q1").count(),
            1
        );
        let p = apply(p, &set_args(&["--remove-question", "Q1"]), None).unwrap();
        assert_eq!(p.security_questions, base().security_questions);
    }

    #[test]
    fn no_settings_is_refused() {
        assert!(apply(base(), &set_args(&[]), None).is_err());
    }
}
