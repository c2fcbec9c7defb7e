//! `/api/v1/users`: cloud-only users, their roles, passwords set by admins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use proto::{NewUser, Page, PageRequest, Role, Source, User, UserFilter, UserPatch};
use serde::{Deserialize, Serialize};
use tenant::roles::Operation;
use tenant::{secrets, validate};

use crate::audit::audited;
use crate::auth::Caller;
use crate::error::{ApiResult, AppError};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// Finds a user by id or, when the key holds an `@`, by UPN.
pub async fn resolve(state: &AppState, tenant_id: &str, key: &str) -> ApiResult<User> {
    let found = if key.contains('@') {
        state.store.get_user_by_upn(tenant_id, key).await?
    } else {
        state.store.get_user(tenant_id, key).await?
    };
    found.ok_or_else(|| {
        AppError::not_found(format!("No user with id or UPN '{key}' in this tenant."))
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    upn_prefix: Option<String>,
    display_name: Option<String>,
    sku_id: Option<String>,
    source: Option<Source>,
    after: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<User>>> {
    caller.authorize(Operation::ReadDirectory)?;
    let filter = UserFilter {
        upn_prefix: q.upn_prefix,
        display_name: q.display_name,
        sku_id: q
            .sku_id
            .map(|s| tenant::licensing::sku(&s).map(|k| k.id).unwrap_or(s)),
        source: q.source,
    };
    let page = PageRequest {
        after: q.after,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(Json(
        state
            .store
            .list_users(&caller.tenant.id, &filter, &page)
            .await?,
    ))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<User>> {
    caller.authorize(Operation::ReadDirectory)?;
    Ok(Json(resolve(&state, &caller.tenant.id, &key).await?))
}

fn clean_optional(field: &str, v: Option<&str>, max: usize) -> ApiResult<Option<String>> {
    Ok(validate::optional_text(field, v, max)?)
}

fn clean_mail(v: Option<&str>) -> ApiResult<Option<String>> {
    match clean_optional("mail", v, 254)? {
        Some(m) => Ok(Some(validate::mail("mail", &m)?)),
        None => Ok(None),
    }
}

fn clean_phone(field: &str, v: Option<&str>) -> ApiResult<Option<String>> {
    match clean_optional(field, v, 32)? {
        Some(p) => Ok(Some(validate::phone(field, &p)?)),
        None => Ok(None),
    }
}

fn clean_usage_location(v: Option<&str>) -> ApiResult<Option<String>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        Some(c) => Ok(Some(validate::usage_location(c)?)),
        None => Ok(None),
    }
}

fn hash_new_password(password: &str) -> ApiResult<String> {
    validate::new_password(password)?;
    Ok(secrets::hash_password(password))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let target = Some(body.user_principal_name.clone());
    let result = async {
        caller.authorize(Operation::CreateUser)?;
        if !body.roles.is_empty() {
            caller.authorize(Operation::AssignRoles)?;
        }
        let now = state.now();
        let user = User {
            id: secrets::new_id(),
            tenant_id: caller.tenant.id.clone(),
            user_principal_name: validate::upn(&body.user_principal_name, &caller.tenant.domains)?,
            display_name: validate::display_name(&body.display_name)?,
            given_name: clean_optional("givenName", body.given_name.as_deref(), 64)?,
            surname: clean_optional("surname", body.surname.as_deref(), 64)?,
            mail: clean_mail(body.mail.as_deref())?,
            mobile_phone: clean_phone("mobilePhone", body.mobile_phone.as_deref())?,
            office_phone: clean_phone("officePhone", body.office_phone.as_deref())?,
            usage_location: clean_usage_location(body.usage_location.as_deref())?,
            account_enabled: body.account_enabled,
            source: Source::Cloud,
            roles: dedup_roles(body.roles.clone()),
            on_premises: None,
            created_at: now,
            updated_at: now,
        };
        let hash = match body.password.as_deref() {
            Some(p) => Some(hash_new_password(p)?),
            None => None,
        };
        state.store.insert_user(&user, hash.as_deref()).await?;
        Ok(user)
    }
    .await;
    let user = audited(&state, &caller, "user.create", target, result).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

fn dedup_roles(mut roles: Vec<Role>) -> Vec<Role> {
    roles.sort();
    roles.dedup();
    roles
}

/// The API names of the fields a patch touches.
fn touched(p: &UserPatch) -> Vec<&'static str> {
    let mut f = Vec::new();
    if p.user_principal_name.is_some() {
        f.push("userPrincipalName")
    }
    if p.display_name.is_some() {
        f.push("displayName")
    }
    if p.given_name.is_some() {
        f.push("givenName")
    }
    if p.surname.is_some() {
        f.push("surname")
    }
    if p.mail.is_some() {
        f.push("mail")
    }
    if p.mobile_phone.is_some() {
        f.push("mobilePhone")
    }
    if p.office_phone.is_some() {
        f.push("officePhone")
    }
    if p.usage_location.is_some() {
        f.push("usageLocation")
    }
    if p.account_enabled.is_some() {
        f.push("accountEnabled")
    }
    if p.roles.is_some() {
        f.push("roles")
    }
    f
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    let result = async {
        let fields = touched(&patch);
        let op = if fields == ["usageLocation"] { Operation::SetUsageLocation } else { Operation::UpdateUser };
        caller.authorize(op)?;
        if fields.is_empty() {
            return Err(AppError::bad_request("The patch changes nothing: send at least one field."));
        }
        let mut user = resolve(&state, &caller.tenant.id, &key).await?;
        caller.authorize_on(&user, op)?;
        if patch.roles.is_some() {
            caller.authorize(Operation::AssignRoles)?;
            if user.id == caller.user.id
                && user.roles.contains(&Role::GlobalAdministrator)
                && !patch.roles.as_ref().is_some_and(|r| r.contains(&Role::GlobalAdministrator))
            {
                return Err(AppError::bad_request(
                    "You cannot remove your own Global Administrator role; another Global Administrator must do it, so the tenant always keeps one.",
                ));
            }
        }
        if patch.account_enabled == Some(false) && user.id == caller.user.id {
            return Err(AppError::bad_request("You cannot disable your own account."));
        }
        if let Some(op) = &user.on_premises {
            if let Some(owned) = fields.iter().find(|f| op.owned_attributes.iter().any(|o| o == *f)) {
                return Err(AppError::bad_request(format!(
                    "{owned} is managed on-premises for this synced user: change it in the on-premises directory and it reaches the cloud with the next sync."
                )));
            }
        }
        let before = (user.usage_location.clone(), user.account_enabled);
        if let Some(v) = &patch.user_principal_name {
            user.user_principal_name = validate::upn(v, &caller.tenant.domains)?;
        }
        if let Some(v) = &patch.display_name {
            user.display_name = validate::display_name(v)?;
        }
        if let Some(v) = &patch.given_name {
            user.given_name = clean_optional("givenName", v.as_deref(), 64)?;
        }
        if let Some(v) = &patch.surname {
            user.surname = clean_optional("surname", v.as_deref(), 64)?;
        }
        if let Some(v) = &patch.mail {
            user.mail = clean_mail(v.as_deref())?;
        }
        if let Some(v) = &patch.mobile_phone {
            user.mobile_phone = clean_phone("mobilePhone", v.as_deref())?;
        }
        if let Some(v) = &patch.office_phone {
            user.office_phone = clean_phone("officePhone", v.as_deref())?;
        }
        if let Some(v) = &patch.usage_location {
            user.usage_location = clean_usage_location(v.as_deref())?;
            if user.usage_location.is_none() {
                let direct: Vec<String> = state
                    .store
                    .list_assignments(&caller.tenant.id, Some(&user.id), None)
                    .await?
                    .into_iter()
                    .filter(|a| a.source == proto::AssignmentSource::Direct)
                    .map(|a| a.sku_id)
                    .collect();
                if !direct.is_empty() {
                    return Err(AppError::bad_request(format!(
                        "usageLocation: cannot be cleared while the user holds {} directly; remove the licence first (dirbridge licenses remove).",
                        direct.join(", ")
                    )));
                }
            }
        }
        if let Some(v) = patch.account_enabled {
            user.account_enabled = v;
        }
        if let Some(v) = &patch.roles {
            user.roles = dedup_roles(v.clone());
        }
        user.updated_at = state.now();
        state.store.update_user(&user).await?;
        if before != (user.usage_location.clone(), user.account_enabled) {
            crate::group_licensing::reconcile_users(&state, &caller.tenant, [user.id.clone()]).await?;
        }
        Ok(user)
    }
    .await;
    Ok(Json(
        audited(&state, &caller, "user.update", Some(key), result).await?,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let result = async {
        caller.authorize(Operation::DeleteUser)?;
        let user = resolve(&state, &caller.tenant.id, &key).await?;
        caller.authorize_on(&user, Operation::DeleteUser)?;
        if user.id == caller.user.id {
            return Err(AppError::bad_request("You cannot delete your own account."));
        }
        state.store.delete_user(&caller.tenant.id, &user.id).await?;
        crate::group_licensing::reconcile_users(&state, &caller.tenant, [user.id.clone()]).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    audited(&state, &caller, "user.delete", Some(key), result).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordBody {
    password: String,
    /// Synced users only: the person must change the password at next sign-in.
    #[serde(default)]
    must_change: bool,
    /// Synced users only: also unlock the on-premises account.
    #[serde(default)]
    unlock: bool,
}

impl std::fmt::Debug for PasswordBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordBody([redacted])")
    }
}

impl Drop for PasswordBody {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// Most characters of a password sent to the on-premises directory (its own policy decides
/// everything else, so a refusal comes back as `policyRefused` with the reason).
const ONPREM_PASSWORD_MAX: usize = 256;

/// Admin reset of a user's password. A cloud-only user's password is set here and its tokens
/// are revoked (204). A user synced from on-premises has it written to the on-premises
/// directory by a writeback agent (`adminReset`, optionally followed by `unlock`): 200 with
/// the [`proto::writeback::WritebackResult`], whose `outcome` says what happened.
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<Response> {
    let found = async {
        caller.authorize(Operation::ResetPassword)?;
        let user = resolve(&state, &caller.tenant.id, &key).await?;
        caller.authorize_on(&user, Operation::ResetPassword)?;
        Ok(user)
    }
    .await;
    let user = match found {
        Ok(u) if u.source == Source::OnPremises => u,
        Ok(u) => return reset_cloud_password(&state, &caller, key, &u, &body).await,
        Err(e) => return audited(&state, &caller, "user.resetPassword", Some(key), Err(e)).await,
    };
    let n = body.password.chars().count();
    if n == 0 || n > ONPREM_PASSWORD_MAX || body.password.chars().any(char::is_control) {
        let e = AppError::bad_request(format!(
            "password: must be 1 to {ONPREM_PASSWORD_MAX} characters with no control characters; the on-premises password policy decides the rest"
        ));
        return audited(&state, &caller, "user.resetPassword", Some(key), Err(e)).await;
    }
    let anchor = user
        .on_premises
        .as_ref()
        .map(|o| o.immutable_id.clone())
        .unwrap_or_default();
    let op = proto::writeback::WritebackOperation::AdminReset {
        anchor: anchor.clone(),
        new_password: body.password.clone(),
        must_change: body.must_change,
    };
    let tenant_id = caller.tenant.id.clone();
    let mut result = crate::writeback::submit(&state, &tenant_id, &user, op, caller.upn()).await?;
    if body.unlock && result.outcome == proto::writeback::Outcome::Succeeded {
        let unlock = proto::writeback::WritebackOperation::Unlock { anchor };
        let r = crate::writeback::submit(&state, &tenant_id, &user, unlock, caller.upn()).await?;
        if r.outcome != proto::writeback::Outcome::Succeeded {
            result = r;
        }
    }
    Ok(Json(result).into_response())
}

async fn reset_cloud_password(
    state: &AppState,
    caller: &Caller,
    key: String,
    user: &User,
    body: &PasswordBody,
) -> ApiResult<Response> {
    let result = async {
        let hash = hash_new_password(&body.password)?;
        state
            .store
            .set_password_hash(&caller.tenant.id, &user.id, Some(&hash))
            .await?;
        state
            .store
            .revoke_user_tokens(&caller.tenant.id, &user.id)
            .await?;
        crate::auth::unlock_sign_in(state, &user.user_principal_name).await;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    audited(state, caller, "user.resetPassword", Some(key), result).await
}

/// `POST /api/v1/users/{user}/unlock`: unlocks a synced user's on-premises account through
/// writeback; 200 with the [`proto::writeback::WritebackResult`].
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<proto::writeback::WritebackResult>> {
    let found = async {
        caller.authorize(Operation::ResetPassword)?;
        let user = resolve(&state, &caller.tenant.id, &key).await?;
        caller.authorize_on(&user, Operation::ResetPassword)?;
        Ok(user)
    }
    .await;
    // Refusals are audited here; the unlock itself is audited by the writeback (`writeback.unlock`).
    let user = match found {
        Ok(u) => u,
        Err(e) => return audited(&state, &caller, "user.unlock", Some(key), Err(e)).await,
    };
    let anchor = user
        .on_premises
        .as_ref()
        .map(|o| o.immutable_id.clone())
        .unwrap_or_default();
    let op = proto::writeback::WritebackOperation::Unlock { anchor };
    let tenant_id = caller.tenant.id.clone();
    Ok(Json(
        crate::writeback::submit(&state, &tenant_id, &user, op, caller.upn()).await?,
    ))
}

#[derive(Serialize)]
pub struct Revoked {
    revoked: u64,
}

pub async fn revoke_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Revoked>> {
    let result = async {
        caller.authorize(Operation::RevokeTokens)?;
        let user = resolve(&state, &caller.tenant.id, &key).await?;
        caller.authorize_on(&user, Operation::UpdateUser)?;
        Ok(state
            .store
            .revoke_user_tokens(&caller.tenant.id, &user.id)
            .await?)
    }
    .await;
    let revoked = audited(&state, &caller, "user.revokeTokens", Some(key), result).await?;
    Ok(Json(Revoked { revoked }))
}
