//! Self-service password reset decisions (REFERENCE.md, "Self-service password reset policy"):
//! lifetimes and throttles, one-time codes and session secrets, which security questions are
//! asked, what a registration must satisfy, and whether a verified person may reset, with the
//! user-facing refusal class when not. No I/O: callers pass rows and the time.

use std::collections::{HashMap, HashSet, VecDeque};

use base64::Engine as _;
use proto::writeback::Outcome;
use proto::{AuthMethod, Entitlement, MemberKind, MemberRef, SsprPolicy, SsprScope, User};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::policy;
use crate::refusal::Refusal;

/// A reset session lasts 15 minutes.
pub const SESSION_SECS: i64 = 15 * 60;
/// A one-time code lives 5 minutes.
pub const CODE_SECS: i64 = 5 * 60;
/// Digits of an emailed one-time code.
pub const CODE_DIGITS: usize = 8;
/// A locked-out account stays locked 24 hours.
pub const LOCKOUT_SECS: i64 = 24 * 3600;
pub const ANSWER_MIN_CHARS: usize = 3;
pub const ANSWER_MAX_CHARS: usize = 40;

/// What the per-account throttles count. Each has a window and a limit; the first two lock the
/// account out for [`LOCKOUT_SECS`] when reached, the last two only refuse more codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// A wrong one-time code (or a wrong current password on self-service change):
    /// 5 per hour.
    Verification,
    /// A wrong set of security answers: 5 per 24 hours.
    IdentityProof,
    /// A reset code sent by email: 10 per 10 minutes.
    Email,
    /// A reset code sent by text message or voice call: 10 per 10 minutes, counted apart from
    /// the emails (a person who used up one still has the other; each gateway's budget is its
    /// own).
    PhoneCode,
}

impl Throttle {
    /// The name stored with each event.
    pub fn kind(self) -> &'static str {
        match self {
            Throttle::Verification => "verification",
            Throttle::IdentityProof => "identityProof",
            Throttle::Email => "email",
            Throttle::PhoneCode => "phoneCode",
        }
    }
    pub fn window_secs(self) -> i64 {
        match self {
            Throttle::Verification => 3600,
            Throttle::IdentityProof => 24 * 3600,
            Throttle::Email | Throttle::PhoneCode => 10 * 60,
        }
    }
    pub fn limit(self) -> i64 {
        match self {
            Throttle::Verification | Throttle::IdentityProof => 5,
            Throttle::Email | Throttle::PhoneCode => 10,
        }
    }
    /// Whether reaching the limit locks the account out.
    pub fn locks_out(self) -> bool {
        !matches!(self, Throttle::Email | Throttle::PhoneCode)
    }
    /// Given `count` events in the window (the one just recorded included), until when the
    /// account is locked out, if this event locks it.
    pub fn lockout_after(self, count: i64, now: proto::Epoch) -> Option<proto::Epoch> {
        (self.locks_out() && count >= self.limit()).then_some(now + LOCKOUT_SECS)
    }
}

/// The throttle subject of a known user (per account, whatever UPN it is asked by).
pub fn user_subject(tenant_id: &str, user_id: &str) -> String {
    format!("user:{tenant_id}:{user_id}")
}

/// The throttle subject of a UPN that matches no account: it is throttled like an account, so
/// lockouts do not reveal which UPNs exist.
pub fn upn_subject(upn: &str) -> String {
    format!("upn:{}", crate::validate::upn_key(upn.trim()))
}

// ---------------------------------------------------------------- secrets

/// A new session secret (base64url of 32 random bytes) and the SHA-256 hex the store keeps.
pub fn new_session_secret() -> (Zeroizing<String>, String) {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *bytes);
    let secret = Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*bytes));
    let hash = session_hash(&secret);
    (secret, hash)
}

/// What the store looks a session up by.
pub fn session_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(format!("sspr-session:{secret}").as_bytes()))
}

/// Whether `secret` has the shape of a session secret (so junk never reaches the database).
pub fn plausible_session_secret(secret: &str) -> bool {
    secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new one-time code of [`CODE_DIGITS`] decimal digits.
pub fn new_code() -> Zeroizing<String> {
    let mut rng = rand::rngs::OsRng;
    let mut code = Zeroizing::new(String::with_capacity(CODE_DIGITS));
    for _ in 0..CODE_DIGITS {
        code.push(char::from(b'0' + rng.gen_range(0..10u8)));
    }
    code
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`, hex.
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut k = Zeroizing::new([0u8; BLOCK]);
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<u8>>());
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<u8>>());
    outer.update(inner);
    hex::encode(outer.finalize())
}

/// What the store keeps of a one-time code: an HMAC keyed by the session secret, so the
/// database alone cannot be used to try the 10^8 codes.
pub fn code_mac(session_secret: &str, code: &str) -> String {
    hmac_sha256_hex(
        session_secret.as_bytes(),
        format!("sspr-code:{code}").as_bytes(),
    )
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a typed code matches the stored MAC (digits only; spaces and dashes ignored).
pub fn code_matches(session_secret: &str, typed: &str, stored_mac: &str) -> bool {
    let digits: Zeroizing<String> = Zeroizing::new(
        typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect(),
    );
    if digits.len() != CODE_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    constant_time_eq(&code_mac(session_secret, &digits), stored_mac)
}

// ---------------------------------------------------------------- security questions

/// The form an answer is hashed and compared in: trimmed, lower-case, inner whitespace
/// collapsed to one space.
pub fn normalise_answer(answer: &str) -> Zeroizing<String> {
    Zeroizing::new(
        answer
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    )
}

/// One question and its normalised answer, ready to hash.
pub struct CleanAnswer {
    pub question: String,
    pub answer: Zeroizing<String>,
}

impl std::fmt::Debug for CleanAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanAnswer")
            .field("question", &self.question)
            .field("answer", &"[redacted]")
            .finish()
    }
}

/// Whether an administrator may make a registration for another person: contact methods
/// (email, phones) and removing the security questions (so the person registers them again),
/// yes; security answers (`sets_answers`) never, nor an authenticator secret (the API has no
/// field for one): whoever chose them could pass a reset as the person.
pub fn check_admin_registration(sets_answers: bool) -> Result<(), Refusal> {
    if sets_answers {
        return Err(Refusal::forbidden(
            "securityQuestions: only the person can register their own security answers, signed in as themselves (PUT /api/v1/me/authentication-methods). An administrator may set email and phones, or remove the questions (null) so the person registers them again.",
        ));
    }
    Ok(())
}

/// How a signed-in person proves, just before changing their own reset methods, that they
/// are the person and not someone holding their token (issue 20): the current password
/// always; a method already registered when there is one to prove with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofKind {
    Password,
    SecurityQuestions,
    AuthenticatorApp,
}

/// Whether a person's own change of their methods may go ahead: every change (adding,
/// changing or removing any method) needs a fresh verification given with it (`proof`); a
/// registered method proves only while it is registered, so a person with no methods yet
/// proves with the password. A body that changes nothing needs none.
pub fn check_change_proof(
    changes_anything: bool,
    proof: Option<ProofKind>,
    registered: &[AuthMethod],
) -> Result<(), Refusal> {
    if !changes_anything {
        return Ok(());
    }
    let needed = || {
        Refusal::unauthenticated(
            "verification: changing your password reset methods needs a fresh verification in the same request: your current password ({\"method\": \"password\", \"password\": \"…\"}), or a method you registered before (your security questions, or a code from your authenticator app).",
        )
    };
    match proof {
        None => Err(needed()),
        Some(ProofKind::Password) => Ok(()),
        Some(ProofKind::SecurityQuestions) if registered.contains(&AuthMethod::SecurityQuestions) => {
            Ok(())
        }
        Some(ProofKind::AuthenticatorApp) if registered.contains(&AuthMethod::AuthenticatorApp) => {
            Ok(())
        }
        Some(_) => Err(Refusal::validation(
            "verification.method: you have not registered this method; verify with your current password instead.",
        )),
    }
}

/// Checks a security-question registration against the policy: questions from the policy's
/// list, at least `questionsToRegister` and at most 5, answers 3 to 40 characters, no question
/// or answer twice; none at all for administrators. Returns the questions spelt as in the policy
/// and the normalised answers. Messages never repeat an answer.
pub fn validate_questions(
    p: &SsprPolicy,
    is_admin: bool,
    given: &[(String, String)],
) -> Result<Vec<CleanAnswer>, Refusal> {
    if is_admin {
        return Err(Refusal::validation("securityQuestions: administrators cannot use security questions to reset their password (the administrator policy requires two other methods)"));
    }
    if !p.methods.contains(&AuthMethod::SecurityQuestions) {
        return Err(Refusal::validation("securityQuestions: the tenant's password reset policy does not allow security questions"));
    }
    let min = usize::from(p.questions_to_register.max(policy::QUESTIONS_MIN));
    let max = usize::from(policy::QUESTIONS_MAX);
    if given.len() < min || given.len() > max {
        return Err(Refusal::validation(format!(
            "securityQuestions: {} given; register {min} to {max} questions",
            given.len()
        )));
    }
    let mut out = Vec::with_capacity(given.len());
    let mut seen_q = HashSet::new();
    let mut seen_a = HashSet::new();
    for (i, (q, a)) in given.iter().enumerate() {
        let wanted = q.trim().to_lowercase();
        let Some(canonical) = p
            .security_questions
            .iter()
            .find(|pq| pq.trim().to_lowercase() == wanted)
        else {
            return Err(Refusal::validation(format!(
                "securityQuestions[{i}].question: '{}' is not one of the tenant's questions (GET /api/v1/policy/questions lists them)",
                crate::validate::shown(q.trim())
            )));
        };
        if !seen_q.insert(wanted) {
            return Err(Refusal::validation(format!(
                "securityQuestions[{i}].question: '{}' is given twice",
                crate::validate::shown(canonical)
            )));
        }
        let answer = normalise_answer(a);
        let n = answer.chars().count();
        if !(ANSWER_MIN_CHARS..=ANSWER_MAX_CHARS).contains(&n) {
            return Err(Refusal::validation(format!(
                "securityQuestions[{i}].answer: is {n} characters; an answer is {ANSWER_MIN_CHARS} to {ANSWER_MAX_CHARS} characters"
            )));
        }
        if answer.chars().any(char::is_control) {
            return Err(Refusal::validation(format!(
                "securityQuestions[{i}].answer: contains control characters"
            )));
        }
        if !seen_a.insert(answer.to_string()) {
            return Err(Refusal::validation(format!(
                "securityQuestions[{i}].answer: the same answer is given to two questions; give each question its own answer"
            )));
        }
        out.push(CleanAnswer {
            question: canonical.trim().to_string(),
            answer,
        });
    }
    Ok(out)
}

/// How many questions a reset asks: the policy's `questionsToAnswer`, never more than are
/// registered.
pub fn questions_to_ask(p: &SsprPolicy, registered: usize) -> usize {
    usize::from(p.questions_to_answer.max(policy::QUESTIONS_MIN)).min(registered)
}

/// The questions a session asks: `n` of `registered`, chosen (and ordered) by a keyed hash of
/// the UPN and each question. The same for every session of the account as long as its
/// registration stays the same, for a real account and a decoy alike: a random subset per
/// session would show, over repeated starts, that an account registered more questions than a
/// decoy pretends, and would let someone who knows some answers start until only those are
/// asked.
pub fn ask_questions(registered: &[String], n: usize, key: &[u8], upn: &str) -> Vec<String> {
    keyed_choice("ask", registered, n, key, upn)
}

/// The questions a decoy session pretends the account registered: `n` of the policy's
/// questions chosen by a keyed hash of the UPN, so every start for the same unknown UPN asks
/// the same ones ([`ask_questions`]), as for a real account.
pub fn decoy_registered(questions: &[String], n: usize, key: &[u8], upn: &str) -> Vec<String> {
    keyed_choice("decoy", questions, n, key, upn)
}

fn keyed_choice(
    purpose: &str,
    questions: &[String],
    n: usize,
    key: &[u8],
    upn: &str,
) -> Vec<String> {
    let mut scored: Vec<(String, &String)> = questions
        .iter()
        .map(|q| {
            let msg = format!("{purpose}\n{}\n{}", crate::validate::upn_key(upn.trim()), q);
            (hmac_sha256_hex(key, msg.as_bytes()), q)
        })
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, q)| q.clone()).collect()
}

// ---------------------------------------------------------------- authenticator app (TOTP)

/// RFC 6238 with the parameters every authenticator app understands: HMAC-SHA1, 6 digits,
/// 30-second steps; a code of the step before or after the current one is accepted too.
pub const TOTP_DIGITS: u8 = 6;
pub const TOTP_STEP_SECS: i64 = 30;
pub const TOTP_SKEW_STEPS: u16 = 1;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
pub const TOTP_SECRET_BYTES: usize = 20;
/// A begun registration must be confirmed with a first code within 10 minutes.
pub const TOTP_PENDING_SECS: i64 = 10 * 60;

/// A new random TOTP secret.
pub fn new_totp_secret() -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(vec![0u8; TOTP_SECRET_BYTES]);
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<totp_rs::Totp, Refusal> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(TOTP_DIGITS)
        .with_skew(TOTP_SKEW_STEPS)
        .with_step_duration(TOTP_STEP_SECS as u64)
        .with_secret(secret.to_vec())
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(issuer.replace(':', "_")))
        .build()
        .map_err(|e| Refusal::new(proto::ErrorCode::Internal, format!("TOTP: {e}")))
}

/// What an authenticator app needs to be set up, shown once at registration: the secret in
/// base32 and the `otpauth://` URI (for the QR code) of `account` at `issuer`.
pub struct TotpSetup {
    pub secret_base32: Zeroizing<String>,
    pub uri: Zeroizing<String>,
}

pub fn totp_setup(secret: &[u8], issuer: &str, account: &str) -> Result<TotpSetup, Refusal> {
    let t = totp(secret, issuer, account)?;
    let uri = t
        .to_url()
        .map_err(|e| Refusal::new(proto::ErrorCode::Internal, format!("TOTP URI: {e}")))?;
    Ok(TotpSetup {
        secret_base32: Zeroizing::new(t.secret().to_base32()),
        uri: Zeroizing::new(uri),
    })
}

/// The step `code` belongs to, if it is a code of `secret` at `now` (±[`TOTP_SKEW_STEPS`]) and
/// later than `last_step`, the last one accepted: a code is accepted once.
pub fn totp_step(secret: &[u8], code: &str, now: i64, last_step: Option<i64>) -> Option<i64> {
    let t = totp(secret, "dirbridge", "check").ok()?;
    let now = u64::try_from(now).ok()?;
    let step = i64::try_from(t.check(code.trim(), now)?).ok()?;
    match last_step {
        Some(last) if step <= last => None,
        _ => Some(step),
    }
}

/// The code of `secret` at `now` (for tests and for the reviewer's own check).
pub fn totp_code(secret: &[u8], now: i64) -> String {
    totp(secret, "dirbridge", "check")
        .map(|t| t.generate(u64::try_from(now).unwrap_or(0)).to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- methods and progress

pub fn method_name(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::Email => "email",
        AuthMethod::MobilePhone => "mobilePhone",
        AuthMethod::OfficePhone => "officePhone",
        AuthMethod::SecurityQuestions => "securityQuestions",
        AuthMethod::AuthenticatorApp => "authenticatorApp",
    }
}

/// The methods a reset session offers: the tenant policy's (every method can be verified:
/// codes by email, text message or voice call, security questions, the authenticator app),
/// the same for every UPN (so the offer reveals nothing about an account).
pub fn offered_methods(p: &SsprPolicy) -> Vec<AuthMethod> {
    p.methods.clone()
}

/// Methods a user must verify: 2 for administrators (any admin role), else the policy's.
pub fn methods_required(p: &SsprPolicy, is_admin: bool) -> usize {
    if is_admin {
        usize::from(policy::admin_policy().methods_required)
    } else {
        usize::from(p.methods_required.clamp(1, 2))
    }
}

/// Which of `registered` methods a user may verify with: offered by the policy, and for
/// administrators never security questions.
pub fn usable_methods(
    p: &SsprPolicy,
    is_admin: bool,
    registered: &[AuthMethod],
) -> Vec<AuthMethod> {
    offered_methods(p)
        .into_iter()
        .filter(|m| registered.contains(m))
        .filter(|m| !(is_admin && *m == AuthMethod::SecurityQuestions))
        .collect()
}

/// Where verification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More methods to verify.
    Pending,
    /// Enough methods verified.
    Verified,
    /// Every usable registered method is verified, but they are fewer than required.
    NotEnoughMethods,
}

/// Where verification stands with `verified` of the account's `usable` methods. The
/// authenticator app is never the only method a reset rests on (REFERENCE.md): enough methods
/// means `required` of them, one at least not the app.
pub fn progress(verified: &[AuthMethod], required: usize, usable: &[AuthMethod]) -> Progress {
    let not_app = |m: &&AuthMethod| **m != AuthMethod::AuthenticatorApp;
    if verified.len() >= required && verified.iter().any(|m| not_app(&m)) {
        Progress::Verified
    } else if !verified.is_empty()
        && (verified.len() >= usable.len() || !usable.iter().any(|m| not_app(&m)))
    {
        Progress::NotEnoughMethods
    } else {
        Progress::Pending
    }
}

/// The methods named in a session's `verified` list.
pub fn verified_methods(names: &[String]) -> Vec<AuthMethod> {
    [
        AuthMethod::Email,
        AuthMethod::MobilePhone,
        AuthMethod::OfficePhone,
        AuthMethod::SecurityQuestions,
        AuthMethod::AuthenticatorApp,
    ]
    .into_iter()
    .filter(|m| names.iter().any(|n| n == method_name(*m)))
    .collect()
}

// ---------------------------------------------------------------- the session state machine

/// A reset session's life: `live` from its start until [`SESSION_SECS`] later, `spent` once a
/// reset or unlock has claimed it (at most one claim succeeds), and back to live when the claim
/// is released (nothing was done, or the directory's policy refused the password, so the person
/// may try another one in the same session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Live,
    Spent,
    Expired,
}

/// Where a session with these times stands at `now`.
pub fn session_state(
    expires_at: proto::Epoch,
    used_at: Option<proto::Epoch>,
    now: proto::Epoch,
) -> SessionState {
    if expires_at <= now {
        SessionState::Expired
    } else if used_at.is_some() {
        SessionState::Spent
    } else {
        SessionState::Live
    }
}

/// The refusal of a session that does not exist or has expired (`notFound`): the same for a
/// secret that never named a session, so it tells nothing.
pub fn session_gone() -> Refusal {
    Refusal::not_found(
        "This password reset session does not exist or has expired. Start again from the beginning.",
    )
}

/// The refusal of a reset in a session that already reset or unlocked (`conflict`).
pub fn session_used() -> Refusal {
    Refusal::conflict(
        "This password reset session was already used. Start again to reset the password again.",
    )
}

/// Verifying a method or sending a code: only in a live session (a spent one is gone).
pub fn may_verify(state: SessionState) -> Result<(), Refusal> {
    match state {
        SessionState::Live => Ok(()),
        SessionState::Spent | SessionState::Expired => Err(session_gone()),
    }
}

/// Resetting: only in a live session; a spent one says so.
pub fn may_reset(state: SessionState) -> Result<(), Refusal> {
    match state {
        SessionState::Live => Ok(()),
        SessionState::Spent => Err(session_used()),
        SessionState::Expired => Err(session_gone()),
    }
}

/// What a verified person asked for at the end of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// A new password (for the cloud, or written back).
    NewPassword,
    /// Unlock the on-premises account, keeping the password.
    Unlock,
}

impl ResetKind {
    /// The writeback kind of a synced user's request, which picks the words the person sees.
    pub fn operation_kind(self) -> proto::writeback::OperationKind {
        match self {
            ResetKind::NewPassword => proto::writeback::OperationKind::Reset,
            ResetKind::Unlock => proto::writeback::OperationKind::Unlock,
        }
    }
}

/// The shape of the final request: either `newPassword` (by the one new-password rule of
/// [`crate::validate::new_password_for`], judged by the directory for a synced user) or
/// `unlockOnly`, which the policy must allow and only a synced account can use.
pub fn reset_request(
    p: &SsprPolicy,
    synced: bool,
    unlock_only: bool,
    new_password: Option<&str>,
) -> Result<ResetKind, Refusal> {
    if unlock_only {
        if new_password.is_some() {
            return Err(Refusal::validation(
                "Send either newPassword or unlockOnly, not both.",
            ));
        }
        if !p.allow_unlock_without_reset || !synced {
            return Err(Refusal::validation(
                "unlockOnly: your organisation does not allow unlocking without a new password here; choose a new password.",
            ));
        }
        return Ok(ResetKind::Unlock);
    }
    let judge = if synced {
        crate::validate::PasswordJudge::OnPremises
    } else {
        crate::validate::PasswordJudge::Cloud
    };
    crate::validate::new_password_for("newPassword", new_password.unwrap_or_default(), judge)?;
    Ok(ResetKind::NewPassword)
}

/// Whether a claimed session is given back after the reset ran: when nothing was done (`None`:
/// the attempt failed before anything reached a directory) or the directory's password policy
/// refused the new password, the person may try again in the same session; any other outcome
/// spends it.
pub fn release_after(outcome: Option<Outcome>) -> bool {
    matches!(outcome, None | Some(Outcome::PolicyRefused))
}

/// The security questions a session asks: for a real account that is not an administrator
/// and registered its own questions, some of those; otherwise (an unknown or disabled account,
/// an administrator, or no registration) a decoy set drawn from the policy's questions, fixed
/// per UPN by `key`, so the answer looks the same either way.
pub fn session_questions(
    p: &SsprPolicy,
    own: Option<Vec<String>>,
    key: &[u8],
    upn: &str,
) -> Vec<String> {
    if !offered_methods(p).contains(&AuthMethod::SecurityQuestions) {
        return Vec::new();
    }
    let registered = match own {
        Some(own) if !own.is_empty() => own,
        _ => {
            let n_reg = usize::from(p.questions_to_register.max(policy::QUESTIONS_MIN));
            decoy_registered(&p.security_questions, n_reg, key, upn)
        }
    };
    let n = questions_to_ask(p, registered.len());
    ask_questions(&registered, n, key, upn)
}

// ---------------------------------------------------------------- eligibility

/// The user-facing classes of "you cannot reset here" (REFERENCE.md). Told only to someone who
/// has verified the account's methods.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RefusalClass {
    SsprDisabled,
    WritebackNotEnabled,
    UserNotLicensed,
    UserNotInScope,
    NotEnoughMethods,
    OnPremAdminActionRequired,
    OnPremConnectivityError,
    OnPremSuccessCloudFailure,
}

impl RefusalClass {
    /// The sentence the person sees.
    pub fn message(self) -> &'static str {
        match self {
            RefusalClass::SsprDisabled => "Self-service password reset is not turned on for your organisation. Contact your administrator to reset your password.",
            RefusalClass::WritebackNotEnabled => "Your password is kept in your organisation's on-premises directory, and password writeback is not turned on, so it cannot be reset here. Contact your administrator.",
            RefusalClass::UserNotLicensed => "Your account does not have a licence that includes self-service password reset. Contact your administrator.",
            RefusalClass::UserNotInScope => "Your account is not enabled for self-service password reset. Contact your administrator.",
            RefusalClass::NotEnoughMethods => "You have not registered enough verification methods to reset your password here. Contact your administrator, then register more methods.",
            RefusalClass::OnPremAdminActionRequired => "Your password could not be reset because of a configuration problem in your organisation's directory. Contact your administrator.",
            RefusalClass::OnPremConnectivityError => "Your organisation's directory cannot be reached right now, so your password was not changed. Try again in a few minutes.",
            RefusalClass::OnPremSuccessCloudFailure => "Your password was changed in your organisation's directory, but the service could not record it. Sign in with the new password.",
        }
    }
}

/// Everything the eligibility decision needs about one user.
pub struct EligibilityInput<'a> {
    pub policy: &'a SsprPolicy,
    pub user: &'a User,
    /// Member (direct or nested) of the policy's group, when the scope is a group.
    pub in_group: bool,
    pub entitlement: &'a Entitlement,
}

/// Whether the (verified) user may reset, or the class of refusal. The order is the one a
/// person can act on: tenant switch, scope, licence, writeback.
pub fn eligibility(i: &EligibilityInput<'_>) -> Result<(), RefusalClass> {
    if i.policy.enabled_for == SsprScope::None {
        return Err(RefusalClass::SsprDisabled);
    }
    if !policy::applies_to(i.policy, |_| i.in_group) {
        return Err(RefusalClass::UserNotInScope);
    }
    if !i.entitlement.allowed {
        return Err(RefusalClass::UserNotLicensed);
    }
    if i.user.on_premises.is_some() && !i.policy.writeback_enabled {
        return Err(RefusalClass::WritebackNotEnabled);
    }
    Ok(())
}

/// The refusal class a writeback outcome falls in, if it is a failure of that kind.
pub fn outcome_class(o: Outcome) -> Option<RefusalClass> {
    match o {
        Outcome::AccessDenied
        | Outcome::ConfigurationError
        | Outcome::UserNotFound
        | Outcome::AmbiguousUser
        | Outcome::ProtectedAccount => Some(RefusalClass::OnPremAdminActionRequired),
        Outcome::DirectoryUnreachable | Outcome::AgentUnavailable => {
            Some(RefusalClass::OnPremConnectivityError)
        }
        _ => None,
    }
}

/// Whether `user_id` is in `group_id`, directly or through nested groups. `memberships` are
/// all (group id, member) pairs of the tenant; cycles are harmless.
pub fn is_member(memberships: &[(String, MemberRef)], user_id: &str, group_id: &str) -> bool {
    let mut children: HashMap<&str, Vec<&MemberRef>> = HashMap::new();
    for (g, m) in memberships {
        children.entry(g.as_str()).or_default().push(m);
    }
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([group_id]);
    while let Some(g) = queue.pop_front() {
        if !seen.insert(g) {
            continue;
        }
        for m in children.get(g).into_iter().flatten() {
            match m.kind {
                MemberKind::User if m.id == user_id => return true,
                MemberKind::Group => queue.push_back(m.id.as_str()),
                MemberKind::User => {}
            }
        }
    }
    false
}

// ---------------------------------------------------------------- masking

/// `ada.lovelace@contoso.com` → `a*********@c******.com`.
pub fn mask_email(email: &str) -> String {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return "***".into();
    };
    let (host, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
    let star = |s: &str| {
        let mut c = s.chars();
        match c.next() {
            Some(first) => format!("{first}{}", "*".repeat(c.count().max(2))),
            None => "***".into(),
        }
    };
    if tld.is_empty() {
        format!("{}@{}", star(local), star(host))
    } else {
        format!("{}@{}.{tld}", star(local), star(host))
    }
}

/// `+47 912 34 567` → `*******4567` (the last four digits only).
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!(
        "{}{tail}",
        "*".repeat(digits.len().saturating_sub(4).max(3))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{Role, Source};

    #[test]
    fn own_method_changes_need_a_fresh_proof_by_password_or_a_method_registered_before() {
        use AuthMethod::*;
        // Nothing changes: nothing to prove.
        assert!(check_change_proof(false, None, &[]).is_ok());
        // First registration: only the password proves.
        let e = check_change_proof(true, None, &[]).unwrap_err();
        assert_eq!(e.code, proto::ErrorCode::Unauthenticated);
        assert!(check_change_proof(true, Some(ProofKind::Password), &[]).is_ok());
        assert_eq!(
            check_change_proof(true, Some(ProofKind::SecurityQuestions), &[Email])
                .unwrap_err()
                .code,
            proto::ErrorCode::Validation
        );
        assert!(check_change_proof(
            true,
            Some(ProofKind::SecurityQuestions),
            &[SecurityQuestions]
        )
        .is_ok());
        assert!(check_change_proof(true, Some(ProofKind::AuthenticatorApp), &[Email]).is_err());
        assert!(
            check_change_proof(true, Some(ProofKind::AuthenticatorApp), &[AuthenticatorApp])
                .is_ok()
        );
    }

    #[test]
    fn totp_accepts_one_step_either_side_and_each_step_once() {
        // RFC 6238 appendix B, SHA-1, 8 digits at 59 s is 94287082: 6 digits 287082.
        let rfc = b"12345678901234567890";
        assert_eq!(totp_code(rfc, 59), "287082");
        let secret = new_totp_secret();
        let now = 1_800_000_015;
        let step = now / TOTP_STEP_SECS;
        let code = totp_code(&secret, now);
        assert_eq!(totp_step(&secret, &code, now, None), Some(step));
        assert_eq!(
            totp_step(&secret, &code, now + TOTP_STEP_SECS, None),
            Some(step)
        );
        assert_eq!(
            totp_step(&secret, &code, now - TOTP_STEP_SECS, None),
            Some(step)
        );
        assert_eq!(
            totp_step(&secret, &code, now + 2 * TOTP_STEP_SECS, None),
            None
        );
        // Used once: refused again, and so is an older one.
        assert_eq!(totp_step(&secret, &code, now, Some(step)), None);
        let before = totp_code(&secret, now - TOTP_STEP_SECS);
        assert_eq!(totp_step(&secret, &before, now, Some(step)), None);
        assert_eq!(totp_step(&secret, "12345", now, None), None);
        let setup = totp_setup(&secret, "Contoso", "ada@contoso.test").unwrap();
        assert!(setup.uri.starts_with("otpauth://totp/"), "{}", &*setup.uri);
        assert!(setup.uri.contains(&*setup.secret_base32));
    }

    // ------------------------------------------------------------ the session state machine

    use crate::clock::{Clock, ManualClock};

    #[test]
    fn a_session_lives_fifteen_minutes_then_is_gone() {
        let clock = ManualClock::new(1_800_000_000);
        let expires = clock.now() + SESSION_SECS;
        assert_eq!(
            session_state(expires, None, clock.now()),
            SessionState::Live
        );
        assert!(may_verify(session_state(expires, None, clock.now())).is_ok());
        clock.advance(SESSION_SECS - 1);
        assert_eq!(
            session_state(expires, None, clock.now()),
            SessionState::Live
        );
        clock.advance(1);
        let st = session_state(expires, None, clock.now());
        assert_eq!(st, SessionState::Expired);
        assert_eq!(may_verify(st).unwrap_err().code, proto::ErrorCode::NotFound);
        assert_eq!(may_reset(st).unwrap_err().code, proto::ErrorCode::NotFound);
    }

    #[test]
    fn a_claimed_session_refuses_a_second_reset_and_further_verification() {
        let clock = ManualClock::new(1_800_000_000);
        let expires = clock.now() + SESSION_SECS;
        clock.advance(60);
        let st = session_state(expires, Some(clock.now()), clock.now());
        assert_eq!(st, SessionState::Spent);
        assert_eq!(may_reset(st).unwrap_err(), session_used());
        assert_eq!(may_reset(st).unwrap_err().code, proto::ErrorCode::Conflict);
        assert_eq!(may_verify(st).unwrap_err(), session_gone());
        // Spent or not, an expired session is gone.
        clock.advance(SESSION_SECS);
        let st = session_state(expires, Some(clock.now() - 10), clock.now());
        assert_eq!(may_reset(st).unwrap_err(), session_gone());
    }

    #[test]
    fn a_policy_refusal_or_a_failed_attempt_gives_the_session_back() {
        assert!(release_after(None));
        assert!(release_after(Some(Outcome::PolicyRefused)));
        for spent in [
            Outcome::Succeeded,
            Outcome::OutcomeUnknown,
            Outcome::AgentUnavailable,
            Outcome::AccountDisabled,
        ] {
            assert!(!release_after(Some(spent)), "{spent:?}");
        }
        // Released: live again until it expires.
        let clock = ManualClock::new(1_800_000_000);
        let expires = clock.now() + SESSION_SECS;
        clock.advance(120);
        assert_eq!(
            session_state(expires, None, clock.now()),
            SessionState::Live
        );
    }

    #[test]
    fn the_final_request_is_a_new_password_or_an_allowed_unlock() {
        let mut p = questions_policy();
        p.allow_unlock_without_reset = false;
        assert_eq!(
            reset_request(&p, true, false, Some("x")),
            Ok(ResetKind::NewPassword)
        );
        // A cloud password follows the cloud rule.
        assert!(reset_request(&p, false, false, Some("x")).is_err());
        assert_eq!(
            reset_request(&p, false, false, Some("Str0ng-enough")),
            Ok(ResetKind::NewPassword)
        );
        assert!(reset_request(&p, true, false, None).is_err());
        assert!(reset_request(&p, true, true, None).is_err());
        p.allow_unlock_without_reset = true;
        assert_eq!(reset_request(&p, true, true, None), Ok(ResetKind::Unlock));
        assert!(reset_request(&p, false, true, None).is_err());
        assert!(reset_request(&p, true, true, Some("x")).is_err());
        assert_eq!(
            ResetKind::Unlock.operation_kind(),
            proto::writeback::OperationKind::Unlock
        );
    }

    #[test]
    fn decoy_and_real_sessions_ask_the_same_number_of_questions() {
        let p = questions_policy();
        let key = b"decoy-key";
        let decoy = session_questions(&p, None, key, "nobody@contoso.example");
        assert_eq!(
            decoy.len(),
            questions_to_ask(&p, usize::from(p.questions_to_register))
        );
        // Stable per UPN.
        assert_eq!(
            decoy,
            session_questions(&p, None, key, "nobody@contoso.example")
        );
        let own: Vec<String> = p.security_questions.iter().take(3).cloned().collect();
        let real = session_questions(&p, Some(own.clone()), key, "alice@contoso.example");
        assert_eq!(real.len(), decoy.len());
        assert!(real.iter().all(|q| own.contains(q)));
        let mut email_only = p.clone();
        email_only.methods = vec![AuthMethod::Email];
        assert!(session_questions(&email_only, Some(own), key, "a@b").is_empty());
    }

    fn questions_policy() -> SsprPolicy {
        let mut p = policy::default_policy();
        p.enabled_for = SsprScope::All;
        p.methods = vec![AuthMethod::Email, AuthMethod::SecurityQuestions];
        p.questions_to_register = 3;
        p.questions_to_answer = 3;
        p
    }

    fn q(i: usize) -> String {
        policy::predefined_questions()[i].to_string()
    }

    fn reg(pairs: &[(usize, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(i, a)| (q(*i), a.to_string())).collect()
    }

    #[test]
    fn throttles_follow_the_reference_numbers() {
        assert_eq!(
            (
                Throttle::Verification.limit(),
                Throttle::Verification.window_secs()
            ),
            (5, 3600)
        );
        assert_eq!(
            (
                Throttle::IdentityProof.limit(),
                Throttle::IdentityProof.window_secs()
            ),
            (5, 86_400)
        );
        assert_eq!(
            (Throttle::Email.limit(), Throttle::Email.window_secs()),
            (10, 600)
        );
        assert_eq!(Throttle::Verification.lockout_after(4, 100), None);
        assert_eq!(
            Throttle::Verification.lockout_after(5, 100),
            Some(100 + 86_400)
        );
        assert_eq!(Throttle::Email.lockout_after(50, 100), None);
        assert_eq!(Throttle::PhoneCode.lockout_after(50, 100), None);
        assert_ne!(Throttle::PhoneCode.kind(), Throttle::Email.kind());
        assert_eq!((SESSION_SECS, CODE_SECS), (900, 300));
    }

    #[test]
    fn codes_are_digits_and_only_their_mac_is_kept() {
        let c = new_code();
        assert_eq!(c.len(), CODE_DIGITS);
        assert!(c.bytes().all(|b| b.is_ascii_digit()));
        let (secret, hash) = new_session_secret();
        assert!(plausible_session_secret(&secret));
        assert_eq!(hash, session_hash(&secret));
        let mac = code_mac(&secret, &c);
        assert!(!mac.contains(c.as_str()));
        assert!(code_matches(&secret, &c, &mac));
        assert!(code_matches(
            &secret,
            &format!(" {}-{} ", &c[..4], &c[4..]),
            &mac
        ));
        assert!(!code_matches(&secret, "00000000x", &mac));
        let (other, _) = new_session_secret();
        assert!(!code_matches(&other, &c, &mac));
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn registration_accepts_policy_questions_and_normalises_answers() {
        let p = questions_policy();
        let got = validate_questions(
            &p,
            false,
            &reg(&[(0, "  Oslo "), (1, "BERGEN"), (2, "Tromsø  city")]),
        )
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].question, q(0));
        assert_eq!(got[1].answer.as_str(), "bergen");
        assert_eq!(got[2].answer.as_str(), "tromsø city");
        assert!(!format!("{got:?}").contains("bergen"));
    }

    #[test]
    fn registration_rules() {
        let p = questions_policy();
        let e = |r: Vec<(String, String)>| validate_questions(&p, false, &r).unwrap_err().message;
        assert!(e(reg(&[(0, "aaa"), (1, "bbb")])).contains("2 given; register 3 to 5"));
        assert!(e(reg(&[
            (0, "a1"),
            (1, "b1"),
            (2, "c1"),
            (3, "d1"),
            (4, "e1"),
            (5, "f1")
        ]))
        .contains("6 given"));
        let mut r = reg(&[(0, "aaa"), (1, "bbb")]);
        r.push(("What is your shoe size?".into(), "ccc".into()));
        assert!(e(r).contains("is not one of the tenant's questions"));
        assert!(e(reg(&[(0, "aaa"), (0, "bbb"), (1, "ccc")])).contains("given twice"));
        assert!(e(reg(&[(0, "aa"), (1, "bbb"), (2, "ccc")])).contains("is 2 characters"));
        assert!(e(reg(&[(0, &"x".repeat(41)), (1, "bbb"), (2, "ccc")])).contains("41 characters"));
        let msg = e(reg(&[
            (0, "Secret-Answer"),
            (1, "secret-answer"),
            (2, "ccc"),
        ]));
        assert!(msg.contains("same answer"));
        assert!(!msg.to_lowercase().contains("secret-answer"));
        let admin = validate_questions(&p, true, &reg(&[(0, "aaa"), (1, "bbb"), (2, "ccc")]));
        assert!(admin.unwrap_err().message.contains("administrators"));
        let mut no_q = p.clone();
        no_q.methods = vec![AuthMethod::Email];
        assert!(
            validate_questions(&no_q, false, &reg(&[(0, "aaa"), (1, "bbb"), (2, "ccc")])).is_err()
        );
    }

    #[test]
    fn the_subset_asked_is_fixed_per_account_and_decoys_are_stable() {
        let registered: Vec<String> = (0..5).map(q).collect();
        let asked = ask_questions(&registered, 3, b"k1", "ada@contoso.com");
        assert_eq!(asked.len(), 3);
        assert!(asked.iter().all(|a| registered.contains(a)));
        assert_eq!(
            asked,
            ask_questions(&registered, 3, b"k1", " ADA@contoso.com")
        );
        // Other accounts (and another key) get other subsets.
        let mut seen = HashSet::new();
        for i in 0..50 {
            let mut s = ask_questions(&registered, 3, b"k1", &format!("u{i}@contoso.com"));
            s.sort();
            seen.insert(s);
        }
        assert!(seen.len() > 1, "the subset must depend on the account");
        let all: Vec<String> = policy::predefined_questions()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = decoy_registered(&all, 3, b"k1", "nobody@contoso.com");
        assert_eq!(a, decoy_registered(&all, 3, b"k1", "NOBODY@contoso.com "));
        assert_ne!(a, decoy_registered(&all, 3, b"k2", "nobody@contoso.com"));
        assert_eq!(a.len(), 3);
        let mut p = questions_policy();
        p.questions_to_answer = 4;
        assert_eq!(questions_to_ask(&p, 5), 4);
        assert_eq!(questions_to_ask(&p, 3), 3);
    }

    #[test]
    fn progress_and_required_methods() {
        let p = questions_policy();
        assert_eq!(methods_required(&p, false), 1);
        assert_eq!(methods_required(&p, true), 2);
        let regd = [
            AuthMethod::Email,
            AuthMethod::SecurityQuestions,
            AuthMethod::MobilePhone,
        ];
        assert_eq!(usable_methods(&p, false, &regd).len(), 2);
        assert_eq!(usable_methods(&p, true, &regd), vec![AuthMethod::Email]);
        use AuthMethod::{AuthenticatorApp as App, Email, SecurityQuestions as Qs};
        assert_eq!(progress(&[], 1, &[Email]), Progress::Pending);
        assert_eq!(progress(&[Email], 1, &[Email]), Progress::Verified);
        assert_eq!(progress(&[Email], 2, &[Email]), Progress::NotEnoughMethods);
        assert_eq!(progress(&[Email], 2, &[Email, Qs]), Progress::Pending);
        assert_eq!(progress(&[], 2, &[]), Progress::Pending);
        // The authenticator app is never the only method a reset rests on.
        assert_eq!(progress(&[App], 1, &[App, Email]), Progress::Pending);
        assert_eq!(progress(&[App], 1, &[App]), Progress::NotEnoughMethods);
        assert_eq!(
            progress(&[App, Email], 2, &[App, Email]),
            Progress::Verified
        );
        assert_eq!(
            progress(&[Email, App], 1, &[App, Email]),
            Progress::Verified
        );
        assert_eq!(
            verified_methods(&["email".into(), "authenticatorApp".into()]),
            vec![Email, App]
        );
        // The policy's methods as they are (a phone without its gateway is dropped by the
        // cloud, which knows its gateways).
        assert_eq!(
            offered_methods(&policy::default_policy()),
            vec![AuthMethod::Email, AuthMethod::MobilePhone]
        );
    }

    fn user(on_prem: bool) -> User {
        User {
            id: "u1".into(),
            tenant_id: "t".into(),
            user_principal_name: "ada@contoso.com".into(),
            display_name: "Ada".into(),
            given_name: None,
            surname: None,
            mail: None,
            mobile_phone: None,
            office_phone: None,
            usage_location: None,
            account_enabled: true,
            source: if on_prem {
                Source::OnPremises
            } else {
                Source::Cloud
            },
            roles: vec![Role::PasswordAdministrator][..0].to_vec(),
            on_premises: on_prem.then(proto::OnPremises::default),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn eligibility_order_and_classes() {
        let yes = Entitlement {
            allowed: true,
            reason: None,
            sku_id: None,
        };
        let no = Entitlement {
            allowed: false,
            reason: Some("x".into()),
            sku_id: None,
        };
        let mut p = questions_policy();
        let u = user(true);
        let check = |p: &SsprPolicy, in_group: bool, e: &Entitlement| {
            eligibility(&EligibilityInput {
                policy: p,
                user: &u,
                in_group,
                entitlement: e,
            })
        };
        p.enabled_for = SsprScope::None;
        assert_eq!(check(&p, true, &yes), Err(RefusalClass::SsprDisabled));
        p.enabled_for = SsprScope::Group;
        p.group_id = Some("g".into());
        assert_eq!(check(&p, false, &yes), Err(RefusalClass::UserNotInScope));
        assert_eq!(check(&p, true, &no), Err(RefusalClass::UserNotLicensed));
        assert_eq!(
            check(&p, true, &yes),
            Err(RefusalClass::WritebackNotEnabled)
        );
        p.writeback_enabled = true;
        assert_eq!(check(&p, true, &yes), Ok(()));
        let cloud_user = user(false);
        p.writeback_enabled = false;
        assert!(eligibility(&EligibilityInput {
            policy: &p,
            user: &cloud_user,
            in_group: true,
            entitlement: &yes
        })
        .is_ok());
        assert_eq!(
            outcome_class(Outcome::AgentUnavailable),
            Some(RefusalClass::OnPremConnectivityError)
        );
        assert_eq!(
            outcome_class(Outcome::AccessDenied),
            Some(RefusalClass::OnPremAdminActionRequired)
        );
        assert_eq!(outcome_class(Outcome::Succeeded), None);
        let v = serde_json::to_value(RefusalClass::UserNotInScope).unwrap();
        assert_eq!(v, "userNotInScope");
    }

    #[test]
    fn nested_membership_is_followed_and_cycles_end() {
        let m = |g: &str, kind, id: &str| {
            (
                g.to_string(),
                MemberRef {
                    kind,
                    id: id.into(),
                },
            )
        };
        let all = vec![
            m("a", MemberKind::Group, "b"),
            m("b", MemberKind::Group, "a"),
            m("b", MemberKind::User, "u1"),
        ];
        assert!(is_member(&all, "u1", "a"));
        assert!(!is_member(&all, "u2", "a"));
        assert!(!is_member(&all, "u1", "c"));
    }

    #[test]
    fn masks_hide_most_of_the_contact() {
        assert_eq!(
            mask_email("ada.lovelace@contoso.com"),
            "a***********@c******.com"
        );
        assert_eq!(mask_email("a@b.no"), "a**@b**.no");
        assert_eq!(mask_phone("+47 912 34 567"), "******4567");
        assert_eq!(mask_phone("12"), "***12");
    }
}
