//! The per-account throttle of failed sign-ins, counted in the database so every cloud
//! instance applies the same one and nothing about it is bounded by a process's memory. Each
//! account (by a key the caller derives from the UPN) has one row: the attempts counted in its
//! current window and when that window began.

use crate::db::args;
use crate::{Result, Store};

impl Store {
    /// Counts one attempt for `account_key` at `now`, unless `limit` attempts are already
    /// counted in its window of `window_secs`: then nothing is counted and the answer is when
    /// the window ends. A window that has ended starts again at `now`. In one transaction, so
    /// concurrent attempts (from any instance) share the limit. Rows of ended windows of other
    /// accounts are deleted on the way.
    pub async fn reserve_sign_in_attempt(
        &self,
        account_key: &str,
        now: i64,
        window_secs: i64,
        limit: i64,
    ) -> Result<Option<i64>> {
        let expired = now - window_secs;
        let mut tx = self.inner.begin().await?;
        tx.exec(
            "INSERT INTO sign_in_failures (account_key, failures, window_start) VALUES ($1, 0, $2) \
             ON CONFLICT (account_key) DO UPDATE SET \
             failures = CASE WHEN sign_in_failures.window_start <= $3 THEN 0 ELSE sign_in_failures.failures END, \
             window_start = CASE WHEN sign_in_failures.window_start <= $3 THEN $2 ELSE sign_in_failures.window_start END",
            &args![account_key, now, expired],
        )
        .await?;
        let counted = tx
            .exec(
                "UPDATE sign_in_failures SET failures = failures + 1 WHERE account_key = $1 AND failures < $2",
                &args![account_key, limit],
            )
            .await?;
        let refused_until = if counted == 1 {
            None
        } else {
            tx.opt(
                "SELECT window_start FROM sign_in_failures WHERE account_key = $1",
                &args![account_key],
                |r| r.int("window_start"),
            )
            .await?
            .map(|start| start + window_secs)
        };
        tx.exec(
            "DELETE FROM sign_in_failures WHERE window_start <= $1",
            &args![expired],
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

    /// Forgets the account's attempts (its password was just accepted).
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
