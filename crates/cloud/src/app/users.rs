//! Users: list, read, create, change, delete, reset passwords (in the cloud, or written back
//! for synced users), unlock and revoke sign-in sessions, for administrators. Who may do each
//! is [`tenant::roles`]'s decision (including which operation a change needs,
//! [`tenant::roles::patch_operation`]); what a value may be is [`tenant::validate`]'s.

use proto::writeback::{Outcome, WritebackOperation, WritebackResult};
use proto::{NewUser, Page, PageRequest, Role, Source, User, UserFilter, UserPatch};
use serde::Deserialize;
use tenant::roles::{self, Operation};
use tenant::secrets;
use tenant::validate::{self, PasswordJudge};

use super::caller::Caller;
use super::Ctx;
use crate::audit::audited;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// A page of the tenant's users.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    mut filter: UserFilter,
    page: &PageRequest,
) -> ApiResult<Page<User>> {
    caller.authorize(Operation::ReadDirectory)?;
    // A SKU may be named by any spelling the catalogue knows.
    filter.sku_id = filter
        .sku_id
        .map(|s| tenant::licensing::sku(&s).map(|k| k.id).unwrap_or(s));
    Ok(state
        .store
        .list_users(&caller.tenant.id, &filter, page)
        .await?)
}

/// The user `key` (id or UPN).
pub async fn get(state: &AppState, caller: &Caller, key: &str) -> ApiResult<User> {
    caller.authorize(Operation::ReadDirectory)?;
    super::directory::user(state, &caller.tenant.id, key).await
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

/// Creates a cloud user (roles need [`Operation::AssignRoles`] as well). Audited.
pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    body: NewUser,
) -> ApiResult<User> {
    let target = Some(body.user_principal_name.clone());
    let result = async {
        caller.authorize(Operation::CreateUser)?;
        if !body.roles.is_empty() {
            caller.authorize(Operation::AssignRoles)?;
        }
        let now = ctx.now;
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
    audited(state, caller, "user.create", target, result).await
}

fn dedup_roles(mut roles: Vec<Role>) -> Vec<Role> {
    roles.sort();
    roles.dedup();
    roles
}

/// The API names of the fields a patch touches.
fn touched(p: &UserPatch) -> Vec<&'static str> {
    [
        ("userPrincipalName", p.user_principal_name.is_some()),
        ("displayName", p.display_name.is_some()),
        ("givenName", p.given_name.is_some()),
        ("surname", p.surname.is_some()),
        ("mail", p.mail.is_some()),
        ("mobilePhone", p.mobile_phone.is_some()),
        ("officePhone", p.office_phone.is_some()),
        ("usageLocation", p.usage_location.is_some()),
        ("accountEnabled", p.account_enabled.is_some()),
        ("roles", p.roles.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// Changes the fields `patch` names of the user `key`. The operation it needs follows from the
/// fields ([`roles::patch_operation`]); a synced user's on-premises attributes are refused;
/// nobody disables their own account or drops their own Global Administrator role. Audited.
pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    key: &str,
    patch: UserPatch,
) -> ApiResult<User> {
    let result = async {
        let fields = touched(&patch);
        let op = roles::patch_operation(&fields);
        caller.authorize(op)?;
        if fields.is_empty() {
            return Err(AppError::bad_request("The patch changes nothing: send at least one field."));
        }
        let mut user = super::directory::user(state, &caller.tenant.id, key).await?;
        caller.authorize_on(&user, op)?;
        if let Some(new_roles) = &patch.roles {
            caller.authorize(Operation::AssignRoles)?;
            roles::check_own_roles_change(user.id == caller.user.id, &user.roles, new_roles)?;
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
        user.updated_at = ctx.now;
        state.store.update_user(&user).await?;
        if before != (user.usage_location.clone(), user.account_enabled) {
            super::group_licensing::reconcile_users(state, &caller.tenant, [user.id.clone()])
                .await?;
        }
        Ok(user)
    }
    .await;
    audited(state, caller, "user.update", Some(key.to_string()), result).await
}

/// Deletes the user `key` (never the caller's own account). Audited.
pub async fn delete(state: &AppState, caller: &Caller, key: &str) -> ApiResult<()> {
    let result = async {
        caller.authorize(Operation::DeleteUser)?;
        let user = super::directory::user(state, &caller.tenant.id, key).await?;
        caller.authorize_on(&user, Operation::DeleteUser)?;
        if user.id == caller.user.id {
            return Err(AppError::bad_request("You cannot delete your own account."));
        }
        state.store.delete_user(&caller.tenant.id, &user.id).await?;
        super::group_licensing::reconcile_users(state, &caller.tenant, [user.id.clone()]).await
    }
    .await;
    audited(state, caller, "user.delete", Some(key.to_string()), result).await
}

/// An administrator's new password for a user. `Debug` hides the password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = AdminResetBody)]
pub struct PasswordBody {
    #[schema(min_length = 1, max_length = 256, format = Password)]
    pub password: String,
    /// Synced users only: the person must change the password at next sign-in.
    #[serde(default)]
    pub must_change: bool,
    /// Synced users only: also unlock the on-premises account.
    #[serde(default)]
    pub unlock: bool,
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

/// How an admin reset ended.
#[derive(Debug)]
pub enum PasswordReset {
    /// A cloud-only user's password was set in the cloud and its tokens revoked.
    InCloud,
    /// A synced user's password went to the on-premises directory; `outcome` says what happened.
    WrittenBack(WritebackResult),
}

/// Admin reset of the user `key`'s password. A cloud-only user's password is set here (the
/// cloud rule) and its tokens are revoked. A user synced from on-premises has it written to the
/// on-premises directory by a writeback agent (`adminReset`, optionally followed by `unlock`),
/// whose policy judges it. Refusals are audited here; a writeback is audited by the writeback.
pub async fn reset_password(
    state: &AppState,
    caller: &Caller,
    key: &str,
    body: &PasswordBody,
) -> ApiResult<PasswordReset> {
    let target = Some(key.to_string());
    let found = async {
        caller.authorize(Operation::ResetPassword)?;
        let user = super::directory::user(state, &caller.tenant.id, key).await?;
        caller.authorize_on(&user, Operation::ResetPassword)?;
        Ok(user)
    }
    .await;
    let user = match found {
        Ok(u) if u.source == Source::OnPremises => u,
        Ok(u) => {
            let result = async {
                let hash = hash_new_password(&body.password)?;
                state
                    .store
                    .set_password_hash(&caller.tenant.id, &u.id, Some(&hash))
                    .await?;
                state
                    .store
                    .revoke_user_tokens(&caller.tenant.id, &u.id)
                    .await?;
                super::lockout::unlock_sign_in(state, &u.user_principal_name).await;
                notify_reset(state, caller, &u).await?;
                Ok(PasswordReset::InCloud)
            }
            .await;
            return audited(state, caller, "user.resetPassword", target, result).await;
        }
        Err(e) => return audited(state, caller, "user.resetPassword", target, Err(e)).await,
    };
    if let Err(e) =
        validate::new_password_for("password", &body.password, PasswordJudge::OnPremises)
    {
        return audited(state, caller, "user.resetPassword", target, Err(e.into())).await;
    }
    let anchor = anchor_of(&user);
    let op = WritebackOperation::AdminReset {
        anchor: anchor.clone(),
        new_password: body.password.clone(),
        must_change: body.must_change,
    };
    let tenant_id = caller.tenant.id.clone();
    let mut result = crate::writeback::submit(state, &tenant_id, &user, op, caller.upn()).await?;
    if body.unlock && result.outcome == Outcome::Succeeded {
        let unlock = WritebackOperation::Unlock { anchor };
        let r = crate::writeback::submit(state, &tenant_id, &user, unlock, caller.upn()).await?;
        if r.outcome != Outcome::Succeeded {
            result = r;
        }
    }
    if result.outcome == Outcome::Succeeded {
        notify_reset(state, caller, &user).await?;
    }
    Ok(PasswordReset::WrittenBack(result))
}

/// The notices of a password reset by the administrator `caller`, as the tenant's policy says
/// ([`super::sspr::notify_password`]).
async fn notify_reset(state: &AppState, caller: &Caller, user: &User) -> ApiResult<()> {
    let p = super::sspr::tenant_policy(state, &caller.tenant.id).await?;
    super::sspr::notify_password(
        state,
        &Ctx::of(state),
        &p,
        user,
        crate::notices::PasswordNotice::Reset,
        false,
        Some(caller.upn()),
    )
    .await;
    Ok(())
}

/// The source anchor of a synced user (empty for a cloud user: writeback refuses it).
fn anchor_of(user: &User) -> String {
    user.on_premises
        .as_ref()
        .map(|o| o.immutable_id.clone())
        .unwrap_or_default()
}

/// Unlocks the synced user `key`'s on-premises account through writeback. Refusals are audited
/// here; the unlock itself by the writeback (`writeback.unlock`).
pub async fn unlock(state: &AppState, caller: &Caller, key: &str) -> ApiResult<WritebackResult> {
    let found = async {
        caller.authorize(Operation::ResetPassword)?;
        let user = super::directory::user(state, &caller.tenant.id, key).await?;
        caller.authorize_on(&user, Operation::ResetPassword)?;
        Ok(user)
    }
    .await;
    let user = match found {
        Ok(u) => u,
        Err(e) => {
            return audited(state, caller, "user.unlock", Some(key.to_string()), Err(e)).await
        }
    };
    let op = WritebackOperation::Unlock {
        anchor: anchor_of(&user),
    };
    let tenant_id = caller.tenant.id.clone();
    crate::writeback::submit(state, &tenant_id, &user, op, caller.upn()).await
}

/// Revokes every sign-in token of the user `key`; returns how many. Audited.
pub async fn revoke_tokens(state: &AppState, caller: &Caller, key: &str) -> ApiResult<u64> {
    let result = async {
        caller.authorize(Operation::RevokeTokens)?;
        let user = super::directory::user(state, &caller.tenant.id, key).await?;
        caller.authorize_on(&user, Operation::UpdateUser)?;
        Ok(state
            .store
            .revoke_user_tokens(&caller.tenant.id, &user.id)
            .await?)
    }
    .await;
    audited(
        state,
        caller,
        "user.revokeTokens",
        Some(key.to_string()),
        result,
    )
    .await
}
