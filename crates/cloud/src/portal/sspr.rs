//! The self-service password pages (docs/portal.md, "Reset your password" and "Change
//! password"): the anonymous reset flow at `/sspr` and the signed-in change at `/my/password`,
//! on the use cases of [`crate::app::sspr`] (the same functions as `/api/v1/sspr/...`).
//!
//! The flow: user name → verification, one form per method the tenant offers (the person picks
//! which; two steps where the policy wants two) → new password → result. Which step to show is
//! read from the session's state ([`app::sspr::session_status`]) on every `GET /sspr`, so the
//! pages hold no state of their own.
//!
//! * The session secret is in the `__Host-dirbridge-sspr` cookie (HttpOnly, SameSite=Lax),
//!   never in a URL or a page.
//! * Every form carries the pre-session CSRF token (as the sign-in form).
//! * The start step answers with the same page, the same status and after the same time
//!   ([`START_DEADLINE`]) whatever the user name, like kanidm's recover view: the use case makes
//!   a decoy session for an unknown account, and the padding hides how long the lookup took.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use proto::writeback::Outcome;
use proto::{AuthMethod, ErrorCode};
use serde::Deserialize;
use tenant::sspr::RefusalClass;

use super::session::{self, Cookies};
use super::texts::{text, Texts};
use super::{render, signed_in, status_of};
use crate::app::self_service::{self, Helpdesk};
use crate::app::sspr::{
    ChangeBody, CodeSent, PasswordBody, ProgressView, QuestionAnswer, ResultView, SsprError,
    StartBody, VerifyBody,
};
use crate::app::{self, Ctx};
use crate::error::{tracking_id, ApiResult, AppError};
use crate::state::AppState;

/// Every answer of the start step leaves this long after the request came in (or later, if the
/// work took longer), so its timing does not tell whether the account exists.
pub const START_DEADLINE: Duration = Duration::from_millis(600);

/// The reset and change pages, the registration interrupt, and the password hint script.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sspr", get(current_step))
        .route("/sspr/unlock", get(unlock_start))
        .route("/sspr/start", post(start))
        .route("/sspr/send", post(send_code))
        .route("/sspr/verify", post(verify))
        .route("/sspr/password", post(new_password))
        .route("/sspr/unlock", post(unlock))
        .route("/sspr/result", get(result))
        .route("/sspr/restart", post(restart))
        .route("/my/password", get(change_form).post(change))
        .route("/assets/password-hint.js", get(script))
        .merge(super::registration::routes())
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../assets/password-hint.js"),
    )
        .into_response()
}

// ---------------------------------------------------------------- method kinds

/// How a method is verified on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    /// "Send code", then a code field (email, SMS, voice).
    SendThenCode,
    /// A code field only (authenticator app).
    CodeOnly,
    /// The session's security questions.
    Questions,
}

type SendFn = for<'a> fn(
    &'a AppState,
    &'a Ctx,
    &'a str,
) -> Pin<Box<dyn Future<Output = ApiResult<CodeSent>> + Send + 'a>>;

/// What the pages know about one method kind.
#[derive(Clone, Copy)]
pub struct Kind {
    pub form: FormKind,
    /// Sends the code (for [`FormKind::SendThenCode`]); none where no sender exists yet.
    send: Option<SendFn>,
    /// The verification body for a typed code (for the code forms); none where no verifier
    /// exists yet.
    code: Option<fn(String) -> VerifyBody>,
}

fn send_email<'a>(
    state: &'a AppState,
    ctx: &'a Ctx,
    secret: &'a str,
) -> Pin<Box<dyn Future<Output = ApiResult<CodeSent>> + Send + 'a>> {
    Box::pin(app::sspr::send_email_code(state, ctx, secret))
}

/// A text message to the registered mobile phone, through `[sms.text]`.
fn send_text<'a>(
    state: &'a AppState,
    ctx: &'a Ctx,
    secret: &'a str,
) -> Pin<Box<dyn Future<Output = ApiResult<CodeSent>> + Send + 'a>> {
    Box::pin(app::sspr::send_code(
        state,
        ctx,
        secret,
        AuthMethod::MobilePhone,
    ))
}

/// A voice call to the registered office phone, through `[sms.voice]`.
fn send_voice<'a>(
    state: &'a AppState,
    ctx: &'a Ctx,
    secret: &'a str,
) -> Pin<Box<dyn Future<Output = ApiResult<CodeSent>> + Send + 'a>> {
    Box::pin(app::sspr::send_code(
        state,
        ctx,
        secret,
        AuthMethod::OfficePhone,
    ))
}

/// The one place a method kind meets the pages: its form, how its code is sent and how a typed
/// code is checked (a kind without a sender or verifier would not be shown). Which methods a
/// session offers (the policy's, less a phone whose gateway is not set up) is the use case's
/// decision.
pub fn kind(m: AuthMethod) -> Kind {
    match m {
        AuthMethod::Email => Kind {
            form: FormKind::SendThenCode,
            send: Some(send_email),
            code: Some(|code| VerifyBody::Email { code }),
        },
        AuthMethod::MobilePhone => Kind {
            form: FormKind::SendThenCode,
            send: Some(send_text),
            code: Some(|code| VerifyBody::MobilePhone { code }),
        },
        AuthMethod::OfficePhone => Kind {
            form: FormKind::SendThenCode,
            send: Some(send_voice),
            code: Some(|code| VerifyBody::OfficePhone { code }),
        },
        AuthMethod::AuthenticatorApp => Kind {
            form: FormKind::CodeOnly,
            send: None,
            code: Some(|code| VerifyBody::AuthenticatorApp { code }),
        },
        AuthMethod::SecurityQuestions => Kind {
            form: FormKind::Questions,
            send: None,
            code: None,
        },
    }
}

impl Kind {
    fn usable(&self) -> bool {
        match self.form {
            FormKind::SendThenCode => self.send.is_some() && self.code.is_some(),
            FormKind::CodeOnly => self.code.is_some(),
            FormKind::Questions => true,
        }
    }
}

/// A refusal of what was typed (the person can fix it on the same form).
fn form_error(e: &AppError) -> bool {
    matches!(e.code, ErrorCode::BadRequest | ErrorCode::Validation)
}

fn method_of(name: &str) -> Option<AuthMethod> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

// ---------------------------------------------------------------- pages

/// One method's form on the verification page.
struct MethodForm {
    /// Wire name (`email`, `securityQuestions`...).
    name: &'static str,
    label: String,
    sends: bool,
    /// The text of the send button (a voice call is "Call me").
    send_label: &'static str,
    code: bool,
    questions: bool,
}

#[derive(Template)]
#[template(path = "sspr_start.html")]
struct StartPage<'a> {
    t: Texts,
    tracking_id: String,
    csrf: String,
    username: &'a str,
    unlock: bool,
    error: Option<String>,
    notice: Option<String>,
    help: Option<Helpdesk>,
}

#[derive(Template)]
#[template(path = "sspr_verify.html")]
struct VerifyPage {
    t: Texts,
    tracking_id: String,
    csrf: String,
    intro: &'static str,
    methods: Vec<MethodForm>,
    questions: Vec<String>,
    notice: Option<String>,
    error: Option<String>,
    help: Helpdesk,
}

#[derive(Template)]
#[template(path = "sspr_password.html")]
struct PasswordPage {
    t: Texts,
    tracking_id: String,
    csrf: String,
    can_unlock: bool,
    unlock_first: bool,
    error: Option<String>,
    hint: Option<String>,
    /// The tracking id of a refused attempt (the directory's refusal), as a support code.
    support: Option<String>,
}

#[derive(Template)]
#[template(path = "sspr_result.html")]
struct ResultPage {
    t: Texts,
    tracking_id: String,
    ok: bool,
    unlocked: bool,
    message: String,
    support: String,
    help: Helpdesk,
    /// After a refusal the person may start again.
    csrf: String,
}

#[derive(Template)]
#[template(path = "sspr_change.html")]
struct ChangePage {
    t: Texts,
    tracking_id: String,
    csrf: String,
    upn: String,
    done: bool,
    error: Option<String>,
    hint: Option<String>,
    support: Option<String>,
}

/// The session secret and whether the person came to unlock, from the cookie
/// (`<secret>` or `<secret>.unlock`).
fn session_of(cookies: &Cookies) -> Option<(&str, bool)> {
    let v = cookies.sspr()?;
    Some(match v.split_once('.') {
        Some((s, "unlock")) => (s, true),
        _ => (v, false),
    })
}

fn with_cookie(mut resp: Response, cookie: Option<axum::http::HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

fn start_page(
    cookies: &Cookies,
    status: StatusCode,
    username: &str,
    unlock: bool,
    error: Option<String>,
    notice: Option<String>,
    help: Option<Helpdesk>,
) -> Response {
    let (csrf, set) = cookies.anonymous_csrf();
    let page = StartPage {
        t: Texts,
        tracking_id: tracking_id(),
        csrf,
        username,
        unlock,
        error,
        notice,
        help,
    };
    with_cookie(render(status, &page), set)
}

/// `GET /sspr` — the step the browser's session is at (the start page without one).
async fn current_step(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = Cookies::new(&state, &headers);
    step(&state, &cookies, StatusCode::OK, None, None).await
}

/// `GET /sspr/unlock` — the start page for "I know my password but can't sign in".
async fn unlock_start(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = Cookies::new(&state, &headers);
    start_page(&cookies, StatusCode::OK, "", true, None, None, None)
}

/// Renders the step the session is at, with `notice`/`error` from the request that led here.
async fn step(
    state: &AppState,
    cookies: &Cookies,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let Some((secret, unlock)) = session_of(cookies) else {
        return start_page(cookies, status, "", false, error, notice, None);
    };
    let ctx = Ctx::of(state);
    let p = match app::sspr::session_status(state, &ctx, secret).await {
        Ok(p) => p,
        Err(e) => return session_failed(state, cookies, secret, e).await,
    };
    if p.used {
        return Redirect::to("/sspr/result").into_response();
    }
    let help = helpdesk(state, secret).await;
    let (csrf, set) = cookies.anonymous_csrf();
    if !p.complete {
        return with_cookie(
            render(status, &verify_page(&p, csrf, notice, error, help)),
            set,
        );
    }
    if let Some(r) = &p.refusal {
        return with_cookie(
            render(
                StatusCode::FORBIDDEN,
                &ResultPage {
                    t: Texts,
                    tracking_id: tracking_id(),
                    ok: false,
                    unlocked: false,
                    message: r.message.to_string(),
                    support: ctx.tracking_id.clone(),
                    help,
                    csrf,
                },
            ),
            set,
        );
    }
    let page = PasswordPage {
        t: Texts,
        tracking_id: tracking_id(),
        csrf,
        can_unlock: p.can_unlock,
        unlock_first: p.can_unlock && unlock,
        error,
        hint: None,
        support: None,
    };
    with_cookie(render(status, &page), set)
}

fn verify_page(
    p: &ProgressView,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    help: Helpdesk,
) -> VerifyPage {
    let methods: Vec<MethodForm> = p
        .methods
        .iter()
        .copied()
        .filter(|m| {
            !p.verified
                .iter()
                .any(|v| v == tenant::sspr::method_name(*m))
        })
        .filter_map(|m| {
            let k = kind(m);
            k.usable().then(|| {
                let name = tenant::sspr::method_name(m);
                MethodForm {
                    name,
                    label: text(&format!("method.{name}")).to_string(),
                    sends: k.form == FormKind::SendThenCode,
                    send_label: if m == AuthMethod::OfficePhone {
                        "sspr.verify.call"
                    } else {
                        "sspr.verify.send"
                    },
                    code: k.form != FormKind::Questions,
                    questions: k.form == FormKind::Questions,
                }
            })
        })
        .collect();
    let intro = match (p.verified.len(), p.methods_required) {
        (0, 1) => "sspr.verify.need_one",
        (0, _) => "sspr.verify.need_two",
        _ => "sspr.verify.done_one",
    };
    VerifyPage {
        t: Texts,
        tracking_id: tracking_id(),
        csrf,
        intro: if methods.is_empty() {
            "sspr.verify.no_methods"
        } else {
            intro
        },
        methods,
        questions: p.questions.clone(),
        notice,
        error,
        help,
    }
}

async fn helpdesk(state: &AppState, secret: &str) -> Helpdesk {
    self_service::helpdesk_of_session(state, secret)
        .await
        .unwrap_or_default()
}

/// A session that has ended leads back to the start page (the cookie cleared); any other
/// failure shows its message with the helpdesk.
async fn session_failed(
    state: &AppState,
    cookies: &Cookies,
    secret: &str,
    e: AppError,
) -> Response {
    if e.code == ErrorCode::NotFound {
        let resp = start_page(
            cookies,
            StatusCode::OK,
            "",
            false,
            None,
            Some(text("sspr.gone").to_string()),
            None,
        );
        return with_cookie(resp, Some(cookies.clear_sspr()));
    }
    let help = helpdesk(state, secret).await;
    refused_page(cookies, status_of(&e), e.message, tracking_id(), help)
}

fn refused_page(
    cookies: &Cookies,
    status: StatusCode,
    message: String,
    support: String,
    help: Helpdesk,
) -> Response {
    let (csrf, set) = cookies.anonymous_csrf();
    let page = ResultPage {
        t: Texts,
        tracking_id: tracking_id(),
        ok: false,
        unlocked: false,
        message,
        support,
        help,
        csrf,
    };
    with_cookie(render(status, &page), set)
}

fn csrf_refused(cookies: &Cookies) -> Response {
    start_page(
        cookies,
        StatusCode::FORBIDDEN,
        "",
        false,
        Some(text("csrf.refused").to_string()),
        None,
        None,
    )
}

#[derive(Deserialize)]
struct StartForm {
    csrf: String,
    username: String,
    #[serde(default)]
    unlock: Option<String>,
}

/// `POST /sspr/start` — starts a session for the typed user name; the same page after the same
/// time for every name ([`START_DEADLINE`]).
async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Response {
    let deadline = tokio::time::Instant::from_std(tenant::clock::monotonic()) + START_DEADLINE;
    let cookies = Cookies::new(&state, &headers);
    let resp = if !cookies.anonymous_csrf_matches(&form.csrf) {
        csrf_refused(&cookies)
    } else {
        let ctx = Ctx::of(&state);
        let unlock = form.unlock.is_some();
        let body = StartBody {
            user_principal_name: form.username.trim().to_string(),
        };
        match app::sspr::start(&state, &ctx, body).await {
            Ok(s) => {
                let value = if unlock {
                    format!("{}.unlock", s.session_id)
                } else {
                    s.session_id.clone()
                };
                let mut resp = Redirect::to("/sspr").into_response();
                resp.headers_mut().append(
                    header::SET_COOKIE,
                    cookies.sspr_cookie(&value, s.expires_at - ctx.now),
                );
                resp
            }
            Err(e) => {
                let help = match e.code {
                    ErrorCode::TooManyRequests => {
                        self_service::helpdesk_of_upn(&state, &form.username)
                            .await
                            .ok()
                    }
                    _ => None,
                };
                start_page(
                    &cookies,
                    status_of(&e),
                    form.username.trim(),
                    unlock,
                    Some(e.message),
                    None,
                    help,
                )
            }
        }
    };
    tokio::time::sleep_until(deadline).await;
    resp
}

/// The session secret of a POST, after its CSRF check; or the page to answer instead.
fn posted_session<'c>(cookies: &'c Cookies, csrf: &str) -> Result<(&'c str, bool), Box<Response>> {
    if !cookies.anonymous_csrf_matches(csrf) {
        return Err(Box::new(csrf_refused(cookies)));
    }
    session_of(cookies).ok_or_else(|| Box::new(Redirect::to("/sspr").into_response()))
}

#[derive(Deserialize)]
struct SendForm {
    csrf: String,
    method: String,
}

/// `POST /sspr/send` — sends a one-time code by the chosen method.
async fn send_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let (secret, _) = match posted_session(&cookies, &form.csrf) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let send = method_of(&form.method).and_then(|m| kind(m).send);
    let Some(send) = send else {
        return step(
            &state,
            &cookies,
            StatusCode::BAD_REQUEST,
            None,
            Some(format!(
                "method: {} cannot send a code here. Choose another method.",
                form.method
            )),
        )
        .await;
    };
    let ctx = Ctx::of(&state);
    match send(&state, &ctx, secret).await {
        Ok(sent) => {
            step(
                &state,
                &cookies,
                StatusCode::OK,
                Some(sent.message.into()),
                None,
            )
            .await
        }
        Err(e) => verify_refused(&state, &cookies, secret, e).await,
    }
}

/// A refused verification step: the verification page again with the message, or (the session
/// ended, the person locked out) the page for that.
async fn verify_refused(
    state: &AppState,
    cookies: &Cookies,
    secret: &str,
    e: AppError,
) -> Response {
    match e.code {
        // A gateway that is down: the person may pick another method on the same page.
        ErrorCode::Unauthenticated
        | ErrorCode::BadRequest
        | ErrorCode::Validation
        | ErrorCode::ServiceUnavailable => {
            step(state, cookies, status_of(&e), None, Some(e.message)).await
        }
        _ => session_failed(state, cookies, secret, e).await,
    }
}

/// `POST /sspr/verify` — checks one method: `method`, and `code` or `answer-1`... for the
/// session's questions in the order shown.
async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let (secret, _) = match posted_session(&cookies, field("csrf")) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let ctx = Ctx::of(&state);
    let method = method_of(field("method"));
    let body = match method.map(|m| (m, kind(m))) {
        Some((_, k)) if k.form == FormKind::Questions => {
            let asked = match app::sspr::session_status(&state, &ctx, secret).await {
                Ok(p) => p.questions,
                Err(e) => return session_failed(&state, &cookies, secret, e).await,
            };
            // `answer-1`, `answer-2`...: the questions in the order shown.
            let answers: Vec<&str> = (1..=asked.len())
                .map(|i| field(&format!("answer-{i}")))
                .collect();
            Some(VerifyBody::SecurityQuestions {
                answers: asked
                    .into_iter()
                    .zip(answers)
                    .map(|(question, answer)| QuestionAnswer {
                        question,
                        answer: answer.to_string(),
                    })
                    .collect(),
            })
        }
        Some((_, k)) => k.code.map(|f| f(field("code").trim().to_string())),
        None => None,
    };
    let Some(body) = body else {
        return step(
            &state,
            &cookies,
            StatusCode::BAD_REQUEST,
            None,
            Some("method: choose one of the verification methods shown.".into()),
        )
        .await;
    };
    match app::sspr::verify(&state, &ctx, secret, body).await {
        Ok(_) => Redirect::to("/sspr").into_response(),
        Err(e) => verify_refused(&state, &cookies, secret, e).await,
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    new_password: String,
    confirm_password: String,
}

impl Drop for PasswordForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.new_password);
        zeroize::Zeroize::zeroize(&mut self.confirm_password);
    }
}

/// `POST /sspr/password` — the new password: success leads to the result page; a refusal by
/// the directory's policy shows its reason on the same form (the session is given back, so
/// another password can be tried); a refusal class shows its words and the helpdesk.
async fn new_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let (secret, unlock) = match posted_session(&cookies, &form.csrf) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    if form.new_password.is_empty() || form.new_password != form.confirm_password {
        let why = if form.new_password.is_empty() {
            "sspr.password.missing"
        } else {
            "sspr.password.mismatch"
        };
        return step(
            &state,
            &cookies,
            StatusCode::BAD_REQUEST,
            None,
            Some(text(why).to_string()),
        )
        .await;
    }
    let body = PasswordBody {
        new_password: Some(form.new_password.clone()),
        unlock_only: false,
    };
    let ctx = Ctx::of(&state);
    let outcome = app::sspr::set_password(&state, &ctx, secret, body).await;
    finish(
        &state,
        &cookies,
        secret,
        unlock,
        outcome,
        Some(&form.new_password),
    )
    .await
}

#[derive(Deserialize)]
struct UnlockForm {
    csrf: String,
}

/// `POST /sspr/unlock` — unlock without a new password, where the policy allows it.
async fn unlock(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<UnlockForm>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let (secret, unlock) = match posted_session(&cookies, &form.csrf) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let body = PasswordBody {
        new_password: None,
        unlock_only: true,
    };
    let ctx = Ctx::of(&state);
    let outcome = app::sspr::set_password(&state, &ctx, secret, body).await;
    finish(&state, &cookies, secret, unlock, outcome, None).await
}

/// The page after a reset or unlock was asked for.
async fn finish(
    state: &AppState,
    cookies: &Cookies,
    secret: &str,
    unlock: bool,
    outcome: Result<ResultView, SsprError>,
    password: Option<&str>,
) -> Response {
    let hint = || password.and_then(|p| self_service::strength_hint(p, &[]));
    match outcome {
        Ok(v) if v.result.outcome == Outcome::Succeeded && v.error_class.is_none() => {
            Redirect::to("/sspr/result").into_response()
        }
        Ok(v) if v.result.outcome == Outcome::PolicyRefused => {
            let (csrf, set) = cookies.anonymous_csrf();
            let page = PasswordPage {
                t: Texts,
                tracking_id: tracking_id(),
                csrf,
                can_unlock: false,
                unlock_first: false,
                error: Some(v.result.message.clone()),
                hint: hint(),
                support: Some(v.result.tracking_id.clone()),
            };
            with_cookie(render(StatusCode::OK, &page), set)
        }
        Ok(v) => {
            let message = v
                .error_class
                .map(|c| c.message().to_string())
                .unwrap_or_else(|| v.result.message.clone());
            let help = helpdesk(state, secret).await;
            refused_page(cookies, StatusCode::OK, message, v.result.tracking_id, help)
        }
        Err(SsprError::Refused(class)) => {
            let help = helpdesk(state, secret).await;
            refused_page(
                cookies,
                StatusCode::FORBIDDEN,
                class.message().to_string(),
                tracking_id(),
                help,
            )
        }
        // The cloud's own rule refused the password: the form again, with the reason.
        Err(SsprError::App(e)) if form_error(&e) && password.is_some() => {
            let (csrf, set) = cookies.anonymous_csrf();
            let page = PasswordPage {
                t: Texts,
                tracking_id: tracking_id(),
                csrf,
                can_unlock: false,
                unlock_first: unlock,
                error: Some(e.message),
                hint: hint(),
                support: None,
            };
            with_cookie(render(StatusCode::BAD_REQUEST, &page), set)
        }
        Err(SsprError::App(e)) => session_failed(state, cookies, secret, e).await,
    }
}

/// `GET /sspr/result` — the stored result of the session (then the session cookie goes: a
/// finished reset cannot be used again).
async fn result(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let Some((secret, _)) = session_of(&cookies) else {
        return Redirect::to("/sspr").into_response();
    };
    let ctx = Ctx::of(&state);
    let v = match app::sspr::result(&state, &ctx, secret).await {
        Ok(v) => v,
        Err(e) if e.code == ErrorCode::NotFound => {
            // No result yet (or the session ended): wherever the session stands.
            return step(&state, &cookies, StatusCode::OK, None, None).await;
        }
        Err(e) => return session_failed(&state, &cookies, secret, e).await,
    };
    let ok = v.result.outcome == Outcome::Succeeded && v.error_class.is_none();
    let message = match (v.error_class, ok) {
        (Some(c), _) if c != RefusalClass::OnPremSuccessCloudFailure => c.message().to_string(),
        _ => v.result.message.clone(),
    };
    let help = if ok {
        Helpdesk::default()
    } else {
        helpdesk(&state, secret).await
    };
    let (csrf, set) = cookies.anonymous_csrf();
    let page = ResultPage {
        t: Texts,
        tracking_id: tracking_id(),
        ok,
        unlocked: ok
            && message == proto::writeback::person_message(Outcome::Succeeded, None, "unlock"),
        message,
        support: v.result.tracking_id.clone(),
        help,
        csrf,
    };
    let mut resp = with_cookie(render(StatusCode::OK, &page), set);
    if ok {
        resp.headers_mut()
            .append(header::SET_COOKIE, cookies.clear_sspr());
    }
    resp
}

#[derive(Deserialize)]
struct RestartForm {
    csrf: String,
}

/// `POST /sspr/restart` — forgets the session in this browser and shows the start page.
async fn restart(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<RestartForm>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    if !cookies.anonymous_csrf_matches(&form.csrf) {
        return csrf_refused(&cookies);
    }
    let mut resp = Redirect::to("/sspr").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, cookies.clear_sspr());
    resp
}

// ---------------------------------------------------------------- change password

/// `GET /my/password` — the change form for the signed-in person.
async fn change_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let Some(caller) = signed_in(&state, &cookies).await else {
        return Redirect::to("/").into_response();
    };
    let page = ChangePage {
        t: Texts,
        tracking_id: tracking_id(),
        csrf: session::csrf_for_session(cookies.session().unwrap_or_default()),
        upn: caller.user.user_principal_name,
        done: false,
        error: None,
        hint: None,
        support: None,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct ChangeForm {
    csrf: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

impl Drop for ChangeForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.current_password);
        zeroize::Zeroize::zeroize(&mut self.new_password);
        zeroize::Zeroize::zeroize(&mut self.confirm_password);
    }
}

/// `POST /my/password` — the API's self-service change ([`app::sspr::change`]: the same
/// throttles, written back for a synced account), for the signed-in person.
async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ChangeForm>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let Some(token) = cookies.session() else {
        return Redirect::to("/").into_response();
    };
    if !session::csrf_matches_session(token, &form.csrf) {
        return super::error_page(
            StatusCode::FORBIDDEN,
            &AppError::forbidden(text("csrf.refused")),
        );
    }
    let Some(caller) = signed_in(&state, &cookies).await else {
        return Redirect::to("/").into_response();
    };
    let upn = caller.user.user_principal_name.clone();
    let page = |status, done, error: Option<String>, hint, support| {
        render(
            status,
            &ChangePage {
                t: Texts,
                tracking_id: tracking_id(),
                csrf: session::csrf_for_session(token),
                upn: upn.clone(),
                done,
                error,
                hint,
                support,
            },
        )
    };
    if form.new_password != form.confirm_password {
        let why = text("sspr.password.mismatch").to_string();
        return page(StatusCode::BAD_REQUEST, false, Some(why), None, None);
    }
    let words = self_service::name_words(&upn);
    let hint = || self_service::strength_hint(&form.new_password, &words);
    let body = ChangeBody {
        user_principal_name: upn.clone(),
        current_password: form.current_password.clone(),
        new_password: form.new_password.clone(),
    };
    match app::sspr::change(&state, &Ctx::of(&state), body).await {
        Ok(c) => {
            let r = &c.view.result;
            let mut resp = match r.outcome {
                Outcome::Succeeded => page(StatusCode::OK, true, None, None, None),
                Outcome::PolicyRefused => page(
                    StatusCode::OK,
                    false,
                    Some(r.message.clone()),
                    hint(),
                    Some(r.tracking_id.clone()),
                ),
                _ => page(
                    StatusCode::OK,
                    false,
                    Some(
                        c.view
                            .error_class
                            .map(|c| c.message().to_string())
                            .unwrap_or_else(|| r.message.clone()),
                    ),
                    None,
                    Some(r.tracking_id.clone()),
                ),
            };
            if c.refused_password {
                resp.extensions_mut().insert(crate::limits::RefusedPassword);
            }
            resp
        }
        Err(SsprError::Refused(class)) => page(
            StatusCode::FORBIDDEN,
            false,
            Some(class.message().to_string()),
            None,
            Some(tracking_id()),
        ),
        Err(SsprError::App(e)) => {
            let h = form_error(&e).then(hint).flatten();
            page(
                status_of(&e),
                false,
                Some(e.message),
                h,
                Some(tracking_id()),
            )
        }
    }
}
