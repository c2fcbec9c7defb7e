//! Self-service password reset (docs/api.md, "Self-service password reset"): registering
//! authentication methods, and the anonymous reset flow — start a session, prove control of
//! the account's methods (emailed one-time code, security questions), then reset, unlock or
//! change the password through writeback.
//!
//! No enumeration: `start` answers with the same shape, from the same work, whether or not the
//! UPN names an account; an unknown or disabled account gets a decoy session that can never
//! verify, and the reason an account may not reset (scope, licence, methods, writeback) is told
//! only to someone who has verified the account's methods. Per-account throttles and lockouts
//! live in the database so every cloud instance applies the same ones.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use proto::writeback::{person_message, Outcome, WritebackOperation, WritebackResult};
use proto::{AuditResult, AuthMethod, ErrorCode, SsprPolicy, User};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use store::{AuthMethodsRecord, SsprSessionRecord, StoredAnswer};
use tenant::roles::Operation as RoleOp;
use tenant::sspr::{self, Progress, RefusalClass, Throttle};
use tenant::{policy, secrets, validate};
use zeroize::Zeroizing;

use crate::audit::{audited, record};
use crate::auth::Caller;
use crate::error::{tracking_id, ApiResult, AppError};
use crate::extract::ApiJson;
use crate::mail;
use crate::openapi::Operation;
use crate::state::AppState;

use crate::writeback::{person_view, submit};

/// This module's operations in the OpenAPI document (checked against the router by a test).
pub const OPERATIONS: &[Operation] = &[
    (
        "get",
        "/api/v1/users/{user}/authentication-methods",
        "getAuthenticationMethods",
        "Which reset methods a user registered (email and phones masked, questions without answers)",
        None,
        200,
    ),
    (
        "put",
        "/api/v1/users/{user}/authentication-methods",
        "putAuthenticationMethods",
        "Register a user's reset methods (an administrator who may reset the user's password)",
        Some("AuthenticationMethods"),
        200,
    ),
    (
        "get",
        "/api/v1/me/authentication-methods",
        "getMyAuthenticationMethods",
        "The signed-in user's registered reset methods",
        None,
        200,
    ),
    (
        "put",
        "/api/v1/me/authentication-methods",
        "putMyAuthenticationMethods",
        "Register the signed-in user's own reset methods",
        Some("AuthenticationMethods"),
        200,
    ),
    (
        "post",
        "/api/v1/sspr/start",
        "ssprStart",
        "Start a reset session (anonymous; same answer whether or not the account exists)",
        Some("SsprStart"),
        200,
    ),
    (
        "get",
        "/api/v1/sspr/{session}",
        "ssprSession",
        "A reset session: methods, questions to answer, progress",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/sspr/{session}/email/send",
        "ssprSendEmailCode",
        "Email a one-time code to the account's registered address (10 per 10 minutes)",
        None,
        202,
    ),
    (
        "post",
        "/api/v1/sspr/{session}/verify",
        "ssprVerify",
        "Verify one method: an emailed code or the security questions",
        Some("SsprVerify"),
        200,
    ),
    (
        "post",
        "/api/v1/sspr/{session}/password",
        "ssprSetPassword",
        "Reset (or unlock) once enough methods are verified; returns the writeback result",
        Some("SsprPassword"),
        200,
    ),
    (
        "get",
        "/api/v1/sspr/{session}/result",
        "ssprResult",
        "The last writeback result of the session",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/sspr/change",
        "ssprChange",
        "Self-service change with the current password (anonymous, throttled per account)",
        Some("SsprChange"),
        200,
    ),
];

/// This module's request schemas in the OpenAPI document.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let object = |props: Value| json!({"type": "object", "properties": props});
    let pw = json!({"type": "string", "format": "password"});
    vec![
        (
            "AuthenticationMethods",
            object(json!({
                "email": {"type": ["string", "null"]},
                "mobilePhone": {"type": ["string", "null"]},
                "officePhone": {"type": ["string", "null"]},
                "securityQuestions": {"type": ["array", "null"], "items": object(json!({"question": {"type": "string"}, "answer": pw}))},
            })),
        ),
        (
            "SsprStart",
            object(json!({"userPrincipalName": {"type": "string"}})),
        ),
        (
            "SsprVerify",
            object(json!({
                "method": {"enum": ["email", "securityQuestions"]},
                "code": {"type": "string"},
                "answers": {"type": "array", "items": object(json!({"question": {"type": "string"}, "answer": pw}))},
            })),
        ),
        (
            "SsprPassword",
            object(json!({"newPassword": pw, "unlockOnly": {"type": "boolean"}})),
        ),
        (
            "SsprChange",
            object(
                json!({"userPrincipalName": {"type": "string"}, "currentPassword": pw, "newPassword": pw}),
            ),
        ),
    ]
}

/// This module's routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/users/{user}/authentication-methods",
            get(get_methods).put(put_methods),
        )
        .route(
            "/me/authentication-methods",
            get(get_my_methods).put(put_my_methods),
        )
        .route("/sspr/start", post(start))
        .route("/sspr/change", post(change))
        .route("/sspr/{session}", get(session_status))
        .route("/sspr/{session}/email/send", post(send_email_code))
        .route("/sspr/{session}/verify", post(verify))
        .route("/sspr/{session}/password", post(set_password))
        .route("/sspr/{session}/result", get(result))
}

// ---------------------------------------------------------------- errors

/// A failure of the reset flow: an ordinary API error, or a refusal of one of the user-facing
/// classes (403, with `error.class`).
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

impl IntoResponse for SsprError {
    fn into_response(self) -> Response {
        match self {
            SsprError::App(e) => e.into_response(),
            SsprError::Refused(class) => (
                StatusCode::FORBIDDEN,
                Json(json!({"error": {
                    "code": ErrorCode::Forbidden,
                    "message": class.message(),
                    "trackingId": tracking_id(),
                    "class": class,
                }})),
            )
                .into_response(),
        }
    }
}

type SsprResult<T> = Result<T, SsprError>;

fn gone() -> AppError {
    AppError::not_found(
        "This password reset session does not exist or has expired. Start again from the beginning.",
    )
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
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuestionAnswer {
    question: String,
    answer: String,
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
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrationBody {
    #[serde(default, with = "proto::double_option")]
    email: Option<Option<String>>,
    #[serde(default, with = "proto::double_option")]
    mobile_phone: Option<Option<String>>,
    #[serde(default, with = "proto::double_option")]
    office_phone: Option<Option<String>>,
    #[serde(default, with = "proto::double_option")]
    security_questions: Option<Option<Vec<QuestionAnswer>>>,
}

/// What `GET …/authentication-methods` shows: contacts masked, questions without answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodsView {
    user_principal_name: String,
    email: Option<String>,
    mobile_phone: Option<String>,
    office_phone: Option<String>,
    security_questions: Vec<String>,
    /// Registered methods, by wire name.
    methods: Vec<AuthMethod>,
    updated_at: Option<i64>,
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

async fn tenant_policy(state: &AppState, tenant_id: &str) -> ApiResult<SsprPolicy> {
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
                let checked = sspr::validate_questions(&p, !user.roles.is_empty(), &pairs);
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
    m.updated_at = state.now();
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
    if changed.is_empty() {
        return;
    }
    let mut to: Vec<String> = Vec::new();
    for a in [&before.email, &new.email, &user.mail]
        .into_iter()
        .flatten()
    {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(a)) {
            to.push(a.clone());
        }
    }
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

pub async fn get_methods(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<MethodsView>> {
    caller.authorize(RoleOp::ResetPassword)?;
    let user = super::users::resolve(&state, &caller.tenant.id, &key).await?;
    caller.authorize_on(&user, RoleOp::ResetPassword)?;
    let m = state
        .store
        .get_auth_methods(&caller.tenant.id, &user.id)
        .await?;
    Ok(Json(view(&user, m.as_ref())))
}

pub async fn put_methods(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<RegistrationBody>,
) -> ApiResult<Json<MethodsView>> {
    let result = async {
        caller.authorize(RoleOp::ResetPassword)?;
        let user = super::users::resolve(&state, &caller.tenant.id, &key).await?;
        caller.authorize_on(&user, RoleOp::ResetPassword)?;
        let sets_answers = matches!(&body.security_questions, Some(Some(list)) if !list.is_empty());
        sspr::check_admin_registration(sets_answers)?;
        register(&state, &caller.tenant.id, &user, body, Some(caller.upn())).await
    }
    .await;
    Ok(Json(
        audited(
            &state,
            &caller,
            "user.authenticationMethods.update",
            Some(key),
            result,
        )
        .await?,
    ))
}

pub async fn get_my_methods(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MethodsView>> {
    let m = state
        .store
        .get_auth_methods(&caller.tenant.id, &caller.user.id)
        .await?;
    Ok(Json(view(&caller.user, m.as_ref())))
}

pub async fn put_my_methods(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegistrationBody>,
) -> ApiResult<Json<MethodsView>> {
    let user = caller.user.clone();
    let result = register(&state, &caller.tenant.id, &user, body, None).await;
    let target = Some(user.user_principal_name.clone());
    Ok(Json(
        audited(
            &state,
            &caller,
            "me.authenticationMethods.update",
            target,
            result,
        )
        .await?,
    ))
}

// ---------------------------------------------------------------- the reset flow

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartBody {
    user_principal_name: String,
}

/// The answer of `start` and the public part of `GET /sspr/{session}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartAnswer {
    session_id: String,
    expires_at: i64,
    methods_required: u8,
    methods: Vec<AuthMethod>,
    questions: Vec<String>,
}

/// Where a session stands.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressView {
    expires_at: i64,
    methods: Vec<AuthMethod>,
    questions: Vec<String>,
    verified: Vec<String>,
    methods_required: i64,
    /// Verification is over: enough methods verified, or every registered one.
    complete: bool,
    /// `complete` and nothing stands in the way of a reset.
    can_reset: bool,
    /// Unlocking without a new password is allowed (`unlockOnly`).
    can_unlock: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<RefusalView>,
    used: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusalView {
    class: RefusalClass,
    message: &'static str,
}

/// UPN shapes no account can have are refused at once (this tells nothing about accounts).
fn check_upn_shape(upn: &str) -> ApiResult<()> {
    if upn.is_empty()
        || upn.chars().count() > 113
        || upn.chars().any(char::is_control)
        || !upn.contains('@')
    {
        return Err(AppError::bad_request(
            "userPrincipalName: give your user name in the form name@domain",
        ));
    }
    Ok(())
}

/// The key that makes decoy question sets stable per UPN and unpredictable without it.
async fn decoy_key(state: &AppState) -> ApiResult<String> {
    let (candidate, _) = sspr::new_session_secret();
    Ok(state.store.sspr_key("decoy", &candidate).await?)
}

/// Fails with 429 while `subject` is locked out.
async fn check_lockout(state: &AppState, subject: &str) -> ApiResult<()> {
    if let Some(until) = state.store.sspr_lockout(subject).await? {
        if until > state.now() {
            return Err(locked(until));
        }
    }
    Ok(())
}

/// Counts one failure against `subject`; locks it out when the throttle says so.
async fn count_failure(state: &AppState, subject: &str, t: Throttle) -> ApiResult<Option<i64>> {
    let now = state.now();
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

pub async fn start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Json<StartAnswer>> {
    let upn = body.user_principal_name.trim().to_string();
    check_upn_shape(&upn)?;
    let now = state.now();
    // Housekeeping, bounded by the indexes: sessions and throttle events nobody can use.
    state.store.prune_sspr_sessions(now - 3600).await?;
    state
        .store
        .prune_sspr_events(now - Throttle::IdentityProof.window_secs() - 3600)
        .await?;

    let tenant = crate::auth::find_tenant_for_upn(&state, &upn).await?;
    let p = match &tenant {
        Some(t) => tenant_policy(&state, &t.id).await?,
        None => policy::default_policy(),
    };
    let user = match &tenant {
        Some(t) => state
            .store
            .get_user_by_upn(&t.id, &upn)
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
    let key = decoy_key(&state).await?;
    let subject = match &user {
        Some(u) => sspr::user_subject(&u.tenant_id, &u.id),
        None => sspr::upn_subject(&upn),
    };
    check_lockout(&state, &subject).await?;

    let offered = sspr::offered_methods(&p);
    let is_admin = user.as_ref().is_some_and(|u| !u.roles.is_empty());
    let questions = if offered.contains(&AuthMethod::SecurityQuestions) {
        let own: Vec<String> = methods
            .as_ref()
            .map(|m| m.questions.iter().map(|q| q.question.clone()).collect())
            .unwrap_or_default();
        // Fixed per account (and per registration), for real and decoy sessions alike.
        let registered = if user.is_some() && !is_admin && !own.is_empty() {
            own
        } else {
            let n_reg = usize::from(p.questions_to_register.max(policy::QUESTIONS_MIN));
            sspr::decoy_registered(&p.security_questions, n_reg, key.as_bytes(), &upn)
        };
        let n = sspr::questions_to_ask(&p, registered.len());
        sspr::ask_questions(&registered, n, key.as_bytes(), &upn)
    } else {
        Vec::new()
    };

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
    Ok(Json(StartAnswer {
        session_id: secret.to_string(),
        expires_at,
        methods_required: p.methods_required,
        methods: offered,
        questions,
    }))
}

/// A live session (not expired) by its secret; `gone` otherwise.
async fn live_session(state: &AppState, secret: &str) -> ApiResult<SsprSessionRecord> {
    if !sspr::plausible_session_secret(secret) {
        return Err(gone());
    }
    let s = state
        .store
        .get_sspr_session(&sspr::session_hash(secret))
        .await?
        .ok_or_else(gone)?;
    if s.expires_at <= state.now() {
        return Err(gone());
    }
    Ok(s)
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
        !self.user.roles.is_empty()
    }
    fn usable(&self) -> Vec<AuthMethod> {
        let reg = self.methods.as_ref().map(registered).unwrap_or_default();
        sspr::usable_methods(&self.policy, self.is_admin(), &reg)
    }
}

/// Whether the verified account may reset, or the class why not.
async fn eligibility(state: &AppState, a: &Account) -> ApiResult<Result<(), RefusalClass>> {
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
    let ent = tenant::licensing::entitlement(&a.user, &assignments, &subs, state.now());
    let decided = sspr::eligibility(&sspr::EligibilityInput {
        policy: &a.policy,
        user: &a.user,
        in_group,
        entitlement: &ent,
    });
    // A synced user also needs an agent with writeback enabled (premium SKU, policy switch).
    if decided.is_ok() && a.user.on_premises.is_some() {
        if let Some(why) = crate::writeback::availability(state, t).await?.refusal {
            tracing::info!(tracking_id = %tracking_id(), reason = %why.message, "self-service reset: writeback not available");
            return Ok(Err(RefusalClass::WritebackNotEnabled));
        }
    }
    Ok(decided)
}

async fn progress_view(
    state: &AppState,
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
        Some(a) => sspr::progress(s.verified.len(), required as usize, a.usable().len()),
        None => Progress::Pending,
    };
    let mut refusal = None;
    let mut can_unlock = false;
    match (stage, acct) {
        (Progress::NotEnoughMethods, _) => refusal = Some(RefusalClass::NotEnoughMethods),
        (Progress::Verified, Some(a)) => {
            if let Err(class) = eligibility(state, a).await? {
                refusal = Some(class);
            }
            can_unlock = a.policy.allow_unlock_without_reset && a.user.on_premises.is_some();
        }
        _ => {}
    }
    Ok(ProgressView {
        expires_at: s.expires_at,
        methods: sspr::offered_methods(p),
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

pub async fn session_status(
    State(state): State<AppState>,
    Path(secret): Path<String>,
) -> ApiResult<Json<ProgressView>> {
    let s = live_session(&state, &secret).await?;
    let acct = account(&state, &s).await?;
    let p = session_policy(&state, &s, acct.as_ref()).await?;
    Ok(Json(progress_view(&state, &s, acct.as_ref(), &p).await?))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeSent {
    message: &'static str,
    code_expires_at: i64,
}

pub async fn send_email_code(
    State(state): State<AppState>,
    Path(secret): Path<String>,
) -> ApiResult<(StatusCode, Json<CodeSent>)> {
    let s = live_session(&state, &secret).await?;
    if s.used_at.is_some() {
        return Err(gone());
    }
    check_lockout(&state, &s.subject).await?;
    let now = state.now();
    let t = Throttle::Email;
    let (sent, oldest) = state
        .store
        .count_sspr_events(&s.subject, t.kind(), now - t.window_secs())
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
        .record_sspr_event(&s.subject, t.kind(), now, now - t.window_secs())
        .await?;
    let acct = account(&state, &s).await?;
    let to = acct.as_ref().and_then(|a| {
        let offered = sspr::offered_methods(&a.policy).contains(&AuthMethod::Email);
        a.methods
            .as_ref()
            .and_then(|m| m.email.clone())
            .filter(|_| offered)
    });
    let code_expires_at = now + sspr::CODE_SECS;
    match to {
        Some(to) => {
            let code = sspr::new_code();
            let mac = sspr::code_mac(&secret, &code);
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
    Ok((
        StatusCode::ACCEPTED,
        Json(CodeSent {
            message: "If this account has an email address registered for password reset, a code was sent to it. It is valid for 5 minutes.",
            code_expires_at,
        }),
    ))
}

/// Body of `POST /sspr/{session}/verify`. `Debug` hides the code and answers.
#[derive(Deserialize)]
#[serde(
    tag = "method",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum VerifyBody {
    Email { code: String },
    SecurityQuestions { answers: Vec<QuestionAnswer> },
}

impl std::fmt::Debug for VerifyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyBody::Email { .. } => f.write_str("Email { code: [redacted] }"),
            VerifyBody::SecurityQuestions { answers } => f
                .debug_struct("SecurityQuestions")
                .field("answers", answers)
                .finish(),
        }
    }
}

impl Drop for VerifyBody {
    fn drop(&mut self) {
        if let VerifyBody::Email { code } = self {
            zeroize::Zeroize::zeroize(code);
        }
    }
}

pub async fn verify(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> ApiResult<Json<ProgressView>> {
    let s = live_session(&state, &secret).await?;
    if s.used_at.is_some() {
        return Err(gone());
    }
    check_lockout(&state, &s.subject).await?;
    let acct = account(&state, &s).await?;
    let p = session_policy(&state, &s, acct.as_ref()).await?;
    let offered = sspr::offered_methods(&p);
    let now = state.now();
    let (method, ok, throttle) = match &body {
        VerifyBody::Email { code } => {
            if !offered.contains(&AuthMethod::Email) {
                return Err(AppError::bad_request(
                    "method: email is not a reset method of this organisation",
                ));
            }
            let ok = match (&s.code_mac, s.code_expires_at) {
                (Some(mac), Some(exp)) if exp > now => sspr::code_matches(&secret, code, mac),
                _ => false,
            };
            (AuthMethod::Email, ok, Throttle::Verification)
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
                    "answers: answer exactly the questions this session asks (GET /api/v1/sspr/{session})",
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
        let lock = count_failure(&state, &s.subject, throttle).await?;
        if let Some(a) = &acct {
            record(
                &state,
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
            AuthMethod::Email => "The code is not correct or has expired. Check the latest message, or ask for a new code.",
            _ => "One or more answers are not correct. Try again.",
        }));
    }
    let mut verified = s.verified.clone();
    if !verified.contains(&name) {
        verified.push(name);
    }
    state
        .store
        .add_sspr_verified(&s.id_hash, &verified, method == AuthMethod::Email)
        .await?;
    let s = SsprSessionRecord { verified, ..s };
    Ok(Json(progress_view(&state, &s, acct.as_ref(), &p).await?))
}

/// Body of `POST /sspr/{session}/password`. `Debug` hides the password.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordBody {
    #[serde(default)]
    new_password: Option<String>,
    #[serde(default)]
    unlock_only: bool,
}

impl Drop for PasswordBody {
    fn drop(&mut self) {
        if let Some(p) = &mut self.new_password {
            zeroize::Zeroize::zeroize(p);
        }
    }
}

/// A writeback result plus, for failures of one of the user-facing classes, the class.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultView {
    #[serde(flatten)]
    result: WritebackResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_class: Option<RefusalClass>,
}

fn result_view(result: WritebackResult) -> ResultView {
    let error_class = sspr::outcome_class(result.outcome);
    ResultView {
        result,
        error_class,
    }
}

fn notify(state: &AppState, a: &Account, unlock_only: bool) {
    if !a.policy.notify_users_on_reset {
        return;
    }
    let to = a
        .methods
        .as_ref()
        .and_then(|m| m.email.clone())
        .or_else(|| a.user.mail.clone());
    let Some(to) = to else { return };
    let (subject, body) = mail::reset_notice(&a.user.user_principal_name, unlock_only);
    mail::send_later(
        &state.config.smtp,
        to,
        subject,
        body,
        "the password reset notice",
    );
}

/// Runs a writeback operation for the person: `adminDetail` stripped, and the refusals that
/// mean writeback is not set up for the tenant told as that class.
async fn write_back(
    state: &AppState,
    user: &User,
    op: WritebackOperation,
) -> SsprResult<WritebackResult> {
    match submit(state, &user.tenant_id, user, op, "self-service").await {
        Ok(r) => Ok(person_view(r)),
        Err(e) if matches!(e.code, ErrorCode::Conflict | ErrorCode::LicenseUnavailable) => {
            tracing::warn!(tracking_id = %tracking_id(), reason = %e.message, "self-service writeback refused");
            Err(SsprError::Refused(RefusalClass::WritebackNotEnabled))
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets a cloud-only user's password in the cloud itself (no directory to write back to).
async fn reset_cloud_password(
    state: &AppState,
    user: &User,
    new_password: &str,
    kind: &str,
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
    crate::auth::unlock_sign_in(state, &user.user_principal_name).await;
    Ok(WritebackResult {
        tracking_id: tracking_id(),
        outcome: Outcome::Succeeded,
        policy_reason: None,
        message: person_message(Outcome::Succeeded, None, kind),
        event_id: None,
        agent_id: None,
        admin_detail: None,
    })
}

pub async fn set_password(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> SsprResult<Json<ResultView>> {
    let s = live_session(&state, &secret).await?;
    if s.used_at.is_some() {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "This password reset session was already used. Start again to reset the password again.",
        )
        .into());
    }
    let acct = account(&state, &s).await?;
    let verify_first = || {
        SsprError::App(AppError::forbidden(
            "Verify your identity first: this session has not verified enough methods.",
        ))
    };
    let Some(a) = acct else {
        return Err(verify_first());
    };
    match sspr::progress(
        s.verified.len(),
        s.methods_required as usize,
        a.usable().len(),
    ) {
        Progress::Pending => return Err(verify_first()),
        Progress::NotEnoughMethods => {
            return Err(SsprError::Refused(RefusalClass::NotEnoughMethods))
        }
        Progress::Verified => {}
    }
    if let Err(class) = eligibility(&state, &a).await? {
        return Err(SsprError::Refused(class));
    }
    let on_prem = a.user.on_premises.clone();
    if body.unlock_only {
        if body.new_password.is_some() {
            return Err(
                AppError::bad_request("Send either newPassword or unlockOnly, not both.").into(),
            );
        }
        if !a.policy.allow_unlock_without_reset || on_prem.is_none() {
            return Err(AppError::bad_request(
                "unlockOnly: your organisation does not allow unlocking without a new password here; choose a new password.",
            )
            .into());
        }
    } else {
        match &body.new_password {
            Some(p)
                if !p.is_empty()
                    && p.chars().count() <= 256
                    && !p.chars().any(char::is_control) => {}
            _ => return Err(AppError::bad_request(
                "newPassword: give the new password (1 to 256 characters, no control characters).",
            )
            .into()),
        }
    }
    if !state
        .store
        .claim_sspr_session(&s.id_hash, state.now())
        .await?
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "This password reset session was already used. Start again to reset the password again.",
        )
        .into());
    }
    let kind = if body.unlock_only { "unlock" } else { "reset" };
    let outcome = match &on_prem {
        None => {
            let pw = body.new_password.as_deref().unwrap_or_default();
            reset_cloud_password(&state, &a.user, pw, kind)
                .await
                .map_err(SsprError::from)
        }
        Some(op) => {
            let anchor = op.immutable_id.clone();
            let wop = if body.unlock_only {
                WritebackOperation::Unlock { anchor }
            } else {
                WritebackOperation::Reset {
                    anchor,
                    new_password: body.new_password.clone().unwrap_or_default(),
                }
            };
            write_back(&state, &a.user, wop).await
        }
    };
    let result = match outcome {
        Ok(r) => r,
        Err(e) => {
            // Nothing was done: the person may try again in this session.
            state.store.release_sspr_session(&s.id_hash).await?;
            return Err(e);
        }
    };
    let json = serde_json::to_string(&result).map_err(|_| AppError::internal())?;
    let stored = state.store.set_sspr_result(&s.id_hash, &json).await;
    if result.outcome == Outcome::PolicyRefused {
        state.store.release_sspr_session(&s.id_hash).await?;
    }
    record(
        &state,
        &a.user.tenant_id,
        &a.user.user_principal_name,
        if body.unlock_only {
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
        notify(&state, &a, body.unlock_only);
        if let Err(e) = stored {
            tracing::error!(tracking_id = %tracking_id(), error = %e, "the reset succeeded on-premises but its result could not be stored");
            return Ok(Json(ResultView {
                result,
                error_class: Some(RefusalClass::OnPremSuccessCloudFailure),
            }));
        }
    } else {
        stored?;
    }
    Ok(Json(result_view(result)))
}

pub async fn result(
    State(state): State<AppState>,
    Path(secret): Path<String>,
) -> ApiResult<Json<ResultView>> {
    let s = live_session(&state, &secret).await?;
    let json = s.result.ok_or_else(|| {
        AppError::not_found("This session has no result yet: set a new password first.")
    })?;
    let r: WritebackResult = serde_json::from_str(&json).map_err(|_| AppError::internal())?;
    Ok(Json(result_view(r)))
}

/// Body of `POST /sspr/change`. `Debug` hides both passwords.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeBody {
    user_principal_name: String,
    current_password: String,
    new_password: String,
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

fn change_refused() -> WritebackResult {
    WritebackResult {
        tracking_id: tracking_id(),
        outcome: Outcome::WrongCurrentPassword,
        policy_reason: None,
        message: CHANGE_REFUSED.into(),
        event_id: None,
        agent_id: None,
        admin_detail: None,
    }
}

/// `POST /api/v1/sspr/change`. A check of the current password like a sign-in, so it is
/// throttled like one: the attempt counts against the account's failed sign-ins (the same
/// count as `POST /api/v1/auth/token`, before the password is checked, cleared when it is
/// right, given back when it could not be checked), and a wrong one against the caller's
/// address (marked [`crate::limits::RefusedPassword`], as the status is 200).
pub async fn change(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChangeBody>,
) -> SsprResult<Response> {
    let upn = body.user_principal_name.trim().to_string();
    check_upn_shape(&upn)?;
    if body.new_password.is_empty() || body.new_password.chars().count() > 256 {
        return Err(AppError::bad_request(
            "newPassword: give the new password (1 to 256 characters).",
        )
        .into());
    }
    let tenant = crate::auth::find_tenant_for_upn(&state, &upn).await?;
    let user = match &tenant {
        Some(t) => state
            .store
            .get_user_by_upn(&t.id, &upn)
            .await?
            .filter(|u| u.account_enabled),
        None => None,
    };
    let subject = match &user {
        Some(u) => sspr::user_subject(&u.tenant_id, &u.id),
        None => sspr::upn_subject(&upn),
    };
    check_lockout(&state, &subject).await?;
    let key = upn.to_lowercase();
    if let Some(until) = crate::auth::reserve_attempt(&state, &key, state.now()).await? {
        return Err(crate::auth::too_many_failures(until).into());
    }
    let acct = match user {
        Some(user) => Some(Account {
            policy: tenant_policy(&state, &user.tenant_id).await?,
            methods: None,
            user,
        }),
        None => None,
    };
    let eligible = match &acct {
        Some(a) => eligibility(&state, a).await?.is_ok(),
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
            let r = match write_back(&state, &a.user, op).await {
                Ok(r) => r,
                Err(e) => {
                    crate::auth::release_attempt(&state, &key).await;
                    return Err(e);
                }
            };
            match r.outcome {
                // The current password was right (the directory may still refuse the new one).
                Outcome::Succeeded | Outcome::PolicyRefused => {
                    crate::auth::clear_failures(&state, &key).await?
                }
                // Not checked: the attempt does not count.
                Outcome::AgentUnavailable | Outcome::DirectoryUnreachable => {
                    crate::auth::release_attempt(&state, &key).await
                }
                // Wrong, or not known to be right: it stays counted.
                _ => {}
            }
            if r.outcome == Outcome::WrongCurrentPassword {
                // Not the agent's answer (its event id and agent id would tell that the
                // account exists): the one every refusal of this endpoint gives.
                change_refused()
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
            let checked = argon2(&state, move || {
                secrets::verify_password_or_dummy(&current, hash.as_deref())
            })
            .await;
            let ok = match checked {
                Ok(ok) => ok && has,
                Err(busy) => {
                    // Never checked: the attempt does not count.
                    crate::auth::release_attempt(&state, &key).await;
                    return Err(busy.into());
                }
            };
            match (acct, ok) {
                (Some(a), true) => {
                    crate::auth::clear_failures(&state, &key).await?;
                    reset_cloud_password(&state, &a.user, &body.new_password, "change").await?
                }
                _ => change_refused(),
            }
        }
    };
    let refused = result.outcome == Outcome::WrongCurrentPassword;
    if refused {
        count_failure(&state, &subject, Throttle::Verification).await?;
    }
    if let Some(a) = &acct {
        record(
            &state,
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
            notify(&state, a, false);
        }
    }
    let mut resp = Json(result_view(result)).into_response();
    if refused {
        resp.extensions_mut().insert(crate::limits::RefusedPassword);
    }
    Ok(resp)
}
