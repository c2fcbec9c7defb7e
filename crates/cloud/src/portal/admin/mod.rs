//! The admin portal under `/admin`: pages for signed-in administrators, on the same session,
//! CSRF, headers and templates as the rest of the portal (docs/portal.md, "Admin pages").
//!
//! Every page calls the `crate::app` use case the JSON API calls and renders what it returns;
//! a refusal is the API's own message. A page or a link is offered only when
//! [`tenant::roles`] allows its operation to the signed-in account ([`Admin::may`]); a URL
//! whose operation the roles refuse answers a 403 page with the API's refusal.

pub mod audit;
pub mod licenses;
pub mod onprem;
pub mod policy;
pub mod users;

use askama::Template;
use axum::extract::State;
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
            policy: self.may(Operation::ManagePolicy),
            onprem: self.may(Operation::ManageTenant),
            audit: self.may(Operation::ReadAudit),
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

/// A time for a person (UTC).
pub fn when(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
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
async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let admin = match Admin::of(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
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
