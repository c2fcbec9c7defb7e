//! `/my/security-info` (docs/portal.md, "Security info"): the signed-in person lists, adds,
//! changes and removes their password reset methods — email, mobile phone, office phone,
//! security questions and an authenticator app.
//!
//! Every change goes through the use case `PUT /api/v1/me/authentication-methods` calls
//! ([`app::sspr::register_mine`]; the authenticator app: [`app::sspr::begin_authenticator`] and
//! [`app::sspr::confirm_authenticator`]) with the fresh verification the person typed into the
//! same form, so the page decides nothing the API does not: it shows the API's refusal as it is.
//! What may be registered (methods, questions, pre-filled contacts) is
//! [`app::sspr::my_options`]. Values are shown masked, answers and secrets never, except the
//! new authenticator secret on the one answer that begins its registration (never in a URL).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use proto::AuthMethod;
use serde::Deserialize;

use super::session::{self, Cookies};
use super::texts::{text, Texts};
use super::{error_page, render, signed_in, status_of};
use crate::app::caller::Caller;
use crate::app::sspr::{
    AuthenticatorBegin, AuthenticatorConfirm, AuthenticatorSetup, MethodsView, QuestionAnswer,
    RegistrationBody, RegistrationOptions, Verification,
};
use crate::app::{self, Ctx};
use crate::error::{tracking_id, AppError};
use crate::state::AppState;

const PAGE: &str = "/my/security-info";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(list))
        .route("/my/security-info/{method}", get(edit).post(change))
        .route(
            "/my/security-info/authenticatorApp/confirm",
            post(confirm_authenticator),
        )
}

/// A method by its wire name (`email`, `mobilePhone`, …).
fn method_named(name: &str) -> Option<AuthMethod> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

fn name_of(m: AuthMethod) -> &'static str {
    tenant::sspr::method_name(m)
}

fn label_of(m: AuthMethod) -> &'static str {
    text(match m {
        AuthMethod::Email => "security_info.email",
        AuthMethod::MobilePhone => "security_info.mobilePhone",
        AuthMethod::OfficePhone => "security_info.officePhone",
        AuthMethod::SecurityQuestions => "security_info.securityQuestions",
        AuthMethod::AuthenticatorApp => "security_info.authenticatorApp",
    })
}

/// What the list shows of a registered method: masked contacts, question texts, or nothing.
fn shown_value(m: AuthMethod, mine: &MethodsView) -> Option<String> {
    match m {
        AuthMethod::Email => mine.email.clone(),
        AuthMethod::MobilePhone => mine.mobile_phone.clone(),
        AuthMethod::OfficePhone => mine.office_phone.clone(),
        AuthMethod::SecurityQuestions => Some(mine.security_questions.join(" · ")),
        AuthMethod::AuthenticatorApp => Some(text("security_info.app_registered").to_string()),
    }
    .filter(|_| mine.methods.contains(&m))
}

struct Row {
    name: &'static str,
    label: &'static str,
    value: Option<String>,
}

#[derive(Template)]
#[template(path = "security_info_list.html")]
struct ListPage {
    t: Texts,
    tracking_id: String,
    csrf: String,
    who: String,
    notice: Option<String>,
    rows: Vec<Row>,
}

/// The fresh verification fields of a form: the current password always; the authenticator
/// app and the security questions once registered.
struct VerifyPart {
    app: bool,
    questions: Vec<String>,
}

impl VerifyPart {
    fn of(mine: &MethodsView) -> VerifyPart {
        VerifyPart {
            app: mine.methods.contains(&AuthMethod::AuthenticatorApp),
            questions: mine.security_questions.clone(),
        }
    }

    /// Whether the person chooses how to verify (else: the password).
    fn choice(&self) -> bool {
        self.app || !self.questions.is_empty()
    }
}

/// The input of a contact method: its type and autocomplete token, and the value pre-filled.
struct Contact {
    kind: &'static str,
    value: String,
}

struct QuestionRow {
    index: usize,
    required: bool,
    selected: String,
}

#[derive(Template)]
#[template(path = "security_info_edit.html")]
struct EditPage {
    t: Texts,
    tracking_id: String,
    csrf: String,
    who: String,
    method: &'static str,
    label: &'static str,
    error: Option<String>,
    /// The registered value, masked (none: not registered).
    current: Option<String>,
    registered: bool,
    /// A contact method's input.
    contact: Option<Contact>,
    questions: bool,
    rows: Vec<QuestionRow>,
    bank: Vec<String>,
    questions_min: usize,
    verify: VerifyPart,
}

/// What an authenticator app needs, for the page: the QR code as inline SVG and the values
/// for "can't scan".
struct SetupView {
    svg: String,
    secret: String,
    issuer: String,
    account: String,
    algorithm: &'static str,
    digits: u8,
    period: i64,
}

#[derive(Template)]
#[template(path = "security_info_authenticator.html")]
struct AuthenticatorPage {
    t: Texts,
    tracking_id: String,
    csrf: String,
    who: String,
    error: Option<String>,
    setup: Option<SetupView>,
}

/// The signed-in caller and the session's CSRF token, or where to go instead.
async fn caller_of(state: &AppState, cookies: &Cookies) -> Result<(Caller, String), Response> {
    match signed_in(state, cookies).await {
        Some(c) => Ok((
            c,
            session::csrf_for_session(cookies.session().unwrap_or_default()),
        )),
        None => Err(Redirect::to("/").into_response()),
    }
}

/// The person who posted a form of these pages: signed in (else back to the sign-in page) and
/// carrying their session's CSRF token (else 403); with the token for the next page.
async fn poster(
    state: &AppState,
    cookies: &Cookies,
    csrf: &str,
) -> Result<(Caller, String), Response> {
    let Some(token) = cookies.session() else {
        return Err(Redirect::to("/").into_response());
    };
    if !session::csrf_matches_session(token, csrf) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            &AppError::forbidden(text("csrf.refused")),
        ));
    }
    caller_of(state, cookies).await
}

#[derive(Deserialize)]
struct Notice {
    saved: Option<String>,
    removed: Option<String>,
}

/// `GET /my/security-info` — the registered methods (masked) and the ones the policy offers.
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(n): Query<Notice>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let (caller, csrf) = match caller_of(&state, &cookies).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (mine, options) = match mine_and_options(&state, &caller).await {
        Ok(v) => v,
        Err(e) => return error_page(status_of(&e), &e),
    };
    let mut methods: Vec<AuthMethod> = options.methods.clone();
    for m in &mine.methods {
        if !methods.contains(m) {
            methods.push(*m);
        }
    }
    methods.sort();
    let rows = methods
        .into_iter()
        .map(|m| Row {
            name: name_of(m),
            label: label_of(m),
            value: shown_value(m, &mine),
        })
        .collect();
    let notice = match (n.saved.as_deref(), n.removed.as_deref()) {
        (Some(m), _) => {
            method_named(m).map(|m| format!("{}: {}", label_of(m), text("security_info.saved")))
        }
        (_, Some(m)) => {
            method_named(m).map(|m| format!("{}: {}", label_of(m), text("security_info.removed")))
        }
        _ => None,
    };
    render(
        StatusCode::OK,
        &ListPage {
            t: Texts,
            tracking_id: tracking_id(),
            csrf,
            who: caller.user.display_name.clone(),
            notice,
            rows,
        },
    )
}

async fn mine_and_options(
    state: &AppState,
    caller: &Caller,
) -> Result<(MethodsView, RegistrationOptions), AppError> {
    Ok((
        app::sspr::my_methods(state, caller).await?,
        app::sspr::my_options(state, caller).await?,
    ))
}

/// The edit page of `m`, with `error` (the API's refusal) and, for questions, the choices made.
async fn edit_page(
    state: &AppState,
    caller: &Caller,
    csrf: String,
    m: AuthMethod,
    status: StatusCode,
    error: Option<String>,
    chosen: &[String],
) -> Response {
    let (mine, options) = match mine_and_options(state, caller).await {
        Ok(v) => v,
        Err(e) => return error_page(status_of(&e), &e),
    };
    let registered = mine.methods.contains(&m);
    if !registered && !options.methods.contains(&m) {
        return error_page(
            StatusCode::NOT_FOUND,
            &AppError::not_found(text("security_info.not_offered")),
        );
    }
    let contact = match m {
        AuthMethod::Email => Some(("email", options.suggested_email.clone())),
        AuthMethod::MobilePhone => Some(("tel", options.suggested_mobile_phone.clone())),
        AuthMethod::OfficePhone => Some(("tel", options.suggested_office_phone.clone())),
        _ => None,
    }
    .map(|(kind, suggested)| Contact {
        kind,
        // The directory's value is offered for a method not registered yet.
        value: suggested.filter(|_| !registered).unwrap_or_default(),
    });
    let questions = m == AuthMethod::SecurityQuestions;
    let rows = if questions {
        (1..=options.questions_max)
            .map(|index| QuestionRow {
                index,
                required: index <= options.questions_min,
                selected: chosen.get(index - 1).cloned().unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    render(
        status,
        &EditPage {
            t: Texts,
            tracking_id: tracking_id(),
            csrf,
            who: caller.user.display_name.clone(),
            method: name_of(m),
            label: label_of(m),
            error,
            current: shown_value(m, &mine),
            registered,
            contact,
            questions,
            rows,
            bank: options.questions,
            questions_min: options.questions_min,
            verify: VerifyPart::of(&mine),
        },
    )
}

/// `GET /my/security-info/{method}` — add, change or remove one method.
async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(method): Path<String>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let (caller, csrf) = match caller_of(&state, &cookies).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(m) = method_named(&method) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &AppError::not_found(text("security_info.not_offered")),
        );
    };
    edit_page(&state, &caller, csrf, m, StatusCode::OK, None, &[]).await
}

/// A posted form's fields, by name.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

impl Drop for Fields {
    fn drop(&mut self) {
        // Passwords, codes and answers.
        for (_, v) in &mut self.0 {
            zeroize::Zeroize::zeroize(v);
        }
    }
}

/// The fresh verification the person gave in the form: the way they chose, with the registered
/// questions (in the order the form showed them) paired with the answers typed.
fn verification(f: &Fields, registered_questions: &[String]) -> Option<Verification> {
    match f.get("verify_method") {
        "password" if !f.get("verify_password").is_empty() => Some(Verification::Password {
            password: f.get("verify_password").to_string(),
        }),
        "authenticatorApp" => Some(Verification::AuthenticatorApp {
            code: f.get("verify_code").trim().to_string(),
        }),
        "securityQuestions" => Some(Verification::SecurityQuestions {
            answers: registered_questions
                .iter()
                .enumerate()
                .map(|(i, q)| QuestionAnswer {
                    question: q.clone(),
                    answer: f.get(&format!("verify_answer_{}", i + 1)).to_string(),
                })
                .collect(),
        }),
        _ => None,
    }
}

fn empty_body(verification: Option<Verification>) -> RegistrationBody {
    RegistrationBody {
        email: None,
        mobile_phone: None,
        office_phone: None,
        security_questions: None,
        authenticator_app: None,
        verification,
    }
}

/// `POST /my/security-info/{method}` — save (`op=save`) or remove (`op=remove`) the method,
/// with the fresh verification of the form; the authenticator app's save begins its
/// registration and shows its secret.
async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(method): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(form);
    let cookies = Cookies::new(&state, &headers);
    let (caller, csrf) = match poster(&state, &cookies, f.get("csrf")).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(m) = method_named(&method) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &AppError::not_found(text("security_info.not_offered")),
        );
    };
    let mine = match app::sspr::my_methods(&state, &caller).await {
        Ok(v) => v,
        Err(e) => return error_page(status_of(&e), &e),
    };
    let proof = verification(&f, &mine.security_questions);
    let remove = f.get("op") == "remove";
    let ctx = Ctx::of(&state);
    let mut chosen = Vec::new();
    if m == AuthMethod::AuthenticatorApp && !remove {
        let begun = app::sspr::begin_authenticator(
            &state,
            &ctx,
            &caller,
            AuthenticatorBegin {
                verification: proof,
            },
        )
        .await;
        return match begun {
            Ok(setup) => authenticator_page(&caller, csrf, StatusCode::OK, None, Some(setup)),
            Err(e) => {
                edit_page(
                    &state,
                    &caller,
                    csrf,
                    m,
                    status_of(&e),
                    Some(e.message),
                    &[],
                )
                .await
            }
        };
    }
    let mut body = empty_body(proof);
    let value = |name: &str| (!remove).then(|| f.get(name).trim().to_string());
    match m {
        AuthMethod::Email => body.email = Some(value("value")),
        AuthMethod::MobilePhone => body.mobile_phone = Some(value("value")),
        AuthMethod::OfficePhone => body.office_phone = Some(value("value")),
        AuthMethod::AuthenticatorApp => body.authenticator_app = Some(None),
        AuthMethod::SecurityQuestions => {
            body.security_questions = Some((!remove).then(|| {
                let mut list = Vec::new();
                for i in 1..=usize::from(tenant::policy::QUESTIONS_MAX) {
                    let q = f.get(&format!("question_{i}")).to_string();
                    let a = f.get(&format!("answer_{i}")).to_string();
                    chosen.push(q.clone());
                    // A row left empty is not a question.
                    if !(q.is_empty() && a.is_empty()) {
                        list.push(QuestionAnswer {
                            question: q,
                            answer: a,
                        });
                    }
                }
                list
            }));
        }
    }
    match app::sspr::register_mine(&state, &ctx, &caller, body).await {
        Ok(_) => Redirect::to(&format!(
            "{PAGE}?{}={}",
            if remove { "removed" } else { "saved" },
            name_of(m)
        ))
        .into_response(),
        Err(e) => {
            edit_page(
                &state,
                &caller,
                csrf,
                m,
                status_of(&e),
                Some(e.message),
                &chosen,
            )
            .await
        }
    }
}

fn authenticator_page(
    caller: &Caller,
    csrf: String,
    status: StatusCode,
    error: Option<String>,
    setup: Option<AuthenticatorSetup>,
) -> Response {
    let setup = match setup {
        Some(s) => match qr_svg(&s.otpauth_uri) {
            Some(svg) => Some(SetupView {
                svg,
                secret: s.secret.clone(),
                issuer: s.issuer.clone(),
                account: s.account_name.clone(),
                algorithm: s.algorithm,
                digits: s.digits,
                period: s.period,
            }),
            None => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &AppError::internal()),
        },
        None => None,
    };
    render(
        status,
        &AuthenticatorPage {
            t: Texts,
            tracking_id: tracking_id(),
            csrf,
            who: caller.user.display_name.clone(),
            error,
            setup,
        },
    )
}

/// `POST /my/security-info/authenticatorApp/confirm` — the first code of the new app.
async fn confirm_authenticator(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(form);
    let cookies = Cookies::new(&state, &headers);
    let (caller, csrf) = match poster(&state, &cookies, f.get("csrf")).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body = AuthenticatorConfirm {
        code: f.get("code").trim().to_string(),
    };
    match app::sspr::confirm_authenticator(&state, &Ctx::of(&state), &caller, body).await {
        Ok(_) => Redirect::to(&format!("{PAGE}?saved=authenticatorApp")).into_response(),
        Err(e) => authenticator_page(&caller, csrf, status_of(&e), Some(e.message), None),
    }
}

/// The QR code of `data` as an SVG element (black modules on white, a four-module quiet zone),
/// for inline use: no script, no style, no external reference.
fn qr_svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let size = width + 2 * quiet;
    let mut path = String::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = (i % width + quiet, i / width + quiet);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" width=\"232\" height=\"232\" role=\"img\" aria-labelledby=\"qr-title\" id=\"qr-code\" shape-rendering=\"crispEdges\"><title id=\"qr-title\">{}</title><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>",
        text("security_info.qr_title")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_plain_svg_without_script_or_style() {
        let svg = qr_svg("otpauth://totp/Contoso:ada%40contoso.test?secret=JBSWY3DPEHPK3PXP")
            .expect("a QR code");
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        for banned in ["<script", "style=", "href", "JBSWY3DPEHPK3PXP"] {
            assert!(!svg.contains(banned), "{banned} in {svg}");
        }
    }

    #[test]
    fn every_method_has_a_wire_name_the_page_understands() {
        for m in [
            AuthMethod::Email,
            AuthMethod::MobilePhone,
            AuthMethod::OfficePhone,
            AuthMethod::SecurityQuestions,
            AuthMethod::AuthenticatorApp,
        ] {
            assert_eq!(method_named(name_of(m)), Some(m));
        }
        assert_eq!(method_named("password"), None);
    }
}
