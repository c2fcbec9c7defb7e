//! Self-service password reset, the use cases (docs/api.md, "Self-service password reset"):
//! registering authentication methods, and the anonymous reset flow — start a session, prove
//! control of the account's methods (emailed one-time code, security questions), then reset,
//! unlock or change the password through writeback. The session's state machine (live, spent,
//! released after a policy refusal), the final request's shape and the decoy questions are
//! decided in [`tenant::sspr`]; this module loads the rows, asks, and writes.
//!
//! No enumeration: `start` answers with the same shape, from the same work, whether or not the
//! UPN names an account; an unknown or disabled account gets a decoy session that can never
//! verify, and the reason an account may not reset (scope, licence, methods, writeback) is told
//! only to someone who has verified the account's methods. Per-account throttles and lockouts
//! live in the database so every cloud instance applies the same ones.

use proto::writeback::{
    person_message, OperationKind, Outcome, WritebackOperation, WritebackResult,
};
use proto::{AuditResult, AuthMethod, Epoch, ErrorCode, SsprPolicy, User};
use serde::{Deserialize, Serialize};
use store::{AuthMethodsRecord, SsprSessionRecord, StoredAnswer};
use tenant::roles::{self, Operation as RoleOp};
use tenant::sspr::{self, Progress, RefusalClass, ResetKind, Throttle};
use tenant::validate::Upn;
use tenant::{policy, secrets, validate};
use zeroize::Zeroizing;

use super::caller::Caller;
use super::Ctx;
use super::{lockout, sign_in};
use crate::audit::{audited, record};
use crate::error::{ApiResult, AppError};
use crate::mail;
use crate::state::AppState;
use crate::writeback::{person_view, submit};

// ---------------------------------------------------------------- errors

/// A failure of the reset flow: an ordinary coded refusal, or a refusal of one of the
/// user-facing classes ([`RefusalClass`]; the API answers 403 with `error.class`).
pub enum SsprError {
    App(AppError),
    Refused(RefusalClass),
}

impl From<AppError> for SsprError {
    fn from(e: AppError) -> Self {
        SsprError::App(e)
    }
}

impl From<store::StoreError> for SsprError {
    fn from(e: store::StoreError) -> Self {
        SsprError::App(e.into())
    }
}

impl From<tenant::Refusal> for SsprError {
    fn from(r: tenant::Refusal) -> Self {
        SsprError::App(r.into())
    }
}

pub type SsprResult<T> = Result<T, SsprError>;

fn gone() -> AppError {
    sspr::session_gone().into()
}

fn locked(until: i64) -> AppError {
    AppError::new(
        ErrorCode::TooManyRequests,
        format!(
            "Too many failed attempts for this account: password reset is locked until {} (UTC). Contact your administrator if you need your password sooner.",
            tenant::clock::rfc3339(until)
        ),
    )
}

// ---------------------------------------------------------------- registration

/// One security question and its answer as sent. `Debug` hides the answer.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuestionAnswer {
    pub question: String,
    pub answer: String,
}

impl std::fmt::Debug for QuestionAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuestionAnswer")
            .field("question", &self.question)
            .field("answer", &"[redacted]")
            .finish()
    }
}

impl Drop for QuestionAnswer {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.answer);
    }
}

/// Body of `PUT …/authentication-methods`. Absent: unchanged; `null`: removed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = AuthenticationMethods)]
pub struct RegistrationBody {
    #[serde(default, with = "proto::double_option")]
    pub email: Option<Option<String>>,
    #[serde(default, with = "proto::double_option")]
    pub mobile_phone: Option<Option<String>>,
    #[serde(default, with = "proto::double_option")]
    pub office_phone: Option<Option<String>>,
    #[serde(default, with = "proto::double_option")]
    pub security_questions: Option<Option<Vec<QuestionAnswer>>>,
    /// Only `null`: removes the authenticator app (registering one is
    /// [`begin_authenticator`] then [`confirm_authenticator`]; no field takes a secret).
    #[serde(default, with = "proto::double_option")]
    #[schema(schema_with = null_only)]
    pub authenticator_app: Option<Option<NoValue>>,
    /// The fresh verification a person gives with a change of their own methods
    /// ([`sspr::check_change_proof`]); not used on an administrator's registration.
    #[serde(default)]
    pub verification: Option<Verification>,
}

impl RegistrationBody {
    /// Whether the body asks to change anything (a field present, `null` included).
    fn touches_anything(&self) -> bool {
        self.email.is_some()
            || self.mobile_phone.is_some()
            || self.office_phone.is_some()
            || self.security_questions.is_some()
            || self.authenticator_app.is_some()
    }
}

/// A value no JSON but `null` (an absent `Option`) deserializes to.
#[derive(Debug, Deserialize)]
pub enum NoValue {}

/// The schema of a field that takes only `null` ([`NoValue`]).
fn null_only() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Null)
        .build()
}

/// A fresh verification of the signed-in person (`verification` of `PUT
/// /me/authentication-methods`): the current password, or every registered security question
/// answered. `Debug` hides the password and answers.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(
    tag = "method",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Verification {
    Password { password: String },
    SecurityQuestions { answers: Vec<QuestionAnswer> },
    AuthenticatorApp { code: String },
}

impl Verification {
    fn kind(&self) -> sspr::ProofKind {
        match self {
            Verification::Password { .. } => sspr::ProofKind::Password,
            Verification::SecurityQuestions { .. } => sspr::ProofKind::SecurityQuestions,
            Verification::AuthenticatorApp { .. } => sspr::ProofKind::AuthenticatorApp,
        }
    }
}

impl std::fmt::Debug for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verification::Password { .. } => f.write_str("Password { password: [redacted] }"),
            Verification::AuthenticatorApp { .. } => {
                f.write_str("AuthenticatorApp { code: [redacted] }")
            }
            Verification::SecurityQuestions { answers } => f
                .debug_struct("SecurityQuestions")
                .field("answers", answers)
                .finish(),
        }
    }
}

impl Drop for Verification {
    fn drop(&mut self) {
        match self {
            Verification::Password { password: p } | Verification::AuthenticatorApp { code: p } => {
                zeroize::Zeroize::zeroize(p)
            }
            Verification::SecurityQuestions { .. } => {}
        }
    }
}

/// What `GET …/authentication-methods` shows: contacts masked, questions without answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MethodsView {
    pub user_principal_name: String,
    pub email: Option<String>,
    pub mobile_phone: Option<String>,
    pub office_phone: Option<String>,
    pub security_questions: Vec<String>,
    /// Registered methods, by wire name.
    pub methods: Vec<AuthMethod>,
    pub updated_at: Option<i64>,
}

fn registered(m: &AuthMethodsRecord) -> Vec<AuthMethod> {
    let mut out = Vec::new();
    if m.email.is_some() {
        out.push(AuthMethod::Email);
    }
    if m.mobile_phone.is_some() {
        out.push(AuthMethod::MobilePhone);
    }
    if m.office_phone.is_some() {
        out.push(AuthMethod::OfficePhone);
    }
    if !m.questions.is_empty() {
        out.push(AuthMethod::SecurityQuestions);
    }
    if m.authenticator.is_some() {
        out.push(AuthMethod::AuthenticatorApp);
    }
    out
}

fn view(user: &User, m: Option<&AuthMethodsRecord>) -> MethodsView {
    MethodsView {
        user_principal_name: user.user_principal_name.clone(),
        email: m.and_then(|m| m.email.as_deref()).map(sspr::mask_email),
        mobile_phone: m
            .and_then(|m| m.mobile_phone.as_deref())
            .map(sspr::mask_phone),
        office_phone: m
            .and_then(|m| m.office_phone.as_deref())
            .map(sspr::mask_phone),
        security_questions: m
            .map(|m| m.questions.iter().map(|q| q.question.clone()).collect())
            .unwrap_or_default(),
        methods: m.map(registered).unwrap_or_default(),
        updated_at: m.map(|m| m.updated_at),
    }
}

pub(super) async fn tenant_policy(state: &AppState, tenant_id: &str) -> ApiResult<SsprPolicy> {
    Ok(state
        .store
        .get_policy(tenant_id)
        .await?
        .unwrap_or_else(policy::default_policy))
}

/// Runs Argon2id work off the async runtime, one permit of `password_checks` at a time.
async fn argon2<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        state.password_checks.clone().acquire_owned(),
    )
    .await
    .map_err(|_| busy())?
    .map_err(|_| busy())?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|_| AppError::internal())
}

fn busy() -> AppError {
    AppError::new(
        ErrorCode::TooManyRequests,
        "The service is busy checking other answers. Try again in a few seconds.",
    )
}

/// Stores a registration for `user` made by the user themselves (`by` none) or by the
/// administrator `by`, and mails the person what changed.
async fn register(
    state: &AppState,
    tenant_id: &str,
    user: &User,
    body: RegistrationBody,
    by: Option<&str>,
    now: Epoch,
) -> ApiResult<MethodsView> {
    let p = tenant_policy(state, tenant_id).await?;
    let old = state.store.get_auth_methods(tenant_id, &user.id).await?;
    let mut m = old.clone().unwrap_or_else(|| AuthMethodsRecord {
        tenant_id: tenant_id.to_string(),
        user_id: user.id.clone(),
        ..Default::default()
    });
    let questions_given = body.security_questions.is_some();
    if let Some(v) = body.email {
        m.email = v.map(|e| validate::mail("email", &e)).transpose()?;
    }
    if let Some(v) = body.mobile_phone {
        m.mobile_phone = v.map(|e| validate::phone("mobilePhone", &e)).transpose()?;
    }
    if let Some(v) = body.office_phone {
        m.office_phone = v.map(|e| validate::phone("officePhone", &e)).transpose()?;
    }
    if let Some(v) = body.security_questions {
        m.questions = match v {
            None => Vec::new(),
            Some(list) if list.is_empty() => Vec::new(),
            Some(list) => {
                let pairs: Vec<(String, String)> = list
                    .iter()
                    .map(|qa| (qa.question.clone(), qa.answer.clone()))
                    .collect();
                let checked =
                    sspr::validate_questions(&p, roles::is_administrator(&user.roles), &pairs);
                for (_, mut a) in pairs {
                    zeroize::Zeroize::zeroize(&mut a);
                }
                let clean = checked?;
                let mut out = Vec::with_capacity(clean.len());
                for c in clean {
                    let answer = c.answer;
                    let hash = argon2(state, move || secrets::hash_password(&answer)).await?;
                    out.push(StoredAnswer {
                        question: c.question,
                        answer_hash: hash,
                    });
                }
                out
            }
        };
    }
    if let Some(None) = body.authenticator_app {
        m.authenticator = None;
        m.authenticator_pending = None;
        m.authenticator_pending_expires = None;
    }
    m.updated_at = now;
    state.store.put_auth_methods(&m).await?;
    notify_methods_changed(state, user, old.as_ref(), &m, questions_given, by);
    Ok(view(user, Some(&m)))
}

/// Tells the person that their methods changed: at the registered email before and after the
/// change and at the account's `mail`, so a changed address cannot hide the change.
fn notify_methods_changed(
    state: &AppState,
    user: &User,
    old: Option<&AuthMethodsRecord>,
    new: &AuthMethodsRecord,
    questions_given: bool,
    by: Option<&str>,
) {
    let before = old.cloned().unwrap_or_default();
    let mut changed = Vec::new();
    if before.email != new.email {
        changed.push("email");
    }
    if before.mobile_phone != new.mobile_phone {
        changed.push("mobile phone");
    }
    if before.office_phone != new.office_phone {
        changed.push("office phone");
    }
    if questions_given && !(before.questions.is_empty() && new.questions.is_empty()) {
        changed.push("security questions");
    }
    if before.authenticator != new.authenticator {
        changed.push("authenticator app");
    }
    if changed.is_empty() {
        return;
    }
    let to = addresses(before.email.as_ref(), new.email.as_ref(), user);
    let (subject, body) = mail::methods_notice(&user.user_principal_name, &changed, by);
    for address in to {
        mail::send_later(
            &state.config.smtp,
            address,
            subject.clone(),
            body.clone(),
            "the notice of changed reset methods",
        );
    }
}

/// The reset methods `key` (id or UPN) registered, for an administrator who may reset that
/// user's password: contacts masked, questions without answers.
pub async fn methods_of(state: &AppState, caller: &Caller, key: &str) -> ApiResult<MethodsView> {
    caller.authorize(RoleOp::ResetPassword)?;
    let user = super::directory::user(state, &caller.tenant.id, key).await?;
    caller.authorize_on(&user, RoleOp::ResetPassword)?;
    let m = state
        .store
        .get_auth_methods(&caller.tenant.id, &user.id)
        .await?;
    Ok(view(&user, m.as_ref()))
}

/// An administrator registers `key`'s reset methods (contacts only: an administrator never
/// sets someone's security answers, [`sspr::check_admin_registration`]). Audited.
pub async fn register_for(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    key: &str,
    body: RegistrationBody,
) -> ApiResult<MethodsView> {
    let result = async {
        caller.authorize(RoleOp::ResetPassword)?;
        let user = super::directory::user(state, &caller.tenant.id, key).await?;
        caller.authorize_on(&user, RoleOp::ResetPassword)?;
        let sets_answers = matches!(&body.security_questions, Some(Some(list)) if !list.is_empty());
        sspr::check_admin_registration(sets_answers)?;
        register(
            state,
            &caller.tenant.id,
            &user,
            body,
            Some(caller.upn()),
            ctx.now,
        )
        .await
    }
    .await;
    audited(
        state,
        caller,
        "user.authenticationMethods.update",
        Some(key.to_string()),
        result,
    )
    .await
}

/// The caller's own registered reset methods.
pub async fn my_methods(state: &AppState, caller: &Caller) -> ApiResult<MethodsView> {
    let m = state
        .store
        .get_auth_methods(&caller.tenant.id, &caller.user.id)
        .await?;
    Ok(view(&caller.user, m.as_ref()))
}

/// What the caller may register themselves (the security info page's forms): the methods the
/// tenant's policy offers (never security questions for an administrator), the questions to
/// choose from and how many, and the contact details the account already has (from the
/// directory for a synced user), offered pre-filled for the methods the policy offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationOptions {
    pub methods: Vec<AuthMethod>,
    /// The policy's questions: predefined ones and the tenant's own.
    pub questions: Vec<String>,
    pub questions_min: usize,
    pub questions_max: usize,
    pub suggested_email: Option<String>,
    pub suggested_mobile_phone: Option<String>,
    pub suggested_office_phone: Option<String>,
}

/// The caller's [`RegistrationOptions`].
pub async fn my_options(state: &AppState, caller: &Caller) -> ApiResult<RegistrationOptions> {
    let p = tenant_policy(state, &caller.tenant.id).await?;
    Ok(options(&p, &caller.user))
}

fn options(p: &SsprPolicy, user: &User) -> RegistrationOptions {
    let is_admin = roles::is_administrator(&user.roles);
    let methods: Vec<AuthMethod> = p
        .methods
        .iter()
        .copied()
        .filter(|m| !(is_admin && *m == AuthMethod::SecurityQuestions))
        .collect();
    let offered = |m: AuthMethod, v: &Option<String>| {
        v.clone()
            .filter(|v| !v.trim().is_empty() && methods.contains(&m))
    };
    RegistrationOptions {
        suggested_email: offered(AuthMethod::Email, &user.mail),
        suggested_mobile_phone: offered(AuthMethod::MobilePhone, &user.mobile_phone),
        suggested_office_phone: offered(AuthMethod::OfficePhone, &user.office_phone),
        questions: p.security_questions.clone(),
        questions_min: usize::from(p.questions_to_register.max(policy::QUESTIONS_MIN)),
        questions_max: usize::from(policy::QUESTIONS_MAX),
        methods,
    }
}

/// The caller registers their own reset methods, after the fresh verification the body
/// carries ([`sspr::check_change_proof`]). Audited.
pub async fn register_mine(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    mut body: RegistrationBody,
) -> ApiResult<MethodsView> {
    let user = caller.user.clone();
    let proof = body.verification.take();
    let result = async {
        let old = state
            .store
            .get_auth_methods(&caller.tenant.id, &user.id)
            .await?;
        let had = old.as_ref().map(registered).unwrap_or_default();
        sspr::check_change_proof(
            body.touches_anything(),
            proof.as_ref().map(Verification::kind),
            &had,
        )?;
        if let Some(proof) = &proof {
            if body.touches_anything() {
                prove(state, ctx, &user, old.as_ref(), proof).await?;
            }
        }
        register(state, &caller.tenant.id, &user, body, None, ctx.now).await
    }
    .await;
    let target = Some(user.user_principal_name.clone());
    audited(
        state,
        caller,
        "me.authenticationMethods.update",
        target,
        result,
    )
    .await
}

/// Checks the fresh verification `proof` of `user` (the rule of which proofs count is
/// [`sspr::check_change_proof`]). A wrong password counts like a failed sign-in (the same
/// per-account count, reserved before the check and given back when it could not be
/// checked); wrong answers count against the account's reset throttle, as at a reset.
async fn prove(
    state: &AppState,
    ctx: &Ctx,
    user: &User,
    methods: Option<&AuthMethodsRecord>,
    proof: &Verification,
) -> ApiResult<()> {
    let now = ctx.now;
    match proof {
        Verification::Password { password } => {
            let key = validate::upn_key(&user.user_principal_name);
            if let Some(until) = lockout::reserve_attempt(state, &key, now).await? {
                return Err(lockout::too_many_failures(until));
            }
            match current_password_ok(state, user, password).await {
                Ok(true) => lockout::clear_failures(state, &key).await,
                Ok(false) => Err(wrong_proof(state, user, "password").await),
                Err(e) => {
                    lockout::release_attempt(state, &key).await;
                    Err(e)
                }
            }
        }
        Verification::SecurityQuestions { answers } => {
            let subject = sspr::user_subject(&user.tenant_id, &user.id);
            check_lockout(state, &subject, now).await?;
            let stored: Vec<StoredAnswer> =
                methods.map(|m| m.questions.clone()).unwrap_or_default();
            let shape = || {
                AppError::bad_request(
                    "verification.answers: answer each of your registered security questions once (GET /api/v1/me/authentication-methods lists them).",
                )
            };
            if answers.len() != stored.len() {
                return Err(shape());
            }
            let mut all_ok = true;
            for sq in &stored {
                let found: Vec<&QuestionAnswer> = answers
                    .iter()
                    .filter(|a| a.question.trim().eq_ignore_ascii_case(&sq.question))
                    .collect();
                let [given] = found.as_slice() else {
                    return Err(shape());
                };
                let answer = sspr::normalise_answer(&given.answer);
                let hash = sq.answer_hash.clone();
                all_ok &= argon2(state, move || {
                    secrets::verify_password_or_dummy(&answer, Some(&hash))
                })
                .await?;
            }
            if all_ok {
                return Ok(());
            }
            if let Some(until) =
                count_failure(state, &subject, Throttle::IdentityProof, now).await?
            {
                return Err(locked(until));
            }
            Err(wrong_proof(state, user, "security questions").await)
        }
        Verification::AuthenticatorApp { code } => {
            let subject = sspr::user_subject(&user.tenant_id, &user.id);
            check_lockout(state, &subject, now).await?;
            if authenticator_accepts(state, methods, code, now).await? {
                return Ok(());
            }
            if let Some(until) = count_failure(state, &subject, Throttle::Verification, now).await?
            {
                return Err(locked(until));
            }
            Err(wrong_proof(state, user, "authenticator app code").await)
        }
    }
}

// ---------------------------------------------------------------- authenticator app

/// The key id a TOTP secret is sealed under: the user's, so a sealed secret copied onto
/// another row does not open.
fn totp_kid(m: &AuthMethodsRecord) -> String {
    format!("totp:{}", m.user_id)
}

/// Seals a TOTP secret under the cloud's key-encryption key (the one of OIDC signing keys).
async fn seal_totp(state: &AppState, m: &AuthMethodsRecord, secret: &[u8]) -> ApiResult<String> {
    let kek = crate::oidc::keys::kek(state).await?;
    Ok(tenant::oidc::keys::seal(
        kek,
        &m.tenant_id,
        &totp_kid(m),
        secret,
    )?)
}

async fn open_totp(
    state: &AppState,
    m: &AuthMethodsRecord,
    sealed: &str,
) -> ApiResult<Zeroizing<Vec<u8>>> {
    let kek = crate::oidc::keys::kek(state).await?;
    tenant::oidc::keys::open(kek, &m.tenant_id, &totp_kid(m), sealed).map_err(|r| {
        tracing::error!(tracking_id = %crate::error::tracking_id(), error = %r.message, "an authenticator secret does not open");
        AppError::from(r)
    })
}

/// Whether `code` is a fresh code of the registered authenticator of `m` (none registered:
/// no): right within one step either side and of a step later than any accepted before, which
/// is marked used at once so the code cannot pass twice.
async fn authenticator_accepts(
    state: &AppState,
    m: Option<&AuthMethodsRecord>,
    code: &str,
    now: Epoch,
) -> ApiResult<bool> {
    let Some((m, sealed)) = m.and_then(|m| m.authenticator.as_deref().map(|s| (m, s))) else {
        return Ok(false);
    };
    let secret = open_totp(state, m, sealed).await?;
    let Some(step) = sspr::totp_step(&secret, code, now, m.authenticator_last_step) else {
        return Ok(false);
    };
    Ok(state
        .store
        .use_authenticator_step(&m.tenant_id, &m.user_id, step)
        .await?)
}

/// Body of `POST /me/authentication-methods/authenticator-app`: the fresh verification
/// adding a method needs.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticatorBegin {
    pub verification: Option<Verification>,
}

/// What an authenticator app needs, shown once: afterwards the secret is only in the
/// database, sealed. `Debug` hides the secret and the URI.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSetup {
    /// Base32, for "can't scan".
    pub secret: String,
    /// `otpauth://totp/…`, the content of the QR code.
    pub otpauth_uri: String,
    pub issuer: String,
    pub account_name: String,
    pub algorithm: &'static str,
    pub digits: u8,
    pub period: i64,
    /// Confirm with a first code before this (`POST …/authenticator-app/confirm`).
    pub expires_at: i64,
}

impl std::fmt::Debug for AuthenticatorSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatorSetup")
            .field("secret", &proto::REDACTED)
            .field("otpauth_uri", &proto::REDACTED)
            .field("account_name", &self.account_name)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Begins the registration of an authenticator app for the caller (after the fresh
/// verification): a new secret, kept sealed and pending until a first code confirms it
/// ([`confirm_authenticator`]); a registered app stays in use until then. Audited.
pub async fn begin_authenticator(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    body: AuthenticatorBegin,
) -> ApiResult<AuthenticatorSetup> {
    let user = caller.user.clone();
    let result = async {
        let old = state
            .store
            .get_auth_methods(&caller.tenant.id, &user.id)
            .await?;
        let had = old.as_ref().map(registered).unwrap_or_default();
        sspr::check_change_proof(
            true,
            body.verification.as_ref().map(Verification::kind),
            &had,
        )?;
        if let Some(proof) = &body.verification {
            prove(state, ctx, &user, old.as_ref(), proof).await?;
        }
        let mut m = old.unwrap_or_else(|| AuthMethodsRecord {
            tenant_id: caller.tenant.id.clone(),
            user_id: user.id.clone(),
            updated_at: ctx.now,
            ..Default::default()
        });
        let secret = sspr::new_totp_secret();
        let issuer = caller.tenant.name.clone();
        let account = user.user_principal_name.clone();
        let setup = sspr::totp_setup(&secret, &issuer, &account)?;
        let expires_at = ctx.now + sspr::TOTP_PENDING_SECS;
        m.authenticator_pending = Some(seal_totp(state, &m, &secret).await?);
        m.authenticator_pending_expires = Some(expires_at);
        state.store.put_auth_methods(&m).await?;
        Ok(AuthenticatorSetup {
            secret: setup.secret_base32.to_string(),
            otpauth_uri: setup.uri.to_string(),
            issuer,
            account_name: account,
            algorithm: "SHA1",
            digits: sspr::TOTP_DIGITS,
            period: sspr::TOTP_STEP_SECS,
            expires_at,
        })
    }
    .await;
    audited(
        state,
        caller,
        "me.authenticatorApp.begin",
        Some(user.user_principal_name.clone()),
        result,
    )
    .await
}

/// Body of `POST /me/authentication-methods/authenticator-app/confirm`. `Debug` hides the code.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticatorConfirm {
    pub code: String,
}

impl std::fmt::Debug for AuthenticatorConfirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthenticatorConfirm { code: [redacted] }")
    }
}

/// Confirms the begun registration with a first code of the new app: the app becomes the
/// caller's registered authenticator (replacing one before), and the person is mailed.
/// Audited.
pub async fn confirm_authenticator(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    body: AuthenticatorConfirm,
) -> ApiResult<MethodsView> {
    let user = caller.user.clone();
    let result = async {
        let old = state
            .store
            .get_auth_methods(&caller.tenant.id, &user.id)
            .await?;
        let pending = old.as_ref().and_then(|m| {
            m.authenticator_pending
                .clone()
                .filter(|_| m.authenticator_pending_expires.is_some_and(|e| e > ctx.now))
        });
        let (Some(old), Some(pending)) = (old, pending) else {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "No authenticator app registration is waiting for its first code, or it expired (10 minutes). Begin again: POST /api/v1/me/authentication-methods/authenticator-app.",
            ));
        };
        let secret = open_totp(state, &old, &pending).await?;
        let Some(step) = sspr::totp_step(&secret, &body.code, ctx.now, old.authenticator_last_step)
        else {
            return Err(AppError::unauthenticated(
                "code: this is not the current code of the new authenticator app. Check the app's clock, and enter the code it shows now.",
            ));
        };
        let mut m = old.clone();
        m.authenticator = Some(pending);
        m.authenticator_pending = None;
        m.authenticator_pending_expires = None;
        m.updated_at = ctx.now;
        state.store.put_auth_methods(&m).await?;
        state
            .store
            .use_authenticator_step(&m.tenant_id, &m.user_id, step)
            .await?;
        notify_methods_changed(state, &user, Some(&old), &m, false, None);
        Ok(view(&user, Some(&m)))
    }
    .await;
    audited(
        state,
        caller,
        "me.authenticatorApp.confirm",
        Some(user.user_principal_name.clone()),
        result,
    )
    .await
}

/// The refusal of a wrong fresh verification, audited.
async fn wrong_proof(state: &AppState, user: &User, what: &str) -> AppError {
    record(
        state,
        &user.tenant_id,
        &user.user_principal_name,
        "me.authenticationMethods.verify",
        Some(user.user_principal_name.clone()),
        AuditResult::Failure,
        Some(format!("fresh verification by {what} failed")),
    )
    .await;
    AppError::unauthenticated(format!(
        "verification: the {what} given is not correct, so your reset methods were not changed. Try again."
    ))
}

/// Whether `password` is `user`'s current password: checked against the cloud's hash, or for a
/// synced user without one by pass-through to an agent (503 when none can check it).
async fn current_password_ok(state: &AppState, user: &User, password: &str) -> ApiResult<bool> {
    let hash = state.store.password_hash(&user.tenant_id, &user.id).await?;
    let synced = user
        .on_premises
        .as_ref()
        .is_some_and(|o| !o.immutable_id.is_empty());
    if hash.is_none() && synced && !password.is_empty() {
        let r = crate::writeback::pass_through(state, &user.tenant_id, user, password.to_string())
            .await?;
        return match r.outcome {
            Outcome::Succeeded => Ok(true),
            Outcome::AgentUnavailable | Outcome::DirectoryUnreachable => {
                Err(AppError::new(ErrorCode::ServiceUnavailable, r.message))
            }
            _ => Ok(false),
        };
    }
    let has = hash.is_some();
    let current = Zeroizing::new(password.to_string());
    let ok = argon2(state, move || {
        secrets::verify_password_or_dummy(&current, hash.as_deref())
    })
    .await?;
    Ok(ok && has)
}

/// The answer of clearing an account's password-reset lockout.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockoutCleared {
    /// The account was locked out of password reset (or had failures counted) before.
    pub was_locked: bool,
}

/// An administrator who may reset `key`'s password clears the account's password-reset
/// lockout and its counted failed verifications. Audited; the person is told by mail.
pub async fn clear_lockout(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    key: &str,
) -> ApiResult<LockoutCleared> {
    let result = async {
        caller.authorize(RoleOp::ResetPassword)?;
        let user = super::directory::user(state, &caller.tenant.id, key).await?;
        caller.authorize_on(&user, RoleOp::ResetPassword)?;
        let subject = sspr::user_subject(&user.tenant_id, &user.id);
        let was_locked = state
            .store
            .sspr_lockout(&subject)
            .await?
            .is_some_and(|until| until > ctx.now);
        state
            .store
            .clear_sspr_lockout(
                &subject,
                &[
                    Throttle::Verification.kind(),
                    Throttle::IdentityProof.kind(),
                ],
            )
            .await?;
        let methods = state
            .store
            .get_auth_methods(&user.tenant_id, &user.id)
            .await?;
        let (subject_line, body) =
            mail::lockout_cleared_notice(&user.user_principal_name, caller.upn());
        for to in addresses(methods.as_ref().and_then(|m| m.email.as_ref()), None, &user) {
            mail::send_later(
                &state.config.smtp,
                to,
                subject_line.clone(),
                body.clone(),
                "the notice of a cleared reset lockout",
            );
        }
        Ok(LockoutCleared { was_locked })
    }
    .await;
    audited(
        state,
        caller,
        "user.ssprLockout.clear",
        Some(key.to_string()),
        result,
    )
    .await
}

/// The addresses a notice about `user`'s account goes to: the registered reset emails (before
/// and after a change) and the account's `mail`, each once.
fn addresses(a: Option<&String>, b: Option<&String>, user: &User) -> Vec<String> {
    let mut to: Vec<String> = Vec::new();
    for a in [a, b, user.mail.as_ref()].into_iter().flatten() {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(a)) {
            to.push(a.clone());
        }
    }
    to
}

// ---------------------------------------------------------------- the reset flow

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SsprStart)]
pub struct StartBody {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*@[^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 113
    )]
    pub user_principal_name: String,
}

/// The answer of `start` and the public part of `GET /sspr/session`. `Debug` hides the
/// session secret.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartAnswer {
    pub session_id: String,
    pub expires_at: i64,
    pub methods_required: u8,
    pub methods: Vec<AuthMethod>,
    pub questions: Vec<String>,
}

impl std::fmt::Debug for StartAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartAnswer")
            .field("session_id", &proto::REDACTED)
            .field("expires_at", &self.expires_at)
            .field("methods_required", &self.methods_required)
            .field("methods", &self.methods)
            .field("questions", &self.questions)
            .finish()
    }
}

/// Where a session stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressView {
    pub expires_at: i64,
    pub methods: Vec<AuthMethod>,
    pub questions: Vec<String>,
    pub verified: Vec<String>,
    pub methods_required: i64,
    /// Verification is over: enough methods verified, or every registered one.
    pub complete: bool,
    /// `complete` and nothing stands in the way of a reset.
    pub can_reset: bool,
    /// Unlocking without a new password is allowed (`unlockOnly`).
    pub can_unlock: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalView>,
    pub used: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalView {
    pub class: RefusalClass,
    pub message: &'static str,
}

/// The key that makes decoy question sets stable per UPN and unpredictable without it.
async fn decoy_key(state: &AppState) -> ApiResult<String> {
    let (candidate, _) = sspr::new_session_secret();
    Ok(state.store.sspr_key("decoy", &candidate).await?)
}

/// Whether this cloud can take `m` at a reset: a phone method only with its gateway set up
/// (`[sms.text]` for the mobile phone, `[sms.voice]` for the office phone).
fn deliverable(state: &AppState, m: AuthMethod) -> bool {
    let sms = &state.config.sms;
    match m {
        AuthMethod::MobilePhone => sms.text.is_some(),
        AuthMethod::OfficePhone => sms.voice.is_some(),
        _ => true,
    }
}

/// Of the methods `registered`, those this cloud can take at a reset ([`deliverable`]): a
/// phone without its gateway is not a method the person can use, so it does not count
/// towards the methods a reset or the registration at sign-in asks for.
pub(crate) fn deliverable_methods(state: &AppState, registered: &[AuthMethod]) -> Vec<AuthMethod> {
    registered
        .iter()
        .copied()
        .filter(|m| deliverable(state, *m))
        .collect()
}

/// The methods a reset session offers: the policy's ([`sspr::offered_methods`]), less a phone
/// method whose gateway this cloud has not set up.
fn offered(state: &AppState, p: &SsprPolicy) -> Vec<AuthMethod> {
    deliverable_methods(state, &sspr::offered_methods(p))
}

/// Fails with 429 while `subject` is locked out.
async fn check_lockout(state: &AppState, subject: &str, now: Epoch) -> ApiResult<()> {
    if let Some(until) = state.store.sspr_lockout(subject).await? {
        if until > now {
            return Err(locked(until));
        }
    }
    Ok(())
}

/// Counts one failure against `subject`; locks it out when the throttle says so.
async fn count_failure(
    state: &AppState,
    subject: &str,
    t: Throttle,
    now: Epoch,
) -> ApiResult<Option<i64>> {
    let n = state
        .store
        .record_sspr_event(subject, t.kind(), now, now - t.window_secs())
        .await?;
    let lock = t.lockout_after(n, now);
    if let Some(until) = lock {
        state.store.set_sspr_lockout(subject, until).await?;
    }
    Ok(lock)
}

/// Starts a reset session for the UPN typed: the same answer, from the same work, whether or
/// not it names an account (a decoy session for none).
pub async fn start(state: &AppState, ctx: &Ctx, body: StartBody) -> ApiResult<StartAnswer> {
    let typed = Upn::parse(&body.user_principal_name)?;
    let upn = typed.as_str();
    let now = ctx.now;
    // Housekeeping, bounded by the indexes: sessions and throttle events nobody can use.
    state.store.prune_sspr_sessions(now - 3600).await?;
    state
        .store
        .prune_sspr_events(now - Throttle::IdentityProof.window_secs() - 3600)
        .await?;

    let tenant = sign_in::find_tenant_for_upn(state, &typed.key()).await?;
    let p = match &tenant {
        Some(t) => tenant_policy(state, &t.id).await?,
        None => policy::default_policy(),
    };
    let user = match &tenant {
        Some(t) => state
            .store
            .get_user_by_upn(&t.id, upn)
            .await?
            .filter(|u| u.account_enabled),
        None => None,
    };
    // The same lookups either way.
    let (lookup_tenant, lookup_user) = match (&tenant, &user) {
        (Some(t), Some(u)) => (t.id.clone(), u.id.clone()),
        (Some(t), None) => (t.id.clone(), String::new()),
        _ => (String::new(), String::new()),
    };
    let methods = state
        .store
        .get_auth_methods(&lookup_tenant, &lookup_user)
        .await?;
    let key = decoy_key(state).await?;
    let subject = match &user {
        Some(u) => sspr::user_subject(&u.tenant_id, &u.id),
        None => sspr::upn_subject(upn),
    };
    check_lockout(state, &subject, now).await?;

    let offered = offered(state, &p);
    let is_admin = user
        .as_ref()
        .is_some_and(|u| roles::is_administrator(&u.roles));
    // Fixed per account (and per registration), for real and decoy sessions alike.
    let own = methods
        .as_ref()
        .filter(|_| user.is_some() && !is_admin)
        .map(|m| m.questions.iter().map(|q| q.question.clone()).collect());
    let questions = sspr::session_questions(&p, own, key.as_bytes(), upn);

    let (secret, id_hash) = sspr::new_session_secret();
    let expires_at = now + sspr::SESSION_SECS;
    let required = sspr::methods_required(&p, is_admin) as i64;
    state
        .store
        .insert_sspr_session(&SsprSessionRecord {
            id_hash,
            // A decoy keeps its tenant (so it offers what the tenant's policy offers) but no user.
            tenant_id: tenant.as_ref().map(|t| t.id.clone()),
            user_id: user.as_ref().map(|u| u.id.clone()),
            subject,
            created_at: now,
            expires_at,
            methods_required: required,
            questions: questions.clone(),
            verified: Vec::new(),
            code_mac: None,
            code_expires_at: None,
            used_at: None,
            result: None,
        })
        .await?;
    Ok(StartAnswer {
        session_id: secret.to_string(),
        expires_at,
        methods_required: p.methods_required,
        methods: offered,
        questions,
    })
}

/// A live session (not expired) by its secret; `gone` otherwise.
async fn live_session(state: &AppState, secret: &str, now: Epoch) -> ApiResult<SsprSessionRecord> {
    if !sspr::plausible_session_secret(secret) {
        return Err(gone());
    }
    let s = state
        .store
        .get_sspr_session(&sspr::session_hash(secret))
        .await?
        .ok_or_else(gone)?;
    if sspr::session_state(s.expires_at, None, now) == sspr::SessionState::Expired {
        return Err(gone());
    }
    Ok(s)
}

/// Where the session stands for the state machine of [`tenant::sspr`].
fn state_of(s: &SsprSessionRecord, now: Epoch) -> sspr::SessionState {
    sspr::session_state(s.expires_at, s.used_at, now)
}

/// The account behind a session (none for a decoy), with its policy and methods.
struct Account {
    user: User,
    policy: SsprPolicy,
    methods: Option<AuthMethodsRecord>,
}

async fn account(state: &AppState, s: &SsprSessionRecord) -> ApiResult<Option<Account>> {
    let (Some(t), Some(u)) = (&s.tenant_id, &s.user_id) else {
        return Ok(None);
    };
    let Some(user) = state.store.get_user(t, u).await? else {
        return Ok(None);
    };
    Ok(Some(Account {
        policy: tenant_policy(state, t).await?,
        methods: state.store.get_auth_methods(t, u).await?,
        user,
    }))
}

impl Account {
    fn is_admin(&self) -> bool {
        roles::is_administrator(&self.user.roles)
    }
    /// The registered methods a reset can use: offered by the policy and deliverable here.
    fn usable(&self, state: &AppState) -> Vec<AuthMethod> {
        let reg = self.methods.as_ref().map(registered).unwrap_or_default();
        sspr::usable_methods(
            &self.policy,
            self.is_admin(),
            &deliverable_methods(state, &reg),
        )
    }
}

/// Whether the verified account may reset, or the class why not.
async fn eligibility(
    state: &AppState,
    ctx: &Ctx,
    a: &Account,
) -> ApiResult<Result<(), RefusalClass>> {
    let t = &a.user.tenant_id;
    let in_group = match &a.policy.group_id {
        Some(g) if a.policy.enabled_for == proto::SsprScope::Group => {
            let all = state.store.list_memberships(t).await?;
            sspr::is_member(&all, &a.user.id, g)
        }
        _ => false,
    };
    let assignments = state
        .store
        .list_assignments(t, Some(&a.user.id), None)
        .await?;
    let subs = state.store.list_subscriptions(t).await?;
    let ent = tenant::licensing::entitlement(&a.user, &assignments, &subs, ctx.now);
    let decided = sspr::eligibility(&sspr::EligibilityInput {
        policy: &a.policy,
        user: &a.user,
        in_group,
        entitlement: &ent,
    });
    // A synced user also needs an agent with writeback enabled (premium SKU, policy switch).
    if decided.is_ok() && a.user.on_premises.is_some() {
        if let Some(why) = crate::writeback::availability(state, t).await?.refusal {
            tracing::info!(tracking_id = %ctx.tracking_id, reason = %why.message, "self-service reset: writeback not available");
            return Ok(Err(RefusalClass::WritebackNotEnabled));
        }
    }
    Ok(decided)
}

async fn progress_view(
    state: &AppState,
    ctx: &Ctx,
    s: &SsprSessionRecord,
    acct: Option<&Account>,
    p: &SsprPolicy,
) -> ApiResult<ProgressView> {
    let required = s.methods_required;
    // Until a method is verified, show the tenant's number, not the account's (an
    // administrator's 2 would reveal the account is an administrator).
    let shown_required = if s.verified.is_empty() {
        i64::from(p.methods_required)
    } else {
        required
    };
    let stage = match acct {
        Some(a) => sspr::progress(
            &sspr::verified_methods(&s.verified),
            required as usize,
            &a.usable(state),
        ),
        None => Progress::Pending,
    };
    let mut refusal = None;
    let mut can_unlock = false;
    match (stage, acct) {
        (Progress::NotEnoughMethods, _) => refusal = Some(RefusalClass::NotEnoughMethods),
        (Progress::Verified, Some(a)) => {
            if let Err(class) = eligibility(state, ctx, a).await? {
                refusal = Some(class);
            }
            can_unlock = a.policy.allow_unlock_without_reset && a.user.on_premises.is_some();
        }
        _ => {}
    }
    Ok(ProgressView {
        expires_at: s.expires_at,
        methods: offered(state, p),
        questions: s.questions.clone(),
        verified: s.verified.clone(),
        methods_required: shown_required,
        complete: stage != Progress::Pending,
        can_reset: stage == Progress::Verified && refusal.is_none(),
        can_unlock: can_unlock && refusal.is_none(),
        refusal: refusal.map(|class| RefusalView {
            class,
            message: class.message(),
        }),
        used: s.used_at.is_some(),
    })
}

/// The policy a session runs under: its account's tenant's; for a decoy, the tenant's of the
/// UPN's domain, or the default for a domain no tenant has.
async fn session_policy(
    state: &AppState,
    s: &SsprSessionRecord,
    acct: Option<&Account>,
) -> ApiResult<SsprPolicy> {
    Ok(match (acct, &s.tenant_id) {
        (Some(a), _) => a.policy.clone(),
        (None, Some(t)) => tenant_policy(state, t).await?,
        (None, None) => policy::default_policy(),
    })
}

/// Where the session `secret` stands.
pub async fn session_status(state: &AppState, ctx: &Ctx, secret: &str) -> ApiResult<ProgressView> {
    let s = live_session(state, secret, ctx.now).await?;
    let acct = account(state, &s).await?;
    let p = session_policy(state, &s, acct.as_ref()).await?;
    progress_view(state, ctx, &s, acct.as_ref(), &p).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeSent {
    pub message: &'static str,
    pub code_expires_at: i64,
}

/// Refuses (429) when `subject` has used up `t`'s sends in its window; otherwise counts one.
async fn take_send(state: &AppState, subject: &str, t: Throttle, now: Epoch) -> ApiResult<()> {
    let (sent, oldest) = state
        .store
        .count_sspr_events(subject, t.kind(), now - t.window_secs())
        .await?;
    if sent >= t.limit() {
        let again = oldest.unwrap_or(now) + t.window_secs();
        return Err(AppError::new(
            ErrorCode::TooManyRequests,
            format!(
                "Too many codes were sent for this account. Ask for a new one after {} (UTC).",
                tenant::clock::rfc3339(again)
            ),
        ));
    }
    state
        .store
        .record_sspr_event(subject, t.kind(), now, now - t.window_secs())
        .await?;
    Ok(())
}

/// Emails a one-time code to the session's account's registered address, if it has one (the
/// answer is the same either way); at most [`Throttle::Email`]'s limit per window.
pub async fn send_email_code(state: &AppState, ctx: &Ctx, secret: &str) -> ApiResult<CodeSent> {
    let now = ctx.now;
    let s = live_session(state, secret, now).await?;
    sspr::may_verify(state_of(&s, now))?;
    check_lockout(state, &s.subject, now).await?;
    take_send(state, &s.subject, Throttle::Email, now).await?;
    let acct = account(state, &s).await?;
    let to = acct.as_ref().and_then(|a| {
        let offered = offered(state, &a.policy).contains(&AuthMethod::Email);
        a.methods
            .as_ref()
            .and_then(|m| m.email.clone())
            .filter(|_| offered)
    });
    let code_expires_at = now + sspr::CODE_SECS;
    match to {
        Some(to) => {
            let code = sspr::new_code();
            let mac = sspr::code_mac(secret, &code);
            state
                .store
                .set_sspr_code(&s.id_hash, Some(&mac), Some(code_expires_at))
                .await?;
            let (subject, body) = mail::code_message(&code, sspr::CODE_SECS / 60);
            drop(code);
            // Sent in the background: the answer and its timing are the same with or without an
            // address to send to.
            mail::send_later(
                &state.config.smtp,
                to,
                subject,
                body,
                "a password reset code",
            );
        }
        None => {
            // A MAC no code can match: the decoy (or an account without an email) never verifies.
            state
                .store
                .set_sspr_code(&s.id_hash, Some("none"), Some(code_expires_at))
                .await?;
        }
    }
    Ok(CodeSent {
        message: "If this account has an email address registered for password reset, a code was sent to it. It is valid for 5 minutes.",
        code_expires_at,
    })
}

/// The key a code for `method` is MACed with: an emailed code verifies only `email`, a
/// texted one only `mobilePhone`, a spoken one only `officePhone` (a session holds one code at
/// a time).
fn code_key(secret: &str, method: AuthMethod) -> Zeroizing<String> {
    Zeroizing::new(match method {
        AuthMethod::Email => secret.to_string(),
        m => format!("{secret}:{}", sspr::method_name(m)),
    })
}

/// Sends a one-time code for `method` of the session `secret`: by email
/// ([`send_email_code`]), by text message to the registered mobile phone or by a voice call to
/// the registered office phone (through `[sms.text]` / `[sms.voice]`), at most
/// [`Throttle::PhoneCode`]'s limit per window. Like an email, the message leaves in the
/// background, so the answer (status, body and time taken) is the same whether or not the
/// account has that phone. A gateway that failed is told by the next sends, for every account
/// alike, for [`crate::sms::RETRY_AFTER_SECS`] ([`crate::sms::Health`]): 503, and such a refused
/// send counts nothing against the person.
pub async fn send_code(
    state: &AppState,
    ctx: &Ctx,
    secret: &str,
    method: AuthMethod,
) -> ApiResult<CodeSent> {
    let voice = match method {
        AuthMethod::Email => return send_email_code(state, ctx, secret).await,
        AuthMethod::MobilePhone => false,
        AuthMethod::OfficePhone => true,
        _ => {
            return Err(AppError::bad_request(
                "method: codes are sent for email, mobilePhone or officePhone only",
            ))
        }
    };
    let now = ctx.now;
    let s = live_session(state, secret, now).await?;
    sspr::may_verify(state_of(&s, now))?;
    check_lockout(state, &s.subject, now).await?;
    let acct = account(state, &s).await?;
    let p = session_policy(state, &s, acct.as_ref()).await?;
    if !offered(state, &p).contains(&method) {
        return Err(AppError::bad_request(format!(
            "method: {} is not a reset method of this organisation",
            sspr::method_name(method)
        )));
    }
    let gateway = if voice {
        state.config.sms.voice.clone()
    } else {
        state.config.sms.text.clone()
    };
    // Offered only with a gateway; told like a gateway that is down otherwise.
    let Some(gateway) = gateway.filter(|_| !state.sms_health.is_down(voice, now)) else {
        return Err(gateway_down(voice));
    };
    take_send(state, &s.subject, Throttle::PhoneCode, now).await?;
    let phone = acct.as_ref().and_then(|a| {
        a.methods.as_ref().and_then(|m| {
            if voice {
                m.office_phone.clone()
            } else {
                m.mobile_phone.clone()
            }
        })
    });
    let code_expires_at = now + sspr::CODE_SECS;
    match phone {
        Some(phone) => {
            let code = sspr::new_code();
            let mac = sspr::code_mac(&code_key(secret, method), &code);
            state
                .store
                .set_sspr_code(&s.id_hash, Some(&mac), Some(code_expires_at))
                .await?;
            let state = state.clone();
            let tracking_id = ctx.tracking_id.clone();
            tokio::spawn(async move {
                let timeout = state.config.sms.timeout_secs;
                match crate::sms::send(&gateway, timeout, &phone, &code, voice).await {
                    Ok(()) => state.sms_health.worked(voice),
                    Err(e) => {
                        tracing::error!(tracking_id = %tracking_id, error = %e, "the SMS/voice gateway did not take a reset code; sends on this channel are refused for a minute");
                        state.sms_health.failed(voice, state.now());
                    }
                }
            });
        }
        None => {
            // A MAC no code can match: a decoy (or an account without the phone) never verifies.
            state
                .store
                .set_sspr_code(&s.id_hash, Some("none"), Some(code_expires_at))
                .await?;
        }
    }
    Ok(CodeSent {
        message: if voice {
            "If this account has an office phone registered for password reset, it is being called with a code. The code is valid for 5 minutes. If no call comes within a minute, ask for a new code or choose another method."
        } else {
            "If this account has a mobile phone registered for password reset, a text message with a code was sent to it. It is valid for 5 minutes. If none arrives within a minute, ask for a new code or choose another method."
        },
        code_expires_at,
    })
}

fn gateway_down(voice: bool) -> AppError {
    AppError::new(
        ErrorCode::ServiceUnavailable,
        format!(
            "The {} could not be sent: the organisation's {} gateway is not available. Nothing was counted against your account. Try again in a few minutes or choose another verification method; if it keeps failing, tell your helpdesk.",
            if voice { "voice call with your code" } else { "text message with your code" },
            if voice { "voice" } else { "SMS" },
        ),
    )
}

/// Body of `POST /sspr/verify`. `Debug` hides the code and answers.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SsprVerify)]
#[serde(
    tag = "method",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum VerifyBody {
    Email { code: String },
    MobilePhone { code: String },
    OfficePhone { code: String },
    SecurityQuestions { answers: Vec<QuestionAnswer> },
    AuthenticatorApp { code: String },
}

impl std::fmt::Debug for VerifyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyBody::Email { .. } => f.write_str("Email { code: [redacted] }"),
            VerifyBody::MobilePhone { .. } => f.write_str("MobilePhone { code: [redacted] }"),
            VerifyBody::OfficePhone { .. } => f.write_str("OfficePhone { code: [redacted] }"),
            VerifyBody::AuthenticatorApp { .. } => {
                f.write_str("AuthenticatorApp { code: [redacted] }")
            }
            VerifyBody::SecurityQuestions { answers } => f
                .debug_struct("SecurityQuestions")
                .field("answers", answers)
                .finish(),
        }
    }
}

impl Drop for VerifyBody {
    fn drop(&mut self) {
        if let VerifyBody::Email { code }
        | VerifyBody::MobilePhone { code }
        | VerifyBody::OfficePhone { code }
        | VerifyBody::AuthenticatorApp { code } = self
        {
            zeroize::Zeroize::zeroize(code);
        }
    }
}

/// Verifies one method of the session: an emailed code or the security questions. A failure
/// counts against the account's throttle and can lock it out of password reset.
pub async fn verify(
    state: &AppState,
    ctx: &Ctx,
    secret: &str,
    body: VerifyBody,
) -> ApiResult<ProgressView> {
    let now = ctx.now;
    let s = live_session(state, secret, now).await?;
    sspr::may_verify(state_of(&s, now))?;
    check_lockout(state, &s.subject, now).await?;
    let acct = account(state, &s).await?;
    let p = session_policy(state, &s, acct.as_ref()).await?;
    let offered = offered(state, &p);
    let sent_code = |method: AuthMethod, code: &str| -> ApiResult<bool> {
        if !offered.contains(&method) {
            return Err(AppError::bad_request(format!(
                "method: {} is not a reset method of this organisation",
                sspr::method_name(method)
            )));
        }
        Ok(match (&s.code_mac, s.code_expires_at) {
            (Some(mac), Some(exp)) if exp > now => {
                sspr::code_matches(&code_key(secret, method), code, mac)
            }
            _ => false,
        })
    };
    let (method, ok, throttle) = match &body {
        VerifyBody::Email { code } => (
            AuthMethod::Email,
            sent_code(AuthMethod::Email, code)?,
            Throttle::Verification,
        ),
        VerifyBody::MobilePhone { code } => (
            AuthMethod::MobilePhone,
            sent_code(AuthMethod::MobilePhone, code)?,
            Throttle::Verification,
        ),
        VerifyBody::OfficePhone { code } => (
            AuthMethod::OfficePhone,
            sent_code(AuthMethod::OfficePhone, code)?,
            Throttle::Verification,
        ),
        VerifyBody::AuthenticatorApp { code } => {
            if !offered.contains(&AuthMethod::AuthenticatorApp) {
                return Err(AppError::bad_request(
                    "method: the authenticator app is not a reset method of this organisation",
                ));
            }
            let m = acct.as_ref().and_then(|a| a.methods.as_ref());
            let ok = authenticator_accepts(state, m, code, now).await?;
            (AuthMethod::AuthenticatorApp, ok, Throttle::Verification)
        }
        VerifyBody::SecurityQuestions { answers } => {
            if !offered.contains(&AuthMethod::SecurityQuestions) || s.questions.is_empty() {
                return Err(AppError::bad_request(
                    "method: security questions are not a reset method of this organisation",
                ));
            }
            // Every asked question answered once, nothing else: a shape rule, the same for all.
            let mut given = Vec::with_capacity(s.questions.len());
            for q in &s.questions {
                let found: Vec<&QuestionAnswer> = answers
                    .iter()
                    .filter(|a| a.question.trim().eq_ignore_ascii_case(q))
                    .collect();
                if found.len() != 1 {
                    return Err(AppError::bad_request(format!(
                        "answers: answer each of the session's questions once; '{q}' is {}",
                        if found.is_empty() {
                            "missing"
                        } else {
                            "answered twice"
                        }
                    )));
                }
                given.push((q.clone(), sspr::normalise_answer(&found[0].answer)));
            }
            if answers.len() != s.questions.len() {
                return Err(AppError::bad_request(
                    "answers: answer exactly the questions this session asks (GET /api/v1/sspr/session)",
                ));
            }
            let stored: Vec<Option<String>> = given
                .iter()
                .map(|(q, _)| {
                    acct.as_ref()
                        .filter(|a| !a.is_admin())
                        .and_then(|a| a.methods.as_ref())
                        .and_then(|m| m.questions.iter().find(|sq| &sq.question == q))
                        .map(|sq| sq.answer_hash.clone())
                })
                .collect();
            // Every answer is checked (a dummy check where there is no hash), so the time taken
            // does not depend on which answers are wrong or whether the account exists. The
            // checks run at once, each on its own permit: the step takes one check's time where
            // cores allow, not one per answer (docs/benchmarks.md).
            let checks: Vec<_> = given
                .into_iter()
                .zip(stored)
                .map(|((_, answer), hash)| {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let has = hash.is_some();
                        let ok = argon2(&state, move || {
                            secrets::verify_password_or_dummy(&answer, hash.as_deref())
                        })
                        .await?;
                        Ok::<bool, AppError>(ok && has)
                    })
                })
                .collect();
            let mut all_ok = true;
            for check in checks {
                all_ok &= check.await.map_err(|_| AppError::internal())??;
            }
            (
                AuthMethod::SecurityQuestions,
                all_ok,
                Throttle::IdentityProof,
            )
        }
    };
    let name = sspr::method_name(method).to_string();
    if !ok {
        let lock = count_failure(state, &s.subject, throttle, now).await?;
        if let Some(a) = &acct {
            record(
                state,
                &a.user.tenant_id,
                &a.user.user_principal_name,
                "sspr.verify",
                Some(a.user.user_principal_name.clone()),
                AuditResult::Failure,
                Some(format!(
                    "{name} verification failed{}",
                    if lock.is_some() {
                        "; account locked out of password reset for 24 hours"
                    } else {
                        ""
                    }
                )),
            )
            .await;
        }
        if let Some(until) = lock {
            return Err(locked(until));
        }
        return Err(AppError::unauthenticated(match method {
            AuthMethod::Email | AuthMethod::MobilePhone | AuthMethod::OfficePhone => "The code is not correct or has expired. Check the latest message or call, or ask for a new code.",
            AuthMethod::AuthenticatorApp => "The code is not correct, or was used already. Enter the code your authenticator app shows now (a new one comes every 30 seconds).",
            _ => "One or more answers are not correct. Try again.",
        }));
    }
    let mut verified = s.verified.clone();
    if !verified.contains(&name) {
        verified.push(name);
    }
    state
        .store
        .add_sspr_verified(
            &s.id_hash,
            &verified,
            matches!(
                method,
                AuthMethod::Email | AuthMethod::MobilePhone | AuthMethod::OfficePhone
            ),
        )
        .await?;
    let s = SsprSessionRecord { verified, ..s };
    progress_view(state, ctx, &s, acct.as_ref(), &p).await
}

/// Body of `POST /sspr/password`. `Debug` hides the password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SsprPassword)]
pub struct PasswordBody {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, format = Password)]
    pub new_password: Option<String>,
    #[serde(default)]
    pub unlock_only: bool,
}

impl std::fmt::Debug for PasswordBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordBody")
            .field(
                "new_password",
                &self.new_password.as_ref().map(|_| proto::REDACTED),
            )
            .field("unlock_only", &self.unlock_only)
            .finish()
    }
}

impl Drop for PasswordBody {
    fn drop(&mut self) {
        if let Some(p) = &mut self.new_password {
            zeroize::Zeroize::zeroize(p);
        }
    }
}

/// A writeback result plus, for failures of one of the user-facing classes, the class.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultView {
    #[serde(flatten)]
    pub result: WritebackResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<RefusalClass>,
}

fn result_view(result: WritebackResult) -> ResultView {
    let error_class = sspr::outcome_class(result.outcome);
    ResultView {
        result,
        error_class,
    }
}

/// Mails the password notices the tenant's policy `p` asks for after `user`'s password was
/// reset (`unlocked`: only the account unlocked) by themselves or the administrator `by`, or
/// changed: to the person (`notifyUsersOnReset`; at their registered reset email and the
/// account's `mail`), and after a reset of an administrator's password, to every other enabled
/// Global Administrator (`notifyAdminsOnAdminReset`). Texts: `[notifications]`
/// ([`mail::password_notice`]). A failure to find the addresses is logged, never the caller's.
pub(super) async fn notify_password(
    state: &AppState,
    ctx: &Ctx,
    p: &SsprPolicy,
    user: &User,
    kind: crate::notices::PasswordNotice,
    unlocked: bool,
    by: Option<&str>,
) {
    if let Err(e) = send_password_notices(state, ctx, p, user, kind, unlocked, by).await {
        tracing::error!(tracking_id = %ctx.tracking_id, error = %e.message, "could not address the password notices");
    }
}

async fn send_password_notices(
    state: &AppState,
    ctx: &Ctx,
    p: &SsprPolicy,
    user: &User,
    kind: crate::notices::PasswordNotice,
    unlocked: bool,
    by: Option<&str>,
) -> ApiResult<()> {
    let facts = crate::notices::NoticeFacts {
        user_principal_name: user.user_principal_name.clone(),
        display_name: user.display_name.clone(),
        by: by.map(str::to_string),
        unlocked,
        at: tenant::clock::rfc3339(ctx.now),
        tracking_id: ctx.tracking_id.clone(),
    };
    let notices = &state.config.notifications;
    if p.notify_users_on_reset {
        let (subject, body) = crate::notices::password_notice(notices, kind, &facts);
        for to in reset_addresses(state, user).await? {
            mail::send_later(
                &state.config.smtp,
                to,
                subject.clone(),
                body.clone(),
                "the password notice",
            );
        }
    }
    let admin_reset = kind == crate::notices::PasswordNotice::Reset
        && !unlocked
        && roles::is_administrator(&user.roles);
    if admin_reset && p.notify_admins_on_admin_reset {
        let (subject, body) = crate::notices::password_notice(
            notices,
            crate::notices::PasswordNotice::AdminReset,
            &facts,
        );
        for admin in global_administrators(state, &user.tenant_id).await? {
            if admin.id == user.id {
                continue;
            }
            for to in reset_addresses(state, &admin).await? {
                mail::send_later(
                    &state.config.smtp,
                    to,
                    subject.clone(),
                    body.clone(),
                    "the notice of an administrator's password reset",
                );
            }
        }
    }
    Ok(())
}

/// Where a notice about `user`'s account goes: their registered reset email and `mail`.
async fn reset_addresses(state: &AppState, user: &User) -> ApiResult<Vec<String>> {
    let m = state
        .store
        .get_auth_methods(&user.tenant_id, &user.id)
        .await?;
    Ok(addresses(
        m.as_ref().and_then(|m| m.email.as_ref()),
        None,
        user,
    ))
}

/// The tenant's enabled Global Administrators (every page of users: such resets are rare).
async fn global_administrators(state: &AppState, tenant_id: &str) -> ApiResult<Vec<User>> {
    let mut out = Vec::new();
    let mut page = proto::PageRequest {
        after: None,
        limit: store::MAX_PAGE,
    };
    loop {
        let got = state
            .store
            .list_users(tenant_id, &proto::UserFilter::default(), &page)
            .await?;
        out.extend(
            got.items.into_iter().filter(|u| {
                u.account_enabled && u.roles.contains(&proto::Role::GlobalAdministrator)
            }),
        );
        match got.next {
            Some(next) => page.after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Runs a writeback operation for the person: `adminDetail` stripped, and the refusals that
/// mean writeback is not set up for the tenant told as that class.
async fn write_back(
    state: &AppState,
    ctx: &Ctx,
    user: &User,
    op: WritebackOperation,
) -> SsprResult<WritebackResult> {
    match submit(state, &user.tenant_id, user, op, "self-service").await {
        Ok(r) => Ok(person_view(r)),
        Err(e) if matches!(e.code, ErrorCode::Conflict | ErrorCode::LicenseUnavailable) => {
            tracing::warn!(tracking_id = %ctx.tracking_id, reason = %e.message, "self-service writeback refused");
            Err(SsprError::Refused(RefusalClass::WritebackNotEnabled))
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets a cloud-only user's password in the cloud itself (no directory to write back to).
async fn reset_cloud_password(
    state: &AppState,
    ctx: &Ctx,
    user: &User,
    new_password: &str,
    kind: OperationKind,
) -> ApiResult<WritebackResult> {
    validate::new_password(new_password)?;
    let pw = Zeroizing::new(new_password.to_string());
    let hash = argon2(state, move || secrets::hash_password(&pw)).await?;
    state
        .store
        .set_password_hash(&user.tenant_id, &user.id, Some(&hash))
        .await?;
    state
        .store
        .revoke_user_tokens(&user.tenant_id, &user.id)
        .await?;
    super::lockout::unlock_sign_in(state, &user.user_principal_name).await;
    Ok(WritebackResult {
        tracking_id: ctx.tracking_id.clone(),
        outcome: Outcome::Succeeded,
        policy_reason: None,
        message: person_message(Outcome::Succeeded, None, kind),
        event_id: None,
        agent_id: None,
        admin_detail: None,
    })
}

/// The end of a verified session: a new password (set in the cloud for a cloud account,
/// written back for a synced one) or an unlock. The session is claimed first, so one reset
/// runs per session; it is given back when nothing was done or the directory's policy refused
/// the password ([`sspr::release_after`]), so the person may try another in the same session.
pub async fn set_password(
    state: &AppState,
    ctx: &Ctx,
    secret: &str,
    body: PasswordBody,
) -> SsprResult<ResultView> {
    let s = live_session(state, secret, ctx.now).await?;
    sspr::may_reset(state_of(&s, ctx.now))?;
    let acct = account(state, &s).await?;
    let verify_first = || {
        SsprError::App(AppError::forbidden(
            "Verify your identity first: this session has not verified enough methods.",
        ))
    };
    let Some(a) = acct else {
        return Err(verify_first());
    };
    match sspr::progress(
        &sspr::verified_methods(&s.verified),
        s.methods_required as usize,
        &a.usable(state),
    ) {
        Progress::Pending => return Err(verify_first()),
        Progress::NotEnoughMethods => {
            return Err(SsprError::Refused(RefusalClass::NotEnoughMethods))
        }
        Progress::Verified => {}
    }
    if let Err(class) = eligibility(state, ctx, &a).await? {
        return Err(SsprError::Refused(class));
    }
    let on_prem = a.user.on_premises.clone();
    let kind = sspr::reset_request(
        &a.policy,
        on_prem.is_some(),
        body.unlock_only,
        body.new_password.as_deref(),
    )?;
    if !state.store.claim_sspr_session(&s.id_hash, ctx.now).await? {
        return Err(AppError::from(sspr::session_used()).into());
    }
    let outcome = match &on_prem {
        None => {
            let pw = body.new_password.as_deref().unwrap_or_default();
            reset_cloud_password(state, ctx, &a.user, pw, kind.operation_kind())
                .await
                .map_err(SsprError::from)
        }
        Some(op) => {
            let anchor = op.immutable_id.clone();
            let wop = match kind {
                ResetKind::Unlock => WritebackOperation::Unlock { anchor },
                ResetKind::NewPassword => WritebackOperation::Reset {
                    anchor,
                    new_password: body.new_password.clone().unwrap_or_default(),
                },
            };
            write_back(state, ctx, &a.user, wop).await
        }
    };
    let result = match outcome {
        Ok(r) => r,
        Err(e) => {
            // Nothing was done: the person may try again in this session.
            if sspr::release_after(None) {
                state.store.release_sspr_session(&s.id_hash).await?;
            }
            return Err(e);
        }
    };
    let json = serde_json::to_string(&result).map_err(|_| AppError::internal())?;
    let stored = state.store.set_sspr_result(&s.id_hash, &json).await;
    if sspr::release_after(Some(result.outcome)) {
        state.store.release_sspr_session(&s.id_hash).await?;
    }
    let unlock_only = kind == ResetKind::Unlock;
    record(
        state,
        &a.user.tenant_id,
        &a.user.user_principal_name,
        if unlock_only {
            "sspr.unlock"
        } else {
            "sspr.reset"
        },
        Some(a.user.user_principal_name.clone()),
        AuditResult::of_writeback(result.outcome),
        Some(format!(
            "outcome {:?}; writeback tracking id {}",
            result.outcome, result.tracking_id
        )),
    )
    .await;
    if result.outcome == Outcome::Succeeded {
        notify_password(
            state,
            ctx,
            &a.policy,
            &a.user,
            crate::notices::PasswordNotice::Reset,
            unlock_only,
            None,
        )
        .await;
        if let Err(e) = stored {
            tracing::error!(tracking_id = %ctx.tracking_id, error = %e, "the reset succeeded on-premises but its result could not be stored");
            return Ok(ResultView {
                result,
                error_class: Some(RefusalClass::OnPremSuccessCloudFailure),
            });
        }
    } else {
        stored?;
    }
    Ok(result_view(result))
}

/// The last writeback result of the session `secret`.
pub async fn result(state: &AppState, ctx: &Ctx, secret: &str) -> ApiResult<ResultView> {
    let s = live_session(state, secret, ctx.now).await?;
    let json = s.result.ok_or_else(|| {
        AppError::not_found("This session has no result yet: set a new password first.")
    })?;
    let r: WritebackResult = serde_json::from_str(&json).map_err(|_| AppError::internal())?;
    Ok(result_view(r))
}

/// Body of `POST /sspr/change`. `Debug` hides both passwords.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SsprChange)]
pub struct ChangeBody {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*@[^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 113
    )]
    pub user_principal_name: String,
    #[schema(format = Password)]
    pub current_password: String,
    #[schema(min_length = 1, max_length = 256, format = Password)]
    pub new_password: String,
}

impl std::fmt::Debug for ChangeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeBody")
            .field("user_principal_name", &self.user_principal_name)
            .field("current_password", &proto::REDACTED)
            .field("new_password", &proto::REDACTED)
            .finish()
    }
}

impl Drop for ChangeBody {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.current_password);
        zeroize::Zeroize::zeroize(&mut self.new_password);
    }
}

/// What a person sees when the UPN is unknown, the account may not change here, or the
/// current password is wrong (checked here or by an agent): the same answer in every field,
/// so it reveals no account.
const CHANGE_REFUSED: &str = "The user name or current password is not correct, or self-service password change is not available for this account.";

fn change_refused(ctx: &Ctx) -> WritebackResult {
    WritebackResult {
        tracking_id: ctx.tracking_id.clone(),
        outcome: Outcome::WrongCurrentPassword,
        policy_reason: None,
        message: CHANGE_REFUSED.into(),
        event_id: None,
        agent_id: None,
        admin_detail: None,
    }
}

/// The answer of a self-service change.
#[derive(Debug)]
pub struct Changed {
    pub view: ResultView,
    /// The current password was refused (or the change is not available): counted against
    /// the caller's address like a failed sign-in.
    pub refused_password: bool,
}

/// Self-service change with the current password. A check of the current password like a sign-in, so it is
/// throttled like one: the attempt counts against the account's failed sign-ins (the same
/// count as `POST /api/v1/auth/token`, before the password is checked, cleared when it is
/// right, given back when it could not be checked), and a wrong one against the caller's
/// address (the front end marks a [`Changed::refused_password`] answer, as the status is 200).
/// Before the account is known only what no directory accepts is refused (the one new-password
/// rule, [`validate::new_password_for`]); a cloud account's password then meets the cloud rule.
pub async fn change(state: &AppState, ctx: &Ctx, body: ChangeBody) -> SsprResult<Changed> {
    let typed = Upn::parse(&body.user_principal_name)?;
    let upn = typed.as_str();
    validate::new_password_for(
        "newPassword",
        &body.new_password,
        validate::PasswordJudge::OnPremises,
    )?;
    let now = ctx.now;
    let tenant = sign_in::find_tenant_for_upn(state, &typed.key()).await?;
    let user = match &tenant {
        Some(t) => state
            .store
            .get_user_by_upn(&t.id, upn)
            .await?
            .filter(|u| u.account_enabled),
        None => None,
    };
    let subject = match &user {
        Some(u) => sspr::user_subject(&u.tenant_id, &u.id),
        None => sspr::upn_subject(upn),
    };
    check_lockout(state, &subject, now).await?;
    let key = typed.key();
    if let Some(until) = lockout::reserve_attempt(state, &key, now).await? {
        return Err(lockout::too_many_failures(until).into());
    }
    let acct = match user {
        Some(user) => Some(Account {
            policy: tenant_policy(state, &user.tenant_id).await?,
            methods: None,
            user,
        }),
        None => None,
    };
    let eligible = match &acct {
        Some(a) => eligibility(state, ctx, a).await?.is_ok(),
        None => false,
    };
    let result = match (&acct, eligible) {
        (Some(a), true) if a.user.on_premises.is_some() => {
            let anchor = a
                .user
                .on_premises
                .as_ref()
                .map(|o| o.immutable_id.clone())
                .unwrap_or_default();
            let op = WritebackOperation::Change {
                anchor,
                old_password: body.current_password.clone(),
                new_password: body.new_password.clone(),
            };
            let r = match write_back(state, ctx, &a.user, op).await {
                Ok(r) => r,
                Err(e) => {
                    lockout::release_attempt(state, &key).await;
                    return Err(e);
                }
            };
            match r.outcome {
                // The current password was right (the directory may still refuse the new one).
                Outcome::Succeeded | Outcome::PolicyRefused => {
                    lockout::clear_failures(state, &key).await?
                }
                // Not checked: the attempt does not count.
                Outcome::AgentUnavailable | Outcome::DirectoryUnreachable => {
                    lockout::release_attempt(state, &key).await
                }
                // Wrong, or not known to be right: it stays counted.
                _ => {}
            }
            if r.outcome == Outcome::WrongCurrentPassword {
                // Not the agent's answer (its event id and agent id would tell that the
                // account exists): the one every refusal of this endpoint gives.
                change_refused(ctx)
            } else {
                r
            }
        }
        (acct, eligible) => {
            // Cloud account, or none/ineligible: check the password here (a dummy check when
            // there is nothing to check against, so the time taken is the same).
            let hash = match (acct, eligible) {
                (Some(a), true) => {
                    state
                        .store
                        .password_hash(&a.user.tenant_id, &a.user.id)
                        .await?
                }
                _ => None,
            };
            let has = hash.is_some();
            let current = Zeroizing::new(body.current_password.clone());
            let checked = argon2(state, move || {
                secrets::verify_password_or_dummy(&current, hash.as_deref())
            })
            .await;
            let ok = match checked {
                Ok(ok) => ok && has,
                Err(busy) => {
                    // Never checked: the attempt does not count.
                    lockout::release_attempt(state, &key).await;
                    return Err(busy.into());
                }
            };
            match (acct, ok) {
                (Some(a), true) => {
                    lockout::clear_failures(state, &key).await?;
                    reset_cloud_password(
                        state,
                        ctx,
                        &a.user,
                        &body.new_password,
                        OperationKind::Change,
                    )
                    .await?
                }
                _ => change_refused(ctx),
            }
        }
    };
    let refused = result.outcome == Outcome::WrongCurrentPassword;
    if refused {
        count_failure(state, &subject, Throttle::Verification, now).await?;
    }
    if let Some(a) = &acct {
        record(
            state,
            &a.user.tenant_id,
            &a.user.user_principal_name,
            "sspr.change",
            Some(a.user.user_principal_name.clone()),
            AuditResult::of_writeback(result.outcome),
            Some(format!(
                "outcome {:?}{}",
                result.outcome,
                if eligible {
                    ""
                } else {
                    "; not eligible for self-service change"
                }
            )),
        )
        .await;
        if result.outcome == Outcome::Succeeded {
            notify_password(
                state,
                ctx,
                &a.policy,
                &a.user,
                crate::notices::PasswordNotice::Changed,
                false,
                None,
            )
            .await;
        }
    }
    Ok(Changed {
        view: result_view(result),
        refused_password: refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_password_answer_code_or_session_secret() {
        const MARKER: &str = "Marker-Secret-4410";
        let qa = || QuestionAnswer {
            question: "Q?".into(),
            answer: MARKER.into(),
        };
        let shown = [
            format!(
                "{:?}",
                StartAnswer {
                    session_id: MARKER.into(),
                    expires_at: 0,
                    methods_required: 1,
                    methods: Vec::new(),
                    questions: Vec::new(),
                }
            ),
            format!("{:?}", qa()),
            format!(
                "{:?}",
                VerifyBody::Email {
                    code: MARKER.into()
                }
            ),
            format!(
                "{:?}",
                VerifyBody::SecurityQuestions {
                    answers: vec![qa()]
                }
            ),
            format!(
                "{:?}",
                PasswordBody {
                    new_password: Some(MARKER.into()),
                    unlock_only: false,
                }
            ),
            format!(
                "{:?}",
                ChangeBody {
                    user_principal_name: "a@b.example".into(),
                    current_password: MARKER.into(),
                    new_password: MARKER.into(),
                }
            ),
            format!(
                "{:?}",
                RegistrationBody {
                    email: None,
                    mobile_phone: None,
                    office_phone: None,
                    security_questions: Some(Some(vec![qa()])),
                    authenticator_app: None,
                    verification: Some(Verification::Password {
                        password: MARKER.into(),
                    }),
                }
            ),
            format!(
                "{:?}",
                Verification::SecurityQuestions {
                    answers: vec![qa()]
                }
            ),
            format!(
                "{:?}",
                Verification::AuthenticatorApp {
                    code: MARKER.into()
                }
            ),
            format!(
                "{:?}",
                VerifyBody::AuthenticatorApp {
                    code: MARKER.into()
                }
            ),
            format!(
                "{:?}",
                AuthenticatorConfirm {
                    code: MARKER.into()
                }
            ),
            format!(
                "{:?}",
                AuthenticatorSetup {
                    secret: MARKER.into(),
                    otpauth_uri: MARKER.into(),
                    issuer: "contoso".into(),
                    account_name: "a@b.example".into(),
                    algorithm: "SHA1",
                    digits: 6,
                    period: 30,
                    expires_at: 0,
                }
            ),
            format!(
                "{:?}",
                super::super::users::PasswordBody {
                    password: MARKER.into(),
                    must_change: false,
                    unlock: false,
                }
            ),
        ];
        for s in shown {
            assert!(!s.contains(MARKER), "{s}");
        }
    }
}
