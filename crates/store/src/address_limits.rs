//! Per-address limits (the cloud's `limits` module) kept in the database, so every instance
//! behind a load balancer takes from the same budget. Each rule and address is a token bucket
//! of `per_minute` tokens refilled evenly over a minute, stored as one number: the bucket's
//! "theoretical arrival time" (GCRA). A take is one upsert; a full bucket has a time not in the
//! future, so such rows are deleted ([`Store::forget_full_address_buckets`]).

use crate::db::args;
use crate::{Result, Store};

impl Store {
    /// Takes one token of `rule` for `address` at `now_ms` from a bucket of `per_minute`;
    /// `Some(ms)` until the next token when there is none (nothing is taken then). One
    /// statement: concurrent takes from any instance share the bucket.
    pub async fn take_address_token(
        &self,
        rule: &str,
        address: &str,
        per_minute: u32,
        now_ms: i64,
    ) -> Result<Option<i64>> {
        let per_minute = i64::from(per_minute.max(1));
        // One token every `step`; a full bucket holds `per_minute`: at most `burst` ahead of now.
        let step = 60_000 / per_minute;
        let burst = 60_000 - step;
        // Both columns are computed from the old row: `refused` is 1 when no token was taken.
        let (tat, refused) = self
            .inner
            .opt(
                "INSERT INTO address_limits (rule, address, tat_ms, refused) VALUES ($1, $2, $3 + $4, 0) \
                 ON CONFLICT (rule, address) DO UPDATE SET \
                 tat_ms = CASE \
                   WHEN address_limits.tat_ms - $3 > $5 THEN address_limits.tat_ms \
                   WHEN address_limits.tat_ms > $3 THEN address_limits.tat_ms + $4 \
                   ELSE $3 + $4 END, \
                 refused = CASE WHEN address_limits.tat_ms - $3 > $5 THEN 1 ELSE 0 END \
                 RETURNING tat_ms, refused",
                &args![rule, address, now_ms, step, burst],
                |r| Ok((r.int("tat_ms")?, r.int("refused")?)),
            )
            .await?
            .unwrap_or((now_ms, 0));
        Ok((refused == 1).then(|| (tat - now_ms - burst).max(1)))
    }

    /// Gives back a token [`Store::take_address_token`] took (the answer was one the rule does
    /// not count).
    pub async fn give_back_address_token(
        &self,
        rule: &str,
        address: &str,
        per_minute: u32,
    ) -> Result<()> {
        let step = 60_000 / i64::from(per_minute.max(1));
        self.inner
            .exec(
                "UPDATE address_limits SET tat_ms = tat_ms - $3 WHERE rule = $1 AND address = $2",
                &args![rule, address, step],
            )
            .await
            .map(|_| ())
    }

    /// Deletes the buckets that are full again at `now_ms` (they say nothing a missing row does
    /// not); returns how many.
    pub async fn forget_full_address_buckets(&self, now_ms: i64) -> Result<u64> {
        self.inner
            .exec(
                "DELETE FROM address_limits WHERE tat_ms <= $1",
                &args![now_ms],
            )
            .await
    }
}
