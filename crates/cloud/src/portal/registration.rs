//! The registration interrupt at sign-in (docs/portal.md, "Registration at sign-in"): after
//! `POST /signin` a person the policy asks to register more reset methods, or to reconfirm the
//! ones they have, sees that page before their account. What is asked is decided by
//! [`app::registration::at_sign_in`]; registering happens on `/my/security-info`.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::session::{self, Cookies};
use super::texts::{text, Texts};
use super::{error_page, render, signed_in, status_of};
use crate::app::caller::Caller;
use crate::app::registration::Interrupt;
use crate::app::{self, Ctx};
use crate::error::{tracking_id, AppError};
use crate::state::AppState;

/// Where people register their methods (the security info page).
pub const SECURITY_INFO: &str = "/my/security-info";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/my/register", get(register_page))
        .route("/my/reconfirm", get(reconfirm_page).post(reconfirm))
}

/// Where a person who just signed in with `caller` goes: their account, or the interrupt.
pub async fn after_sign_in(state: &AppState, caller: &Caller) -> &'static str {
    match app::registration::at_sign_in(state, &Ctx::of(state), caller).await {
        Ok(Interrupt::Register { .. }) => "/my/register",
        Ok(Interrupt::Reconfirm) => "/my/reconfirm",
        Ok(Interrupt::None) => "/my",
        Err(e) => {
            // Never keeps anyone out of their account.
            tracing::warn!(tracking_id = %tracking_id(), error = %e.message, "the registration check at sign-in failed");
            "/my"
        }
    }
}

#[derive(Template)]
#[template(path = "sspr_register.html")]
struct RegisterPage {
    t: Texts,
    tracking_id: String,
    have: usize,
    need: usize,
    security_info: &'static str,
}

#[derive(Template)]
#[template(path = "sspr_reconfirm.html")]
struct ReconfirmPage {
    t: Texts,
    tracking_id: String,
    csrf: String,
    methods: Vec<(String, String)>,
    security_info: &'static str,
}

/// `GET /my/register` — "more information required", with a link to security info and a way
/// to skip for now (the next sign-in asks again).
async fn register_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let Some(caller) = signed_in(&state, &cookies).await else {
        return Redirect::to("/").into_response();
    };
    match app::registration::at_sign_in(&state, &Ctx::of(&state), &caller).await {
        Ok(Interrupt::Register { have, need }) => render(
            StatusCode::OK,
            &RegisterPage {
                t: Texts,
                tracking_id: tracking_id(),
                have,
                need,
                security_info: SECURITY_INFO,
            },
        ),
        Ok(_) => Redirect::to("/my").into_response(),
        Err(e) => error_page(status_of(&e), &e),
    }
}

/// `GET /my/reconfirm` — the registered methods (masked), "these are still right" or change.
async fn reconfirm_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let Some(caller) = signed_in(&state, &cookies).await else {
        return Redirect::to("/").into_response();
    };
    let mine = match app::sspr::my_methods(&state, &caller).await {
        Ok(m) => m,
        Err(e) => return error_page(status_of(&e), &e),
    };
    let mut methods = Vec::new();
    for (code, value) in [
        ("method.email", mine.email.clone()),
        ("method.mobilePhone", mine.mobile_phone.clone()),
        ("method.officePhone", mine.office_phone.clone()),
    ] {
        if let Some(v) = value {
            methods.push((text(code).to_string(), v));
        }
    }
    if !mine.security_questions.is_empty() {
        methods.push((
            text("method.securityQuestions").to_string(),
            mine.security_questions.join(" · "),
        ));
    }
    render(
        StatusCode::OK,
        &ReconfirmPage {
            t: Texts,
            tracking_id: tracking_id(),
            csrf: session::csrf_for_session(cookies.session().unwrap_or_default()),
            methods,
            security_info: SECURITY_INFO,
        },
    )
}

#[derive(Deserialize)]
struct ReconfirmForm {
    csrf: String,
}

/// `POST /my/reconfirm` — records that the registered methods are still right.
async fn reconfirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ReconfirmForm>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let Some(token) = cookies.session() else {
        return Redirect::to("/").into_response();
    };
    if !session::csrf_matches_session(token, &form.csrf) {
        return error_page(
            StatusCode::FORBIDDEN,
            &AppError::forbidden(text("csrf.refused")),
        );
    }
    let Some(caller) = signed_in(&state, &cookies).await else {
        return Redirect::to("/").into_response();
    };
    match app::registration::reconfirm(&state, &Ctx::of(&state), &caller).await {
        Ok(()) => Redirect::to("/my").into_response(),
        Err(e) => error_page(status_of(&e), &e),
    }
}
