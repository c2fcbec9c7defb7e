//! Licensing use cases: subscriptions (trial, purchase), direct and group-based assignment,
//! per-user errors and the entitlement check. The rules (catalogue, seats, trial once, the
//! group recomputation) are [`tenant::licensing`]'s; this module loads, asks and writes, and
//! recomputes group-based assignments after every change that can affect them.

use proto::{
    AssignmentSource, AssignmentState, Entitlement, GroupLicense, LicenseAssignment,
    NewSubscription, Sku, SkuSummary, Subscription,
};
use tenant::licensing;
use tenant::roles::Operation;

use super::caller::Caller;
use super::Ctx;
use crate::audit::audited;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

pub fn known_sku(id: &str) -> ApiResult<Sku> {
    licensing::sku(id).ok_or_else(|| {
        let ids: Vec<String> = licensing::catalogue().into_iter().map(|s| s.id).collect();
        AppError::not_found(format!(
            "Unknown SKU '{id}'. Known SKUs: {}.",
            ids.join(", ")
        ))
    })
}

pub use super::group_licensing::reconcile;

/// The SKU catalogue.
pub fn skus(caller: &Caller) -> ApiResult<Vec<Sku>> {
    caller.authorize(Operation::ReadLicenses)?;
    Ok(licensing::catalogue())
}

/// Seats per SKU: bought, consumed, available.
pub async fn summary(state: &AppState, ctx: &Ctx, caller: &Caller) -> ApiResult<Vec<SkuSummary>> {
    caller.authorize(Operation::ReadLicenses)?;
    // Subscription states move with time: bring group-based rows up to date before reading.
    reconcile(state, &caller.tenant).await?;
    let subs = state.store.list_subscriptions(&caller.tenant.id).await?;
    let assignments = state
        .store
        .list_assignments(&caller.tenant.id, None, None)
        .await?;
    Ok(licensing::summarize(&subs, &assignments, ctx.now))
}

/// Starts the one trial of `sku_id` (the premium SKU when none is given). Audited.
pub async fn start_trial(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    sku_id: Option<String>,
) -> ApiResult<Subscription> {
    let sku_id = sku_id.unwrap_or_else(|| licensing::PREMIUM_SKU.to_string());
    let result = async {
        caller.authorize(Operation::ManageSubscriptions)?;
        let existing = state.store.list_subscriptions(&caller.tenant.id).await?;
        let sub = licensing::start_trial(&caller.tenant.id, &sku_id, &existing, ctx.now)?;
        // The database keeps one trial per tenant and SKU: of two concurrent starts one insert
        // is refused, and that caller gets the same answer as if it had come second.
        if let Err(e) = state.store.insert_subscription(&sub).await {
            if matches!(e, store::StoreError::Conflict(_)) {
                let existing = state.store.list_subscriptions(&caller.tenant.id).await?;
                licensing::start_trial(&caller.tenant.id, &sku_id, &existing, ctx.now)?;
            }
            return Err(e.into());
        }
        reconcile(state, &caller.tenant).await?;
        Ok(sub)
    }
    .await;
    audited(state, caller, "license.startTrial", Some(sku_id), result).await
}

/// Adds a paid subscription. Audited.
pub async fn purchase(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    body: &NewSubscription,
) -> ApiResult<Subscription> {
    let target = Some(format!("{} x{}", body.sku_id, body.units));
    let result = async {
        caller.authorize(Operation::ManageSubscriptions)?;
        let sub = licensing::purchase(&caller.tenant.id, body, ctx.now)?;
        state.store.insert_subscription(&sub).await?;
        reconcile(state, &caller.tenant).await?;
        Ok(sub)
    }
    .await;
    audited(state, caller, "license.addSubscription", target, result).await
}

/// Assignments in the error state.
pub async fn errors(state: &AppState, caller: &Caller) -> ApiResult<Vec<LicenseAssignment>> {
    caller.authorize(Operation::ReadLicenses)?;
    reconcile(state, &caller.tenant).await?;
    let all = state
        .store
        .list_assignments(&caller.tenant.id, None, None)
        .await?;
    Ok(all
        .into_iter()
        .filter(|a| a.state == AssignmentState::Error)
        .collect())
}

/// The licences of the user `key` (id or UPN).
pub async fn user_licenses(
    state: &AppState,
    caller: &Caller,
    key: &str,
) -> ApiResult<Vec<LicenseAssignment>> {
    caller.authorize(Operation::ReadLicenses)?;
    let user = super::directory::user(state, &caller.tenant.id, key).await?;
    Ok(state
        .store
        .list_assignments(&caller.tenant.id, Some(&user.id), None)
        .await?)
}

/// Assigns `sku_id` to the user `key` directly, if a seat is free
/// ([`licensing::check_direct_assignment`], under the tenant's licence lock). Audited.
pub async fn assign(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    key: &str,
    sku_id: &str,
) -> ApiResult<LicenseAssignment> {
    let target = Some(format!("{key} {sku_id}"));
    let result = async {
        caller.authorize(Operation::ManageLicenses)?;
        let user = super::directory::user(state, &caller.tenant.id, key).await?;
        let sku = known_sku(sku_id)?;
        let now = ctx.now;
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
        reconcile(state, &caller.tenant).await?;
        Ok(assignment)
    }
    .await;
    audited(state, caller, "license.assign", target, result).await
}

/// Removes the direct assignment of `sku_id` from the user `key`. Audited.
pub async fn unassign(state: &AppState, caller: &Caller, key: &str, sku_id: &str) -> ApiResult<()> {
    let target = Some(format!("{key} {sku_id}"));
    let result = async {
        caller.authorize(Operation::ManageLicenses)?;
        let user = super::directory::user(state, &caller.tenant.id, key).await?;
        let sku = known_sku(sku_id)?;
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
        reconcile(state, &caller.tenant).await
    }
    .await;
    audited(state, caller, "license.remove", target, result).await
}

/// Whether the user `key` may use self-service password reset with writeback, and why not.
pub async fn entitlement(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    key: &str,
) -> ApiResult<Entitlement> {
    caller.authorize(Operation::ReadLicenses)?;
    let user = super::directory::user(state, &caller.tenant.id, key).await?;
    let assignments = state
        .store
        .list_assignments(&caller.tenant.id, Some(&user.id), None)
        .await?;
    let subs = state.store.list_subscriptions(&caller.tenant.id).await?;
    Ok(licensing::entitlement(&user, &assignments, &subs, ctx.now))
}

/// The licences of the group `id`.
pub async fn group_licenses(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<Vec<GroupLicense>> {
    caller.authorize(Operation::ReadLicenses)?;
    let group = super::directory::group(state, &caller.tenant.id, id).await?;
    let all = state.store.list_group_licenses(&caller.tenant.id).await?;
    Ok(all.into_iter().filter(|g| g.group_id == group.id).collect())
}

/// Gives the group `id` the licence `sku_id` (its members get it by reconciliation). Audited.
pub async fn assign_group(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    sku_id: &str,
) -> ApiResult<GroupLicense> {
    let target = Some(format!("{id} {sku_id}"));
    let result = async {
        caller.authorize(Operation::ManageLicenses)?;
        let group = super::directory::group(state, &caller.tenant.id, id).await?;
        let sku = known_sku(sku_id)?;
        let gl = GroupLicense {
            tenant_id: caller.tenant.id.clone(),
            group_id: group.id,
            sku_id: sku.id,
            created_at: ctx.now,
        };
        if !state.store.add_group_license(&gl).await? {
            return Err(AppError::new(
                proto::ErrorCode::Conflict,
                format!("The group already has {}.", gl.sku_id),
            ));
        }
        super::group_licensing::reconcile_group(state, &caller.tenant, &gl.group_id).await?;
        Ok(gl)
    }
    .await;
    audited(state, caller, "license.assignGroup", target, result).await
}

/// Takes the licence `sku_id` from the group `id`. Audited.
pub async fn unassign_group(
    state: &AppState,
    caller: &Caller,
    id: &str,
    sku_id: &str,
) -> ApiResult<()> {
    let target = Some(format!("{id} {sku_id}"));
    let result = async {
        caller.authorize(Operation::ManageLicenses)?;
        let group = super::directory::group(state, &caller.tenant.id, id).await?;
        let sku = known_sku(sku_id)?;
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
        super::group_licensing::reconcile_group(state, &caller.tenant, &group.id).await
    }
    .await;
    audited(state, caller, "license.removeGroup", target, result).await
}
