//! The portal's words, in one catalogue keyed by a stable code, so a translation is one more
//! table (and a reviewer finds every sentence in one place). Templates ask for a text with
//! `{{ t.get("code") }}`; handlers with [`text`]. Messages decided by the application layer
//! (refusals, writeback outcomes) come with their own words and are shown as they are.
//!
//! A code missing from the catalogue shows as the code itself, and the unit test below fails
//! for any code a template uses that the catalogue lacks.

/// The English texts. Codes: `<page>.<what>`.
const EN: &[(&str, &str)] = &[
    // The reset flow: start.
    ("sspr.start.title", "Get back into your account"),
    ("sspr.start.intro", "Enter your user name. We will ask you to prove it is your account with the verification methods you registered, then you choose a new password."),
    ("sspr.unlock.title", "Unlock your account"),
    ("sspr.unlock.intro", "If you know your password but your account is locked, enter your user name. After you prove it is your account, you can unlock it without changing your password (where your organisation allows it)."),
    ("sspr.start.username", "User name"),
    ("sspr.start.submit", "Next"),
    ("sspr.start.unlock_link", "I know my password, but I still can't sign in"),
    ("sspr.start.reset_link", "I forgot my password"),
    ("sspr.start.back", "Back to sign-in"),
    ("sspr.gone", "Your password reset session has ended (they last 15 minutes). Start again."),
    // Verification.
    ("sspr.verify.title", "Verify your identity"),
    ("sspr.verify.need_one", "Use one of the methods below to prove this is your account."),
    ("sspr.verify.need_two", "Use two of the methods below to prove this is your account."),
    ("sspr.verify.done_one", "One method verified. Now use another one."),
    ("sspr.verify.send", "Send code"),
    ("sspr.verify.call", "Call me"),
    ("sspr.verify.code", "Code"),
    ("sspr.verify.submit", "Verify"),
    ("sspr.verify.answers", "Answer your security questions"),
    ("sspr.verify.no_methods", "Your organisation offers no verification method that works here. Contact your helpdesk."),
    ("sspr.restart", "Start over"),
    ("method.email", "Email me a code"),
    ("method.mobilePhone", "Text my mobile phone a code"),
    ("method.officePhone", "Call my office phone"),
    ("method.authenticatorApp", "Enter a code from my authenticator app"),
    ("method.securityQuestions", "Answer my security questions"),
    // New password.
    ("sspr.password.title", "Choose a new password"),
    ("sspr.password.intro", "Your identity is verified. Choose a new password: long and hard to guess, not one you used before."),
    ("sspr.password.new", "New password"),
    ("sspr.password.confirm", "Confirm new password"),
    ("sspr.password.submit", "Reset password"),
    ("sspr.password.mismatch", "The two passwords are not the same. Type the new password twice."),
    ("sspr.password.missing", "Type a new password."),
    ("sspr.password.hint_label", "Password strength"),
    ("sspr.unlock.submit", "Unlock my account, keep my password"),
    ("sspr.unlock.or", "Or unlock your account without changing your password."),
    // Results.
    ("sspr.result.done_title", "You're all set"),
    ("sspr.result.signin", "Sign in with your new password"),
    ("sspr.result.signin_unlocked", "Sign in"),
    ("sspr.result.refused_title", "Your password could not be reset"),
    ("sspr.result.try_again", "Try another password"),
    ("sspr.result.support", "Support code"),
    ("sspr.result.support_hint", "Give this code to your helpdesk, so they can find what happened."),
    ("help.title", "Get help"),
    ("help.url", "Your organisation's helpdesk"),
    ("help.email", "Email the helpdesk:"),
    ("help.none", "Contact your administrator."),
    // Change password.
    ("change.title", "Change your password"),
    ("change.current", "Current password"),
    ("change.submit", "Change password"),
    ("change.done", "Your password has been changed. Sign in again with the new password."),
    ("change.back", "Back to your account"),
    ("change.link", "Change password"),
    ("csrf.refused", "This form had expired or did not come from this site, so nothing was done. Reload the page and try again."),
    // The registration interrupt and reconfirmation.
    ("register.title", "More information required"),
    ("register.intro", "Your organisation needs more information to keep your account secure: register the methods you will use to reset your password if you forget it."),
    ("register.count", "Methods registered / needed:"),
    ("register.go", "Set up security info"),
    ("register.skip", "Skip for now"),
    ("reconfirm.title", "Are your security details still right?"),
    ("reconfirm.intro", "Your organisation asks you to check, from time to time, that the methods you use to reset your password are still yours."),
    ("reconfirm.ok", "Yes, these are still right"),
    ("reconfirm.change", "Change my security info"),
    ("reconfirm.none", "Nothing registered."),
    // Security info (/my/security-info).
    ("security_info.title", "Security info"),
    ("security_info.intro", "These are the methods you use to prove it is you when you reset your password. Every change asks you to confirm it is you first, and is mailed to you."),
    ("security_info.email", "Email"),
    ("security_info.mobilePhone", "Mobile phone"),
    ("security_info.officePhone", "Office phone"),
    ("security_info.securityQuestions", "Security questions"),
    ("security_info.authenticatorApp", "Authenticator app"),
    ("security_info.app_registered", "Registered"),
    ("security_info.not_set", "Not set up"),
    ("security_info.add", "Add"),
    ("security_info.change", "Change or remove"),
    ("security_info.saved", "saved."),
    ("security_info.removed", "removed."),
    ("security_info.back", "Back to your account"),
    ("security_info.back_to_list", "Back to security info"),
    ("security_info.sign_out", "Sign out"),
    ("security_info.link", "Security info"),
    ("security_info.not_offered", "Your organisation does not offer this method for password reset, so it cannot be set up here. Go back to security info."),
    ("security_info.current", "Registered now:"),
    ("security_info.new_value", "New value"),
    ("security_info.save", "Save"),
    ("security_info.remove", "Remove"),
    ("security_info.questions.intro", "Choose questions only you can answer, and answer each (3 to 40 characters). Number of questions needed at least:"),
    ("security_info.questions.question", "Question"),
    ("security_info.questions.answer", "Answer"),
    ("security_info.questions.choose", "Choose a question"),
    ("security_info.verify.legend", "Confirm it's you"),
    ("security_info.verify.intro", "Changing how your password can be reset needs proof that it is you, every time."),
    ("security_info.verify.how", "Confirm with"),
    ("security_info.verify.password", "Current password"),
    ("security_info.verify.app", "A code from your authenticator app"),
    ("security_info.verify.app_code", "Code from your authenticator app"),
    ("security_info.verify.questions", "Your security questions"),
    ("security_info.app.intro", "Install an authenticator app on your phone (any app for time-based codes). The next page shows a QR code to scan; the app is registered once you enter its first code."),
    ("security_info.app.begin", "Set up an authenticator app"),
    ("security_info.app.setup_title", "Set up your authenticator app"),
    ("security_info.app.scan", "Scan this QR code with your authenticator app. It is shown only now."),
    ("security_info.qr_title", "QR code for your authenticator app"),
    ("security_info.app.cant_scan", "Can't scan it?"),
    ("security_info.app.manual", "Add an account in the app by hand with these values:"),
    ("security_info.app.secret", "Secret key"),
    ("security_info.app.account", "Account name"),
    ("security_info.app.issuer", "Issuer"),
    ("security_info.app.type", "Type"),
    ("security_info.app.time_based", "Time based (TOTP)"),
    ("security_info.app.algorithm", "Algorithm"),
    ("security_info.app.digits", "Digits"),
    ("security_info.app.period", "Period (seconds)"),
    ("security_info.app.first_code", "The code the app shows now"),
    ("security_info.app.confirm", "Confirm and register the app"),
    ("signin.cant_access", "Can't access your account?"),
];

/// The text of `code`, or the code itself when the catalogue has none.
pub fn text(code: &str) -> &str {
    EN.iter()
        .find(|(k, _)| *k == code)
        .map(|(_, v)| *v)
        .unwrap_or(code)
}

/// The catalogue as templates see it: `{{ t.get("code") }}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Texts;

impl Texts {
    pub fn get<'a>(&self, code: &'a str) -> &'a str {
        text(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `t.get("…")` in a template names a text of the catalogue, and no code is there twice.
    #[test]
    fn every_code_a_template_uses_is_in_the_catalogue() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut used = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let html = std::fs::read_to_string(&path).unwrap();
            for part in html.split("t.get(\"").skip(1) {
                let code = part.split('"').next().unwrap();
                used += 1;
                assert!(
                    EN.iter().any(|(k, _)| *k == code),
                    "{}: no text {code}",
                    path.display()
                );
            }
        }
        assert!(used > 0);
        let mut codes: Vec<_> = EN.iter().map(|(k, _)| *k).collect();
        codes.sort();
        let n = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), n, "a code is in the catalogue twice");
    }
}
