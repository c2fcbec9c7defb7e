//! Time as an input: logic takes a [`Clock`] (or an `Epoch` argument) so tests can move time.
//! This module is the only place that reads the wall clock ([`SystemClock`], [`unix_millis`]) or
//! the monotonic clock ([`monotonic`]): `clippy.toml` bans those reads everywhere else.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use proto::Epoch;

pub const SECS_PER_DAY: i64 = 86_400;

/// The source of "now" for everything time-dependent (trial expiry, throttles, lifetimes).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Epoch;
}

/// The real wall clock, in whole seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the clock module: the one read of the wall clock
    fn now(&self) -> Epoch {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// Wall-clock Unix milliseconds (0 before the epoch): the time base the cloud processes share
/// through the database (writeback queue, agent presence, pushes).
#[allow(clippy::disallowed_methods)] // the clock module: the one read of the wall clock in ms
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The monotonic clock, for durations and deadlines within one process (timeouts, idle limits,
/// request latency); `tokio::time::Instant::from_std(monotonic())` in async code.
#[allow(clippy::disallowed_methods)] // the clock module: the one read of the monotonic clock
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

/// A clock tests set and advance by hand. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Epoch) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start)))
    }
    pub fn set(&self, t: Epoch) {
        self.0.store(t, Ordering::SeqCst);
    }
    /// Moves time by `secs` (negative moves it back). Saturates instead of overflowing.
    pub fn advance(&self, secs: i64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(secs))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Epoch {
        self.0.load(Ordering::SeqCst)
    }
}

/// `days` whole days in seconds, saturating.
pub fn days(days: u32) -> i64 {
    i64::from(days).saturating_mul(SECS_PER_DAY)
}

/// The UTC calendar date of `t` as `YYYY-MM-DD`, for messages ("expired on 2025-03-31").
pub fn iso_date(t: Epoch) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(SECS_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `t` as RFC 3339 in UTC, `2026-11-25T18:40:00Z`, for messages and tables.
pub fn rfc3339(t: Epoch) -> String {
    let secs = t.rem_euclid(SECS_PER_DAY);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        iso_date(t),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm). Total for every `i64` day count an `Epoch` can produce.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_632_000), "2026-11-25T18:40:00Z");
        assert_eq!(super::rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    use super::*;

    #[test]
    fn manual_clock_is_shared_between_clones_and_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        let c2 = c.clone();
        assert_eq!(c.now(), 1_000);
        c.advance(60);
        assert_eq!(c2.now(), 1_060);
        c2.set(5);
        assert_eq!(c.now(), 5);
        c.advance(-10);
        assert_eq!(c.now(), -5);
    }

    #[test]
    fn manual_clock_advance_saturates_instead_of_panicking() {
        let c = ManualClock::new(i64::MAX - 1);
        c.advance(100);
        assert_eq!(c.now(), i64::MAX);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now() > 1_704_067_200);
    }

    #[test]
    fn iso_date_formats_known_dates() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(86_399), "1970-01-01");
        assert_eq!(iso_date(-1), "1969-12-31");
        assert_eq!(iso_date(951_782_400), "2000-02-29");
        assert_eq!(iso_date(1_735_689_599), "2024-12-31");
        assert_eq!(iso_date(1_735_689_600), "2025-01-01");
    }

    #[test]
    fn iso_date_never_panics_at_the_extremes() {
        let _ = iso_date(i64::MAX);
        let _ = iso_date(i64::MIN);
    }

    #[test]
    fn days_saturates() {
        assert_eq!(days(90), 90 * 86_400);
        assert_eq!(days(u32::MAX), i64::from(u32::MAX) * 86_400);
    }
}
