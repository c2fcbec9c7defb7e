//! `/admin/policy`: the self-service password reset policy — every setting, the group picker,
//! the questions bank and the tenant's own questions, and the fixed administrator policy
//! read-only. As in the API, the roles that may read the policy ([`Operation::ReadPolicy`]: Global,
//! User and Password Administrators, `GET /api/v1/policy`) see it, read-only; the roles that may
//! change it ([`Operation::ManagePolicy`]: Global Administrator) get the editor. Saving is the
//! API's `PUT /api/v1/policy` ([`app::policy::put`]): a refusal names the rule, as the API does.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use proto::{AuthMethod, PolicyView, SsprPolicy, SsprScope};
use serde::Deserialize;
use tenant::roles::Operation;

use super::users::wire;
use super::{refused, status_for, Admin, Nav};
use crate::app;
use crate::error::{tracking_id, AppError};
use crate::portal::render;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/policy", get(show).post(save))
}

const METHODS: [AuthMethod; 5] = [
    AuthMethod::Email,
    AuthMethod::MobilePhone,
    AuthMethod::OfficePhone,
    AuthMethod::SecurityQuestions,
    AuthMethod::AuthenticatorApp,
];

struct Choice {
    value: String,
    label: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "admin_policy.html")]
struct PolicyPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    p: &'a SsprPolicy,
    scope: String,
    groups: Vec<Choice>,
    methods: Vec<Choice>,
    bank: Vec<Choice>,
    custom: String,
    admin_methods: String,
    admin_required: u8,
    admin_questions: bool,
    writeback_available: bool,
    /// The editor (the account may change the policy), or the policy read-only.
    editable: bool,
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

/// `GET /admin/policy`
async fn show(State(state): State<AppState>, admin: Admin, Query(n): Query<Notice>) -> Response {
    let view = match app::policy::get(&state, &admin.caller).await {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let notice = (n.done.as_deref() == Some("saved")).then_some("The policy was saved.");
    page(&state, &admin, &view, &view.policy, notice, None).await
}

async fn page(
    state: &AppState,
    admin: &Admin,
    view: &PolicyView,
    p: &SsprPolicy,
    notice: Option<&'static str>,
    error: Option<AppError>,
) -> Response {
    let loaded = async {
        let bank = app::policy::questions(&admin.caller)?;
        let groups =
            app::directory::groups(state, &admin.caller, None, &store::page(None, None)).await?;
        Ok::<_, AppError>((bank, groups.items))
    }
    .await;
    let (bank, groups) = match loaded {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let custom: Vec<&str> = p
        .security_questions
        .iter()
        .filter(|q| !bank.contains(q))
        .map(String::as_str)
        .collect();
    let admin_policy = &view.admin_policy;
    render(
        status_for(&error),
        &PolicyPage {
            tracking_id: tracking_id(),
            csrf: &admin.csrf,
            name: admin.name(),
            nav: admin.nav(),
            scope: wire(&p.enabled_for),
            groups: groups
                .into_iter()
                .map(|g| Choice {
                    checked: p.group_id.as_deref() == Some(g.id.as_str()),
                    value: g.id,
                    label: g.display_name,
                })
                .collect(),
            methods: METHODS
                .iter()
                .map(|m| Choice {
                    value: wire(m),
                    label: wire(m),
                    checked: p.methods.contains(m),
                })
                .collect(),
            bank: bank
                .iter()
                .map(|q| Choice {
                    value: q.clone(),
                    label: q.clone(),
                    checked: p.security_questions.contains(q),
                })
                .collect(),
            custom: custom.join("\n"),
            admin_methods: admin_policy
                .methods
                .iter()
                .map(wire)
                .collect::<Vec<_>>()
                .join(", "),
            admin_required: admin_policy.methods_required,
            admin_questions: admin_policy.security_questions_allowed,
            writeback_available: view.writeback_available,
            editable: admin.may(Operation::ManagePolicy),
            p,
            notice,
            error: error.as_ref().map(|e| e.message.clone()),
        },
    )
}

/// The policy a submitted form describes; a number that is not one names its field.
fn parse(pairs: &[(String, String)]) -> Result<SsprPolicy, AppError> {
    let value = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let all = |k: &str| {
        pairs
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let on = |k: &str| pairs.iter().any(|(n, _)| n == k);
    fn number<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, AppError> {
        v.parse()
            .map_err(|_| AppError::bad_request(format!("{field}: must be a whole number")))
    }
    let text = |k: &str| Some(value(k)).filter(|s| !s.is_empty());
    let mut questions = all("questions[]");
    questions.extend(
        value("custom_questions")
            .lines()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(String::from),
    );
    Ok(SsprPolicy {
        enabled_for: match value("enabled_for").as_str() {
            "group" => SsprScope::Group,
            "all" => SsprScope::All,
            _ => SsprScope::None,
        },
        group_id: text("group_id"),
        methods_required: number("methodsRequired", &value("methods_required"))?,
        methods: METHODS
            .into_iter()
            .filter(|m| all("methods[]").contains(&wire(m)))
            .collect(),
        questions_to_register: number("questionsToRegister", &value("questions_to_register"))?,
        questions_to_answer: number("questionsToAnswer", &value("questions_to_answer"))?,
        security_questions: questions,
        require_registration_at_sign_in: on("require_registration"),
        reconfirm_days: number("reconfirmDays", &value("reconfirm_days"))?,
        notify_users_on_reset: on("notify_users"),
        notify_admins_on_admin_reset: on("notify_admins"),
        helpdesk_url: text("helpdesk_url"),
        helpdesk_email: text("helpdesk_email"),
        writeback_enabled: on("writeback_enabled"),
        allow_unlock_without_reset: on("allow_unlock"),
    })
}

/// `POST /admin/policy` — the API's `PUT /api/v1/policy` with the form's policy.
async fn save(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let csrf = pairs
        .iter()
        .find(|(n, _)| n == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let admin = match Admin::posting(&state, &headers, csrf).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Some(r) = admin.refusal(Operation::ManagePolicy) {
        return r;
    }
    let submitted = parse(&pairs);
    let result = match &submitted {
        Ok(p) => app::policy::put(&state, &admin.caller, p).await,
        Err(e) => Err(e.clone()),
    };
    match result {
        Ok(_) => Redirect::to("/admin/policy?done=saved").into_response(),
        Err(e) => {
            let view = match app::policy::get(&state, &admin.caller).await {
                Ok(v) => v,
                Err(e) => return refused(&e),
            };
            let shown = submitted.unwrap_or_else(|_| view.policy.clone());
            page(&state, &admin, &view, &shown, None, Some(e)).await
        }
    }
}
