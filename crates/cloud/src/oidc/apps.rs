//! `/api/v1/apps`: app registrations (Global Administrator). A confidential app's client
//! secret is shown once, in the answer that creates it, and stored only as a SHA-256 hash.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use proto::oidc::{App, AppCreated, AppPatch, ClientType, KeysRotated, NewApp};
use tenant::roles::Operation;
use tenant::secrets;

use crate::app::caller::Caller;
use crate::audit::audited;
use crate::error::{ApiResult, AppError};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Prefix of client secrets, so a leaked one is recognisable.
pub const SECRET_PREFIX: &str = "dbs_";

/// The routes, nested under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/apps", get(list).post(create))
        .route("/apps/keys/rotate", post(rotate_keys))
        .route("/apps/{id}", get(read).patch(update).delete(remove))
        .route("/apps/{id}/secrets", post(add_secret))
        .route("/apps/{id}/secrets/{secret}", delete(remove_secret))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<App> {
    state
        .store
        .get_app(&caller.tenant.id, id)
        .await?
        .ok_or_else(|| {
            AppError::not_found(format!(
                "No app with id {id} in this tenant (dirbridge apps list)."
            ))
        })
}

/// What an app's settings need before they are stored: its access group exists, and the key
/// of its ID-token algorithm is published (so a relying party that read the JWKS at discovery
/// knows the key of its first token).
async fn prepare(state: &AppState, caller: &Caller, app: &App) -> ApiResult<()> {
    if let Some(g) = &app.access_group_id {
        if state.store.get_group(&caller.tenant.id, g).await?.is_none() {
            return Err(AppError::bad_request(format!(
                "accessGroupId: there is no group {g} in this tenant (dirbridge groups list)."
            )));
        }
    }
    if let Some(alg) = tenant::oidc::keys::Alg::parse(&app.id_token_signing_alg) {
        super::keys::ensure(state, &caller.tenant.id, alg).await?;
    }
    Ok(())
}

/// A new client secret for `app`: the secret (shown once) and its id.
async fn new_secret(state: &AppState, app: &App) -> ApiResult<(String, String)> {
    let (secret, hash) = secrets::new_prefixed_token(SECRET_PREFIX);
    let id = secrets::new_id();
    state
        .store
        .insert_app_secret(&app.id, &id, &hash, state.now())
        .await?;
    Ok((secret, id))
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
    caller.authorize(Operation::ManageApps)?;
    Ok(Json(state.store.list_apps(&caller.tenant.id).await?))
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
    let target = Some(req.name.clone());
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        let app = tenant::oidc::new_app(
            req,
            secrets::new_id(),
            caller.tenant.id.clone(),
            state.now(),
        )?;
        prepare(&state, &caller, &app).await?;
        state.store.insert_app(&app).await?;
        let (client_secret, client_secret_id) = if app.client_type == ClientType::Confidential {
            let (s, id) = new_secret(&state, &app).await?;
            (Some(s), Some(id))
        } else {
            (None, None)
        };
        let app = find(&state, &caller, &app.id).await?;
        Ok(AppCreated {
            issuer: super::issuer(&state, &headers, &caller.tenant.initial_domain),
            app,
            client_secret,
            client_secret_id,
        })
    }
    .await;
    let created = audited(&state, &caller, "app.create", target, result).await?;
    Ok((StatusCode::CREATED, Json(created)))
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
    caller.authorize(Operation::ManageApps)?;
    Ok(Json(find(&state, &caller, &id).await?))
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
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        let app = tenant::oidc::patch_app(find(&state, &caller, &id).await?, patch, state.now())?;
        prepare(&state, &caller, &app).await?;
        state.store.update_app(&app).await?;
        find(&state, &caller, &id).await
    }
    .await;
    Ok(Json(
        audited(&state, &caller, "app.update", Some(id.clone()), result).await?,
    ))
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
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        if state.store.delete_app(&caller.tenant.id, &id).await? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(AppError::not_found(format!(
                "No app with id {id} in this tenant (dirbridge apps list)."
            )))
        }
    }
    .await;
    audited(&state, &caller, "app.delete", Some(id), result).await
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
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        let app = find(&state, &caller, &id).await?;
        if app.client_type != ClientType::Confidential {
            return Err(AppError::bad_request(
                "A public app has no client secret: it proves itself with PKCE.",
            ));
        }
        let (s, sid) = new_secret(&state, &app).await?;
        Ok(AppCreated {
            issuer: super::issuer(&state, &headers, &caller.tenant.initial_domain),
            app: find(&state, &caller, &id).await?,
            client_secret: Some(s),
            client_secret_id: Some(sid),
        })
    }
    .await;
    let created = audited(&state, &caller, "app.addSecret", Some(id), result).await?;
    Ok((StatusCode::CREATED, Json(created)))
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
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        if state
            .store
            .delete_app_secret(&caller.tenant.id, &id, &secret)
            .await?
        {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(AppError::not_found(format!(
                "The app {id} has no client secret {secret}."
            )))
        }
    }
    .await;
    audited(&state, &caller, "app.removeSecret", Some(id), result).await
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
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        Ok(KeysRotated {
            key_ids: super::keys::rotate(&state, &caller.tenant.id).await?,
        })
    }
    .await;
    Ok(Json(
        audited(&state, &caller, "oidc.rotateKeys", None, result).await?,
    ))
}
