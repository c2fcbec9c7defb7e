//! `/admin/apps`: the tenant's app registrations (OpenID Connect clients) — list, register
//! (name, client type, redirect URIs, scopes, who may use the app, token lifetimes, consent),
//! an app's page with its settings, new client secret (shown on that one answer, never again)
//! and delete. All on [`app::apps`], the use cases of `/api/v1/apps`; offered to the roles that
//! may manage apps ([`tenant::roles::Operation::ManageApps`]).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use proto::oidc::{App, AppPatch, ClientType, NewApp};
use serde::Deserialize;

use super::users::wire;
use super::{enc, refused, status_for, when, Admin, Nav};
use crate::app;
use crate::app::apps::NewSecret;
use crate::error::{tracking_id, AppError};
use crate::portal::render;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/apps", get(list).post(create))
        .route("/admin/apps/{id}", get(show).post(save))
        .route("/admin/apps/{id}/secrets", post(add_secret))
        .route(
            "/admin/apps/{id}/secrets/{secret}/delete",
            post(remove_secret),
        )
        .route("/admin/apps/{id}/delete", post(delete))
}

struct Choice {
    value: String,
    label: String,
    checked: bool,
}

/// The settings of the register and edit forms, as the form shows them.
struct Fields {
    name: String,
    confidential: bool,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    scopes: Vec<Choice>,
    everyone: bool,
    groups: Vec<Choice>,
    access_token_secs: String,
    id_token_secs: String,
    refresh_token_secs: String,
    skip_consent: bool,
    algs: Vec<Choice>,
}

/// One submitted register or edit form, by field name.
struct Submitted(Vec<(String, String)>);

impl Submitted {
    fn parse(body: &str) -> Submitted {
        Submitted(serde_urlencoded::from_str(body).unwrap_or_default())
    }
    fn value(&self, k: &str) -> String {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn on(&self, k: &str) -> bool {
        self.0.iter().any(|(n, _)| n == k)
    }
    fn lines(&self, k: &str) -> Vec<String> {
        self.value(k)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }
    fn secs(&self, field: &str, k: &str) -> Result<i64, AppError> {
        self.value(k).parse().map_err(|_| {
            AppError::bad_request(format!("{field}: must be a whole number of seconds"))
        })
    }
    fn group(&self) -> Option<String> {
        (self.value("access") == "group").then(|| self.value("group_id"))
    }

    /// The form as the API's `AppPatch`: every setting is on the form, so every one is given.
    fn patch(&self) -> Result<AppPatch, AppError> {
        Ok(AppPatch {
            name: Some(self.value("name")),
            redirect_uris: Some(self.lines("redirect_uris")),
            post_logout_redirect_uris: Some(self.lines("post_logout_redirect_uris")),
            allowed_scopes: Some(self.all("scopes[]")),
            access_group_id: Some(self.group()),
            access_token_lifetime_secs: Some(
                self.secs("accessTokenLifetimeSecs", "access_token_secs")?,
            ),
            id_token_lifetime_secs: Some(self.secs("idTokenLifetimeSecs", "id_token_secs")?),
            refresh_token_lifetime_secs: Some(
                self.secs("refreshTokenLifetimeSecs", "refresh_token_secs")?,
            ),
            skip_consent: Some(self.on("skip_consent")),
            id_token_signing_alg: Some(self.value("alg")),
        })
    }

    /// The form as the API's `NewApp`.
    fn new_app(&self) -> Result<NewApp, AppError> {
        let p = self.patch()?;
        Ok(NewApp {
            name: p.name.unwrap_or_default(),
            client_type: Some(if self.value("client_type") == "public" {
                ClientType::Public
            } else {
                ClientType::Confidential
            }),
            redirect_uris: p.redirect_uris.unwrap_or_default(),
            post_logout_redirect_uris: p.post_logout_redirect_uris.unwrap_or_default(),
            allowed_scopes: p.allowed_scopes,
            access_group_id: p.access_group_id.flatten(),
            access_token_lifetime_secs: p.access_token_lifetime_secs,
            id_token_lifetime_secs: p.id_token_lifetime_secs,
            refresh_token_lifetime_secs: p.refresh_token_lifetime_secs,
            skip_consent: p.skip_consent,
            id_token_signing_alg: p.id_token_signing_alg,
        })
    }

    fn csrf(&self) -> String {
        self.value("csrf")
    }
}

/// The form's fields for `app` (an existing app, or the defaults of a new one).
fn fields_of(app: &App, groups: &[proto::Group]) -> Fields {
    Fields {
        name: app.name.clone(),
        confidential: app.client_type == ClientType::Confidential,
        redirect_uris: app.redirect_uris.join("\n"),
        post_logout_redirect_uris: app.post_logout_redirect_uris.join("\n"),
        scopes: tenant::oidc::SUPPORTED_SCOPES
            .iter()
            .map(|s| Choice {
                value: s.to_string(),
                label: s.to_string(),
                checked: app.allowed_scopes.iter().any(|a| a == s),
            })
            .collect(),
        everyone: app.access_group_id.is_none(),
        groups: groups
            .iter()
            .map(|g| Choice {
                value: g.id.clone(),
                label: g.display_name.clone(),
                checked: app.access_group_id.as_deref() == Some(g.id.as_str()),
            })
            .collect(),
        access_token_secs: app.access_token_lifetime_secs.to_string(),
        id_token_secs: app.id_token_lifetime_secs.to_string(),
        refresh_token_secs: app.refresh_token_lifetime_secs.to_string(),
        skip_consent: app.skip_consent,
        algs: ["ES256", "RS256"]
            .iter()
            .map(|a| Choice {
                value: a.to_string(),
                label: a.to_string(),
                checked: app.id_token_signing_alg == *a,
            })
            .collect(),
    }
}

/// The fields of a form that was refused, as submitted (so nothing typed is lost).
fn fields_submitted(f: &Submitted, groups: &[proto::Group]) -> Fields {
    let scopes = f.all("scopes[]");
    let group = f.group();
    let alg = f.value("alg");
    let mut fields = fields_of(&defaults(), groups);
    fields.name = f.value("name");
    fields.confidential = f.value("client_type") != "public";
    fields.redirect_uris = f.value("redirect_uris");
    fields.post_logout_redirect_uris = f.value("post_logout_redirect_uris");
    for s in &mut fields.scopes {
        s.checked = scopes.contains(&s.value);
    }
    fields.everyone = group.is_none();
    for g in &mut fields.groups {
        g.checked = group.as_deref() == Some(g.value.as_str());
    }
    fields.access_token_secs = f.value("access_token_secs");
    fields.id_token_secs = f.value("id_token_secs");
    fields.refresh_token_secs = f.value("refresh_token_secs");
    fields.skip_consent = f.on("skip_consent");
    for a in &mut fields.algs {
        a.checked = a.value == alg;
    }
    fields
}

/// A new registration's settings before the administrator changes any: `tenant::oidc`'s
/// defaults, the same the API takes for absent fields.
fn defaults() -> App {
    use tenant::oidc::*;
    App {
        id: String::new(),
        tenant_id: String::new(),
        name: String::new(),
        client_type: ClientType::Confidential,
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        allowed_scopes: SUPPORTED_SCOPES.iter().map(|s| s.to_string()).collect(),
        access_group_id: None,
        access_token_lifetime_secs: DEFAULT_ACCESS_TOKEN_SECS,
        id_token_lifetime_secs: DEFAULT_ID_TOKEN_SECS,
        refresh_token_lifetime_secs: DEFAULT_REFRESH_TOKEN_SECS,
        skip_consent: false,
        id_token_signing_alg: keys::Alg::Es256.name().to_string(),
        secrets: Vec::new(),
        created_at: 0,
        updated_at: 0,
    }
}

struct AppRow {
    link: String,
    name: String,
    client_id: String,
    client_type: String,
    redirect_uris: String,
    access: String,
}

#[derive(Template)]
#[template(path = "admin_apps.html")]
struct ListPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    apps: Vec<AppRow>,
    f: Fields,
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

async fn groups(state: &AppState, admin: &Admin) -> Result<Vec<proto::Group>, AppError> {
    Ok(
        app::directory::groups(state, &admin.caller, None, &store::page(None, None))
            .await?
            .items,
    )
}

fn access_of(app: &App, groups: &[proto::Group]) -> String {
    match &app.access_group_id {
        None => "All users".into(),
        Some(id) => {
            let name = groups
                .iter()
                .find(|g| &g.id == id)
                .map_or(id.as_str(), |g| g.display_name.as_str());
            format!("Members of {name}")
        }
    }
}

/// `GET /admin/apps`
async fn list(State(state): State<AppState>, admin: Admin, Query(n): Query<Notice>) -> Response {
    let notice = (n.done.as_deref() == Some("deleted")).then_some("The app was deleted.");
    list_page(&state, &admin, None, notice, None).await
}

async fn list_page(
    state: &AppState,
    admin: &Admin,
    submitted: Option<&Submitted>,
    notice: Option<&'static str>,
    error: Option<AppError>,
) -> Response {
    let loaded = async {
        let apps = app::apps::list(state, &admin.caller).await?;
        Ok::<_, AppError>((apps, groups(state, admin).await?))
    }
    .await;
    let (apps, groups) = match loaded {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let f = match submitted {
        Some(s) => fields_submitted(s, &groups),
        None => fields_of(&defaults(), &groups),
    };
    render(
        status_for(&error),
        &ListPage {
            tracking_id: tracking_id(),
            csrf: &admin.csrf,
            name: admin.name(),
            nav: admin.nav(),
            apps: apps
                .iter()
                .map(|a| AppRow {
                    link: format!("/admin/apps/{}", enc(&a.id)),
                    name: a.name.clone(),
                    client_id: a.id.clone(),
                    client_type: wire(&a.client_type),
                    redirect_uris: a.redirect_uris.join(" "),
                    access: access_of(a, &groups),
                })
                .collect(),
            f,
            notice,
            error: error.map(|e| e.message),
        },
    )
}

/// `POST /admin/apps` — registers the app (the API's `POST /api/v1/apps`); a confidential
/// app's first client secret is on this answer only.
async fn create(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let f = Submitted::parse(&body);
    let admin = match Admin::posting(&state, &headers, &f.csrf()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let result = match f.new_app() {
        Ok(req) => app::apps::create(&state, &admin.caller, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((created, secret)) => {
            let notice = Some("The app was registered.");
            app_page(&state, &headers, &admin, &created.id, notice, None, secret).await
        }
        Err(e) => list_page(&state, &admin, Some(&f), None, Some(e)).await,
    }
}

struct SecretRow {
    id: String,
    created: String,
    remove: String,
}

#[derive(Template)]
#[template(path = "admin_app.html")]
struct AppPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    app_name: String,
    client_id: String,
    client_type: String,
    link: String,
    issuer: String,
    confidential: bool,
    secrets: Vec<SecretRow>,
    /// A client secret just made: shown on this answer only.
    new_secret: Option<String>,
    f: Fields,
    notice: Option<&'static str>,
    error: Option<String>,
}

fn notice_text(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "saved" => "The app's settings were saved.",
        "secret-removed" => "The client secret was removed: it no longer works.",
        _ => return None,
    })
}

/// `GET /admin/apps/{id}`
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    admin: Admin,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let notice = notice_text(n.done.as_deref());
    app_page(&state, &headers, &admin, &id, notice, None, None).await
}

/// The app's page; `refused` is a refused edit form with its error, `secret` a client secret
/// made by this request.
async fn app_page(
    state: &AppState,
    headers: &HeaderMap,
    admin: &Admin,
    id: &str,
    notice: Option<&'static str>,
    refused_form: Option<(&Submitted, AppError)>,
    secret: Option<NewSecret>,
) -> Response {
    let loaded = async {
        let found = app::apps::get(state, &admin.caller, id).await?;
        Ok::<_, AppError>((found, groups(state, admin).await?))
    }
    .await;
    let (found, groups) = match loaded {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let (f, error) = match refused_form {
        Some((s, e)) => (fields_submitted(s, &groups), Some(e)),
        None => (fields_of(&found, &groups), None),
    };
    let link = format!("/admin/apps/{}", enc(&found.id));
    let page = AppPage {
        tracking_id: tracking_id(),
        csrf: &admin.csrf,
        name: admin.name(),
        nav: admin.nav(),
        app_name: found.name.clone(),
        client_id: found.id.clone(),
        client_type: wire(&found.client_type),
        issuer: crate::oidc::issuer(state, headers, &admin.caller.tenant.initial_domain),
        confidential: found.client_type == ClientType::Confidential,
        secrets: found
            .secrets
            .iter()
            .map(|s| SecretRow {
                id: s.id.clone(),
                created: when(s.created_at),
                remove: format!("{link}/secrets/{}/delete", enc(&s.id)),
            })
            .collect(),
        new_secret: secret.as_ref().map(|s| s.secret.clone()),
        link,
        f,
        notice,
        error: error.as_ref().map(|e| e.message.clone()),
    };
    let status = match (&error, &secret) {
        (Some(e), _) => crate::portal::status_of(e),
        (None, Some(_)) => StatusCode::CREATED,
        (None, None) => StatusCode::OK,
    };
    render(status, &page)
}

/// `POST /admin/apps/{id}` — the edit form (the API's `PATCH /api/v1/apps/{id}`).
async fn save(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let f = Submitted::parse(&body);
    let admin = match Admin::posting(&state, &headers, &f.csrf()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let result = match f.patch() {
        Ok(p) => app::apps::update(&state, &admin.caller, &id, p).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(a) => Redirect::to(&format!("/admin/apps/{}?done=saved", enc(&a.id))).into_response(),
        Err(e) => app_page(&state, &headers, &admin, &id, None, Some((&f, e)), None).await,
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// `POST /admin/apps/{id}/secrets` — a new client secret, on this answer only (it is stored
/// as a hash: no later page can show it).
async fn add_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app::apps::add_secret(&state, &admin.caller, &id).await {
        Ok((_, secret)) => {
            let notice = Some("A new client secret was made.");
            app_page(&state, &headers, &admin, &id, notice, None, Some(secret)).await
        }
        Err(e) => refused(&e),
    }
}

/// `POST /admin/apps/{id}/secrets/{secret}/delete`
async fn remove_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, secret)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app::apps::remove_secret(&state, &admin.caller, &id, &secret).await {
        Ok(()) => {
            Redirect::to(&format!("/admin/apps/{}?done=secret-removed", enc(&id))).into_response()
        }
        Err(e) => refused(&e),
    }
}

/// `POST /admin/apps/{id}/delete` — the app, its secrets and every token it holds.
async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app::apps::delete(&state, &admin.caller, &id).await {
        Ok(()) => Redirect::to("/admin/apps?done=deleted").into_response(),
        Err(e) => refused(&e),
    }
}
