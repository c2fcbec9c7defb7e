//! `/admin/users`: search and page through users, a user's page, and what an administrator
//! does to a user (usage location, password reset written back for synced users, unlock,
//! revoke sessions, create / disable / delete cloud users) — each on the [`app::users`],
//! [`app::licensing`], [`app::sspr`] and [`app::audit`] use cases the API calls.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use proto::writeback::Outcome;
use proto::{AssignmentSource, AuditFilter, NewUser, Source, User, UserFilter, UserPatch};
use serde::Deserialize;
use tenant::roles::Operation;

use super::{back_to, enc, flash, refused, status_for, when, Admin, Nav};
use crate::app::users::{PasswordBody, PasswordReset};
use crate::app::{self, Ctx};
use crate::error::{tracking_id, AppError};
use crate::portal::render;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list))
        .route("/admin/users/new", get(new_form).post(create))
        .route("/admin/users/{user}", get(show))
        .route("/admin/users/{user}/usage-location", post(usage_location))
        .route("/admin/users/{user}/reset-password", post(reset_password))
        .route("/admin/users/{user}/unlock", post(unlock))
        .route("/admin/users/{user}/revoke-sessions", post(revoke_sessions))
        .route("/admin/users/{user}/enabled", post(set_enabled))
        .route("/admin/users/{user}/delete", post(delete))
}

/// A value's name on the wire (`onPremises`, `active`…), as the API shows it.
pub(super) fn wire<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

pub(super) fn source_name(s: Source) -> &'static str {
    match s {
        Source::OnPremises => "synced",
        Source::Cloud => "cloud",
    }
}

pub(super) struct UserRow {
    pub upn: String,
    pub link: String,
    pub display_name: String,
    pub source: &'static str,
    pub usage_location: String,
    pub enabled: bool,
}

impl UserRow {
    pub fn of(u: &User) -> UserRow {
        UserRow {
            upn: u.user_principal_name.clone(),
            link: format!("/admin/users/{}", enc(&u.user_principal_name)),
            display_name: u.display_name.clone(),
            source: source_name(u.source),
            usage_location: u.usage_location.clone().unwrap_or_default(),
            enabled: u.account_enabled,
        }
    }
}

/// The search form of the user lists (here and on the licence assignment page).
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    #[serde(default)]
    pub upn: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub sku: String,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

impl Search {
    pub fn filter(&self) -> UserFilter {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        UserFilter {
            upn_prefix: text(&self.upn),
            display_name: text(&self.name),
            sku_id: text(&self.sku),
            source: match self.source.as_str() {
                "cloud" => Some(Source::Cloud),
                "onPremises" => Some(Source::OnPremises),
                _ => None,
            },
        }
    }

    /// The query string of the next page after `next`.
    pub fn next_query(&self, next: &str) -> String {
        let mut q = format!(
            "upn={}&name={}&source={}&sku={}&after={}",
            enc(&self.upn),
            enc(&self.name),
            enc(&self.source),
            enc(&self.sku),
            enc(next)
        );
        if let Some(l) = self.limit {
            q += &format!("&limit={l}");
        }
        q
    }
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct ListPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    search: &'a Search,
    rows: Vec<UserRow>,
    next: Option<String>,
    may_create: bool,
}

/// `GET /admin/users` — search (UPN prefix, display name, source, licence) and page.
async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(search): Query<Search>,
) -> Response {
    let page = store::page(search.after.clone(), search.limit);
    let found = match app::users::list(&state, &admin.caller, search.filter(), &page).await {
        Ok(p) => p,
        Err(e) => return refused(&e),
    };
    render(
        StatusCode::OK,
        &ListPage {
            tracking_id: tracking_id(),
            csrf: &admin.csrf,
            name: admin.name(),
            nav: admin.nav(),
            search: &search,
            rows: found.items.iter().map(UserRow::of).collect(),
            next: found.next.as_deref().map(|n| search.next_query(n)),
            may_create: admin.may(Operation::CreateUser),
        },
    )
}

struct LicenseRow {
    sku: String,
    source: String,
    state: String,
    error: String,
}

struct AuditRow {
    time: String,
    actor: String,
    action: String,
    target: String,
    result: String,
    tracking_id: String,
}

impl AuditRow {
    fn of(r: &proto::AuditRecord) -> AuditRow {
        AuditRow {
            time: when(r.time),
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone().unwrap_or_default(),
            result: wire(&r.result),
            tracking_id: r.tracking_id.clone(),
        }
    }
}

/// What a reset or unlock did, shown on the user's page.
#[derive(Clone)]
struct Done {
    ok: bool,
    message: String,
    outcome: String,
    tracking_id: String,
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    user: &'a User,
    link: String,
    source: &'static str,
    synced: bool,
    owned: String,
    usage_editable: bool,
    licenses: Option<Vec<LicenseRow>>,
    methods: Option<Vec<String>>,
    history: Option<Vec<AuditRow>>,
    may_reset: bool,
    may_revoke: bool,
    may_update: bool,
    may_delete: bool,
    notice: Option<&'static str>,
    error: Option<String>,
    done: Option<Done>,
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
    /// The key of a reset's or unlock's result ([`flash`]), and its tracking id.
    result: Option<String>,
    tracking_id: Option<String>,
}

impl Notice {
    /// The result the URL names: kept, or a line that sends the reader to the audit log.
    fn result(&self, state: &AppState, admin: &Admin) -> Option<Done> {
        let key = self.result.as_deref()?;
        flash::get::<Done>(state, admin, key).or_else(|| {
            Some(Done {
                ok: true,
                message: "This result is no longer kept for display; the audit log has it under its tracking id.".into(),
                outcome: "see the audit log".into(),
                tracking_id: self.tracking_id.clone().unwrap_or_default(),
            })
        })
    }
}

/// `303` to the user's page showing `done` (a reload shows it again, and does not redo it).
fn show_result(state: &AppState, admin: &Admin, key: &str, done: Done) -> Response {
    let tid = enc(&done.tracking_id);
    let result = flash::put(state, admin, done);
    Redirect::to(&format!(
        "/admin/users/{}?result={result}&tracking_id={tid}",
        enc(key)
    ))
    .into_response()
}

fn notice_text(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "usage" => "The usage location was saved.",
        "revoked" => "Every session of this user was ended.",
        "enabled" => "The account was enabled.",
        "disabled" => "The account was disabled and can no longer sign in.",
        "created" => "The user was created.",
        _ => return None,
    })
}

/// `GET /admin/users/{user}`
async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path(key): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let done = n.result(&state, &admin);
    user_page(
        &state,
        &admin,
        &key,
        notice_text(n.done.as_deref()),
        None,
        done,
    )
    .await
}

/// The user's page, with what just happened (`notice`, `done`) or went wrong (`error`).
async fn user_page(
    state: &AppState,
    admin: &Admin,
    key: &str,
    notice: Option<&'static str>,
    error: Option<AppError>,
    done: Option<Done>,
) -> Response {
    let user = match app::users::get(state, &admin.caller, key).await {
        Ok(u) => u,
        Err(e) => return refused(&e),
    };
    let upn = user.user_principal_name.clone();
    let owned: Vec<String> = user
        .on_premises
        .as_ref()
        .map(|o| o.owned_attributes.clone())
        .unwrap_or_default();
    let licenses = if admin.may(Operation::ReadLicenses) {
        match app::licensing::user_licenses(state, &admin.caller, &upn).await {
            Ok(list) => Some(
                list.iter()
                    .map(|a| LicenseRow {
                        sku: a.sku_id.clone(),
                        source: match &a.source {
                            AssignmentSource::Direct => "direct".into(),
                            AssignmentSource::Group(g) => format!("group {g}"),
                        },
                        state: wire(&a.state),
                        error: a.error.map(|e| wire(&e)).unwrap_or_default(),
                    })
                    .collect(),
            ),
            Err(e) => return refused(&e),
        }
    } else {
        None
    };
    // Which methods are registered (never the contacts or answers), for those who may reset.
    let methods = app::sspr::methods_of(state, &admin.caller, &upn)
        .await
        .ok()
        .map(|m| m.methods.iter().map(wire).collect());
    let history = if admin.may(Operation::ReadAudit) {
        let page = store::page(None, Some(20));
        let mut rows = Vec::new();
        for filter in [
            AuditFilter {
                actor: Some(upn.clone()),
                ..Default::default()
            },
            AuditFilter {
                target: Some(upn.clone()),
                ..Default::default()
            },
        ] {
            match app::audit::list(state, &admin.caller, &filter, &page).await {
                Ok(p) => rows.extend(p.items),
                Err(e) => return refused(&e),
            }
        }
        rows.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        rows.dedup_by(|a, b| a.id == b.id);
        rows.truncate(20);
        Some(rows.iter().map(AuditRow::of).collect())
    } else {
        None
    };
    let synced = user.source == Source::OnPremises;
    let page = UserPage {
        tracking_id: tracking_id(),
        csrf: &admin.csrf,
        name: admin.name(),
        nav: admin.nav(),
        link: format!("/admin/users/{}", enc(&upn)),
        source: if synced {
            "Synced from the on-premises directory"
        } else {
            "Cloud account"
        },
        synced,
        usage_editable: admin.may(Operation::SetUsageLocation)
            && !owned.iter().any(|o| o == "usageLocation"),
        owned: owned.join(", "),
        licenses,
        methods,
        history,
        may_reset: admin.may(Operation::ResetPassword),
        may_revoke: admin.may(Operation::RevokeTokens),
        may_update: admin.may(Operation::UpdateUser) && !synced,
        may_delete: admin.may(Operation::DeleteUser) && !synced,
        notice,
        done,
        user: &user,
        error: error.as_ref().map(|e| e.message.clone()),
    };
    render(status_for(&error), &page)
}

#[derive(Deserialize)]
struct UsageForm {
    csrf: String,
    usage_location: String,
    back: Option<String>,
}

/// `POST /admin/users/{user}/usage-location` — the API's `PATCH` of `usageLocation`.
async fn usage_location(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Form(form): Form<UsageForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let value = Some(form.usage_location.trim().to_string()).filter(|s| !s.is_empty());
    let patch = UserPatch {
        usage_location: Some(value),
        ..Default::default()
    };
    match app::users::update(&state, &Ctx::of(&state), &admin.caller, &key, patch).await {
        Ok(u) => {
            let default = format!("/admin/users/{}?done=usage", enc(&u.user_principal_name));
            Redirect::to(&back_to(form.back.as_deref(), &default)).into_response()
        }
        Err(e) => user_page(&state, &admin, &key, None, Some(e), None).await,
    }
}

#[derive(Deserialize)]
struct ResetForm {
    csrf: String,
    password: String,
    must_change: Option<String>,
    unlock: Option<String>,
}

impl Drop for ResetForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// `POST /admin/users/{user}/reset-password` — set in the cloud for a cloud user, written
/// back by an agent for a synced user; the answer is `303` to the user's page showing the
/// result and its tracking id.
async fn reset_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Form(form): Form<ResetForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let body = PasswordBody {
        password: form.password.clone(),
        must_change: form.must_change.is_some(),
        unlock: form.unlock.is_some(),
    };
    match app::users::reset_password(&state, &admin.caller, &key, &body).await {
        Ok(PasswordReset::InCloud) => {
            let done = Done {
                ok: true,
                message: "The new password was set, and every session of the user was ended."
                    .into(),
                outcome: "succeeded".into(),
                tracking_id: tracking_id(),
            };
            show_result(&state, &admin, &key, done)
        }
        Ok(PasswordReset::WrittenBack(r)) => show_result(&state, &admin, &key, written_back(r)),
        Err(e) => user_page(&state, &admin, &key, None, Some(e), None).await,
    }
}

fn written_back(r: proto::writeback::WritebackResult) -> Done {
    let detail = r.admin_detail.map(|d| format!(" {d}")).unwrap_or_default();
    Done {
        ok: r.outcome == Outcome::Succeeded,
        message: format!("{}{detail}", r.message),
        outcome: wire(&r.outcome),
        tracking_id: r.tracking_id,
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// `POST /admin/users/{user}/unlock` — unlocks the synced user's on-premises account.
async fn unlock(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app::users::unlock(&state, &admin.caller, &key).await {
        Ok(r) => show_result(&state, &admin, &key, written_back(r)),
        Err(e) => user_page(&state, &admin, &key, None, Some(e), None).await,
    }
}

/// `POST /admin/users/{user}/revoke-sessions` — ends every session and token of the user.
async fn revoke_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app::users::revoke_tokens(&state, &admin.caller, &key).await {
        Ok(_) => Redirect::to(&format!("/admin/users/{}?done=revoked", enc(&key))).into_response(),
        Err(e) => user_page(&state, &admin, &key, None, Some(e), None).await,
    }
}

#[derive(Deserialize)]
struct EnabledForm {
    csrf: String,
    enabled: bool,
}

/// `POST /admin/users/{user}/enabled` — enables or disables a cloud account.
async fn set_enabled(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Form(form): Form<EnabledForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let patch = UserPatch {
        account_enabled: Some(form.enabled),
        ..Default::default()
    };
    match app::users::update(&state, &Ctx::of(&state), &admin.caller, &key, patch).await {
        Ok(u) => {
            let done = if u.account_enabled {
                "enabled"
            } else {
                "disabled"
            };
            Redirect::to(&format!(
                "/admin/users/{}?done={done}",
                enc(&u.user_principal_name)
            ))
            .into_response()
        }
        Err(e) => user_page(&state, &admin, &key, None, Some(e), None).await,
    }
}

/// `POST /admin/users/{user}/delete`
async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app::users::delete(&state, &admin.caller, &key).await {
        Ok(()) => Redirect::to("/admin/users").into_response(),
        Err(e) => user_page(&state, &admin, &key, None, Some(e), None).await,
    }
}

#[derive(Template)]
#[template(path = "admin_user_new.html")]
struct NewUserPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    form: &'a CreateForm,
    error: Option<String>,
}

#[derive(Default, Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    upn: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    usage_location: String,
    #[serde(default)]
    password: String,
}

impl Drop for CreateForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// `GET /admin/users/new`
async fn new_form(admin: Admin) -> Response {
    if let Some(r) = admin.refusal(Operation::CreateUser) {
        return r;
    }
    new_user_page(&admin, &CreateForm::default(), None)
}

fn new_user_page(admin: &Admin, form: &CreateForm, error: Option<AppError>) -> Response {
    render(
        status_for(&error),
        &NewUserPage {
            tracking_id: tracking_id(),
            csrf: &admin.csrf,
            name: admin.name(),
            nav: admin.nav(),
            form,
            error: error.map(|e| e.message),
        },
    )
}

/// `POST /admin/users/new` — creates a cloud user (the API's `POST /api/v1/users`).
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let body = NewUser {
        user_principal_name: form.upn.trim().to_string(),
        display_name: form.display_name.trim().to_string(),
        usage_location: text(&form.usage_location),
        password: text(&form.password),
        account_enabled: true,
        ..Default::default()
    };
    match app::users::create(&state, &Ctx::of(&state), &admin.caller, body).await {
        Ok(u) => Redirect::to(&format!(
            "/admin/users/{}?done=created",
            enc(&u.user_principal_name)
        ))
        .into_response(),
        Err(e) => {
            let kept = CreateForm {
                password: String::new(),
                csrf: String::new(),
                upn: form.upn.clone(),
                display_name: form.display_name.clone(),
                usage_location: form.usage_location.clone(),
            };
            new_user_page(&admin, &kept, Some(e))
        }
    }
}
