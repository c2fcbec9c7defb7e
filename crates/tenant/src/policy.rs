//! The self-service password reset policy: defaults, the fixed stricter policy for
//! administrators, and every rule a tenant's policy must satisfy (REFERENCE.md,
//! "Self-service password reset policy").

use std::collections::HashSet;

use proto::{AdminPolicy, AuthMethod, SsprPolicy, SsprScope};

use crate::refusal::Refusal;
use crate::validate;

pub const METHODS_REQUIRED_MIN: u8 = 1;
pub const METHODS_REQUIRED_MAX: u8 = 2;
pub const QUESTIONS_MIN: u8 = 3;
pub const QUESTIONS_MAX: u8 = 5;
pub const QUESTION_MIN_CHARS: usize = 3;
pub const QUESTION_MAX_CHARS: usize = 200;
pub const RECONFIRM_DAYS_MAX: u16 = 730;
pub const HELPDESK_URL_MAX: usize = 2048;

const PREDEFINED: &[&str] = &[
    "In what city did you meet your first spouse/partner?",
    "In what city did your parents meet?",
    "In what city does your nearest sibling live?",
    "In what city was your father born?",
    "In what city was your first job?",
    "In what city was your mother born?",
    "What was your favorite food as a child?",
    "What is the first name of your oldest cousin?",
    "What is the name of the first school you attended?",
    "What is the name of your favorite book?",
    "What was the name of your first pet?",
    "What was the first concert you attended?",
    "What was the make and model of your first car?",
    "What was your childhood nickname?",
    "What was your first phone number?",
    "Where were you when you had your first kiss?",
    "What is your favorite sports team?",
    "What was the name of the street you grew up on?",
    "What was the last name of your favorite teacher?",
    "What was the name of your first stuffed animal?",
];

/// The questions users choose from unless the tenant replaces them (like the incumbent's).
pub fn predefined_questions() -> &'static [&'static str] {
    PREDEFINED
}

/// A new tenant's policy: off, one method of email or mobile phone, three security questions
/// available if turned on, registration at sign-in, reconfirm every 180 days, notifications
/// on, no helpdesk link, writeback off.
pub fn default_policy() -> SsprPolicy {
    SsprPolicy {
        enabled_for: SsprScope::None,
        group_id: None,
        methods_required: 1,
        methods: vec![AuthMethod::Email, AuthMethod::MobilePhone],
        questions_to_register: 3,
        questions_to_answer: 3,
        security_questions: PREDEFINED.iter().map(|q| q.to_string()).collect(),
        require_registration_at_sign_in: true,
        reconfirm_days: 180,
        notify_users_on_reset: true,
        notify_admins_on_admin_reset: true,
        helpdesk_url: None,
        helpdesk_email: None,
        writeback_enabled: false,
        allow_unlock_without_reset: false,
    }
}

/// What administrators always get, whatever the tenant's policy: two methods, no security
/// questions.
pub fn admin_policy() -> AdminPolicy {
    AdminPolicy {
        methods_required: 2,
        methods: vec![
            AuthMethod::Email,
            AuthMethod::MobilePhone,
            AuthMethod::AuthenticatorApp,
        ],
        security_questions_allowed: false,
    }
}

/// Whether the policy applies to a (non-admin) user: `is_member` says whether the user is a
/// member (direct or nested) of a group id.
pub fn applies_to(p: &SsprPolicy, is_member: impl Fn(&str) -> bool) -> bool {
    match p.enabled_for {
        SsprScope::None => false,
        SsprScope::All => true,
        SsprScope::Group => p.group_id.as_deref().is_some_and(is_member),
    }
}

fn method_name(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::Email => "email",
        AuthMethod::MobilePhone => "mobilePhone",
        AuthMethod::OfficePhone => "officePhone",
        AuthMethod::SecurityQuestions => "securityQuestions",
        AuthMethod::AuthenticatorApp => "authenticatorApp",
    }
}

fn refuse(msg: String) -> Result<(), Refusal> {
    Err(Refusal::validation(msg))
}

/// Checks every rule of a tenant policy; the refusal names the field, the rule and the numbers.
/// `group_exists` answers whether a group id exists in the tenant.
pub fn validate(p: &SsprPolicy, group_exists: impl Fn(&str) -> bool) -> Result<(), Refusal> {
    // Scope.
    let group_id = p
        .group_id
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty());
    match (p.enabled_for, group_id) {
        (SsprScope::Group, None) => {
            return refuse("groupId: enabledFor is 'group', so a groupId is required (the group whose members may reset)".into())
        }
        (SsprScope::Group, Some(g)) if !group_exists(g) => {
            return refuse(format!(
                "groupId: group '{}' does not exist in this tenant",
                validate::shown(g)
            ))
        }
        (SsprScope::None | SsprScope::All, Some(_)) => {
            return refuse("groupId: only allowed when enabledFor is 'group'; remove it or set enabledFor to 'group'".into())
        }
        _ => {}
    }

    // Methods.
    if !(METHODS_REQUIRED_MIN..=METHODS_REQUIRED_MAX).contains(&p.methods_required) {
        return refuse(format!(
            "methodsRequired: {} is out of range; it must be {METHODS_REQUIRED_MIN} or {METHODS_REQUIRED_MAX}",
            p.methods_required
        ));
    }
    if p.methods.is_empty() {
        return refuse("methods: at least one method must be allowed".into());
    }
    let mut seen = HashSet::new();
    if let Some(dup) = p.methods.iter().find(|m| !seen.insert(**m)) {
        return refuse(format!("methods: {} is listed twice", method_name(*dup)));
    }
    if p.methods.len() < usize::from(p.methods_required) {
        return refuse(format!(
            "methods: {} method(s) allowed but methods required is {}; allow at least as many methods as are required",
            p.methods.len(),
            p.methods_required
        ));
    }
    if !p.methods.iter().any(|m| *m != AuthMethod::AuthenticatorApp) {
        return refuse("methods: the authenticator app cannot be the only method; allow email, mobile phone, office phone or security questions as well".into());
    }

    // Security questions.
    if p.methods.contains(&AuthMethod::SecurityQuestions) {
        let (reg, ans) = (p.questions_to_register, p.questions_to_answer);
        if !(QUESTIONS_MIN..=QUESTIONS_MAX).contains(&reg) {
            return refuse(format!(
                "questionsToRegister: {reg} is out of range; it must be {QUESTIONS_MIN} to {QUESTIONS_MAX}"
            ));
        }
        if !(QUESTIONS_MIN..=QUESTIONS_MAX).contains(&ans) {
            return refuse(format!(
                "questionsToAnswer: {ans} is out of range; it must be {QUESTIONS_MIN} to {QUESTIONS_MAX}"
            ));
        }
        if ans > reg {
            return refuse(format!(
                "questionsToAnswer: questions to answer ({ans}) cannot exceed questions to register ({reg})"
            ));
        }
        if p.security_questions.len() < usize::from(reg) {
            return refuse(format!(
                "securityQuestions: {} question(s) offered but users must register {reg}; offer at least {reg}",
                p.security_questions.len()
            ));
        }
        let mut seen = HashSet::new();
        for (i, q) in p.security_questions.iter().enumerate() {
            let t = q.trim();
            let n = t.chars().count();
            if !(QUESTION_MIN_CHARS..=QUESTION_MAX_CHARS).contains(&n) {
                return refuse(format!(
                    "securityQuestions[{i}]: is {n} characters; a question is {QUESTION_MIN_CHARS} to {QUESTION_MAX_CHARS} characters"
                ));
            }
            if t.chars().any(char::is_control) {
                return refuse(format!(
                    "securityQuestions[{i}]: '{}' contains control characters (tabs, line breaks…)",
                    validate::shown(t)
                ));
            }
            validate::visible(&format!("securityQuestions[{i}]"), t)?;
            if !seen.insert(t.to_lowercase()) {
                return refuse(format!(
                    "securityQuestions[{i}]: '{}' is a duplicate (questions are compared ignoring case)",
                    validate::shown(t)
                ));
            }
        }
    }

    // Reconfirmation.
    if p.reconfirm_days > RECONFIRM_DAYS_MAX {
        return refuse(format!(
            "reconfirmDays: {} is out of range; it must be 0 (never) to {RECONFIRM_DAYS_MAX}",
            p.reconfirm_days
        ));
    }

    // Helpdesk.
    let url = p
        .helpdesk_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let email = p
        .helpdesk_email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if url.is_some() && email.is_some() {
        return refuse(
            "helpdeskUrl, helpdeskEmail: give a helpdesk link or a helpdesk email, not both".into(),
        );
    }
    if let Some(u) = url {
        check_helpdesk_url(u)?;
    }
    if let Some(e) = email {
        validate::mail("helpdeskEmail", e)?;
    }
    Ok(())
}

fn check_helpdesk_url(u: &str) -> Result<(), Refusal> {
    let rule = "an absolute http:// or https:// URL, e.g. https://helpdesk.contoso.com/password";
    let n = u.chars().count();
    if n > HELPDESK_URL_MAX {
        return refuse(format!(
            "helpdeskUrl: is {n} characters; the limit is {HELPDESK_URL_MAX}"
        ));
    }
    validate::visible("helpdeskUrl", u)?;
    let lower = u.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    let host = rest
        .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""))
        .map(|authority| authority.rsplit('@').next().unwrap_or(""))
        .unwrap_or("");
    let host_name = host.split(':').next().unwrap_or("");
    let ok = rest.is_some()
        && !host_name.is_empty()
        && host_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']'))
        && !u.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        refuse(format!(
            "helpdeskUrl: '{}' is not {rule}",
            validate::shown(u)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ErrorCode;

    fn no_groups(_: &str) -> bool {
        false
    }

    fn err(p: &SsprPolicy) -> String {
        let e = validate(p, |g| g == "g1").unwrap_err();
        assert_eq!(e.code, ErrorCode::Validation);
        e.message
    }

    fn with_questions() -> SsprPolicy {
        let mut p = default_policy();
        p.methods = vec![AuthMethod::Email, AuthMethod::SecurityQuestions];
        p
    }

    #[test]
    fn default_policy_is_valid_and_off() {
        let p = default_policy();
        assert!(validate(&p, no_groups).is_ok());
        assert_eq!(p.enabled_for, SsprScope::None);
        assert_eq!(p.methods_required, 1);
        assert_eq!(p.methods, vec![AuthMethod::Email, AuthMethod::MobilePhone]);
        assert_eq!((p.questions_to_register, p.questions_to_answer), (3, 3));
        assert_eq!(p.reconfirm_days, 180);
        assert!(
            p.require_registration_at_sign_in
                && p.notify_users_on_reset
                && p.notify_admins_on_admin_reset
        );
        assert!(!p.writeback_enabled && !p.allow_unlock_without_reset);
        assert!(p.helpdesk_url.is_none() && p.helpdesk_email.is_none());
        assert!(!applies_to(&p, |_| true));
        assert!(validate(&with_questions(), no_groups).is_ok());
    }

    #[test]
    fn predefined_questions_are_valid_and_distinct() {
        let qs = predefined_questions();
        assert!(qs.len() >= 20);
        assert!(qs.contains(&"In what city was your first job?"));
        let distinct: HashSet<String> = qs.iter().map(|q| q.to_lowercase()).collect();
        assert_eq!(distinct.len(), qs.len());
    }

    #[test]
    fn admin_policy_is_stricter() {
        let a = admin_policy();
        assert_eq!(a.methods_required, 2);
        assert!(!a.security_questions_allowed);
        assert!(!a.methods.contains(&AuthMethod::SecurityQuestions));
        assert!(a.methods.contains(&AuthMethod::AuthenticatorApp));
    }

    #[test]
    fn group_scope_needs_an_existing_group() {
        let mut p = default_policy();
        p.enabled_for = SsprScope::Group;
        assert!(err(&p).starts_with("groupId: enabledFor is 'group'"));
        p.group_id = Some("  ".into());
        assert!(err(&p).starts_with("groupId: enabledFor is 'group'"));
        p.group_id = Some("nope".into());
        assert!(err(&p).contains("'nope' does not exist"));
        p.group_id = Some("g1".into());
        assert!(validate(&p, |g| g == "g1").is_ok());
        assert!(applies_to(&p, |g| g == "g1"));
        assert!(!applies_to(&p, |_| false));
    }

    #[test]
    fn group_id_with_other_scopes_is_refused() {
        for scope in [SsprScope::None, SsprScope::All] {
            let mut p = default_policy();
            p.enabled_for = scope;
            p.group_id = Some("g1".into());
            assert!(err(&p).starts_with("groupId: only allowed"));
        }
        let mut p = default_policy();
        p.enabled_for = SsprScope::All;
        assert!(applies_to(&p, |_| false));
        p.group_id = None;
        assert!(validate(&p, no_groups).is_ok());
    }

    #[test]
    fn methods_required_is_one_or_two() {
        for n in [0, 3] {
            let mut p = default_policy();
            p.methods_required = n;
            assert!(err(&p).contains(&format!("methodsRequired: {n} is out of range")));
        }
        let mut p = default_policy();
        p.methods_required = 2;
        assert!(validate(&p, no_groups).is_ok());
    }

    #[test]
    fn methods_non_empty_distinct_and_enough() {
        let mut p = default_policy();
        p.methods = vec![];
        assert!(err(&p).starts_with("methods: at least one"));
        p.methods = vec![AuthMethod::Email, AuthMethod::Email];
        assert_eq!(err(&p), "methods: email is listed twice");
        p.methods = vec![AuthMethod::Email];
        p.methods_required = 2;
        assert!(err(&p).starts_with("methods: 1 method(s) allowed but methods required is 2"));
    }

    #[test]
    fn authenticator_app_cannot_be_the_only_method() {
        let mut p = default_policy();
        p.methods = vec![AuthMethod::AuthenticatorApp];
        assert!(err(&p).contains("authenticator app cannot be the only method"));
        p.methods = vec![AuthMethod::AuthenticatorApp, AuthMethod::MobilePhone];
        assert!(validate(&p, no_groups).is_ok());
        p.methods_required = 2;
        assert!(validate(&p, no_groups).is_ok());
    }

    #[test]
    fn question_counts() {
        let mut p = with_questions();
        p.questions_to_register = 2;
        assert!(err(&p).starts_with("questionsToRegister: 2 is out of range"));
        p.questions_to_register = 6;
        assert!(err(&p).starts_with("questionsToRegister: 6"));
        p.questions_to_register = 3;
        p.questions_to_answer = 5;
        assert_eq!(
            err(&p),
            "questionsToAnswer: questions to answer (5) cannot exceed questions to register (3)"
        );
        p.questions_to_answer = 2;
        assert!(err(&p).starts_with("questionsToAnswer: 2 is out of range"));
        p.questions_to_register = 5;
        p.questions_to_answer = 4;
        assert!(validate(&p, no_groups).is_ok());
    }

    #[test]
    fn question_counts_are_ignored_without_security_questions() {
        let mut p = default_policy();
        p.questions_to_register = 0;
        p.questions_to_answer = 9;
        p.security_questions.clear();
        assert!(validate(&p, no_groups).is_ok());
    }

    #[test]
    fn question_list_rules() {
        let mut p = with_questions();
        p.questions_to_register = 4;
        p.security_questions = vec!["One?".into(), "Two?".into(), "Three?".into()];
        assert!(err(&p)
            .starts_with("securityQuestions: 3 question(s) offered but users must register 4"));
        p.questions_to_register = 3;
        p.security_questions = vec!["One?".into(), "Two?".into(), " two? ".into()];
        assert!(err(&p).starts_with("securityQuestions[2]: 'two?' is a duplicate"));
        p.security_questions = vec!["One?".into(), "Tw".into(), "Three?".into()];
        assert!(err(&p).starts_with("securityQuestions[1]: is 2 characters"));
        p.security_questions = vec!["One?".into(), "x".repeat(201), "Three?".into()];
        assert!(err(&p).starts_with("securityQuestions[1]: is 201 characters"));
        p.security_questions = vec!["One?".into(), "Tw\no?".into(), "Three?".into()];
        assert!(err(&p).contains("control characters"));
        p.security_questions = vec!["One?".into(), "Two?".into(), "Thr\u{2067}ee?".into()];
        assert_eq!(
            err(&p),
            "securityQuestions[2]: contains U+2067 (RIGHT-TO-LEFT ISOLATE), an invisible \
             character that can disguise a name; remove it."
        );
        p.security_questions = vec!["One?".into(), "Two?".into(), "Three?".into()];
        assert!(validate(&p, no_groups).is_ok());
    }

    #[test]
    fn reconfirm_days_range() {
        let mut p = default_policy();
        p.reconfirm_days = 0;
        assert!(validate(&p, no_groups).is_ok());
        p.reconfirm_days = 730;
        assert!(validate(&p, no_groups).is_ok());
        p.reconfirm_days = 731;
        assert!(err(&p).starts_with("reconfirmDays: 731 is out of range"));
    }

    #[test]
    fn helpdesk_link_or_email() {
        let mut p = default_policy();
        p.helpdesk_url = Some("https://helpdesk.contoso.com/reset?x=1".into());
        assert!(validate(&p, no_groups).is_ok());
        p.helpdesk_url = Some("http://10.0.0.1:8080".into());
        assert!(validate(&p, no_groups).is_ok());
        for bad in [
            "ftp://x.com",
            "helpdesk.contoso.com",
            "https://",
            "https:///path",
            "https://a b.com",
            "javascript:alert(1)",
        ] {
            p.helpdesk_url = Some(bad.into());
            assert!(err(&p).starts_with("helpdeskUrl:"), "{bad}");
        }
        p.helpdesk_url = Some("https://x.com/reset\u{202E}moc.evil".into());
        assert!(err(&p).starts_with("helpdeskUrl: contains U+202E (RIGHT-TO-LEFT OVERRIDE)"));
        p.helpdesk_url = Some(format!("https://x.com/{}", "a".repeat(2048)));
        assert!(err(&p).contains("limit is 2048"));
        p.helpdesk_url = None;
        p.helpdesk_email = Some("helpdesk@contoso.com".into());
        assert!(validate(&p, no_groups).is_ok());
        p.helpdesk_email = Some("not-an-email".into());
        assert!(err(&p).starts_with("helpdeskEmail:"));
        p.helpdesk_email = Some("helpdesk@contoso.com".into());
        p.helpdesk_url = Some("https://helpdesk.contoso.com".into());
        assert!(err(&p).contains("not both"));
    }
}
