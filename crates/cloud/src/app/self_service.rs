//! What the self-service pages show around the reset flow of [`super::sspr`]: the tenant's
//! helpdesk (told on every refusal) and a strength hint for a refused new password.
//!
//! Neither decides anything: the directory's policy (or the cloud's rule for cloud accounts)
//! accepts or refuses a password; the hint only helps a person choose a better one.

use proto::SsprPolicy;
use tenant::sspr;
use tenant::validate::Upn;

use crate::error::ApiResult;
use crate::state::AppState;

/// Where a person gets help: the tenant policy's helpdesk link and/or email.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Helpdesk {
    pub url: Option<String>,
    pub email: Option<String>,
}

fn of_policy(p: Option<SsprPolicy>) -> Helpdesk {
    p.map(|p| Helpdesk {
        url: p.helpdesk_url,
        email: p.helpdesk_email,
    })
    .unwrap_or_default()
}

/// The helpdesk of the tenant a reset session runs for (a decoy's too: it is the tenant's of
/// the typed domain, so it tells nothing about an account). None known: empty.
pub async fn helpdesk_of_session(state: &AppState, secret: &str) -> ApiResult<Helpdesk> {
    if !sspr::plausible_session_secret(secret) {
        return Ok(Helpdesk::default());
    }
    let s = state
        .store
        .get_sspr_session(&sspr::session_hash(secret))
        .await?;
    match s.and_then(|s| s.tenant_id) {
        Some(t) => Ok(of_policy(state.store.get_policy(&t).await?)),
        None => Ok(Helpdesk::default()),
    }
}

/// The helpdesk of the tenant owning the domain of `upn` as typed (empty when none does).
pub async fn helpdesk_of_upn(state: &AppState, upn: &str) -> ApiResult<Helpdesk> {
    let Ok(typed) = Upn::parse(upn) else {
        return Ok(Helpdesk::default());
    };
    match super::sign_in::find_tenant_for_upn(state, &typed.key()).await? {
        Some(t) => Ok(of_policy(state.store.get_policy(&t.id).await?)),
        None => Ok(Helpdesk::default()),
    }
}

/// A hint for a weak password (zxcvbn's estimate below "safely unguessable", score 3), in
/// words: its warning and suggestions. `user_inputs` are words the person is known by (parts
/// of the user name), which zxcvbn counts as guessable. `None` for a strong password.
pub fn strength_hint(password: &str, user_inputs: &[&str]) -> Option<String> {
    if password.is_empty() {
        return None;
    }
    let e = zxcvbn::zxcvbn(password, user_inputs);
    if u8::from(e.score()) >= 3 {
        return None;
    }
    let mut words = vec!["This password would be easy to guess.".to_string()];
    if let Some(f) = e.feedback() {
        if let Some(w) = f.warning() {
            words.push(w.to_string());
        }
        words.extend(f.suggestions().iter().map(|s| s.to_string()));
    }
    Some(words.join(" "))
}

/// The parts of a user name zxcvbn should treat as known: the local part's words.
pub fn name_words(upn: &str) -> Vec<&str> {
    upn.split(['@', '.', '_', '-'])
        .filter(|w| w.len() >= 3)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guessable_password_gets_a_hint_and_a_strong_one_none() {
        let hint = strength_hint("password1", &[]).expect("a hint");
        assert!(
            hint.starts_with("This password would be easy to guess."),
            "{hint}"
        );
        // The person's own name is guessable.
        let words = name_words("ada.lovelace@contoso.test");
        assert_eq!(words, ["ada", "lovelace", "contoso", "test"]);
        assert!(strength_hint("Lovelace1", &words).is_some());
        assert_eq!(strength_hint("correct-Horse-battery-st4ple-92", &[]), None);
        assert_eq!(strength_hint("", &[]), None);
    }
}
