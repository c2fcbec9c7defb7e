//! `/api/v1/groups`: groups, nested membership, and group-based licences.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use proto::{Group, MemberKind, MemberRef, NewGroup, Page, Source};
use serde::Deserialize;
use tenant::roles::Operation;
use tenant::{secrets, validate};

use crate::app::caller::Caller;
use crate::app::directory;
use crate::audit::audited;
use crate::error::{ApiResult, AppError};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    name_prefix: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/groups",
    operation_id = "listGroups",
    tag = "groups",
    summary = "List groups",
    responses((status = 200, description = "Success", body = Page<Group>)),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Group>>> {
    let page = store::page(q.after, q.limit);
    Ok(Json(
        directory::groups(&state, &caller, q.name_prefix.as_deref(), &page).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/groups/{group}",
    operation_id = "getGroup",
    tag = "groups",
    summary = "One group",
    responses((status = 200, description = "Success", body = Group)),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Group>> {
    caller.authorize(Operation::ReadDirectory)?;
    Ok(Json(
        directory::group(&state, &caller.tenant.id, &id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/groups",
    operation_id = "createGroup",
    tag = "groups",
    summary = "Create a group",
    request_body = NewGroup,
    responses((status = 201, description = "Success", body = Group)),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    let target = Some(body.display_name.clone());
    let result = async {
        caller.authorize(Operation::ManageGroups)?;
        let group = Group {
            id: secrets::new_id(),
            tenant_id: caller.tenant.id.clone(),
            display_name: validate::display_name(&body.display_name)?,
            description: validate::optional_text("description", body.description.as_deref(), 1024)?,
            source: Source::Cloud,
            on_premises: None,
            created_at: state.now(),
        };
        state.store.insert_group(&group).await?;
        Ok(group)
    }
    .await;
    Ok((
        StatusCode::CREATED,
        Json(audited(&state, &caller, "group.create", target, result).await?),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupPatch {
    display_name: Option<String>,
    #[serde(default, with = "proto::double_option")]
    description: Option<Option<String>>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/groups/{group}",
    operation_id = "updateGroup",
    tag = "groups",
    summary = "Rename or describe a group",
    request_body = GroupPatch,
    responses((status = 200, description = "Success", body = Group)),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<GroupPatch>,
) -> ApiResult<Json<Group>> {
    let result = async {
        caller.authorize(Operation::ManageGroups)?;
        let mut group = directory::group(&state, &caller.tenant.id, &id).await?;
        refuse_synced(&group)?;
        if let Some(n) = &patch.display_name {
            group.display_name = validate::display_name(n)?;
        }
        if let Some(d) = &patch.description {
            group.description = validate::optional_text("description", d.as_deref(), 1024)?;
        }
        state.store.update_group(&group).await?;
        Ok(group)
    }
    .await;
    Ok(Json(
        audited(&state, &caller, "group.update", Some(id), result).await?,
    ))
}

fn refuse_synced(group: &Group) -> ApiResult<()> {
    if group.source == Source::OnPremises {
        return Err(AppError::bad_request(
            "This group is synced from on-premises: change it in the on-premises directory and it reaches the cloud with the next sync.",
        ));
    }
    Ok(())
}

#[utoipa::path(
    delete,
    path = "/api/v1/groups/{group}",
    operation_id = "deleteGroup",
    tag = "groups",
    summary = "Delete a group",
    responses((status = 204, description = "Success")),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let result = async {
        caller.authorize(Operation::ManageGroups)?;
        let group = directory::group(&state, &caller.tenant.id, &id).await?;
        refuse_synced(&group)?;
        let policy = state.store.get_policy(&caller.tenant.id).await?;
        if policy.is_some_and(|p| p.group_id.as_deref() == Some(group.id.as_str())) {
            return Err(AppError::new(
                proto::ErrorCode::Conflict,
                "The password reset policy is scoped to this group: change the policy first (dirbridge policy set --enabled-for all|none, or another --group).",
            ));
        }
        let held =
            crate::app::group_licensing::users_of_group(&state, &caller.tenant.id, &group.id)
                .await?;
        state.store.delete_group(&caller.tenant.id, &group.id).await?;
        crate::app::group_licensing::reconcile_users(&state, &caller.tenant, held).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    audited(&state, &caller, "group.delete", Some(id), result).await
}

#[utoipa::path(
    get,
    path = "/api/v1/groups/{group}/members",
    operation_id = "listMembers",
    tag = "groups",
    summary = "Direct members",
    responses((status = 200, description = "Success", body = Vec<MemberRef>)),
)]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<MemberRef>>> {
    caller.authorize(Operation::ReadDirectory)?;
    let group = directory::group(&state, &caller.tenant.id, &id).await?;
    Ok(Json(
        state
            .store
            .list_members(&caller.tenant.id, &group.id)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/groups/{group}/members",
    operation_id = "addMember",
    tag = "groups",
    summary = "Add a user or a nested group",
    request_body = MemberRef,
    responses((status = 201, description = "Success", body = MemberRef)),
)]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(member): ApiJson<MemberRef>,
) -> ApiResult<(StatusCode, Json<MemberRef>)> {
    let target = Some(format!("{id} <- {}", member.id));
    let result = async {
        caller.authorize(Operation::ManageGroups)?;
        let group = directory::group(&state, &caller.tenant.id, &id).await?;
        refuse_synced(&group)?;
        let member = match member.kind {
            MemberKind::User => {
                let u = directory::user(&state, &caller.tenant.id, &member.id).await?;
                MemberRef { kind: MemberKind::User, id: u.id }
            }
            MemberKind::Group => {
                let g = directory::group(&state, &caller.tenant.id, &member.id).await?;
                if g.id == group.id {
                    return Err(AppError::bad_request("A group cannot be a member of itself."));
                }
                if contains_transitively(&state, &caller.tenant.id, &g.id, &group.id).await? {
                    return Err(AppError::bad_request(format!(
                        "Adding '{}' to '{}' would make a membership loop: '{}' already contains '{}'.",
                        g.display_name, group.display_name, g.display_name, group.display_name
                    )));
                }
                MemberRef { kind: MemberKind::Group, id: g.id }
            }
        };
        if !state.store.add_member(&caller.tenant.id, &group.id, &member).await? {
            return Err(AppError::new(proto::ErrorCode::Conflict, "That object is already a member of the group."));
        }
        crate::app::group_licensing::reconcile_member(&state, &caller.tenant, &member).await?;
        Ok(member)
    }
    .await;
    Ok((
        StatusCode::CREATED,
        Json(audited(&state, &caller, "group.addMember", target, result).await?),
    ))
}

/// Does `outer` contain `inner`, directly or through nested groups?
async fn contains_transitively(
    state: &AppState,
    tenant_id: &str,
    outer: &str,
    inner: &str,
) -> ApiResult<bool> {
    let all = state.store.list_memberships(tenant_id).await?;
    let mut stack = vec![outer.to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(g) = stack.pop() {
        if !seen.insert(g.clone()) {
            continue;
        }
        for (parent, m) in &all {
            if *parent == g && m.kind == MemberKind::Group {
                if m.id == inner {
                    return Ok(true);
                }
                stack.push(m.id.clone());
            }
        }
    }
    Ok(false)
}

#[utoipa::path(
    delete,
    path = "/api/v1/groups/{group}/members/{member}",
    operation_id = "removeMember",
    tag = "groups",
    summary = "Remove a direct member",
    responses((status = 204, description = "Success")),
)]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, member_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let target = Some(format!("{id} -> {member_id}"));
    let result = async {
        caller.authorize(Operation::ManageGroups)?;
        let group = directory::group(&state, &caller.tenant.id, &id).await?;
        refuse_synced(&group)?;
        let member_id = if member_id.contains('@') {
            directory::user(&state, &caller.tenant.id, &member_id)
                .await?
                .id
        } else {
            member_id
        };
        let mut removed = false;
        for kind in [MemberKind::User, MemberKind::Group] {
            removed |= state
                .store
                .remove_member(
                    &caller.tenant.id,
                    &group.id,
                    &MemberRef {
                        kind,
                        id: member_id.clone(),
                    },
                )
                .await?;
        }
        if !removed {
            return Err(AppError::not_found(format!(
                "'{member_id}' is not a direct member of the group."
            )));
        }
        // A user, or a group and the users it holds.
        let mut affected =
            crate::app::group_licensing::users_of_group(&state, &caller.tenant.id, &member_id)
                .await?;
        affected.push(member_id);
        crate::app::group_licensing::reconcile_users(&state, &caller.tenant, affected).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    audited(&state, &caller, "group.removeMember", target, result).await
}
