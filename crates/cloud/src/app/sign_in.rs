//! Sign-in and sign-out, for the API and the portal alike: the per-account throttle on failed
//! sign-ins (counted in the database, so every instance shares it and it has no table to fill
//! up), Argon2id-verified cloud passwords, pass-through sign-in of synced users, the token and
//! the audit record.
//!
//! Users synced from on-premises have no password in the cloud: their sign-in is checked by
//! **pass-through** ([`crate::writeback::pass_through`]): the password is sealed to the
//! tenant's agents, one of which binds to the directory as the user. The per-account **smart
//! lockout** counts the attempt first, so at most [`MAX_FAILED_SIGN_INS`] guesses reach the
//! directory before the account is locked in the cloud, however many instances share the
//! database; after that, one per lockout, each lockout twice as long as the one before
//! ([`LOCKOUT`]). A password accepted, reset or unlocked (by an administrator or by
//! self-service) forgets the count.

use proto::writeback::{OperationKind, Outcome};
use proto::{AuditResult, ErrorCode, Source, Tenant, TokenRequest, TokenResponse, User};
use store::TokenRecord;
use tenant::secrets;
use tenant::validate::Upn;

use super::caller::Caller;
use super::Ctx;
use crate::audit::record;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

use super::lockout::{clear_failures, release_attempt, reserve_attempt, too_many_failures};
pub use super::lockout::{LOCKOUT, MAX_FAILED_SIGN_INS};

/// Verifies off the async runtime, at most `password_checks` at once (429 when the queue stays
/// full). With no stored hash it still spends the time of one check, so a wrong UPN and a wrong
/// password cannot be told apart by timing.
async fn verify(state: &AppState, password: String, phc: Option<String>) -> ApiResult<bool> {
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        state.password_checks.clone().acquire_owned(),
    )
    .await
    .map_err(|_| busy())?
    .map_err(|_| busy())?;
    let ok = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        secrets::verify_password_or_dummy(&password, phc.as_deref())
    })
    .await
    .unwrap_or(false);
    Ok(ok)
}

fn busy() -> AppError {
    AppError::new(
        proto::ErrorCode::TooManyRequests,
        "The service is busy checking other sign-ins. Try again in a few seconds.",
    )
}

/// Sign-in with a user name and password, for the API and the portal alike: the throttle, the
/// pass-through check of synced users, the token and the audit record. The known-device
/// cookie is the front end's to set ([`crate::limits::device_cookie`]).
pub async fn password(state: &AppState, ctx: &Ctx, req: TokenRequest) -> ApiResult<TokenResponse> {
    sign_in(state, ctx, req, 0).await
}

/// [`password`] for a browser (the portal's and the app sign-in's form): the session it opens
/// also ends after `[portal] idle_timeout_secs` without use.
pub async fn browser_session(
    state: &AppState,
    ctx: &Ctx,
    req: TokenRequest,
) -> ApiResult<TokenResponse> {
    sign_in(
        state,
        ctx,
        req,
        state.config.portal.idle_timeout_secs.max(0),
    )
    .await
}

/// `idle`: seconds the token may go unused (0: no idle limit).
async fn sign_in(
    state: &AppState,
    ctx: &Ctx,
    req: TokenRequest,
    idle: i64,
) -> ApiResult<TokenResponse> {
    let now = ctx.now;
    let wrong = || AppError::unauthenticated("The user name or password is incorrect.");
    // No account can have a UPN of another shape: answer at once and keep no state for it.
    let Ok(upn) = Upn::parse(&req.user_principal_name) else {
        return Err(wrong());
    };
    let key = upn.key();
    let upn = upn.as_str();
    // The attempt is counted before the password is checked, so parallel guesses share the limit.
    if let Some(until) = reserve_attempt(state, &key, now).await? {
        return Err(too_many_failures(until));
    }

    let tenant = find_tenant_for_upn(state, &key).await?;
    let user = match &tenant {
        Some(t) => state.store.get_user_by_upn(&t.id, upn).await?,
        None => None,
    };
    let hash = match &user {
        Some(u) => state.store.password_hash(&u.tenant_id, &u.id).await?,
        None => None,
    };
    if let (Some(tenant), Some(user)) = (&tenant, &user) {
        if hash.is_none() && is_synced(user) {
            return pass_through(state, tenant, user, req.password, &key, now, idle).await;
        }
    }
    let has_hash = hash.is_some();
    let ok = match verify(state, req.password, hash).await {
        Ok(ok) => ok && has_hash,
        Err(busy) => {
            // Never checked: the attempt does not count.
            release_attempt(state, &key).await;
            return Err(busy);
        }
    };

    let (Some(tenant), Some(user)) = (tenant, user) else {
        return Err(wrong());
    };
    if !ok || !user.account_enabled {
        let why = if ok {
            "account disabled"
        } else {
            "wrong password"
        };
        record(
            state,
            &tenant.id,
            &user.user_principal_name,
            "signIn",
            Some(user.user_principal_name.clone()),
            AuditResult::Failure,
            Some(why.into()),
        )
        .await;
        return Err(if ok {
            AppError::unauthenticated("The account is disabled; ask an administrator to enable it.")
        } else {
            wrong()
        });
    }
    clear_failures(state, &key).await?;
    issue_token(state, &tenant, &user, now, idle, None).await
}

/// A user whose password lives in the on-prem directory: synced, with a source anchor.
fn is_synced(user: &User) -> bool {
    user.source == Source::OnPremises
        && user
            .on_premises
            .as_ref()
            .is_some_and(|o| !o.immutable_id.is_empty())
}

/// Creates a token for a user whose password was accepted, and audits the sign-in.
async fn issue_token(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    now: i64,
    idle: i64,
    details: Option<String>,
) -> ApiResult<TokenResponse> {
    let (token, hash) = secrets::new_token();
    let rec = TokenRecord {
        id: secrets::new_id(),
        tenant_id: tenant.id.clone(),
        user_id: user.id.clone(),
        hash,
        created_at: now,
        expires_at: now + state.config.token_lifetime_secs,
        revoked: false,
        idle_timeout: idle,
        last_used_at: now,
    };
    state.store.insert_token(&rec).await?;
    record(
        state,
        &tenant.id,
        &user.user_principal_name,
        "signIn",
        Some(user.user_principal_name.clone()),
        AuditResult::Success,
        details,
    )
    .await;
    Ok(TokenResponse {
        access_token: token,
        token_id: rec.id,
        expires_at: rec.expires_at,
        user_principal_name: user.user_principal_name.clone(),
        tenant_id: tenant.id.clone(),
        roles: user.roles.clone(),
    })
}

/// Pass-through sign-in of a synced user (the throttle already counted the attempt): an agent
/// binds as the user. A wrong password reads as for a cloud user and stays counted; a refusal
/// the person can act on (disabled, locked out, expired, must change, logon hours) is a 401
/// with what to do next; when the password could not be checked (no agent, directory
/// unreachable, no answer in time) the attempt is given back and the answer is a 503.
async fn pass_through(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    password: String,
    key: &str,
    now: i64,
    idle: i64,
) -> ApiResult<TokenResponse> {
    let upn = &user.user_principal_name;
    if password.is_empty() {
        // An empty password would be an anonymous bind: never worth a trip to the directory.
        record(
            state,
            &tenant.id,
            upn,
            "signIn",
            Some(upn.clone()),
            AuditResult::Failure,
            Some("passThrough: empty password, not forwarded".into()),
        )
        .await;
        return Err(AppError::unauthenticated(
            "The user name or password is incorrect.",
        ));
    }
    let result = match crate::writeback::pass_through(state, &tenant.id, user, password).await {
        Ok(r) => r,
        Err(e) => {
            release_attempt(state, key).await;
            record(
                state,
                &tenant.id,
                upn,
                "signIn",
                Some(upn.clone()),
                AuditResult::Failure,
                Some(format!("passThrough: {}", e.message)),
            )
            .await;
            if e.code == ErrorCode::Internal {
                return Err(e);
            }
            return Err(unavailable(proto::writeback::person_message(
                Outcome::AgentUnavailable,
                None,
                OperationKind::SignIn,
            )));
        }
    };
    let outcome = crate::writeback::enum_text(result.outcome);
    let mut details = format!("passThrough: {outcome}");
    if let Some(agent) = &result.agent_id {
        details.push_str(&format!(" (agent {agent})"));
    }
    if let Some(d) = &result.admin_detail {
        details.push_str(&format!(": {d}"));
    }
    let fail = |details: String| {
        record(
            state,
            &tenant.id,
            upn,
            "signIn",
            Some(upn.clone()),
            AuditResult::Failure,
            Some(details),
        )
    };
    match result.outcome {
        Outcome::Succeeded if !user.account_enabled => {
            fail(format!("{details}; account disabled in the cloud")).await;
            Err(AppError::unauthenticated(
                "The account is disabled; ask an administrator to enable it.",
            ))
        }
        Outcome::Succeeded => {
            clear_failures(state, key).await?;
            issue_token(state, tenant, user, now, idle, Some(details)).await
        }
        Outcome::WrongPassword | Outcome::WrongCurrentPassword | Outcome::UserNotFound => {
            fail(details).await;
            Err(AppError::unauthenticated(
                "The user name or password is incorrect.",
            ))
        }
        Outcome::AccountDisabled
        | Outcome::AccountLockedOut
        | Outcome::PasswordExpired
        | Outcome::MustChangePassword
        | Outcome::AccountExpired
        | Outcome::LogonRestricted => {
            fail(details).await;
            Err(AppError::unauthenticated(result.message))
        }
        // Not checked at all: the attempt does not count. (An unknown outcome may have reached
        // the directory; it stays counted.)
        Outcome::AgentUnavailable | Outcome::DirectoryUnreachable => {
            release_attempt(state, key).await;
            fail(details).await;
            Err(unavailable(result.message))
        }
        _ => {
            fail(details).await;
            Err(unavailable(result.message))
        }
    }
}

fn unavailable(message: String) -> AppError {
    AppError::new(ErrorCode::ServiceUnavailable, message)
}

/// The tenant that owns the domain of `upn` (any case), if any.
pub(crate) async fn find_tenant_for_upn(
    state: &AppState,
    upn_lower: &str,
) -> ApiResult<Option<Tenant>> {
    let Some((_, domain)) = upn_lower.rsplit_once('@') else {
        return Ok(None);
    };
    Ok(state.store.get_tenant_by_domain(domain).await?)
}

/// Revokes the caller's own token (API sign-out and portal sign-out) and audits it.
pub async fn sign_out(state: &AppState, caller: &Caller) -> ApiResult<()> {
    state
        .store
        .revoke_token(&caller.tenant.id, &caller.token_id)
        .await?;
    record(
        state,
        &caller.tenant.id,
        caller.upn(),
        "signOut",
        None,
        AuditResult::Success,
        None,
    )
    .await;
    Ok(())
}

/// Revokes the token `id` of the caller's tenant: the caller's own, or any as Global
/// Administrator ([`tenant::roles::authorize_token_revocation`]). Audited either way; an
/// unknown id is `notFound`.
pub async fn revoke_token(state: &AppState, caller: &Caller, id: &str) -> ApiResult<()> {
    tenant::roles::authorize_token_revocation(caller.roles(), id == caller.token_id)?;
    let done = state.store.revoke_token(&caller.tenant.id, id).await?;
    record(
        state,
        &caller.tenant.id,
        caller.upn(),
        "token.revoke",
        Some(id.to_string()),
        if done {
            AuditResult::Success
        } else {
            AuditResult::Failure
        },
        None,
    )
    .await;
    if done {
        Ok(())
    } else {
        Err(AppError::not_found(format!(
            "No token with id {id} in this tenant."
        )))
    }
}
