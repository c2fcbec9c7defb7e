//! The per-account smart lockout of failed sign-ins, counted in the database so every cloud
//! instance applies the same one and nothing about it is bounded by a process's memory. Each
//! account (by a key the caller derives from the UPN) has one row: the attempts counted since
//! it was last quiet, the end of its current lockout, how many lockouts it had, and when the row
//! is forgotten (a quiet period after its last attempt or the end of its lock).

use crate::db::args;
use crate::{Result, Store};

/// How failed sign-ins lock an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Attempts counted before the account is locked.
    pub limit: i64,
    /// The first lockout; each further one doubles, up to `max_lock_secs`.
    pub first_lock_secs: i64,
    pub max_lock_secs: i64,
    /// Without an attempt for this long (after the lock, if any, ended), the account's failures
    /// and lockouts are forgotten.
    pub quiet_secs: i64,
}

impl LockoutPolicy {
    /// The length of lockout number `n` (1 for the first): doubling from the first, capped.
    pub fn lock_secs(&self, n: i64) -> i64 {
        let doublings = u32::try_from((n - 1).clamp(0, 62)).unwrap_or(62);
        self.first_lock_secs
            .saturating_mul(1i64.checked_shl(doublings).unwrap_or(i64::MAX))
            .min(self.max_lock_secs)
    }
}

impl Store {
    /// Counts one attempt for `account_key` at `now`, or refuses it with the end of the
    /// account's lockout. An account with `limit` attempts counted is locked by its next
    /// attempt (the lock grows with each lockout, [`LockoutPolicy::lock_secs`]), and once the
    /// lock ends it gets **one** attempt before the next, longer lock: so at most `limit`
    /// attempts pass before the first lockout and one per lockout after it. In one transaction
    /// (the row is locked), so concurrent attempts from any instance share the count. Rows
    /// past their quiet period are deleted on the way.
    pub async fn reserve_sign_in_attempt(
        &self,
        account_key: &str,
        now: i64,
        policy: &LockoutPolicy,
    ) -> Result<Option<i64>> {
        let mut tx = self.inner.begin().await?;
        // A row past its quiet period starts again.
        tx.exec(
            "INSERT INTO sign_in_failures (account_key, failures, window_start, locked_until, lockouts, forget_at) \
             VALUES ($1, 0, $2, 0, 0, $3) \
             ON CONFLICT (account_key) DO UPDATE SET \
             failures = CASE WHEN sign_in_failures.forget_at <= $2 THEN 0 ELSE sign_in_failures.failures END, \
             lockouts = CASE WHEN sign_in_failures.forget_at <= $2 THEN 0 ELSE sign_in_failures.lockouts END, \
             locked_until = CASE WHEN sign_in_failures.forget_at <= $2 THEN 0 ELSE sign_in_failures.locked_until END, \
             window_start = CASE WHEN sign_in_failures.forget_at <= $2 THEN $2 ELSE sign_in_failures.window_start END",
            &args![account_key, now, now + policy.quiet_secs],
        )
        .await?;
        let (failures, locked_until, lockouts) = tx
            .opt(
                "SELECT failures, locked_until, lockouts FROM sign_in_failures WHERE account_key = $1",
                &args![account_key],
                |r| Ok((r.int("failures")?, r.int("locked_until")?, r.int("lockouts")?)),
            )
            .await?
            .unwrap_or((0, 0, 0));
        let refused_until = if locked_until > now {
            Some(locked_until)
        } else if failures < policy.limit {
            tx.exec(
                "UPDATE sign_in_failures SET failures = failures + 1, forget_at = $2 WHERE account_key = $1",
                &args![account_key, now + policy.quiet_secs],
            )
            .await?;
            None
        } else {
            let lockouts = lockouts + 1;
            let until = now.saturating_add(policy.lock_secs(lockouts));
            tx.exec(
                "UPDATE sign_in_failures SET failures = $2, lockouts = $3, locked_until = $4, forget_at = $5 \
                 WHERE account_key = $1",
                &args![
                    account_key,
                    policy.limit - 1,
                    lockouts,
                    until,
                    until.saturating_add(policy.quiet_secs)
                ],
            )
            .await?;
            Some(until)
        };
        tx.exec(
            "DELETE FROM sign_in_failures WHERE forget_at <= $1",
            &args![now],
        )
        .await?;
        tx.commit().await?;
        Ok(refused_until)
    }

    /// Gives back one attempt [`Store::reserve_sign_in_attempt`] counted (the password was never
    /// checked).
    pub async fn release_sign_in_attempt(&self, account_key: &str) -> Result<()> {
        self.inner
            .exec(
                "UPDATE sign_in_failures SET failures = failures - 1 WHERE account_key = $1 AND failures > 0",
                &args![account_key],
            )
            .await
            .map(|_| ())
    }

    /// Forgets the account's attempts and lockouts (its password was just accepted, reset, or
    /// an administrator or the person unlocked it).
    pub async fn clear_sign_in_attempts(&self, account_key: &str) -> Result<()> {
        self.inner
            .exec(
                "DELETE FROM sign_in_failures WHERE account_key = $1",
                &args![account_key],
            )
            .await
            .map(|_| ())
    }
}
