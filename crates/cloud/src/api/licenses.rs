//! `/api/v1/licenses` and the licence parts of users and groups: the HTTP side of
//! [`app::licensing`], where every decision is.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use proto::{
    Entitlement, GroupLicense, LicenseAssignment, NewSubscription, Sku, SkuSummary, Subscription,
};
use serde::Deserialize;

use crate::app::caller::Caller;
use crate::app::{self, Ctx};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiOptionalJson};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkuBody {
    sku_id: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialBody {
    sku_id: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/licenses/skus",
    operation_id = "listSkus",
    tag = "licenses",
    summary = "The SKU catalogue",
    responses((status = 200, description = "Success", body = Vec<Sku>)),
)]
pub async fn skus(caller: Caller) -> ApiResult<Json<Vec<Sku>>> {
    Ok(Json(app::licensing::skus(&caller)?))
}

#[utoipa::path(
    get,
    path = "/api/v1/licenses",
    operation_id = "licenseSummary",
    tag = "licenses",
    summary = "Per SKU: units by state and consumed units",
    responses((status = 200, description = "Success", body = Vec<SkuSummary>)),
)]
pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SkuSummary>>> {
    let ctx = Ctx::of(&state);
    Ok(Json(app::licensing::summary(&state, &ctx, &caller).await?))
}

/// `POST /api/v1/licenses/trial`; the body is optional (the premium SKU by default).
#[utoipa::path(
    post,
    path = "/api/v1/licenses/trial",
    operation_id = "startTrial",
    tag = "licenses",
    summary = "Start the premium trial (100 units, 90 days, once)",
    request_body(content = Option<TrialBody>, description = "Optional: no body is the defaults"),
    responses((status = 201, description = "Success", body = Subscription)),
)]
pub async fn start_trial(
    State(state): State<AppState>,
    caller: Caller,
    ApiOptionalJson(body): ApiOptionalJson<TrialBody>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let ctx = Ctx::of(&state);
    let sub = app::licensing::start_trial(&state, &ctx, &caller, body.sku_id).await?;
    Ok((StatusCode::CREATED, Json(sub)))
}

#[utoipa::path(
    post,
    path = "/api/v1/licenses/subscriptions",
    operation_id = "addSubscription",
    tag = "licenses",
    summary = "Add a purchased subscription",
    request_body = NewSubscription,
    responses((status = 201, description = "Success", body = Subscription)),
)]
pub async fn purchase(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewSubscription>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let ctx = Ctx::of(&state);
    let sub = app::licensing::purchase(&state, &ctx, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(sub)))
}

#[utoipa::path(
    get,
    path = "/api/v1/licenses/errors",
    operation_id = "licenseErrors",
    tag = "licenses",
    summary = "Group-based licence errors per user",
    responses((status = 200, description = "Success", body = Vec<LicenseAssignment>)),
)]
pub async fn errors(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<LicenseAssignment>>> {
    Ok(Json(app::licensing::errors(&state, &caller).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/licenses",
    operation_id = "userLicenses",
    tag = "licenses",
    summary = "A user's licence assignments",
    responses((status = 200, description = "Success", body = Vec<LicenseAssignment>)),
)]
pub async fn user_licenses(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Vec<LicenseAssignment>>> {
    Ok(Json(
        app::licensing::user_licenses(&state, &caller, &key).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/licenses",
    operation_id = "assignLicense",
    tag = "licenses",
    summary = "Assign a licence directly",
    request_body = SkuBody,
    responses((status = 201, description = "Success", body = LicenseAssignment)),
)]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<SkuBody>,
) -> ApiResult<(StatusCode, Json<LicenseAssignment>)> {
    let ctx = Ctx::of(&state);
    let a = app::licensing::assign(&state, &ctx, &caller, &key, &body.sku_id).await?;
    Ok((StatusCode::CREATED, Json(a)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{user}/licenses/{skuId}",
    operation_id = "removeLicense",
    tag = "licenses",
    summary = "Remove a direct licence assignment",
    responses((status = 204, description = "Success")),
)]
pub async fn unassign(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, sku_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app::licensing::unassign(&state, &caller, &key, &sku_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/entitlement",
    operation_id = "entitlement",
    tag = "licenses",
    summary = "May this user use SSPR with writeback now?",
    responses((status = 200, description = "Success", body = Entitlement)),
)]
pub async fn entitlement(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Entitlement>> {
    let ctx = Ctx::of(&state);
    Ok(Json(
        app::licensing::entitlement(&state, &ctx, &caller, &key).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/groups/{group}/licenses",
    operation_id = "groupLicenses",
    tag = "licenses",
    summary = "Licences assigned to a group",
    responses((status = 200, description = "Success", body = Vec<GroupLicense>)),
)]
pub async fn group_licenses(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<GroupLicense>>> {
    Ok(Json(
        app::licensing::group_licenses(&state, &caller, &id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/groups/{group}/licenses",
    operation_id = "assignGroupLicense",
    tag = "licenses",
    summary = "Assign a licence to a group (reaches nested members)",
    request_body = SkuBody,
    responses((status = 201, description = "Success", body = GroupLicense)),
)]
pub async fn assign_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SkuBody>,
) -> ApiResult<(StatusCode, Json<GroupLicense>)> {
    let ctx = Ctx::of(&state);
    let gl = app::licensing::assign_group(&state, &ctx, &caller, &id, &body.sku_id).await?;
    Ok((StatusCode::CREATED, Json(gl)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/groups/{group}/licenses/{skuId}",
    operation_id = "removeGroupLicense",
    tag = "licenses",
    summary = "Remove a group's licence",
    responses((status = 204, description = "Success")),
)]
pub async fn unassign_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sku_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app::licensing::unassign_group(&state, &caller, &id, &sku_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
