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
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<App>>> {
    Ok(Json(app::apps::list(&state, &caller).await?))
}

/// `POST /api/v1/apps`: 201 with the app, its issuer and (confidential apps) the client secret.
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
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<App>> {
    Ok(Json(app::apps::get(&state, &caller, &id).await?))
}

/// `PATCH /api/v1/apps/{id}`
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<AppPatch>,
) -> ApiResult<Json<App>> {
    Ok(Json(app::apps::update(&state, &caller, &id, patch).await?))
}

/// `DELETE /api/v1/apps/{id}`: the app, its secrets, and every token it holds.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::apps::delete(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/apps/{id}/secrets`: one more client secret (shown once), e.g. to roll over.
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
pub async fn rotate_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<KeysRotated>> {
    Ok(Json(KeysRotated {
        key_ids: app::apps::rotate_keys(&state, &caller).await?,
    }))
}

/// The operations of this module in the OpenAPI document (`crate::openapi`).
pub const OPERATIONS: &[crate::api::Operation] = &[
    ("get", "/api/v1/apps", "listApps", "App registrations of the tenant (OpenID Connect clients; Global Administrator)", None, 200),
    ("post", "/api/v1/apps", "createApp", "Register an app; a confidential app's client secret is in this answer only (Global Administrator)", Some("NewApp"), 201),
    ("get", "/api/v1/apps/{appId}", "getApp", "One app registration (secrets by id only)", None, 200),
    ("patch", "/api/v1/apps/{appId}", "updateApp", "Change an app's redirect URIs, scopes, access group, lifetimes or consent setting", Some("AppPatch"), 200),
    ("delete", "/api/v1/apps/{appId}", "deleteApp", "Delete an app with its secrets and every token it holds", None, 204),
    ("post", "/api/v1/apps/{appId}/secrets", "addAppSecret", "One more client secret (shown once), to roll a secret over", None, 201),
    ("delete", "/api/v1/apps/{appId}/secrets/{secretId}", "removeAppSecret", "Remove one client secret", None, 204),
    ("post", "/api/v1/apps/keys/rotate", "rotateSigningKeys", "New token signing keys; the old ones stay published until their tokens have expired", None, 200),
];

/// The request schemas of [`OPERATIONS`].
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let uris =
        json!({"type": "array", "items": {"type": "string", "format": "uri"}, "maxItems": 20});
    let scopes = json!({"type": "array", "items": {"enum": tenant::oidc::SUPPORTED_SCOPES}});
    let common = json!({
        "name": {"type": "string"},
        "redirectUris": uris,
        "postLogoutRedirectUris": uris,
        "allowedScopes": scopes,
        "accessGroupId": {"type": ["string", "null"]},
        "accessTokenLifetimeSecs": {"type": "integer", "minimum": 60, "maximum": tenant::oidc::MAX_TOKEN_SECS},
        "idTokenLifetimeSecs": {"type": "integer", "minimum": 60, "maximum": tenant::oidc::MAX_TOKEN_SECS},
        "refreshTokenLifetimeSecs": {"type": "integer", "minimum": 300, "maximum": tenant::oidc::MAX_REFRESH_TOKEN_SECS},
        "skipConsent": {"type": "boolean"},
        "idTokenSigningAlg": {"enum": ["ES256", "RS256"]},
    });
    let mut new_app = common.clone();
    new_app["clientType"] = json!({"enum": ["confidential", "public"]});
    vec![
        (
            "NewApp",
            json!({"type": "object", "properties": new_app, "required": ["name", "redirectUris"]}),
        ),
        ("AppPatch", json!({"type": "object", "properties": common})),
    ]
}
