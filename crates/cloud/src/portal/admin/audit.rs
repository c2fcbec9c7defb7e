//! `/admin/audit`: the audit log with filters (actor, action, target, time, tracking id), on
//! [`app::audit::list`]. Every tracking id the admin pages show links here.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use proto::AuditFilter;
use serde::Deserialize;

use super::users::wire;
use super::{enc, status_for, when, Admin, Nav};
use crate::app;
use crate::error::{tracking_id, AppError};
use crate::portal::render;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/audit", get(list))
}

#[derive(Debug, Default, Deserialize)]
struct Q {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    tracking_id: String,
    after: Option<String>,
}

struct Row {
    time: String,
    actor: String,
    action: String,
    target: String,
    result: String,
    tracking_id: String,
    details: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage<'a> {
    tracking_id: String,
    csrf: &'a str,
    name: &'a str,
    nav: Nav,
    q: &'a Q,
    rows: Vec<Row>,
    next: Option<String>,
    error: Option<String>,
}

/// Seconds since the epoch at the start of the UTC day `YYYY-MM-DD`.
fn day_start(field: &str, s: &str) -> Result<i64, AppError> {
    let bad = || {
        AppError::bad_request(format!(
            "{field}: must be a date as YYYY-MM-DD, e.g. 2026-12-07"
        ))
    };
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(tenant::clock::days_from_civil(y, m, d) * 86_400)
}

fn filter(q: &Q) -> Result<AuditFilter, AppError> {
    let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    Ok(AuditFilter {
        actor: text(&q.actor),
        action: text(&q.action),
        target: text(&q.target),
        since: text(&q.since).map(|s| day_start("since", &s)).transpose()?,
        until: text(&q.until)
            .map(|s| day_start("until", &s).map(|t| t + 86_399))
            .transpose()?,
        tracking_id: text(&q.tracking_id),
    })
}

/// `GET /admin/audit`
async fn list(State(state): State<AppState>, admin: Admin, Query(q): Query<Q>) -> Response {
    let page = store::page(q.after.clone(), None);
    let found = match filter(&q) {
        Ok(f) => app::audit::list(&state, &admin.caller, &f, &page).await,
        Err(e) => Err(e),
    };
    let (rows, next, error) = match found {
        Ok(p) => (p.items, p.next, None),
        Err(e) if e.code == proto::ErrorCode::Validation => (Vec::new(), None, Some(e)),
        Err(e) => return super::refused(&e),
    };
    let next = next.map(|n| {
        format!(
            "actor={}&action={}&target={}&since={}&until={}&tracking_id={}&after={}",
            enc(&q.actor),
            enc(&q.action),
            enc(&q.target),
            enc(&q.since),
            enc(&q.until),
            enc(&q.tracking_id),
            enc(&n)
        )
    });
    render(
        status_for(&error),
        &AuditPage {
            tracking_id: tracking_id(),
            csrf: &admin.csrf,
            name: admin.name(),
            nav: admin.nav(),
            q: &q,
            rows: rows
                .iter()
                .map(|r| Row {
                    time: when(r.time),
                    actor: r.actor.clone(),
                    action: r.action.clone(),
                    target: r.target.clone().unwrap_or_default(),
                    result: wire(&r.result),
                    tracking_id: r.tracking_id.clone(),
                    details: r.details.clone().unwrap_or_default(),
                })
                .collect(),
            next,
            error: error.as_ref().map(|e| e.message.clone()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_read_as_its_utc_start() {
        assert_eq!(day_start("since", "1970-01-01").unwrap(), 0);
        assert_eq!(day_start("since", "2026-12-07").unwrap(), 1_796_601_600);
        assert!(day_start("since", "2026-13-01").is_err());
        assert!(day_start("since", "yesterday").is_err());
    }
}
