//! App registrations (OpenID Connect clients of the tenant's provider): list, register, change,
//! delete, and client secrets — for the admin API (`/api/v1/apps`) and the admin page
//! (`/admin/apps`) alike. Every operation is [`Operation::ManageApps`]'s and audited; what a
//! registration may hold is [`tenant::oidc::new_app`] / [`tenant::oidc::patch_app`]'s. A client
//! secret is returned once, by the call that makes it, and stored only as a SHA-256 hash.

use proto::oidc::{App, AppPatch, ClientType, NewApp};
use tenant::roles::Operation;
use tenant::secrets;

use super::caller::Caller;
use crate::audit::audited;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// Prefix of client secrets, so a leaked one is recognisable.
pub const SECRET_PREFIX: &str = "dbs_";

/// A client secret just made: the secret itself (shown this once) and its id.
pub struct NewSecret {
    pub secret: String,
    pub id: String,
}

impl Drop for NewSecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
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
        crate::oidc::keys::ensure(state, &caller.tenant.id, alg).await?;
    }
    Ok(())
}

async fn new_secret(state: &AppState, app: &App) -> ApiResult<NewSecret> {
    let (secret, hash) = secrets::new_prefixed_token(SECRET_PREFIX);
    let id = secrets::new_id();
    state
        .store
        .insert_app_secret(&app.id, &id, &hash, state.now())
        .await?;
    Ok(NewSecret { secret, id })
}

/// The tenant's app registrations.
pub async fn list(state: &AppState, caller: &Caller) -> ApiResult<Vec<App>> {
    caller.authorize(Operation::ManageApps)?;
    Ok(state.store.list_apps(&caller.tenant.id).await?)
}

/// One app registration (its secrets by id only).
pub async fn get(state: &AppState, caller: &Caller, id: &str) -> ApiResult<App> {
    caller.authorize(Operation::ManageApps)?;
    find(state, caller, id).await
}

/// Registers an app; a confidential app gets its first client secret. Audited (`app.create`).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    req: NewApp,
) -> ApiResult<(App, Option<NewSecret>)> {
    let target = Some(req.name.clone());
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        let app = tenant::oidc::new_app(
            req,
            secrets::new_id(),
            caller.tenant.id.clone(),
            state.now(),
        )?;
        prepare(state, caller, &app).await?;
        state.store.insert_app(&app).await?;
        let secret = if app.client_type == ClientType::Confidential {
            Some(new_secret(state, &app).await?)
        } else {
            None
        };
        Ok((find(state, caller, &app.id).await?, secret))
    }
    .await;
    audited(state, caller, "app.create", target, result).await
}

/// Changes an app's settings. Audited (`app.update`).
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    patch: AppPatch,
) -> ApiResult<App> {
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        let app = tenant::oidc::patch_app(find(state, caller, id).await?, patch, state.now())?;
        prepare(state, caller, &app).await?;
        state.store.update_app(&app).await?;
        find(state, caller, id).await
    }
    .await;
    audited(state, caller, "app.update", Some(id.to_string()), result).await
}

/// Deletes an app with its secrets and every token it holds. Audited (`app.delete`).
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> ApiResult<()> {
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        if state.store.delete_app(&caller.tenant.id, id).await? {
            Ok(())
        } else {
            Err(AppError::not_found(format!(
                "No app with id {id} in this tenant (dirbridge apps list)."
            )))
        }
    }
    .await;
    audited(state, caller, "app.delete", Some(id.to_string()), result).await
}

/// One more client secret of a confidential app (e.g. to roll over). Audited (`app.addSecret`).
pub async fn add_secret(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(App, NewSecret)> {
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        let app = find(state, caller, id).await?;
        if app.client_type != ClientType::Confidential {
            return Err(AppError::bad_request(
                "A public app has no client secret: it proves itself with PKCE.",
            ));
        }
        let secret = new_secret(state, &app).await?;
        Ok((find(state, caller, id).await?, secret))
    }
    .await;
    audited(state, caller, "app.addSecret", Some(id.to_string()), result).await
}

/// Removes one client secret. Audited (`app.removeSecret`).
pub async fn remove_secret(
    state: &AppState,
    caller: &Caller,
    id: &str,
    secret_id: &str,
) -> ApiResult<()> {
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        if state
            .store
            .delete_app_secret(&caller.tenant.id, id, secret_id)
            .await?
        {
            Ok(())
        } else {
            Err(AppError::not_found(format!(
                "The app {id} has no client secret {secret_id}."
            )))
        }
    }
    .await;
    audited(
        state,
        caller,
        "app.removeSecret",
        Some(id.to_string()),
        result,
    )
    .await
}

/// New signing keys for the tenant; the old ones stay published until the tokens they signed
/// have expired. Audited (`oidc.rotateKeys`).
pub async fn rotate_keys(state: &AppState, caller: &Caller) -> ApiResult<Vec<String>> {
    let result = async {
        caller.authorize(Operation::ManageApps)?;
        crate::oidc::keys::rotate(state, &caller.tenant.id).await
    }
    .await;
    audited(state, caller, "oidc.rotateKeys", None, result).await
}
