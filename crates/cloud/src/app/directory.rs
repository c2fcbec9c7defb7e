//! Finding the user or group a request names, for every use case that acts on one.

use proto::{Group, User};

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// The group `id` of the tenant, or `notFound`.
pub async fn group(state: &AppState, tenant_id: &str, id: &str) -> ApiResult<Group> {
    state
        .store
        .get_group(tenant_id, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("No group with id '{id}' in this tenant.")))
}

/// Finds a user by id or, when the key holds an `@`, by UPN.
pub async fn user(state: &AppState, tenant_id: &str, key: &str) -> ApiResult<User> {
    let found = if key.contains('@') {
        state.store.get_user_by_upn(tenant_id, key).await?
    } else {
        state.store.get_user(tenant_id, key).await?
    };
    found.ok_or_else(|| {
        AppError::not_found(format!("No user with id or UPN '{key}' in this tenant."))
    })
}

/// A page of the tenant's groups whose names start with `name_prefix`.
pub async fn groups(
    state: &AppState,
    caller: &super::caller::Caller,
    name_prefix: Option<&str>,
    page: &proto::PageRequest,
) -> ApiResult<proto::Page<Group>> {
    caller.authorize(tenant::roles::Operation::ReadDirectory)?;
    Ok(state
        .store
        .list_groups(&caller.tenant.id, name_prefix, page)
        .await?)
}

/// One line of a group's membership as an administrator reads it: a member at `depth` (0: a
/// direct member of the group, 1: a member of a member group, …).
#[derive(Debug, Clone)]
pub struct NestedMember {
    pub depth: usize,
    pub member: proto::MemberRef,
    /// The user's UPN or the group's name (the id when the object is gone).
    pub name: String,
    /// A member group already shown higher up (a loop): its members are not repeated.
    pub repeated: bool,
}

/// At most this many lines of a group's nested membership are returned.
pub const MAX_NESTED_MEMBERS: usize = 1000;

/// The group `id` with its members, member groups' members nested below them (depth first,
/// every member group expanded once); at most [`MAX_NESTED_MEMBERS`] lines, and whether more
/// were left out.
pub async fn group_members(
    state: &AppState,
    caller: &super::caller::Caller,
    id: &str,
) -> ApiResult<(Group, Vec<NestedMember>, bool)> {
    use proto::MemberKind;
    caller.authorize(tenant::roles::Operation::ReadDirectory)?;
    let tenant_id = &caller.tenant.id;
    let group = group(state, tenant_id, id).await?;
    let all = state.store.list_memberships(tenant_id).await?;
    let mut lines = Vec::new();
    let mut expanded = std::collections::HashSet::from([group.id.clone()]);
    // Depth first: a stack of (depth, member), children pushed in reverse to keep their order.
    let direct = |parent: &str| -> Vec<proto::MemberRef> {
        all.iter()
            .filter(|(p, _)| p == parent)
            .map(|(_, m)| m.clone())
            .collect()
    };
    let mut stack: Vec<(usize, proto::MemberRef)> = direct(&group.id)
        .into_iter()
        .rev()
        .map(|m| (0, m))
        .collect();
    let mut truncated = false;
    while let Some((depth, member)) = stack.pop() {
        if lines.len() == MAX_NESTED_MEMBERS {
            truncated = true;
            break;
        }
        let name = match member.kind {
            MemberKind::User => state
                .store
                .get_user(tenant_id, &member.id)
                .await?
                .map(|u| u.user_principal_name),
            MemberKind::Group => state
                .store
                .get_group(tenant_id, &member.id)
                .await?
                .map(|g| g.display_name),
        }
        .unwrap_or_else(|| member.id.clone());
        let repeated = member.kind == MemberKind::Group && !expanded.insert(member.id.clone());
        if member.kind == MemberKind::Group && !repeated {
            stack.extend(direct(&member.id).into_iter().rev().map(|m| (depth + 1, m)));
        }
        lines.push(NestedMember {
            depth,
            member,
            name,
            repeated,
        });
    }
    Ok((group, lines, truncated))
}
