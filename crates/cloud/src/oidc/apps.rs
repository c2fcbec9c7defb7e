//! `/api/v1/apps`: app registrations (Global Administrator), the HTTP side of [`app::apps`].
//! A confidential app's client secret is shown once, in the answer that creates it, and stored
//! only as a SHA-256 hash.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use proto::oidc::{App, AppCreated, AppPatch, KeysRotated, NewApp};

use crate::app::{self, apps::NewSecret, caller::Caller};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

/// The routes, nested under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/apps", get(list).post(create))
        .route("/apps/keys/rotate", post(rotate_keys))
        .route("/apps/{id}", get(read).patch(update).delete(remove))
        .route("/apps/{id}/secrets", post(add_secret))
        .route("/apps/{id}/secrets/{secret}", delete(remove_secret))
}

fn created(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    app: App,
    secret: Option<NewSecret>,
) -> (StatusCode, Json<AppCreated>) {
    let (client_secret, client_secret_id) = match &secret {
        Some(s) => (Some(s.secret.clone()), Some(s.id.clone())),
        None => (None, None),
    };
    let body = AppCreated {
        issuer: super::issuer(state, headers, &caller.tenant.initial_domain),
        app,
        client_secret,
        client_secret_id,
    };
    (StatusCode::CREATED, Json(body))
}

/// `GET /api/v1/apps`
#[utoipa::path(
    get,
    path = "/api/v1/apps",
    operation_id = "listApps",
    tag = "apps",
    summary = "App registrations of the tenant (OpenID Connect clients; Global Administrator)",
    responses((status = 200, description = "Success", body = Vec<App>)),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<App>>> {
    Ok(Json(app::apps::list(&state, &caller).await?))
}

/// `POST /api/v1/apps`: 201 with the app, its issuer and (confidential apps) the client secret.
#[utoipa::path(
    post,
    path = "/api/v1/apps",
    operation_id = "createApp",
    tag = "apps",
    summary = "Register an app; a confidential app's client secret is in this answer only (Global Administrator)",
    request_body = NewApp,
    responses((status = 201, description = "Registered", body = AppCreated)),
)]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    ApiJson(req): ApiJson<NewApp>,
) -> ApiResult<(StatusCode, Json<AppCreated>)> {
    let (app, secret) = app::apps::create(&state, &caller, req).await?;
    Ok(created(&state, &headers, &caller, app, secret))
}

/// `GET /api/v1/apps/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/apps/{id}",
    operation_id = "getApp",
    tag = "apps",
    summary = "One app registration (secrets by id only)",
    responses((status = 200, description = "Success", body = App)),
)]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<App>> {
    Ok(Json(app::apps::get(&state, &caller, &id).await?))
}

/// `PATCH /api/v1/apps/{id}`
#[utoipa::path(
    patch,
    path = "/api/v1/apps/{id}",
    operation_id = "updateApp",
    tag = "apps",
    summary = "Change an app's redirect URIs, scopes, access group, lifetimes or consent setting",
    request_body = AppPatch,
    responses((status = 200, description = "Success", body = App)),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<AppPatch>,
) -> ApiResult<Json<App>> {
    Ok(Json(app::apps::update(&state, &caller, &id, patch).await?))
}

/// `DELETE /api/v1/apps/{id}`: the app, its secrets, and every token it holds.
#[utoipa::path(
    delete,
    path = "/api/v1/apps/{id}",
    operation_id = "deleteApp",
    tag = "apps",
    summary = "Delete an app with its secrets and every token it holds",
    responses((status = 204, description = "Deleted")),
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::apps::delete(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/apps/{id}/secrets`: one more client secret (shown once), e.g. to roll over.
#[utoipa::path(
    post,
    path = "/api/v1/apps/{id}/secrets",
    operation_id = "addAppSecret",
    tag = "apps",
    summary = "One more client secret (shown once), to roll a secret over",
    responses((status = 201, description = "Created", body = AppCreated)),
)]
pub async fn add_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<AppCreated>)> {
    let (app, secret) = app::apps::add_secret(&state, &caller, &id).await?;
    Ok(created(&state, &headers, &caller, app, Some(secret)))
}

/// `DELETE /api/v1/apps/{id}/secrets/{secret}`
#[utoipa::path(
    delete,
    path = "/api/v1/apps/{id}/secrets/{secret}",
    operation_id = "removeAppSecret",
    tag = "apps",
    summary = "Remove one client secret",
    responses((status = 204, description = "Removed")),
)]
pub async fn remove_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, secret)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app::apps::remove_secret(&state, &caller, &id, &secret).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/apps/keys/rotate`: new signing keys for the tenant; the old ones stay
/// published until the tokens they signed have expired.
#[utoipa::path(
    post,
    path = "/api/v1/apps/keys/rotate",
    operation_id = "rotateSigningKeys",
    tag = "apps",
    summary = "New token signing keys; the old ones stay published until their tokens have expired",
    responses((status = 200, description = "Success", body = KeysRotated)),
)]
pub async fn rotate_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<KeysRotated>> {
    Ok(Json(KeysRotated {
        key_ids: app::apps::rotate_keys(&state, &caller).await?,
    }))
}
