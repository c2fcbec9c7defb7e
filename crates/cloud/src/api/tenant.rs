//! `/api/v1/tenant`: tenant settings and domains.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use proto::{Tenant, TenantDomain};
use serde::Deserialize;
use tenant::roles::Operation;
use tenant::validate;

use crate::app::caller::Caller;
use crate::audit::audited;
use crate::domains;
use crate::error::{ApiResult, AppError};
use crate::extract::ApiJson;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/api/v1/tenant",
    operation_id = "getTenant",
    tag = "tenant",
    summary = "Tenant settings and domains",
    responses((status = 200, description = "Success", body = Tenant)),
)]
pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Tenant>> {
    caller.authorize(Operation::ReadDirectory)?;
    Ok(Json(
        state
            .store
            .get_tenant(&caller.tenant.id)
            .await?
            .unwrap_or(caller.tenant),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantPatch {
    #[serde(default, with = "proto::double_option")]
    default_usage_location: Option<Option<String>>,
    #[serde(default, deserialize_with = "proto::present::deserialize")]
    #[schema(nullable = false)]
    soft_match_enabled: Option<bool>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/tenant",
    operation_id = "updateTenant",
    tag = "tenant",
    summary = "Change default usage location or soft matching",
    request_body = TenantPatch,
    responses((status = 200, description = "Success", body = Tenant)),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<TenantPatch>,
) -> ApiResult<Json<Tenant>> {
    let result = async {
        caller.authorize(Operation::ManageTenant)?;
        let mut changes = store::TenantChanges {
            soft_match_enabled: patch.soft_match_enabled,
            ..Default::default()
        };
        if let Some(c) = &patch.default_usage_location {
            changes.default_usage_location = Some(
                match c.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                    Some(c) => Some(validate::usage_location(c).map_err(|r| {
                        AppError::bad_request(
                            r.message.replace("usageLocation", "defaultUsageLocation"),
                        )
                    })?),
                    None => None,
                },
            );
        }
        // Only the given fields, in one statement: concurrent PATCHes of different fields
        // (on any instance) all apply.
        state
            .store
            .patch_tenant(&caller.tenant.id, &changes)
            .await?;
        let t = current(&state, &caller.tenant.id).await?;
        crate::app::licensing::reconcile(&state, &t).await?;
        Ok(t)
    }
    .await;
    Ok(Json(
        audited(&state, &caller, "tenant.update", None, result).await?,
    ))
}

/// The tenant as stored now (with domains other requests may have added meanwhile).
async fn current(state: &AppState, id: &str) -> ApiResult<Tenant> {
    state
        .store
        .get_tenant(id)
        .await?
        .ok_or_else(|| AppError::not_found("The tenant no longer exists."))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DomainBody {
    /// The shape `tenant::validate::domain` accepts (upper case is lowered), short enough for
    /// `_dirbridge.DOMAIN` to be a DNS name.
    #[schema(
        pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,60}[A-Za-z0-9])$",
        max_length = 242
    )]
    domain: String,
}

/// `POST /api/v1/tenant/domains`: claims a domain, unverified, and answers the TXT record that
/// proves it (201; 200 with the same challenge for a domain already claimed).
#[utoipa::path(
    post,
    path = "/api/v1/tenant/domains",
    operation_id = "addDomain",
    tag = "tenant",
    summary = "Claim a domain, unverified; answers the TXT record that proves it",
    request_body = DomainBody,
    responses(
        (status = 201, description = "The domain is claimed, unverified", body = TenantDomain),
        (status = 200, description = "The domain was already claimed: the same challenge", body = TenantDomain),
    ),
)]
pub async fn add_domain(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DomainBody>,
) -> ApiResult<(StatusCode, Json<TenantDomain>)> {
    let target = Some(body.domain.clone());
    let result = domains::claim(&state, &caller, &body.domain).await;
    let (domain, created) = audited(&state, &caller, "tenant.addDomain", target, result).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(domain)))
}

/// `GET /api/v1/tenant/domains`: every domain, verified or not.
#[utoipa::path(
    get,
    path = "/api/v1/tenant/domains",
    operation_id = "listDomains",
    tag = "tenant",
    summary = "The tenant's domains, verified or not",
    responses((status = 200, description = "Success", body = Vec<TenantDomain>)),
)]
pub async fn list_domains(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TenantDomain>>> {
    Ok(Json(domains::list(&state, &caller).await?))
}

/// `POST /api/v1/tenant/domains/{domain}/verify`: looks the TXT record up and verifies.
#[utoipa::path(
    post,
    path = "/api/v1/tenant/domains/{domain}/verify",
    operation_id = "verifyDomain",
    tag = "tenant",
    summary = "Look up the domain's TXT record and verify it",
    responses((status = 200, description = "The domain is verified", body = TenantDomain)),
)]
pub async fn verify_domain(
    State(state): State<AppState>,
    caller: Caller,
    Path(domain): Path<String>,
) -> ApiResult<Json<TenantDomain>> {
    let result = domains::verify(&state, &caller, &domain).await;
    Ok(Json(
        audited(&state, &caller, "tenant.verifyDomain", Some(domain), result).await?,
    ))
}
