//! `/admin/groups` and `/admin/roles`: the tenant's groups with their members (nested groups'
//! members shown below them, [`app::directory::group_members`]), and administrator roles
//! assigned to a user — the API's change of a user's `roles` ([`app::users::update`]), which only
//! a Global Administrator may make ([`Operation::AssignRoles`]); others get a 403 page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use proto::{MemberKind, Role, UserPatch};
use serde::Deserialize;
use tenant::roles::Operation;

use super::users::{source_name, wire};
use super::{enc, refused, status_for, Admin, Nav};
use crate::app::{self, Ctx};
use crate::error::{tracking_id, AppError};
use crate::portal::render;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/groups", get(list))
        .route("/admin/groups/{id}", get(show))
        .route("/admin/roles", get(roles).post(assign_roles))
}

struct GroupRow {
    link: String,
    name: String,
    source: &'static str,
    description: String,
}

#[derive(Template)]
#[template(path = "admin_groups.html")]
struct ListPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    prefix: &'a str,
    rows: Vec<GroupRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    name: String,
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /admin/groups` — groups whose name starts with `name`, a page at a time.
async fn list(State(state): State<AppState>, admin: Admin, Query(q): Query<ListQuery>) -> Response {
    let prefix = Some(q.name.trim()).filter(|s| !s.is_empty());
    let page = store::page(q.after.clone(), q.limit);
    let found = match app::directory::groups(&state, &admin.caller, prefix, &page).await {
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
            prefix: &q.name,
            rows: found
                .items
                .iter()
                .map(|g| GroupRow {
                    link: format!("/admin/groups/{}", enc(&g.id)),
                    name: g.display_name.clone(),
                    source: source_name(g.source),
                    description: g.description.clone().unwrap_or_default(),
                })
                .collect(),
            next: found.next.as_deref().map(|n| {
                let mut q2 = format!("name={}&after={}", enc(&q.name), enc(n));
                if let Some(l) = q.limit {
                    q2 += &format!("&limit={l}");
                }
                q2
            }),
        },
    )
}

struct MemberRow {
    /// `depth-0`, `depth-1`… (the indentation of a nested member).
    depth: usize,
    kind: &'static str,
    name: String,
    link: String,
    repeated: bool,
}

#[derive(Template)]
#[template(path = "admin_group.html")]
struct GroupPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    group_name: String,
    source: &'static str,
    description: String,
    members: Vec<MemberRow>,
    truncated: bool,
    max: usize,
}

/// `GET /admin/groups/{id}` — the group and its members, nested.
async fn show(State(state): State<AppState>, admin: Admin, Path(id): Path<String>) -> Response {
    let (group, lines, truncated) =
        match app::directory::group_members(&state, &admin.caller, &id).await {
            Ok(v) => v,
            Err(e) => return refused(&e),
        };
    render(
        StatusCode::OK,
        &GroupPage {
            tracking_id: tracking_id(),
            csrf: &admin.csrf,
            name: admin.name(),
            nav: admin.nav(),
            group_name: group.display_name.clone(),
            source: source_name(group.source),
            description: group.description.clone().unwrap_or_default(),
            members: lines
                .into_iter()
                .map(|l| MemberRow {
                    depth: l.depth.min(8),
                    kind: match l.member.kind {
                        MemberKind::User => "user",
                        MemberKind::Group => "group",
                    },
                    link: match l.member.kind {
                        MemberKind::User => format!("/admin/users/{}", enc(&l.name)),
                        MemberKind::Group => format!("/admin/groups/{}", enc(&l.member.id)),
                    },
                    name: l.name,
                    repeated: l.repeated,
                })
                .collect(),
            truncated,
            max: app::directory::MAX_NESTED_MEMBERS,
        },
    )
}

struct RoleChoice {
    value: String,
    label: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "admin_roles.html")]
struct RolesPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    user: String,
    /// The user looked up: their page and the roles with the ones they hold checked.
    found: Option<(String, Vec<RoleChoice>)>,
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct RolesQuery {
    #[serde(default)]
    user: String,
    done: Option<String>,
}

/// `GET /admin/roles?user=UPN` — a user's administrator roles (Global Administrator only).
async fn roles(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<RolesQuery>,
) -> Response {
    let notice = (q.done.as_deref() == Some("saved")).then_some("The roles were saved.");
    roles_page(&state, &admin, q.user.trim(), notice, None).await
}

async fn roles_page(
    state: &AppState,
    admin: &Admin,
    key: &str,
    notice: Option<&'static str>,
    error: Option<AppError>,
) -> Response {
    if let Some(r) = admin.refusal(Operation::AssignRoles) {
        return r;
    }
    let mut error = error;
    let found = if key.is_empty() {
        None
    } else {
        match app::users::get(state, &admin.caller, key).await {
            Ok(u) => Some((
                format!("/admin/users/{}", enc(&u.user_principal_name)),
                Role::ALL
                    .iter()
                    .map(|r| RoleChoice {
                        value: wire(r),
                        label: r.display_name().to_string(),
                        checked: u.roles.contains(r),
                    })
                    .collect(),
            )),
            Err(e) => {
                error.get_or_insert(e);
                None
            }
        }
    };
    render(
        status_for(&error),
        &RolesPage {
            tracking_id: tracking_id(),
            csrf: &admin.csrf,
            name: admin.name(),
            nav: admin.nav(),
            user: key.to_string(),
            found,
            notice,
            error: error.map(|e| e.message),
        },
    )
}

/// `POST /admin/roles` — the user's roles become the ticked ones (the API's `PATCH` of
/// `roles`: Global Administrator only, and nobody drops their own Global Administrator role).
async fn assign_roles(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let value = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let admin = match Admin::posting(&state, &headers, &value("csrf")).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let user = value("user");
    let ticked: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "roles[]")
        .map(|(_, v)| v.clone())
        .collect();
    let roles: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| ticked.contains(&wire(r)))
        .collect();
    let patch = UserPatch {
        roles: Some(roles),
        ..Default::default()
    };
    match app::users::update(&state, &Ctx::of(&state), &admin.caller, &user, patch).await {
        Ok(u) => Redirect::to(&format!(
            "/admin/roles?user={}&done=saved",
            enc(&u.user_principal_name)
        ))
        .into_response(),
        Err(e) => roles_page(&state, &admin, &user, None, Some(e)).await,
    }
}
