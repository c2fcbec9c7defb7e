//! The web portal: server-rendered pages (askama templates in `crates/cloud/templates`, one
//! stylesheet in `crates/cloud/assets`) for people signing in with a browser. Every page works
//! without JavaScript.
//!
//! A handler parses the form, calls the same function the JSON API calls (sign-in is
//! [`crate::app::sign_in::password`], the session is [`crate::app::caller::Caller::from_token`]), and
//! renders what it returns: a page never decides anything the API does not, and shows the API's
//! message for a refusal with the request's tracking id as the support code.
//!
//! Security of the pages:
//! * the session is an API token in a `__Host-` cookie (`Secure`, `HttpOnly`, `SameSite=Lax`,
//!   `Path=/`): stored only as a hash, expiring and revocable like any token, so every cloud
//!   instance serves it and revoking a user's tokens ends their browser sessions;
//! * every form carries a CSRF token ([`session`]);
//! * every page is sent with a CSP without inline script, `frame-ancestors 'none'`, `nosniff`,
//!   `Referrer-Policy: no-referrer` and `Cache-Control: no-store` ([`page_headers`]);
//! * no secret is ever in a URL: forms are POSTed and answered with `303 See Other`.

pub mod admin;
pub mod registration;
pub mod session;
pub mod sspr;
pub mod texts;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use proto::{Source, TokenRequest, User};
use serde::Deserialize;

use crate::app::caller::Caller;
use crate::app::{self, Ctx};
use crate::error::{tracking_id, AppError};
use crate::state::AppState;
use session::Cookies;

/// The portal's routes (merged into the application router at `/`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/signin", post(sign_in))
        .route("/signout", post(sign_out))
        .route("/my", get(account))
        .route("/assets/portal.css", get(stylesheet))
        .merge(sspr::routes())
        .merge(admin::routes())
        .layer(axum::middleware::from_fn(page_headers))
}

/// The portal's Content-Security-Policy: same-origin scripts (the password hint), styles and
/// forms, nothing inline, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the portal's security headers to every page and asset.
pub async fn page_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    set_page_headers(&mut resp);
    resp
}

/// A refusal made before a page handler ran (the per-address limit on `POST /signin`), as a
/// page: the message and support code, with the page headers.
pub fn refusal_page(e: &AppError) -> Response {
    let mut resp = error_page(status_of(e), e);
    set_page_headers(&mut resp);
    resp
}

pub(crate) fn set_page_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/portal.css"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "signin.html")]
pub(crate) struct SignInPage<'a> {
    pub tracking_id: String,
    pub csrf: String,
    pub username: &'a str,
    pub error: Option<String>,
    /// Where the form posts: `/signin`, or an app's sign-in (`/t/{domain}/oauth2/signin`).
    pub action: String,
    /// The app sign-in's pending authorization request.
    pub request: Option<String>,
    /// The app the user is signing in to, if any.
    pub app_name: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    tracking_id: String,
    csrf: String,
    user: User,
    source: &'static str,
    roles: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    tracking_id: String,
    heading: &'a str,
    message: String,
}

/// Renders `page` with `status`, or the generic error page if rendering fails.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(tracking_id = %tracking_id(), error = %e, "rendering a page");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, &AppError::internal())
        }
    }
}

/// A page for a refusal: the API's message and the tracking id, with the API's status.
pub(crate) fn error_page(status: StatusCode, e: &AppError) -> Response {
    let page = ErrorPage {
        tracking_id: tracking_id(),
        heading: "Something went wrong",
        message: e.message.clone(),
    };
    match page.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(_) => (status, e.message.clone()).into_response(),
    }
}

pub(crate) fn status_of(e: &AppError) -> StatusCode {
    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The signed-in caller of this browser, if its session cookie is valid.
async fn signed_in(state: &AppState, cookies: &Cookies) -> Option<Caller> {
    let token = cookies.session()?;
    Caller::from_token(state, token).await.ok()
}

/// `GET /` — the sign-in page, or the account page for a signed-in browser.
async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = Cookies::new(&state, &headers);
    if signed_in(&state, &cookies).await.is_some() {
        return Redirect::to("/my").into_response();
    }
    sign_in_page(&cookies, StatusCode::OK, "", None)
}

/// The sign-in form, with a fresh pre-session CSRF cookie when the browser has none.
fn sign_in_page(
    cookies: &Cookies,
    status: StatusCode,
    username: &str,
    error: Option<String>,
) -> Response {
    let (csrf, set_cookie) = cookies.anonymous_csrf();
    let page = SignInPage {
        tracking_id: tracking_id(),
        csrf,
        username,
        error,
        action: "/signin".into(),
        request: None,
        app_name: None,
    };
    let mut resp = render(status, &page);
    if let Some(c) = set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[derive(Deserialize)]
struct SignInForm {
    csrf: String,
    username: String,
    password: String,
}

/// `POST /signin` — the API's sign-in (same throttles, same pass-through for synced users, same
/// messages); a session cookie on success.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    if !cookies.anonymous_csrf_matches(&form.csrf) {
        return csrf_refused(&cookies);
    }
    let req = TokenRequest {
        user_principal_name: form.username.clone(),
        password: form.password,
    };
    match app::sign_in::password(&state, &Ctx::of(&state), req).await {
        Ok(token) => {
            // This browser becomes a known device for the account, as after an API sign-in.
            let device = match crate::limits::device::device_cookie(
                &state,
                &token.user_principal_name,
            )
            .await
            {
                Ok(c) => c,
                Err(e) => return error_page(status_of(&e), &e),
            };
            // The registration interrupt, where the policy asks for it.
            let next = match Caller::from_token(&state, &token.access_token).await {
                Ok(caller) => registration::after_sign_in(&state, &caller).await,
                Err(_) => "/my",
            };
            let mut resp = Redirect::to(next).into_response();
            let h = resp.headers_mut();
            h.append(header::SET_COOKIE, device);
            h.append(
                header::SET_COOKIE,
                cookies.session_cookie(&token.access_token, token.expires_at - state.now()),
            );
            h.append(header::SET_COOKIE, cookies.clear_anonymous_csrf());
            resp
        }
        Err(e) => sign_in_page(
            &cookies,
            status_of(&e),
            form.username.trim(),
            Some(e.message),
        ),
    }
}

fn csrf_refused(cookies: &Cookies) -> Response {
    sign_in_page(
        cookies,
        StatusCode::FORBIDDEN,
        "",
        Some(
            "This form had expired or did not come from this site, so nothing was done. Sign in again on this page."
                .into(),
        ),
    )
}

/// `GET /my` — who is signed in.
async fn account(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let Some(caller) = signed_in(&state, &cookies).await else {
        return Redirect::to("/").into_response();
    };
    let page = AccountPage {
        tracking_id: tracking_id(),
        csrf: session::csrf_for_session(cookies.session().unwrap_or_default()),
        source: match caller.user.source {
            Source::OnPremises => "Synced from your organisation's directory",
            _ => "Cloud account",
        },
        roles: caller
            .user
            .roles
            .iter()
            .map(|r| r.display_name())
            .collect::<Vec<_>>()
            .join(", "),
        user: caller.user,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct SignOutForm {
    csrf: String,
}

/// `POST /signout` — revokes the session's token (as `DELETE /api/v1/auth/token` does).
async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let cookies = Cookies::new(&state, &headers);
    let Some(token) = cookies.session() else {
        return Redirect::to("/").into_response();
    };
    if !session::csrf_matches_session(token, &form.csrf) {
        return error_page(
            StatusCode::FORBIDDEN,
            &AppError::forbidden(
                "This form had expired or did not come from this site, so nothing was done. Go back, reload the page and try again.",
            ),
        );
    }
    if let Ok(caller) = Caller::from_token(&state, token).await {
        if let Err(e) = app::sign_in::sign_out(&state, &caller).await {
            return error_page(status_of(&e), &e);
        }
    }
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, cookies.clear_session());
    resp
}
