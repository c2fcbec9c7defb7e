//! Input rules for directory objects and tenant settings. Each function returns the cleaned
//! value (trimmed, canonical case) or a `validationFailed` [`Refusal`] whose message starts with
//! the API field name and states the rule. Messages quote at most a short, sanitised excerpt of
//! the input and never a password.

use crate::country;
use crate::refusal::Refusal;

pub const UPN_MAX: usize = 113;
pub const UPN_LOCAL_MAX: usize = 64;
pub const DISPLAY_NAME_MAX: usize = 256;
pub const MAIL_MAX: usize = 254;
pub const MAIL_LOCAL_MAX: usize = 64;
pub const PHONE_MIN: usize = 4;
pub const PHONE_MAX: usize = 32;
pub const DOMAIN_MAX: usize = 253;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 256;

/// A short, printable excerpt of user input for messages: at most 40 characters, control
/// characters and [`disguising`] ones shown as `?`.
pub(crate) fn shown(input: &str) -> String {
    let mut out: String = input
        .chars()
        .take(40)
        .map(|c| {
            if c.is_control() || disguising(c).is_some() {
                '?'
            } else {
                c
            }
        })
        .collect();
    if input.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// The Unicode name of `c` if it is an invisible or direction-changing format character that
/// can make a name look like another one (bidirectional embeddings, overrides, isolates and
/// marks; zero-width spaces and joiners; the word joiner and invisible operators; the byte
/// order mark; the soft hyphen; interlinear annotation marks; tag characters). Other format
/// characters (e.g. Arabic number signs) are visible and allowed.
pub(crate) fn disguising(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{00AD}' => "SOFT HYPHEN",
        '\u{061C}' => "ARABIC LETTER MARK",
        '\u{180E}' => "MONGOLIAN VOWEL SEPARATOR",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2060}' => "WORD JOINER",
        '\u{2061}' => "FUNCTION APPLICATION",
        '\u{2062}' => "INVISIBLE TIMES",
        '\u{2063}' => "INVISIBLE SEPARATOR",
        '\u{2064}' => "INVISIBLE PLUS",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{206A}'..='\u{206F}' => "DEPRECATED FORMAT CHARACTER",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        '\u{FFF9}'..='\u{FFFB}' => "INTERLINEAR ANNOTATION CHARACTER",
        '\u{E0001}' | '\u{E0020}'..='\u{E007F}' => "TAG CHARACTER",
        _ => return None,
    })
}

/// The one rule for text a person reads as a name or label: refuses the first
/// [`disguising`] character, naming the field, the code point and what to do.
pub fn visible(field: &str, s: &str) -> Result<(), Refusal> {
    match s.chars().find_map(|c| disguising(c).map(|name| (c, name))) {
        Some((c, name)) => Err(Refusal::validation(format!(
            "{field}: contains U+{:04X} ({name}), an invisible character that can disguise a \
             name; remove it.",
            c as u32
        ))),
        None => Ok(()),
    }
}

/// The case-insensitive form of a UPN, under which UPNs are compared, matched and counted
/// (directories compare them without case).
pub fn upn_key(upn: &str) -> String {
    upn.to_lowercase()
}

/// A user principal name as a person typed it to sign in or reset a password: trimmed, 1 to
/// [`UPN_MAX`] characters, no control characters, with an `@`. No account has a UPN of another
/// shape, so anything else is refused before an account is looked up (which tells nothing
/// about accounts). Two `Upn`s are equal when they differ only in case, as the directory
/// compares them; [`Upn::key`] is the form throttles and lookups count under.
#[derive(Clone)]
pub struct Upn(String);

impl Upn {
    /// `input` trimmed, if it has the shape of a UPN; the refusal names the field.
    pub fn parse(input: &str) -> Result<Upn, Refusal> {
        let s = input.trim();
        if s.is_empty() || s.chars().count() > UPN_MAX || has_control(s) || !s.contains('@') {
            return Err(Refusal::validation(
                "userPrincipalName: give your user name in the form name@domain",
            ));
        }
        Ok(Upn(s.to_string()))
    }
    /// As typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Lower-cased: the one spelling of the account for counting and matching ([`upn_key`]).
    pub fn key(&self) -> String {
        upn_key(&self.0)
    }
    /// The domain part (after the last `@`), lower-cased.
    pub fn domain(&self) -> String {
        self.0
            .rsplit_once('@')
            .map(|(_, d)| d.to_lowercase())
            .unwrap_or_default()
    }
}

impl PartialEq for Upn {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Upn {}

impl std::hash::Hash for Upn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl std::fmt::Display for Upn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Upn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upn({:?})", self.0)
    }
}

const UPN_LOCAL_SPECIALS: &str = "'.-_!#^~";

/// A user principal name `local@domain` whose domain is one of the tenant's `domains`.
/// Returns it trimmed, with the domain spelled as the tenant has it.
pub fn upn(input: &str, domains: &[String]) -> Result<String, Refusal> {
    const F: &str = "userPrincipalName";
    let s = input.trim();
    if s.is_empty() {
        return Err(Refusal::validation(format!(
            "{F}: is required (name@domain, e.g. alice@{})",
            domains
                .first()
                .map(String::as_str)
                .unwrap_or("contoso.example")
        )));
    }
    let len = s.chars().count();
    if len > UPN_MAX {
        return Err(Refusal::validation(format!(
            "{F}: '{}' is {len} characters; the limit is {UPN_MAX}",
            shown(s)
        )));
    }
    let Some((local, domain)) = s.split_once('@') else {
        return Err(Refusal::validation(format!(
            "{F}: '{}' must have the form name@domain",
            shown(s)
        )));
    };
    if domain.contains('@') {
        return Err(Refusal::validation(format!(
            "{F}: '{}' must contain exactly one '@'",
            shown(s)
        )));
    }
    if local.is_empty() {
        return Err(Refusal::validation(format!(
            "{F}: '{}' has nothing before the '@'",
            shown(s)
        )));
    }
    let local_len = local.chars().count();
    if local_len > UPN_LOCAL_MAX {
        return Err(Refusal::validation(format!(
            "{F}: the part before '@' is {local_len} characters; the limit is {UPN_LOCAL_MAX}"
        )));
    }
    if let Some(bad) = local
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || UPN_LOCAL_SPECIALS.contains(*c)))
    {
        let bad = if bad.is_control() || bad.is_whitespace() {
            format!("U+{:04X}", bad as u32)
        } else {
            format!("'{bad}'")
        };
        return Err(Refusal::validation(format!(
            "{F}: the part before '@' contains {bad}; allowed are A-Z a-z 0-9 and ' . - _ ! # ^ ~"
        )));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(Refusal::validation(format!(
            "{F}: '{}' — the part before '@' may not start or end with '.' or contain '..'",
            shown(s)
        )));
    }
    let Some(tenant_domain) = domains.iter().find(|d| d.eq_ignore_ascii_case(domain)) else {
        let list = if domains.is_empty() {
            "none".to_string()
        } else {
            domains.join(", ")
        };
        return Err(Refusal::validation(format!(
            "{F}: domain '{}' is not a verified domain of this tenant; use one of: {list} \
             (to use another, add it to the tenant and verify it with its DNS record first)",
            shown(domain)
        )));
    };
    Ok(format!("{local}@{tenant_domain}"))
}

/// A usage location: an officially assigned ISO 3166-1 alpha-2 code. Lower case is accepted;
/// the result is upper case.
pub fn usage_location(input: &str) -> Result<String, Refusal> {
    let s = input.trim();
    let upper = s.to_ascii_uppercase();
    if country::is_alpha2(&upper) {
        Ok(upper)
    } else {
        Err(Refusal::validation(format!(
            "usageLocation: '{}' is not an ISO 3166-1 alpha-2 country code (two letters, e.g. US, NO)",
            shown(s)
        )))
    }
}

/// A display name: trimmed, 1 to 256 characters, no control characters, nothing [`visible`]
/// refuses.
pub fn display_name(input: &str) -> Result<String, Refusal> {
    const F: &str = "displayName";
    let s = input.trim();
    if s.is_empty() {
        return Err(Refusal::validation(format!(
            "{F}: is required (1 to {DISPLAY_NAME_MAX} characters)"
        )));
    }
    let n = s.chars().count();
    if n > DISPLAY_NAME_MAX {
        return Err(Refusal::validation(format!(
            "{F}: is {n} characters; the limit is {DISPLAY_NAME_MAX}"
        )));
    }
    if has_control(s) {
        return Err(Refusal::validation(format!(
            "{F}: '{}' contains control characters (tabs, line breaks…); remove them",
            shown(s)
        )));
    }
    visible(F, s)?;
    Ok(s.to_string())
}

/// Optional free text a person or admin sets and others read (names, descriptions): trimmed;
/// absent or blank becomes `None`; no control characters, nothing [`visible`] refuses; at most
/// `max` characters.
pub fn optional_text(
    field: &str,
    input: Option<&str>,
    max: usize,
) -> Result<Option<String>, Refusal> {
    let s = optional_report(field, input, max)?;
    if let Some(s) = &s {
        visible(field, s)?;
    }
    Ok(s)
}

/// Optional text an agent reports about itself (version, status, run message, connector,
/// checked roots): like [`optional_text`] but without the [`visible`] rule, because such
/// text may quote directory data and refusing it would lose the report.
pub fn optional_report(
    field: &str,
    input: Option<&str>,
    max: usize,
) -> Result<Option<String>, Refusal> {
    let Some(s) = input.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let n = s.chars().count();
    if n > max {
        return Err(Refusal::validation(format!(
            "{field}: is {n} characters; the limit is {max}"
        )));
    }
    if has_control(s) {
        return Err(Refusal::validation(format!(
            "{field}: '{}' contains control characters (tabs, line breaks…); remove them",
            shown(s)
        )));
    }
    Ok(Some(s.to_string()))
}

const MAIL_LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~.-";

/// An email address (pragmatic addr-spec: ASCII dot-atom local part, DNS domain with a dot),
/// trimmed, at most 254 characters.
pub fn mail(field: &str, input: &str) -> Result<String, Refusal> {
    let s = input.trim();
    let rule = "an email address like name@example.com";
    if s.is_empty() {
        return Err(Refusal::validation(format!(
            "{field}: is empty; give {rule}"
        )));
    }
    let n = s.chars().count();
    if n > MAIL_MAX {
        return Err(Refusal::validation(format!(
            "{field}: is {n} characters; the limit is {MAIL_MAX}"
        )));
    }
    let bad = || Refusal::validation(format!("{field}: '{}' is not {rule}", shown(s)));
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(bad());
    };
    if local.is_empty()
        || local.len() > MAIL_LOCAL_MAX
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || MAIL_LOCAL_SPECIALS.contains(c))
    {
        return Err(bad());
    }
    if !is_dns_name(domain, true) {
        return Err(bad());
    }
    Ok(s.to_string())
}

/// A phone number, E.164-ish: optional leading '+', digits, spaces, '-', '(' and ')', and an
/// optional extension after one 'x'; 4 to 32 characters with at least 4 digits.
pub fn phone(field: &str, input: &str) -> Result<String, Refusal> {
    let s = input.trim();
    let rule =
        "use digits with an optional leading '+', spaces, '-', '(', ')' and an 'x' extension, \
                4 to 32 characters, e.g. +47 22 12 34 56 or +1 (425) 555-0100 x123";
    let n = s.chars().count();
    if !(PHONE_MIN..=PHONE_MAX).contains(&n) {
        return Err(Refusal::validation(format!(
            "{field}: '{}' is {n} characters; {rule}",
            shown(s)
        )));
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    let (main, ext) = match body.split_once(['x', 'X']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let main_ok = main
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'));
    let ext_ok = ext.is_none_or(|e| {
        let e = e.trim();
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    if !main_ok || !ext_ok {
        return Err(Refusal::validation(format!(
            "{field}: '{}' is not a phone number; {rule}",
            shown(s)
        )));
    }
    if main.chars().filter(char::is_ascii_digit).count() < 4 {
        return Err(Refusal::validation(format!(
            "{field}: '{}' has fewer than 4 digits before any extension; {rule}",
            shown(s)
        )));
    }
    Ok(s.replace('X', "x"))
}

fn is_label(label: &str, min: usize) -> bool {
    (min..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// DNS name check on ASCII: at least two labels of a-z 0-9 '-', each 1..=63 and not starting or
/// ending with '-', a top-level label that is not all digits, ≤ 253 in total. With
/// `any_case`, upper-case letters are allowed too.
fn is_dns_name(name: &str, any_case: bool) -> bool {
    let lowered;
    let name = if any_case {
        lowered = name.to_ascii_lowercase();
        lowered.as_str()
    } else {
        name
    };
    if name.len() > DOMAIN_MAX {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| is_label(l, 1))
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// A tenant name: one DNS label, 2 to 63 characters of a-z 0-9 '-', not starting or ending
/// with '-'. Upper case input is lowered.
pub fn tenant_name(input: &str) -> Result<String, Refusal> {
    let s = input.trim().to_ascii_lowercase();
    if is_label(&s, 2) {
        Ok(s)
    } else {
        Err(Refusal::validation(format!(
            "name: '{}' is not a valid tenant name; use 2 to 63 characters of a-z, 0-9 and '-', \
             not starting or ending with '-' (e.g. contoso)",
            shown(input.trim())
        )))
    }
}

/// A domain name: lower-case DNS name with at least two labels (a-z 0-9 '-', 1 to 63
/// characters each, not starting or ending with '-'), a non-numeric top-level label, at most
/// 253 characters. Upper case input is lowered.
pub fn domain(input: &str) -> Result<String, Refusal> {
    let s = input.trim().to_ascii_lowercase();
    if is_dns_name(&s, false) {
        Ok(s)
    } else {
        Err(Refusal::validation(format!(
            "domain: '{}' is not a valid domain name; use labels of a-z, 0-9 and '-' (1 to 63 \
             characters, not starting or ending with '-') separated by '.', at least two labels, \
             at most {DOMAIN_MAX} characters (e.g. contoso.com)",
            shown(input.trim())
        )))
    }
}

/// Who judges the strength of a new password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordJudge {
    /// The cloud keeps the password: [`new_password`]'s full rule.
    Cloud,
    /// The on-premises directory gets it (writeback): only what no directory accepts is refused
    /// here (empty, over [`PASSWORD_MAX`], control characters); its own policy decides the rest
    /// and a refusal comes back as `policyRefused` with the reason.
    OnPremises,
}

/// The one rule for a new password, whoever sets it (an administrator, a self-service reset or
/// change): for the cloud, [`new_password`]; for the on-premises directory, 1 to
/// [`PASSWORD_MAX`] characters with no control characters. `field` is the API field named in
/// the message, which never repeats the password.
pub fn new_password_for(field: &str, input: &str, judge: PasswordJudge) -> Result<(), Refusal> {
    match judge {
        PasswordJudge::Cloud => cloud_password(field, input),
        PasswordJudge::OnPremises => {
            let n = input.chars().count();
            if n == 0 || n > PASSWORD_MAX || has_control(input) {
                return Err(Refusal::validation(format!(
                    "{field}: must be 1 to {PASSWORD_MAX} characters with no control characters; the on-premises password policy decides the rest"
                )));
            }
            Ok(())
        }
    }
}

/// The cloud password rule: 8 to 256 characters, at least 3 of the 4 kinds (lower-case,
/// upper-case, digit, symbol), no control characters. The message states the rule and never
/// repeats the password.
pub fn new_password(input: &str) -> Result<(), Refusal> {
    cloud_password("password", input)
}

fn cloud_password(field: &str, input: &str) -> Result<(), Refusal> {
    let rule = format!(
        "{field}: must be {PASSWORD_MIN} to {PASSWORD_MAX} characters and contain at least 3 of: \
         lower-case letters, upper-case letters, digits, symbols"
    );
    let n = input.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return Err(Refusal::validation(format!(
            "{rule} (it has {n} characters)"
        )));
    }
    if has_control(input) {
        return Err(Refusal::validation(format!(
            "{rule}; it may not contain control characters (tabs, line breaks…)"
        )));
    }
    let (mut lower, mut upper, mut digit, mut symbol) = (false, false, false, false);
    for c in input.chars() {
        if c.is_lowercase() {
            lower = true;
        } else if c.is_uppercase() {
            upper = true;
        } else if c.is_ascii_digit() {
            digit = true;
        } else {
            symbol = true;
        }
    }
    let kinds = [lower, upper, digit, symbol].iter().filter(|k| **k).count();
    if kinds < 3 {
        return Err(Refusal::validation(format!(
            "{rule} (it has {kinds} of them)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ErrorCode;

    fn domains() -> Vec<String> {
        vec!["contoso.dirbridge.test".into(), "contoso.com".into()]
    }

    #[test]
    fn upn_accepts_and_canonicalises_the_domain() {
        assert_eq!(
            upn("  alice@Contoso.COM ", &domains()).unwrap(),
            "alice@contoso.com"
        );
        assert_eq!(
            upn("O'Brien.j-x_y!#^~9@contoso.dirbridge.test", &domains()).unwrap(),
            "O'Brien.j-x_y!#^~9@contoso.dirbridge.test"
        );
    }

    #[test]
    fn upn_refuses_foreign_domains_listing_the_tenant_ones() {
        let e = upn("alice@fabrikam.com", &domains()).unwrap_err();
        assert_eq!(e.code, ErrorCode::Validation);
        assert!(e.message.starts_with("userPrincipalName:"), "{}", e.message);
        assert!(e.message.contains("fabrikam.com"));
        assert!(
            e.message.contains("contoso.dirbridge.test, contoso.com"),
            "{}",
            e.message
        );
    }

    #[test]
    fn upn_refuses_bad_shapes() {
        for bad in [
            "",
            "   ",
            "alice",
            "@contoso.com",
            "alice@",
            "a@b@contoso.com",
            ".alice@contoso.com",
            "alice.@contoso.com",
            "al..ice@contoso.com",
            "al ice@contoso.com",
            "al+ice@contoso.com",
            "ålice@contoso.com",
            "al\u{0}ice@contoso.com",
        ] {
            let e = upn(bad, &domains()).unwrap_err();
            assert!(
                e.message.starts_with("userPrincipalName:"),
                "{bad:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn upn_length_limits() {
        let local64 = "a".repeat(64);
        assert!(upn(&format!("{local64}@contoso.com"), &domains()).is_ok());
        let e = upn(&format!("{}@contoso.com", "a".repeat(65)), &domains()).unwrap_err();
        assert!(e.message.contains("limit is 64"), "{}", e.message);
        let long_domain = format!("{}.com", "d".repeat(60));
        let ds = vec![long_domain.clone()];
        // 48 + 1 + 64 = 113: allowed; one more is not.
        assert!(upn(&format!("{}@{long_domain}", "a".repeat(48)), &ds).is_ok());
        let e = upn(&format!("{}@{long_domain}", "a".repeat(49)), &ds).unwrap_err();
        assert!(e.message.contains("limit is 113"), "{}", e.message);
    }

    #[test]
    fn upn_with_no_tenant_domains_says_so() {
        let e = upn("a@contoso.com", &[]).unwrap_err();
        assert!(e.message.contains("use one of: none"), "{}", e.message);
    }

    #[test]
    fn usage_location_uppercases_and_names_the_rule() {
        assert_eq!(usage_location(" no ").unwrap(), "NO");
        assert_eq!(usage_location("Us").unwrap(), "US");
        let e = usage_location("USA").unwrap_err();
        assert_eq!(
            e.message,
            "usageLocation: 'USA' is not an ISO 3166-1 alpha-2 country code (two letters, e.g. US, NO)"
        );
        for bad in ["", "UK", "XK", "U", "ÜS", "1A"] {
            assert!(usage_location(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_name_rules() {
        assert_eq!(display_name("  Alice Smith ").unwrap(), "Alice Smith");
        assert!(display_name("Ærlig Øystein 山田").is_ok());
        assert!(display_name("   ").is_err());
        assert!(display_name("a\nb").is_err());
        assert!(display_name(&"x".repeat(256)).is_ok());
        let e = display_name(&"x".repeat(257)).unwrap_err();
        assert!(e.message.starts_with("displayName:"));
        assert!(e.message.contains("257"));
    }

    #[test]
    fn names_refuse_invisible_and_direction_characters() {
        let e = display_name("Alice \u{202E}nimda").unwrap_err();
        assert_eq!(
            e.message,
            "displayName: contains U+202E (RIGHT-TO-LEFT OVERRIDE), an invisible character \
             that can disguise a name; remove it."
        );
        assert_eq!(e.code, proto::ErrorCode::Validation);
        let listed = ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain('\u{200B}'..='\u{200D}')
            .chain([
                '\u{2060}',
                '\u{FEFF}',
                '\u{00AD}',
                '\u{200E}',
                '\u{200F}',
                '\u{E0041}',
            ]);
        for c in listed {
            let hex = format!("U+{:04X}", c as u32);
            for s in [
                format!("{c}Bob"),
                format!("Bo{c}b"),
                format!("Bob{c}"),
                c.to_string(),
            ] {
                let e = display_name(&s).unwrap_err();
                assert!(
                    e.message
                        .starts_with(&format!("displayName: contains {hex} (")),
                    "{hex}: {}",
                    e.message
                );
                assert!(!e.message.contains(c), "the message must not carry {hex}");
                let e = optional_text("givenName", Some(&s), 64).unwrap_err();
                assert!(
                    e.message
                        .starts_with(&format!("givenName: contains {hex} (")),
                    "{hex}"
                );
                assert!(optional_text("surname", Some(&s), 64).is_err());
                assert!(optional_text("description", Some(&s), 1024).is_err());
            }
        }
        // What an agent reports about itself may quote directory data and is kept.
        assert_eq!(
            optional_report("message", Some("OU=Sa\u{200C}les"), 64).unwrap(),
            Some("OU=Sa\u{200C}les".into())
        );
        // Visible scripts, combining marks and Arabic number signs stay allowed.
        for ok in [
            "Ærlig Øystein 山田",
            "محمد علي",
            "שרה כהן",
            "José",
            "Zoë",
            "\u{0600}12",
        ] {
            assert!(display_name(ok).is_ok(), "{ok}");
            assert!(optional_text("surname", Some(ok), 64).is_ok(), "{ok}");
        }
    }

    #[test]
    fn optional_text_blank_is_none_and_limits_apply() {
        assert_eq!(optional_text("surname", None, 10).unwrap(), None);
        assert_eq!(optional_text("surname", Some("  "), 10).unwrap(), None);
        assert_eq!(
            optional_text("surname", Some(" Smith "), 10).unwrap(),
            Some("Smith".into())
        );
        let e = optional_text("surname", Some("abcdefghijk"), 10).unwrap_err();
        assert!(e.message.starts_with("surname:") && e.message.contains("limit is 10"));
        assert!(optional_text("surname", Some("a\tb"), 10).is_err());
    }

    #[test]
    fn mail_rules() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.com",
            "X@Example.COM",
            "o'neil@x-y.org",
        ] {
            assert!(mail("mail", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@localhost",
            "a@x..com",
            "a@-x.com",
            "a@x.c",
            "a@1.23",
            ".a@x.com",
            "a..b@x.com",
            "a b@x.com",
            "a@x_y.com",
        ] {
            let e = mail("mail", bad).unwrap_err();
            assert!(e.message.starts_with("mail:"), "{bad}: {}", e.message);
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
        assert!(mail("mail", &long).is_err());
    }

    #[test]
    fn phone_rules() {
        for ok in [
            "+47 22 12 34 56",
            "+1 (425) 555-0100 x123",
            "5550100",
            "1234",
            "+1 425 555 0100 X 12",
        ] {
            assert!(phone("mobilePhone", ok).is_ok(), "{ok}");
        }
        assert_eq!(
            phone("mobilePhone", " +1 555 0100 X9 ").unwrap(),
            "+1 555 0100 x9"
        );
        for bad in [
            "",
            "123",
            "12-3",
            "+47 22+12",
            "abc1234",
            "1234x",
            "1234 x 5x6",
            "++4712345",
            &"1".repeat(33),
            "x1234",
        ] {
            let e = phone("mobilePhone", bad).unwrap_err();
            assert!(
                e.message.starts_with("mobilePhone:"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn tenant_name_rules() {
        assert_eq!(tenant_name("Contoso").unwrap(), "contoso");
        assert_eq!(tenant_name("a1-b").unwrap(), "a1-b");
        for bad in ["a", "-ab", "ab-", "a_b", "a.b", "", &"a".repeat(64), "æø"] {
            assert!(tenant_name(bad).is_err(), "{bad}");
        }
        assert!(tenant_name(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn domain_rules() {
        assert_eq!(domain("Contoso.COM").unwrap(), "contoso.com");
        assert!(domain("a.b.example.org").is_ok());
        for bad in [
            "contoso", "contoso.", ".com", "a..com", "-a.com", "a-.com", "a.1", "a_b.com",
            "a b.com", "",
        ] {
            let e = domain(bad).unwrap_err();
            assert!(e.message.starts_with("domain:"), "{bad}");
        }
        let long = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        assert!(long.len() > 253);
        assert!(domain(&long).is_err());
    }

    #[test]
    fn password_rule_counts_kinds_and_length() {
        assert!(new_password("Abcdefg1").is_ok());
        assert!(new_password("abcdefg1!").is_ok());
        assert!(new_password("ABCDEFG1!").is_ok());
        assert!(new_password("Abcdefgh!").is_ok());
        assert!(new_password("Pässwörd1").is_ok());
        for bad in [
            "Abcdef1",
            "abcdefgh1",
            "ABCDEFGH!",
            "abcdefghij",
            "12345678!",
            "Abc\ndefg1",
        ] {
            let e = new_password(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::Validation);
            assert!(e.message.contains("at least 3 of"), "{}", e.message);
            assert!(!e.message.contains(bad), "never echo the password");
        }
        assert!(new_password(&format!("Aa1{}", "x".repeat(253))).is_ok());
        assert!(new_password(&format!("Aa1{}", "x".repeat(254))).is_err());
    }

    #[test]
    fn shown_truncates_and_masks_control_characters() {
        assert_eq!(shown("a\u{7}b"), "a?b");
        assert_eq!(shown("a\u{202E}b\u{200B}"), "a?b?");
        let s = shown(&"x".repeat(100));
        assert_eq!(s.chars().count(), 41);
        assert!(s.ends_with('…'));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn domains() -> Vec<String> {
            vec!["contoso.com".into(), "contoso.dirbridge.test".into()]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn validators_never_panic(s in any::<String>()) {
                let _ = upn(&s, &domains());
                let _ = usage_location(&s);
                let _ = display_name(&s);
                let _ = optional_text("f", Some(&s), 10);
                let _ = optional_report("f", Some(&s), 10);
                let _ = mail("mail", &s);
                let _ = phone("mobilePhone", &s);
                let _ = tenant_name(&s);
                let _ = domain(&s);
                let _ = new_password(&s);
            }

            #[test]
            fn accepted_upns_are_valid_again_and_within_limits(
                local in "[A-Za-z0-9'._!#^~-]{0,70}",
                dom in prop::sample::select(vec!["contoso.com", "CONTOSO.com", "contoso.dirbridge.test", "fabrikam.com"]),
                pad in "[ \t]{0,2}",
            ) {
                let input = format!("{pad}{local}@{dom}{pad}");
                if let Ok(v) = upn(&input, &domains()) {
                    prop_assert!(v.chars().count() <= UPN_MAX);
                    let (l, d) = v.split_once('@').unwrap();
                    prop_assert!(l.chars().count() <= UPN_LOCAL_MAX);
                    prop_assert!(!l.starts_with('.') && !l.ends_with('.') && !l.contains(".."));
                    prop_assert!(domains().iter().any(|x| x == d));
                    prop_assert_eq!(upn(&v, &domains()).unwrap(), v.clone());
                } else {
                    let ok_shape = !local.is_empty()
                        && local.len() <= 64
                        && !local.starts_with('.')
                        && !local.ends_with('.')
                        && !local.contains("..")
                        && dom != "fabrikam.com";
                    prop_assert!(!ok_shape, "refused a valid UPN: {input:?}");
                }
            }

            #[test]
            fn usage_location_accepts_exactly_the_assigned_codes(s in "[A-Za-z]{0,3}|.{0,4}") {
                match usage_location(&s) {
                    Ok(v) => {
                        prop_assert!(crate::country::is_alpha2(&v));
                        prop_assert_eq!(v, s.trim().to_ascii_uppercase());
                    }
                    Err(e) => {
                        prop_assert!(!crate::country::is_alpha2(&s.trim().to_ascii_uppercase()));
                        prop_assert!(e.message.starts_with("usageLocation: "));
                    }
                }
            }
        }
    }

    #[test]
    fn a_upn_keeps_its_spelling_and_compares_without_case() {
        let a = Upn::parse("  Alice@Contoso.Example ").unwrap();
        assert_eq!(a.as_str(), "Alice@Contoso.Example");
        assert_eq!(a.key(), "alice@contoso.example");
        assert_eq!(a.domain(), "contoso.example");
        assert_eq!(a, Upn::parse("alice@CONTOSO.example").unwrap());
        assert_ne!(a, Upn::parse("bob@contoso.example").unwrap());
        for bad in [
            "",
            "   ",
            "no-at-sign",
            "a\u{0}@b",
            &format!("{}@b", "x".repeat(UPN_MAX)),
        ] {
            let e = Upn::parse(bad).unwrap_err();
            assert!(
                e.message.starts_with("userPrincipalName:"),
                "{bad:?}: {}",
                e.message
            );
        }
        assert!(Upn::parse(&format!("{}@b", "x".repeat(UPN_MAX - 2))).is_ok());
    }

    #[test]
    fn a_directory_password_is_refused_only_for_what_no_directory_accepts() {
        let j = PasswordJudge::OnPremises;
        assert!(new_password_for("newPassword", "a", j).is_ok());
        assert!(new_password_for("newPassword", &"a".repeat(PASSWORD_MAX), j).is_ok());
        for bad in [
            String::new(),
            "a".repeat(PASSWORD_MAX + 1),
            "a\tb".to_string(),
        ] {
            let e = new_password_for("newPassword", &bad, j).unwrap_err();
            assert!(e.message.starts_with("newPassword:"), "{}", e.message);
            assert!(!e.message.contains("a\tb"));
        }
        let e = new_password_for("newPassword", "short", PasswordJudge::Cloud).unwrap_err();
        assert!(
            e.message.starts_with("newPassword: must be 8"),
            "{}",
            e.message
        );
        assert_eq!(
            new_password_for("password", "short", PasswordJudge::Cloud),
            new_password("short")
        );
    }
}
