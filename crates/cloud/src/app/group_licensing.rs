//! Group-based licensing recomputed for the users a change affects, not the whole tenant: a
//! membership change affects the member (a user, or every user a member group holds, nested
//! included), a group's licence change or deletion every user the group holds. The rule is
//! [`tenant::licensing::reconcile_groups_of`]: when seats are contended it cannot decide for
//! some users alone, and the whole tenant is recomputed ([`reconcile`]),
//! so the result is always the one a whole-tenant run gives.

use std::collections::BTreeSet;
use std::collections::HashSet;

use proto::{AssignmentSource, MemberKind, MemberRef, PageRequest, Tenant, User, UserFilter};
use tenant::licensing;

use crate::error::ApiResult;
use crate::state::AppState;

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
        limit: store::MAX_PAGE,
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

/// The users `group_id` holds now, directly or through nested groups. Read it before a change
/// that removes them (a group's deletion).
pub async fn users_of_group(
    state: &AppState,
    tenant_id: &str,
    group_id: &str,
) -> ApiResult<Vec<String>> {
    let memberships = state.store.list_memberships(tenant_id).await?;
    Ok(licensing::users_in_group(group_id, &memberships))
}

/// The users a membership of `member` affects: the user itself, or those the group holds.
pub async fn users_of_member(
    state: &AppState,
    tenant_id: &str,
    member: &MemberRef,
) -> ApiResult<Vec<String>> {
    match member.kind {
        MemberKind::User => Ok(vec![member.id.clone()]),
        MemberKind::Group => users_of_group(state, tenant_id, &member.id).await,
    }
}

/// Recomputes the group-based assignments of `user_ids` (ids; missing users lose theirs), or
/// of the whole tenant when that is the only way to keep the result exact.
pub async fn reconcile_users(
    state: &AppState,
    tenant: &Tenant,
    user_ids: impl IntoIterator<Item = String>,
) -> ApiResult<()> {
    let scope: BTreeSet<String> = user_ids.into_iter().collect();
    if scope.is_empty() {
        return Ok(());
    }
    let store = &state.store;
    let tenant = store
        .get_tenant(&tenant.id)
        .await?
        .unwrap_or_else(|| tenant.clone());
    let group_licenses = store.list_group_licenses(&tenant.id).await?;
    let memberships = store.list_memberships(&tenant.id).await?;
    let mut users = Vec::new();
    for id in &scope {
        if let Some(u) = store.get_user(&tenant.id, id).await? {
            users.push(u);
        }
    }
    let affected: HashSet<String> = scope.iter().cloned().collect();
    let now = state.now();
    let written = store
        .reconcile_group_assignments_of(&tenant.id, &scope, |subs, current| {
            licensing::reconcile_groups_of(
                &tenant,
                &affected,
                &users,
                &memberships,
                &group_licenses,
                subs,
                current,
                now,
            )
        })
        .await?;
    match written {
        Some(n) => {
            tracing::debug!(
                users = scope.len(),
                rows = n,
                "group licences recomputed for the affected users"
            );
            Ok(())
        }
        None => reconcile(state, &tenant).await,
    }
}

/// After a change of `group_id`'s licences: recomputes the users it holds.
pub async fn reconcile_group(state: &AppState, tenant: &Tenant, group_id: &str) -> ApiResult<()> {
    let users = users_of_group(state, &tenant.id, group_id).await?;
    reconcile_users(state, tenant, users).await
}

/// After `member` joined or left a group: recomputes the users it stands for.
pub async fn reconcile_member(
    state: &AppState,
    tenant: &Tenant,
    member: &MemberRef,
) -> ApiResult<()> {
    let users = users_of_member(state, &tenant.id, member).await?;
    reconcile_users(state, tenant, users).await
}

/// The users a sync batch can change the group-based licences of, as the directory is before
/// it is applied: the users it writes or deletes, and the users each group whose members it
/// sets, or which it deletes, holds now. `None` when the tenant has no licensed group (then
/// [`reconcile_sync`] only checks for left-over group rows, as a whole-tenant run does).
pub async fn sync_scope(
    state: &AppState,
    tenant_id: &str,
    write: &store::SyncWrite,
) -> ApiResult<Option<BTreeSet<String>>> {
    if state.store.list_group_licenses(tenant_id).await?.is_empty() {
        return Ok(None);
    }
    let memberships = state.store.list_memberships(tenant_id).await?;
    Ok(Some(sync_users(write, &memberships)))
}

fn sync_users(write: &store::SyncWrite, memberships: &[(String, MemberRef)]) -> BTreeSet<String> {
    let mut users: BTreeSet<String> = write
        .insert_users
        .iter()
        .chain(&write.update_users)
        .map(|u| u.id.clone())
        .chain(write.delete_users.iter().cloned())
        .collect();
    for group in write
        .set_members
        .iter()
        .map(|(g, _)| g)
        .chain(&write.delete_groups)
    {
        users.extend(licensing::users_in_group(group, memberships));
    }
    users
}

/// After a sync batch was applied: recomputes the users [`sync_scope`] found before it and the
/// users the changed groups hold after it.
pub async fn reconcile_sync(
    state: &AppState,
    tenant: &Tenant,
    write: &store::SyncWrite,
    before: Option<BTreeSet<String>>,
) -> ApiResult<()> {
    let Some(mut users) = before else {
        return reconcile(state, tenant).await;
    };
    let memberships = state.store.list_memberships(&tenant.id).await?;
    users.extend(sync_users(write, &memberships));
    reconcile_users(state, tenant, users).await
}
