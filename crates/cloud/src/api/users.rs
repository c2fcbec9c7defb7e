//! `/api/v1/users`: the HTTP side of [`app::users`], where every decision is.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use proto::{NewUser, Page, Source, User, UserFilter, UserPatch};
use serde::{Deserialize, Serialize};

use crate::app::caller::Caller;
use crate::app::users::{PasswordBody, PasswordReset};
use crate::app::{self, Ctx};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    upn_prefix: Option<String>,
    display_name: Option<String>,
    sku_id: Option<String>,
    source: Option<Source>,
    after: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    operation_id = "listUsers",
    tag = "users",
    summary = "List users (keyset paging; filters upnPrefix, displayName, skuId, source)",
    responses((status = 200, description = "Success", body = Page<User>)),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<User>>> {
    let filter = UserFilter {
        upn_prefix: q.upn_prefix,
        display_name: q.display_name,
        sku_id: q.sku_id,
        source: q.source,
    };
    let page = store::page(q.after, q.limit);
    Ok(Json(
        app::users::list(&state, &caller, filter, &page).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user}",
    operation_id = "getUser",
    tag = "users",
    summary = "One user by id or UPN",
    responses((status = 200, description = "Success", body = User)),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<User>> {
    Ok(Json(app::users::get(&state, &caller, &key).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/users",
    operation_id = "createUser",
    tag = "users",
    summary = "Create a cloud user",
    request_body = NewUser,
    responses((status = 201, description = "Success", body = User)),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = app::users::create(&state, &Ctx::of(&state), &caller, body).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/users/{user}",
    operation_id = "updateUser",
    tag = "users",
    summary = "Change a user (absent = unchanged, null = clear)",
    request_body = UserPatch,
    responses((status = 200, description = "Success", body = User)),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    Ok(Json(
        app::users::update(&state, &Ctx::of(&state), &caller, &key, patch).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{user}",
    operation_id = "deleteUser",
    tag = "users",
    summary = "Delete a user",
    responses((status = 204, description = "Success")),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    app::users::delete(&state, &caller, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Admin reset of a user's password: 204 for a cloud-only user (set here, tokens revoked); 200
/// with the [`proto::writeback::WritebackResult`] for a synced user, whose `outcome` says what
/// happened.
#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/password",
    operation_id = "resetPassword",
    tag = "users",
    summary = "Admin reset: a cloud user's password (204), or a synced user's on-prem password through writeback, body {password, mustChange?, unlock?} (200, WritebackResult)",
    request_body = PasswordBody,
    responses(
        (status = 200, description = "A synced user: the writeback result (the on-prem password changed, or why not)", body = proto::writeback::WritebackResult),
        (status = 204, description = "A cloud user: the password is set"),
        (status = 503, description = "A synced user: no agent with writeback could take the request"),
    ),
)]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<Response> {
    Ok(
        match app::users::reset_password(&state, &caller, &key, &body).await? {
            PasswordReset::InCloud => StatusCode::NO_CONTENT.into_response(),
            PasswordReset::WrittenBack(result) => Json(result).into_response(),
        },
    )
}

/// `POST /api/v1/users/{user}/unlock`: unlocks a synced user's on-premises account through
/// writeback; 200 with the [`proto::writeback::WritebackResult`].
#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/unlock",
    operation_id = "unlockUser",
    tag = "users",
    summary = "Unlock a synced user's on-premises account through writeback; returns the WritebackResult",
    responses((status = 200, description = "Success", body = proto::writeback::WritebackResult)),
)]
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<proto::writeback::WritebackResult>> {
    Ok(Json(app::users::unlock(&state, &caller, &key).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    revoked: u64,
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/revoke-tokens",
    operation_id = "revokeUserTokens",
    tag = "users",
    summary = "Revoke all of a user's tokens",
    responses((status = 200, description = "Success", body = Revoked)),
)]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Revoked>> {
    let revoked = app::users::revoke_tokens(&state, &caller, &key).await?;
    Ok(Json(Revoked { revoked }))
}
