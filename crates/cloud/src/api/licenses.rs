//! `/api/v1/licenses` and the licence parts of users and groups: subscriptions (trial, purchase),
//! direct and group-based assignment, per-user errors, and the entitlement check.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use proto::{
    AssignmentSource, AssignmentState, Entitlement, GroupLicense, LicenseAssignment,
    NewSubscription, PageRequest, Sku, SkuSummary, Subscription, Tenant, User, UserFilter,
};
use serde::Deserialize;
use tenant::licensing;
use tenant::roles::Operation;

use crate::audit::audited;
use crate::auth::Caller;
use crate::error::{ApiResult, AppError};
use crate::extract::{ApiJson, ApiOptionalJson};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkuBody {
    sku_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialBody {
    sku_id: Option<String>,
}

fn known_sku(id: &str) -> ApiResult<Sku> {
    licensing::sku(id).ok_or_else(|| {
        let ids: Vec<String> = licensing::catalogue().into_iter().map(|s| s.id).collect();
        AppError::not_found(format!(
            "Unknown SKU '{id}'. Known SKUs: {}.",
            ids.join(", ")
        ))
    })
}

/// Recomputes group-based assignments for the tenant after anything that can change them
/// (membership, group licences, subscriptions, usage locations, deletions). Cheap when the tenant
/// uses no group-based licensing.
pub async fn reconcile(state: &AppState, tenant: &Tenant) -> ApiResult<()> {
    let store = &state.store;
    let group_licenses = store.list_group_licenses(&tenant.id).await?;
    let current = store.list_assignments(&tenant.id, None, None).await?;
    if group_licenses.is_empty()
        && !current
            .iter()
            .any(|a| matches!(a.source, AssignmentSource::Group(_)))
    {
        return Ok(());
    }
    let tenant = store
        .get_tenant(&tenant.id)
        .await?
        .unwrap_or_else(|| tenant.clone());
    let users = all_users(state, &tenant.id).await?;
    let memberships = store.list_memberships(&tenant.id).await?;
    let now = state.now();
    // Seats are counted under the tenant's licence lock in the database (see the store).
    store
        .reconcile_group_assignments(&tenant.id, |subs, current| {
            licensing::reconcile_groups(
                &tenant,
                &users,
                &memberships,
                &group_licenses,
                subs,
                current,
                now,
            )
        })
        .await?;
    Ok(())
}

async fn all_users(state: &AppState, tenant_id: &str) -> ApiResult<Vec<User>> {
    let mut out = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 1000,
    };
    loop {
        let p = state
            .store
            .list_users(tenant_id, &UserFilter::default(), &page)
            .await?;
        out.extend(p.items);
        match p.next {
            Some(n) => page.after = Some(n),
            None => return Ok(out),
        }
    }
}

pub async fn skus(caller: Caller) -> ApiResult<Json<Vec<Sku>>> {
    caller.authorize(Operation::ReadLicenses)?;
    Ok(Json(licensing::catalogue()))
}

pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SkuSummary>>> {
    caller.authorize(Operation::ReadLicenses)?;
    // Subscription states move with time: bring group-based rows up to date before reading.
    reconcile(&state, &caller.tenant).await?;
    let subs = state.store.list_subscriptions(&caller.tenant.id).await?;
    let assignments = state
        .store
        .list_assignments(&caller.tenant.id, None, None)
        .await?;
    Ok(Json(licensing::summarize(&subs, &assignments, state.now())))
}

/// `POST /api/v1/licenses/trial`; the body is optional (the premium SKU by default).
pub async fn start_trial(
    State(state): State<AppState>,
    caller: Caller,
    ApiOptionalJson(body): ApiOptionalJson<TrialBody>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let sku_id = body
        .sku_id
        .unwrap_or_else(|| licensing::PREMIUM_SKU.to_string());
    let result = async {
        caller.authorize(Operation::ManageSubscriptions)?;
        let existing = state.store.list_subscriptions(&caller.tenant.id).await?;
        let sub = licensing::start_trial(&caller.tenant.id, &sku_id, &existing, state.now())?;
        // The database keeps one trial per tenant and SKU: of two concurrent starts one insert
        // is refused, and that caller gets the same answer as if it had come second.
        if let Err(e) = state.store.insert_subscription(&sub).await {
            if matches!(e, store::StoreError::Conflict(_)) {
                let existing = state.store.list_subscriptions(&caller.tenant.id).await?;
                licensing::start_trial(&caller.tenant.id, &sku_id, &existing, state.now())?;
            }
            return Err(e.into());
        }
        reconcile(&state, &caller.tenant).await?;
        Ok(sub)
    }
    .await;
    Ok((
        StatusCode::CREATED,
        Json(audited(&state, &caller, "license.startTrial", Some(sku_id), result).await?),
    ))
}

pub async fn purchase(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewSubscription>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let target = Some(format!("{} x{}", body.sku_id, body.units));
    let result = async {
        caller.authorize(Operation::ManageSubscriptions)?;
        let sub = licensing::purchase(&caller.tenant.id, &body, state.now())?;
        state.store.insert_subscription(&sub).await?;
        reconcile(&state, &caller.tenant).await?;
        Ok(sub)
    }
    .await;
    Ok((
        StatusCode::CREATED,
        Json(audited(&state, &caller, "license.addSubscription", target, result).await?),
    ))
}

pub async fn errors(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<LicenseAssignment>>> {
    caller.authorize(Operation::ReadLicenses)?;
    reconcile(&state, &caller.tenant).await?;
    let all = state
        .store
        .list_assignments(&caller.tenant.id, None, None)
        .await?;
    Ok(Json(
        all.into_iter()
            .filter(|a| a.state == AssignmentState::Error)
            .collect(),
    ))
}

pub async fn user_licenses(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Vec<LicenseAssignment>>> {
    caller.authorize(Operation::ReadLicenses)?;
    let user = super::users::resolve(&state, &caller.tenant.id, &key).await?;
    Ok(Json(
        state
            .store
            .list_assignments(&caller.tenant.id, Some(&user.id), None)
            .await?,
    ))
}

pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<SkuBody>,
) -> ApiResult<(StatusCode, Json<LicenseAssignment>)> {
    let target = Some(format!("{key} {}", body.sku_id));
    let result = async {
        caller.authorize(Operation::ManageLicenses)?;
        let user = super::users::resolve(&state, &caller.tenant.id, &key).await?;
        let sku = known_sku(&body.sku_id)?;
        let now = state.now();
        let assignment = LicenseAssignment {
            tenant_id: caller.tenant.id.clone(),
            user_id: user.id.clone(),
            sku_id: sku.id.clone(),
            source: AssignmentSource::Direct,
            state: AssignmentState::Active,
            error: None,
            effective_usage_location: user.usage_location.clone(),
            updated_at: now,
        };
        // Check and insert in one database transaction under the tenant's licence lock, so
        // concurrent assignments (in any process) never take more seats than there are.
        state
            .store
            .assign_checked(&assignment, |subs, assignments| -> ApiResult<()> {
                Ok(licensing::check_direct_assignment(
                    &user,
                    &sku.id,
                    subs,
                    assignments,
                    now,
                )?)
            })
            .await?;
        reconcile(&state, &caller.tenant).await?;
        Ok(assignment)
    }
    .await;
    Ok((
        StatusCode::CREATED,
        Json(audited(&state, &caller, "license.assign", target, result).await?),
    ))
}

pub async fn unassign(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, sku_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let target = Some(format!("{key} {sku_id}"));
    let result = async {
        caller.authorize(Operation::ManageLicenses)?;
        let user = super::users::resolve(&state, &caller.tenant.id, &key).await?;
        let sku = known_sku(&sku_id)?;
        let removed = state
            .store
            .delete_assignment(&caller.tenant.id, &user.id, &sku.id, &AssignmentSource::Direct)
            .await?;
        if !removed {
            return Err(AppError::not_found(format!(
                "{} has no direct assignment of {}. Licences inherited from a group go away when the group's licence or the membership is removed.",
                user.user_principal_name, sku.id
            )));
        }
        reconcile(&state, &caller.tenant).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    audited(&state, &caller, "license.remove", target, result).await
}

pub async fn entitlement(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Entitlement>> {
    caller.authorize(Operation::ReadLicenses)?;
    let user = super::users::resolve(&state, &caller.tenant.id, &key).await?;
    let assignments = state
        .store
        .list_assignments(&caller.tenant.id, Some(&user.id), None)
        .await?;
    let subs = state.store.list_subscriptions(&caller.tenant.id).await?;
    Ok(Json(licensing::entitlement(
        &user,
        &assignments,
        &subs,
        state.now(),
    )))
}

pub async fn group_licenses(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<GroupLicense>>> {
    caller.authorize(Operation::ReadLicenses)?;
    let group = super::groups::resolve(&state, &caller.tenant.id, &id).await?;
    let all = state.store.list_group_licenses(&caller.tenant.id).await?;
    Ok(Json(
        all.into_iter().filter(|g| g.group_id == group.id).collect(),
    ))
}

pub async fn assign_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SkuBody>,
) -> ApiResult<(StatusCode, Json<GroupLicense>)> {
    let target = Some(format!("{id} {}", body.sku_id));
    let result = async {
        caller.authorize(Operation::ManageLicenses)?;
        let group = super::groups::resolve(&state, &caller.tenant.id, &id).await?;
        let sku = known_sku(&body.sku_id)?;
        let gl = GroupLicense {
            tenant_id: caller.tenant.id.clone(),
            group_id: group.id,
            sku_id: sku.id,
            created_at: state.now(),
        };
        if !state.store.add_group_license(&gl).await? {
            return Err(AppError::new(
                proto::ErrorCode::Conflict,
                format!("The group already has {}.", gl.sku_id),
            ));
        }
        crate::group_licensing::reconcile_group(&state, &caller.tenant, &gl.group_id).await?;
        Ok(gl)
    }
    .await;
    Ok((
        StatusCode::CREATED,
        Json(audited(&state, &caller, "license.assignGroup", target, result).await?),
    ))
}

pub async fn unassign_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sku_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let target = Some(format!("{id} {sku_id}"));
    let result = async {
        caller.authorize(Operation::ManageLicenses)?;
        let group = super::groups::resolve(&state, &caller.tenant.id, &id).await?;
        let sku = known_sku(&sku_id)?;
        if !state
            .store
            .remove_group_license(&caller.tenant.id, &group.id, &sku.id)
            .await?
        {
            return Err(AppError::not_found(format!(
                "The group has no {} licence.",
                sku.id
            )));
        }
        crate::group_licensing::reconcile_group(&state, &caller.tenant, &group.id).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    audited(&state, &caller, "license.removeGroup", target, result).await
}
