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

pub async fn skus(caller: Caller) -> ApiResult<Json<Vec<Sku>>> {
    Ok(Json(app::licensing::skus(&caller)?))
}

pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SkuSummary>>> {
    let ctx = Ctx::of(&state);
    Ok(Json(app::licensing::summary(&state, &ctx, &caller).await?))
}

/// `POST /api/v1/licenses/trial`; the body is optional (the premium SKU by default).
pub async fn start_trial(
    State(state): State<AppState>,
    caller: Caller,
    ApiOptionalJson(body): ApiOptionalJson<TrialBody>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let ctx = Ctx::of(&state);
    let sub = app::licensing::start_trial(&state, &ctx, &caller, body.sku_id).await?;
    Ok((StatusCode::CREATED, Json(sub)))
}

pub async fn purchase(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewSubscription>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let ctx = Ctx::of(&state);
    let sub = app::licensing::purchase(&state, &ctx, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(sub)))
}

pub async fn errors(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<LicenseAssignment>>> {
    Ok(Json(app::licensing::errors(&state, &caller).await?))
}

pub async fn user_licenses(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Vec<LicenseAssignment>>> {
    Ok(Json(
        app::licensing::user_licenses(&state, &caller, &key).await?,
    ))
}

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

pub async fn unassign(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, sku_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app::licensing::unassign(&state, &caller, &key, &sku_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

pub async fn group_licenses(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<GroupLicense>>> {
    Ok(Json(
        app::licensing::group_licenses(&state, &caller, &id).await?,
    ))
}

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

pub async fn unassign_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sku_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app::licensing::unassign_group(&state, &caller, &id, &sku_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
