//! `/admin/licenses`: subscriptions with their state, units and consumption, the trial, a
//! purchased subscription, group-based licences and per-user errors; and assigning a licence to
//! several users at once, with each user's own result (the API's message) and a way to set a
//! missing usage location right there. All on [`app::licensing`].

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use proto::{NewSubscription, Sku};
use serde::Deserialize;
use tenant::roles::Operation;

use super::users::{wire, Search, UserRow};
use super::{enc, flash, refused, status_for, when, Admin, Nav};
use crate::app::{self, Ctx};
use crate::error::{tracking_id, AppError};
use crate::portal::render;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/licenses", get(overview))
        .route("/admin/licenses/trial", post(start_trial))
        .route("/admin/licenses/purchase", post(purchase))
        .route("/admin/licenses/group", post(assign_group))
        .route("/admin/licenses/assign", get(assign_form).post(assign))
}

struct SubRow {
    sku: String,
    kind: String,
    state: String,
    units: u32,
    ends: String,
}

struct SkuRow {
    id: String,
    name: String,
    enabled: u32,
    warning: u32,
    suspended: u32,
    locked_out: u32,
    consumed: u32,
    subscriptions: Vec<SubRow>,
}

struct ErrorRow {
    user_link: String,
    user: String,
    sku: String,
    source: String,
    error: String,
}

struct GroupOption {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "admin_licenses.html")]
struct OverviewPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    skus: Vec<SkuRow>,
    catalogue: Vec<Sku>,
    errors: Vec<ErrorRow>,
    groups: Vec<GroupOption>,
    may_subscribe: bool,
    may_assign: bool,
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

/// `GET /admin/licenses`
async fn overview(
    State(state): State<AppState>,
    admin: Admin,
    Query(n): Query<Notice>,
) -> Response {
    let notice = match n.done.as_deref() {
        Some("trial") => Some("The trial started."),
        Some("purchase") => Some("The subscription was added."),
        Some("group") => Some("The group got the licence; its members get it now."),
        _ => None,
    };
    overview_page(&state, &admin, notice, None).await
}

async fn overview_page(
    state: &AppState,
    admin: &Admin,
    notice: Option<&'static str>,
    error: Option<AppError>,
) -> Response {
    if let Some(r) = admin.refusal(Operation::ReadLicenses) {
        return r;
    }
    let ctx = Ctx::of(state);
    let loaded = async {
        let summary = app::licensing::summary(state, &ctx, &admin.caller).await?;
        let catalogue = app::licensing::skus(&admin.caller)?;
        let errors = app::licensing::errors(state, &admin.caller).await?;
        let groups = app::directory::groups(state, &admin.caller, None, &store::page(None, None))
            .await?
            .items;
        Ok::<_, AppError>((summary, catalogue, errors, groups))
    }
    .await;
    let (summary, catalogue, errors, groups) = match loaded {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let page = OverviewPage {
        tracking_id: tracking_id(),
        csrf: &admin.csrf,
        name: admin.name(),
        nav: admin.nav(),
        skus: summary
            .iter()
            .map(|s| SkuRow {
                id: s.sku_id.clone(),
                name: s.name.clone(),
                enabled: s.enabled_units,
                warning: s.warning_units,
                suspended: s.suspended_units,
                locked_out: s.locked_out_units,
                consumed: s.consumed_units,
                subscriptions: s
                    .subscriptions
                    .iter()
                    .map(|v| SubRow {
                        sku: v.subscription.sku_id.clone(),
                        kind: wire(&v.subscription.kind),
                        state: wire(&v.state),
                        units: v.subscription.units,
                        ends: when(v.subscription.ends_at),
                    })
                    .collect(),
            })
            .collect(),
        catalogue: catalogue.into_iter().filter(|s| !s.free).collect(),
        errors: errors
            .iter()
            .map(|a| ErrorRow {
                user_link: format!("/admin/users/{}", enc(&a.user_id)),
                user: a.user_id.clone(),
                sku: a.sku_id.clone(),
                source: match &a.source {
                    proto::AssignmentSource::Direct => "direct".into(),
                    proto::AssignmentSource::Group(g) => format!("group {g}"),
                },
                error: a.error.map(|e| wire(&e)).unwrap_or_default(),
            })
            .collect(),
        groups: groups
            .into_iter()
            .map(|g| GroupOption {
                id: g.id,
                name: g.display_name,
            })
            .collect(),
        may_subscribe: admin.may(Operation::ManageSubscriptions),
        may_assign: admin.may(Operation::ManageLicenses),
        notice,
        error: error.as_ref().map(|e| e.message.clone()),
    };
    render(status_for(&error), &page)
}

#[derive(Deserialize)]
struct TrialForm {
    csrf: String,
    sku: Option<String>,
}

/// `POST /admin/licenses/trial`
async fn start_trial(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TrialForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let sku = form.sku.filter(|s| !s.is_empty());
    match app::licensing::start_trial(&state, &Ctx::of(&state), &admin.caller, sku).await {
        Ok(_) => Redirect::to("/admin/licenses?done=trial").into_response(),
        Err(e) => overview_page(&state, &admin, None, Some(e)).await,
    }
}

#[derive(Deserialize)]
struct PurchaseForm {
    csrf: String,
    sku: String,
    units: String,
    term_days: String,
}

/// `POST /admin/licenses/purchase`
async fn purchase(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PurchaseForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let number = |field: &str, v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| AppError::bad_request(format!("{field}: must be a whole number, e.g. 25")))
    };
    let result = async {
        let body = NewSubscription {
            sku_id: form.sku.clone(),
            units: number("units", &form.units)?,
            term_days: number("termDays", &form.term_days)?,
        };
        app::licensing::purchase(&state, &Ctx::of(&state), &admin.caller, &body).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/admin/licenses?done=purchase").into_response(),
        Err(e) => overview_page(&state, &admin, None, Some(e)).await,
    }
}

#[derive(Deserialize)]
struct GroupForm {
    csrf: String,
    group: String,
    sku: String,
}

/// `POST /admin/licenses/group` — a group-based licence.
async fn assign_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<GroupForm>,
) -> Response {
    let admin = match Admin::posting(&state, &headers, &form.csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let ctx = Ctx::of(&state);
    match app::licensing::assign_group(&state, &ctx, &admin.caller, &form.group, &form.sku).await {
        Ok(_) => Redirect::to("/admin/licenses?done=group").into_response(),
        Err(e) => overview_page(&state, &admin, None, Some(e)).await,
    }
}

/// One user's result of a bulk assignment.
#[derive(Clone)]
struct Outcome {
    upn: String,
    link: String,
    ok: bool,
    message: String,
    /// The user has no usage location: the page offers to set it here.
    needs_usage_location: bool,
    form_id: String,
}

#[derive(Template)]
#[template(path = "admin_assign.html")]
struct AssignPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    search: &'a Search,
    sku: String,
    catalogue: Vec<Sku>,
    rows: Vec<UserRow>,
    next: Option<String>,
    outcomes: Vec<Outcome>,
    back: String,
}

/// The results of a bulk assignment ([`flash`]): the product and each user's outcome.
#[derive(Clone)]
struct Assigned {
    sku: String,
    outcomes: Vec<Outcome>,
}

#[derive(Deserialize)]
struct ResultQuery {
    /// The product picked (the user search's `sku` filters users by a licence they hold).
    #[serde(default)]
    product: String,
    result: Option<String>,
    tracking_id: Option<String>,
}

/// `GET /admin/licenses/assign` — mark users and assign them a licence; with `result`, the
/// results of the assignment just made.
async fn assign_form(
    State(state): State<AppState>,
    admin: Admin,
    Query(search): Query<Search>,
    Query(shown): Query<ResultQuery>,
) -> Response {
    let mut product = shown.product.clone();
    let outcomes = match shown.result.as_deref() {
        None => Vec::new(),
        Some(key) => match flash::get::<Assigned>(&state, &admin, key) {
            Some(a) => {
                product = a.sku;
                a.outcomes
            }
            None => vec![Outcome {
                upn: String::new(),
                link: String::new(),
                ok: true,
                message: format!(
                    "These results are no longer kept for display; the audit log has them under tracking id {}.",
                    shown.tracking_id.as_deref().unwrap_or("(none)")
                ),
                needs_usage_location: false,
                form_id: String::new(),
            }],
        },
    };
    assign_page(&state, &admin, &search, product, outcomes).await
}

async fn assign_page(
    state: &AppState,
    admin: &Admin,
    search: &Search,
    sku: String,
    outcomes: Vec<Outcome>,
) -> Response {
    if let Some(r) = admin.refusal(Operation::ManageLicenses) {
        return r;
    }
    let page = store::page(search.after.clone(), search.limit);
    let loaded = async {
        let catalogue = app::licensing::skus(&admin.caller)?;
        let users = app::users::list(state, &admin.caller, search.filter(), &page).await?;
        Ok::<_, AppError>((catalogue, users))
    }
    .await;
    let (catalogue, users) = match loaded {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let sku = if sku.is_empty() {
        tenant::licensing::PREMIUM_SKU.to_string()
    } else {
        sku
    };
    render(
        StatusCode::OK,
        &AssignPage {
            tracking_id: tracking_id(),
            csrf: &admin.csrf,
            name: admin.name(),
            nav: admin.nav(),
            back: format!("/admin/licenses/assign?product={}", enc(&sku)),
            sku,
            catalogue: catalogue.into_iter().filter(|s| !s.free).collect(),
            rows: users.items.iter().map(UserRow::of).collect(),
            next: users.next.as_deref().map(|n| search.next_query(n)),
            search,
            outcomes,
        },
    )
}

/// `POST /admin/licenses/assign` — the API's assignment for every marked user (`user[]`), one
/// after the other; the answer is `303` to the assignment page showing each user's result.
async fn assign(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let value = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let admin = match Admin::posting(&state, &headers, &value("csrf")).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let sku = value("sku");
    let ctx = Ctx::of(&state);
    let mut outcomes = Vec::new();
    for (i, upn) in pairs
        .iter()
        .filter(|(n, _)| n == "user[]")
        .map(|(_, v)| v)
        .enumerate()
    {
        let result = app::licensing::assign(&state, &ctx, &admin.caller, upn, &sku).await;
        let user = app::users::get(&state, &admin.caller, upn).await.ok();
        let needs_usage_location = result.is_err()
            && user.as_ref().is_some_and(|u| u.usage_location.is_none())
            && admin.may(Operation::SetUsageLocation);
        outcomes.push(Outcome {
            upn: upn.clone(),
            link: format!("/admin/users/{}", enc(upn)),
            ok: result.is_ok(),
            message: match result {
                Ok(_) => format!("{sku} assigned."),
                Err(e) => e.message,
            },
            needs_usage_location,
            form_id: format!("usage-{i}"),
        });
    }
    if outcomes.is_empty() {
        outcomes.push(Outcome {
            upn: String::new(),
            link: String::new(),
            ok: false,
            message: "No user was marked: tick the users to assign the licence to.".into(),
            needs_usage_location: false,
            form_id: String::new(),
        });
    }
    let back = format!(
        "/admin/licenses/assign?product={}&tracking_id={}",
        enc(&sku),
        enc(&ctx.tracking_id)
    );
    let result = flash::put(&state, &admin, Assigned { sku, outcomes });
    Redirect::to(&format!("{back}&result={result}")).into_response()
}
