//! The per-account **smart lockout** of failed password checks (sign-in, self-service change),
//! counted in the database so that every cloud instance shares one count, before anything is
//! forwarded to an agent. Lifted by a password accepted, reset or unlocked.

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// Failed sign-ins counted per account before it is locked out.
pub const MAX_FAILED_SIGN_INS: u32 = 10;
/// The smart lockout: after [`MAX_FAILED_SIGN_INS`] failures the account is locked for a
/// minute, then after each further failure for twice as long as the last time, up to an hour;
/// 15 quiet minutes after the last attempt (or the end of the lock) forget it all.
pub const LOCKOUT: store::LockoutPolicy = store::LockoutPolicy {
    limit: MAX_FAILED_SIGN_INS as i64,
    first_lock_secs: 60,
    max_lock_secs: 60 * 60,
    quiet_secs: 15 * 60,
};

/// The key the store counts an account's attempts under: a hash of the lower-cased UPN as
/// typed (known or not, so the throttle tells no account), never the UPN itself.
fn attempt_key(upn_lower: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("sign-in:{upn_lower}")))
}

/// Counts one attempt for the account `upn_lower` (in the database: every instance shares the
/// count, and no table fills up); returns when the lockout ends if the account is locked out.
pub(crate) async fn reserve_attempt(
    state: &AppState,
    upn_lower: &str,
    now: i64,
) -> ApiResult<Option<i64>> {
    Ok(state
        .store
        .reserve_sign_in_attempt(&attempt_key(upn_lower), now, &LOCKOUT)
        .await?)
}

/// Gives back the attempt [`reserve_attempt`] counted (the password was never checked).
pub(crate) async fn release_attempt(state: &AppState, upn_lower: &str) {
    if let Err(e) = state
        .store
        .release_sign_in_attempt(&attempt_key(upn_lower))
        .await
    {
        tracing::warn!(error = %e, "could not give back an unchecked sign-in attempt");
    }
}

/// Forgets the account's counted attempts: its password was accepted.
pub(crate) async fn clear_failures(state: &AppState, upn_lower: &str) -> ApiResult<()> {
    Ok(state
        .store
        .clear_sign_in_attempts(&attempt_key(upn_lower))
        .await?)
}

/// Lifts the cloud sign-in lockout of `upn` (any case): its password was reset, or an
/// administrator or the person (self-service) unlocked it. Best effort: the reset or unlock
/// already happened, so a failure here is logged, not returned.
pub(crate) async fn unlock_sign_in(state: &AppState, upn: &str) {
    if let Err(e) = clear_failures(state, &upn.trim().to_lowercase()).await {
        tracing::warn!(error = %e.message, "could not lift the sign-in lockout after a reset or unlock");
    }
}

/// The refusal of an attempt over the per-account limit.
pub(crate) fn too_many_failures(until: i64) -> AppError {
    AppError::new(
        proto::ErrorCode::TooManyRequests,
        format!(
            "Too many failed sign-ins for this account: it is locked until {} (UTC). Try again then, unlock it with self-service password reset, or ask an administrator to reset the password or unlock the account.",
            tenant::clock::rfc3339(until)
        ),
    )
}
