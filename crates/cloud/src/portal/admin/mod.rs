//! The admin portal under `/admin`: pages for signed-in administrators, on the same session,
//! CSRF, headers and templates as the rest of the portal (docs/portal.md, "Admin pages").
//!
//! Every page calls the `crate::app` use case the JSON API calls and renders what it returns;
//! a refusal is the API's own message. A page or a link is offered only when
//! [`tenant::roles`] allows its operation to the signed-in account ([`Admin::may`]); a URL
//! whose operation the roles refuse answers a 403 page with the API's refusal.

pub mod apps;
pub mod audit;
pub mod flash;
pub mod groups;
pub mod licenses;
pub mod onprem;
pub mod policy;
pub mod users;

use askama::Template;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tenant::roles::{self, Operation};

use super::session::{self, Cookies};
use super::{error_page, render, status_of};
use crate::app::caller::Caller;
use crate::error::{tracking_id, AppError};
use crate::state::AppState;

/// The admin pages' routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(home))
        .merge(users::routes())
        .merge(licenses::routes())
        .merge(policy::routes())
        .merge(onprem::routes())
        .merge(audit::routes())
        .merge(apps::routes())
        .merge(groups::routes())
}

/// The signed-in administrator of a request, with the CSRF token of its forms.
pub struct Admin {
    pub caller: Caller,
    pub csrf: String,
}

/// Which admin areas the signed-in account may open (the links of the navigation).
pub struct Nav {
    pub users: bool,
    pub licenses: bool,
    pub policy: bool,
    pub onprem: bool,
    pub audit: bool,
    pub apps: bool,
    pub groups: bool,
    pub roles: bool,
}

/// A page handler's `admin: Admin` argument is [`Admin::of`] the request.
impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Admin::of(state, &parts.headers).await
    }
}

impl Admin {
    /// The administrator signed in on this browser: no session sends the browser to the
    /// sign-in page; an account without an administrator role gets a 403 page.
    pub async fn of(state: &AppState, headers: &HeaderMap) -> Result<Admin, Response> {
        let cookies = Cookies::new(state, headers);
        let Some(token) = cookies.session() else {
            return Err(Redirect::to("/").into_response());
        };
        let Ok(caller) = Caller::from_token(state, token).await else {
            return Err(Redirect::to("/").into_response());
        };
        if !roles::is_administrator(caller.roles()) {
            return Err(refused(&AppError::forbidden(
                "The admin pages are for administrators, and this account holds no administrator role. Ask a Global Administrator for one, or go to your account page (/my).",
            )));
        }
        Ok(Admin {
            csrf: session::csrf_for_session(token),
            caller,
        })
    }

    /// [`Admin::of`] for a form: its CSRF token must be the session's, or nothing is done.
    pub async fn posting(
        state: &AppState,
        headers: &HeaderMap,
        csrf: &str,
    ) -> Result<Admin, Response> {
        let admin = Admin::of(state, headers).await?;
        if !session::csrf_matches_session(
            Cookies::new(state, headers).session().unwrap_or(""),
            csrf,
        ) {
            return Err(refused(&AppError::forbidden(
                "This form had expired or did not come from this site, so nothing was done. Go back, reload the page and try again.",
            )));
        }
        Ok(admin)
    }

    /// Whether the account's roles allow `op` ([`tenant::roles`] decides, as for the API).
    pub fn may(&self, op: Operation) -> bool {
        self.caller.authorize(op).is_ok()
    }

    /// The 403 page for `op` when the roles refuse it: the API's refusal.
    pub fn refusal(&self, op: Operation) -> Option<Response> {
        self.caller.authorize(op).err().map(|e| refused(&e))
    }

    pub fn nav(&self) -> Nav {
        Nav {
            users: self.may(Operation::ReadDirectory),
            licenses: self.may(Operation::ReadLicenses),
            policy: self.may(Operation::ReadPolicy),
            onprem: self.may(Operation::ManageTenant),
            audit: self.may(Operation::ReadAudit),
            apps: self.may(Operation::ManageApps),
            groups: self.may(Operation::ReadDirectory),
            roles: self.may(Operation::AssignRoles),
        }
    }

    pub fn name(&self) -> &str {
        &self.caller.user.display_name
    }
}

/// The error page for a refusal, with the API's status and message.
pub fn refused(e: &AppError) -> Response {
    error_page(status_of(e), e)
}

/// The status of a page showing `error` (200 when there is none).
pub fn status_for(error: &Option<AppError>) -> StatusCode {
    error.as_ref().map(status_of).unwrap_or(StatusCode::OK)
}

/// Where a form may send the browser back to: only a path of the admin portal.
pub fn back_to(back: Option<&str>, default: &str) -> String {
    match back {
        Some(b) if b.starts_with("/admin") && !b.contains("//") && !b.contains('\\') => b.into(),
        _ => default.into(),
    }
}

/// A value for a URL's path or query.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A time for a person (UTC), as `tenant::clock` writes it.
pub fn when(t: i64) -> String {
    tenant::clock::minutes_utc(t)
}

#[derive(Template)]
#[template(path = "admin_home.html")]
struct HomePage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    roles: String,
}

/// `GET /admin` — what this administrator may open.
async fn home(admin: Admin) -> Response {
    let page = HomePage {
        tracking_id: tracking_id(),
        csrf: &admin.csrf,
        name: admin.name(),
        nav: admin.nav(),
        roles: admin
            .caller
            .roles()
            .iter()
            .map(|r| r.display_name())
            .collect::<Vec<_>>()
            .join(", "),
    };
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_sends_the_browser_back_only_into_the_admin_portal() {
        assert_eq!(
            back_to(Some("/admin/licenses/assign"), "/admin"),
            "/admin/licenses/assign"
        );
        assert_eq!(back_to(Some("https://evil.example/"), "/admin"), "/admin");
        assert_eq!(back_to(Some("/admin//evil.example"), "/admin"), "/admin");
        assert_eq!(back_to(None, "/admin/users"), "/admin/users");
    }

    #[test]
    fn times_are_shown_as_utc_dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_796_601_600), "2026-12-07 00:00 UTC");
    }
}
