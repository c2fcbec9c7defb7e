//! The time base the cloud processes share through the database (writeback queue, agent
//! presence, pushes), and when an agent counts as connected.

/// An agent counts as connected when its presence row was refreshed within this.
pub const PRESENCE_FRESH_MS: i64 = 90_000;

/// Wall-clock Unix milliseconds: the queue's time base (shared by all cloud processes).
pub fn now_ms() -> i64 {
    tenant::clock::unix_millis()
}
