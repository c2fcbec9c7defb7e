//! Persistence for the cloud: one repository API ([`Store`]) over two backends, SQLite (the
//! embedded single-node default) and PostgreSQL (several cloud processes on one database). Each
//! backend has its own migrations (`migrations/sqlite`, `migrations/postgres`, same schema); every
//! query is written once and runs unchanged on both.
//!
//! The store keeps and finds records; it does not decide. Whether a user may hold a licence, who
//! may reset a password, what a synced object matches: that is `tenant`'s business, and this crate
//! must not depend on it. It knows the wire types of `proto` and nothing else of dirbridge.
//!
//! Conventions: ids are TEXT, times BIGINT epoch seconds, lists and documents TEXT JSON.
//! Case-insensitive keys (UPN, tenant name, domain) are lower-cased in Rust into `*_key`
//! columns, so both backends compare and order them identically (byte order). Secrets are never
//! part of an error message; password hashes are only read by [`Store::password_hash`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

mod address_limits;
mod agents;
mod audit;
mod db;
mod groups;
mod licensing;
mod oidc;
mod policy;
mod pushes;
mod sign_in;
mod sspr;
mod sync;
mod tenants;
mod tokens;
mod users;
mod writeback;

pub use agents::{AgentRecord, Redemption};
pub use oidc::{AppTokenRecord, CodeRecord, CodeUse, PendingRequest, SigningKeyRecord};
pub use sign_in::LockoutPolicy;
pub use sspr::{AuthMethodsRecord, SsprSessionRecord, StoredAnswer};
pub use sync::{SyncErrorWrite, SyncSnapshot, SyncWrite};
pub use tenants::{DomainRecord, TenantChanges};
pub use tokens::TokenRecord;
pub use writeback::{AgentWritebackRecord, WritebackRequestRecord, WritebackState};

use db::{args, Backend};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Largest page a list method returns.
pub const MAX_PAGE: u32 = 1000;
/// Page size when the request asks for 0.
pub const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write; the text says what clashed
    /// ("a user with UPN x already exists").
    #[error("{0}")]
    Conflict(String),
    /// The record (or one it refers to) does not exist.
    #[error("not found")]
    NotFound,
    /// The caller passed something the store cannot use (a malformed paging cursor, an
    /// assignment of another tenant…). The text says what.
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// SQLite page cache, in KiB, of the connection that applies sync batches. A batch writes the
/// users table's indexes (UPN, immutable id, mail, source) at random places: with SQLite's
/// default 2 MB cache, a large directory's batch spills dirty pages to the WAL in the middle of
/// its transaction and re-reads index pages from the OS. 48 MB holds the indexes of about
/// 200,000 users.
const SQLITE_SYNC_CACHE_KIB: u32 = 48 * 1024;
/// WAL pages after which the sync connection's commit checkpoints (SQLite's default: 1000).
/// A bulk load rewrites the same index pages batch after batch; checkpointing a tenth as
/// often copies each of them into the database a tenth as often. The WAL grows to about
/// 40 MB before it is checkpointed and reused.
const SQLITE_SYNC_CHECKPOINT_PAGES: u32 = 10_000;

/// Refreshes SQLite's planner statistics of tables that have none or stale ones (ANALYZE on a
/// bounded sample).
const SQLITE_REFRESH_STATISTICS: &str = "PRAGMA optimize=0x10002";

/// A handle on the database: cheap to clone (a pool inside), `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    inner: Backend,
    /// Where sync batches are read and written: on SQLite one connection of its own, whose
    /// page cache stays warm from batch to batch (a write by another connection would make
    /// SQLite drop it), with a larger cache and WAL checkpoints less often; on PostgreSQL the
    /// same pool as `inner`.
    sync: Backend,
}

impl std::fmt::Debug for Store {
    // Connection options hold the database password: show only which backend this is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl Store {
    /// Open (creating it and its directory if missing) an SQLite database file and bring its
    /// schema up to date. WAL journal, foreign keys on, a busy timeout for concurrent writers.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!(
                    "cannot create the directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // Keep the planner's statistics fresh (ANALYZE on a sample) as connections close.
            .analysis_limit(400)
            .optimize_on_close(true, 400);
        let opened = |e: sqlx::Error| {
            StoreError::Backend(format!(
                "cannot open the SQLite database {}: {e}",
                path.display()
            ))
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(opened)?;
        SQLITE_MIGRATIONS.run(&pool).await.map_err(|e| {
            StoreError::Backend(format!("migrating the SQLite database failed: {e}"))
        })?;
        // Opened lazily: after the migrations, which the first pool runs.
        let sync = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_lazy_with(
                options
                    .pragma("cache_size", format!("-{SQLITE_SYNC_CACHE_KIB}"))
                    .pragma(
                        "wal_autocheckpoint",
                        SQLITE_SYNC_CHECKPOINT_PAGES.to_string(),
                    )
                    // A multi-row statement inside a transaction keeps the pages it changes in a
                    // statement journal (to undo just itself on a constraint error): in memory,
                    // not in a temporary file written page by page.
                    .pragma("temp_store", "memory"),
            );
        let store = Store {
            inner: Backend::Sqlite(pool),
            sync: Backend::Sqlite(sync),
        };
        // Gather statistics for tables that have none or stale ones (cheap: bounded sample). The
        // batch connection opens later and loads them then.
        store.inner.exec(SQLITE_REFRESH_STATISTICS, &[]).await?;
        Ok(store)
    }

    /// Connect to PostgreSQL (`postgres://user:password@host:port/db`) and bring the schema up
    /// to date. Several processes may do this at once: migrations take an advisory lock.
    pub async fn open_postgres(url: &str) -> Result<Store> {
        // Parse first, so an error never echoes the URL (it may hold a password).
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))?;
        POSTGRES_MIGRATIONS.run(&pool).await.map_err(|e| {
            StoreError::Backend(format!("migrating the PostgreSQL database failed: {e}"))
        })?;
        Ok(Store {
            inner: Backend::Postgres(pool.clone()),
            sync: Backend::Postgres(pool),
        })
    }

    /// `postgres://…` or `postgresql://…` → PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a plain
    /// path → SQLite.
    pub async fn open(spec: &str) -> Result<Store> {
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return Store::open_postgres(spec).await;
        }
        let path = spec
            .strip_prefix("sqlite://")
            .or_else(|| spec.strip_prefix("sqlite:"))
            .unwrap_or(spec);
        if path.is_empty() {
            return Err(StoreError::Invalid("the database location is empty".into()));
        }
        Store::open_sqlite(Path::new(path)).await
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.inner {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        self.inner
            .opt("SELECT CAST(1 AS BIGINT) AS one", &args![], |r| {
                r.int("one")
            })
            .await
            .map(|_| ())
    }

    /// Refresh the query planner's statistics (PostgreSQL `ANALYZE`, SQLite `PRAGMA optimize`).
    /// Both databases do this on their own in time; call it after a bulk load (a first full
    /// sync of a large directory) so listing is fast at once.
    pub async fn refresh_statistics(&self) -> Result<()> {
        let sql = match self.inner {
            Backend::Sqlite(_) => SQLITE_REFRESH_STATISTICS,
            // The tables a bulk load fills, not the whole database.
            Backend::Postgres(_) => "ANALYZE users, directory_groups, group_members",
        };
        // SQLite loads statistics with the schema, so another connection's ANALYZE does not
        // reach a connection's plans: refresh on the batch connection (its lookups would scan
        // the users table) and on one of the pool's (the API's listings).
        self.sync.exec(sql, &[]).await?;
        if matches!(self.inner, Backend::Sqlite(_)) {
            self.inner.exec(sql, &[]).await?;
        }
        Ok(())
    }

    /// Close every connection (waits for the ones in use). Later calls fail.
    pub async fn close(&self) {
        for b in [&self.sync, &self.inner] {
            match b {
                Backend::Sqlite(p) => p.close().await,
                Backend::Postgres(p) => p.close().await,
            }
        }
    }
}

/// The page size an API caller gets for `requested`: `default` when absent, at least 1 and at
/// most [`MAX_PAGE`]. The one place the API's limits are applied.
pub fn page_size(requested: Option<u32>, default: u32) -> u32 {
    requested.unwrap_or(default).clamp(1, MAX_PAGE)
}

/// The page an API caller asked for (`after`, `limit`), with [`DEFAULT_PAGE`] when no limit
/// is given ([`page_size`]).
pub fn page(after: Option<String>, limit: Option<u32>) -> proto::PageRequest {
    proto::PageRequest {
        after,
        limit: page_size(limit, DEFAULT_PAGE),
    }
}

// ---------------------------------------------------------------- helpers shared by the modules

/// The case-insensitive form of a UPN, tenant name, domain or display name.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// Clamp a requested page size: 0 → [`DEFAULT_PAGE`], at most [`MAX_PAGE`].
pub(crate) fn page_limit(req: &proto::PageRequest) -> usize {
    match req.limit {
        0 => DEFAULT_PAGE as usize,
        n => n.min(MAX_PAGE) as usize,
    }
}

/// Turn `limit + 1` fetched rows into a page: `next` is the key of the last item, set only when
/// the extra row shows there is more.
pub(crate) fn into_page<T>(
    mut rows: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> String,
) -> proto::Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(key) } else { None };
    proto::Page { items: rows, next }
}

/// The smallest string greater than every string that starts with `prefix` (in code point order,
/// which is byte order for UTF-8), or `None` when there is none. `key >= prefix AND key < bound`
/// is an exact, index-friendly prefix match with no wildcard characters at all.
pub(crate) fn prefix_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let mut n = c as u32 + 1;
        if (0xD800..=0xDFFF).contains(&n) {
            n = 0xE000;
        }
        if let Some(next) = char::from_u32(n) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The escape character of every `LIKE` the store writes (`LIKE $n ESCAPE '!'`). Not a
/// backslash, so the SQL means the same whatever `standard_conforming_strings` says.
pub(crate) const LIKE_ESCAPE: char = '!';

/// `text` as a LIKE pattern matching itself only: `%`, `_` and the escape character escaped.
pub(crate) fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '%' || c == '_' || c == LIKE_ESCAPE {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out
}

/// A unit enum's wire name (`Source::OnPremises` → `"onPremises"`), so the database spells
/// values exactly as the API does.
pub(crate) fn enum_name<T: Serialize>(v: &T) -> Result<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Backend("a value has no name to store".into())),
    }
}

pub(crate) fn parse_enum<T: DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| StoreError::Backend(format!("the database holds an unknown {what} {s:?}")))
}

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| StoreError::Backend(format!("cannot encode a value as JSON: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Backend(format!("the database holds an unreadable {what}: {e}")))
}

/// Placeholders for a statement built at run time (filters that may or may not apply, rows of
/// a multi-row statement).
#[derive(Default)]
pub(crate) struct Params {
    pub args: Vec<db::Arg>,
    /// `?` instead of `$n`: see [`Params::in_order`].
    positional: bool,
}

impl Params {
    /// Placeholders for a statement that uses each one exactly once, in the order they were
    /// pushed: `?` on SQLite, `$n` on PostgreSQL. SQLite binds `?` by position, while sqlx finds
    /// each `$n` by walking the statement's list of parameter names, so binding a statement's
    /// parameters costs the square of their number (`sqlite3_bind_parameter_name` was 12 % of
    /// the cloud's CPU in a full sync, docs/benchmarks.md).
    pub fn in_order(backend: &db::Backend) -> Params {
        Params {
            args: Vec::new(),
            positional: matches!(backend, db::Backend::Sqlite(_)),
        }
    }

    /// Add an argument; its placeholder (`$n`, or `?` in order).
    pub fn push(&mut self, a: impl Into<db::Arg>) -> String {
        self.args.push(a.into());
        if self.positional {
            "?".to_string()
        } else {
            format!("${}", self.args.len())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_page_sizes_default_and_stay_within_the_limits() {
        assert_eq!(
            super::page_size(None, super::DEFAULT_PAGE),
            super::DEFAULT_PAGE
        );
        assert_eq!(super::page_size(None, 20), 20);
        assert_eq!(super::page_size(Some(0), 20), 1);
        assert_eq!(super::page_size(Some(5_000), 20), super::MAX_PAGE);
        let p = super::page(Some("k".into()), None);
        assert_eq!(
            (p.after.as_deref(), p.limit),
            (Some("k"), super::DEFAULT_PAGE)
        );
    }

    use super::*;

    #[test]
    fn prefix_bound_is_the_next_string_after_the_prefix_range() {
        assert_eq!(prefix_bound("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_bound("a%").as_deref(), Some("a&"));
        assert_eq!(prefix_bound(""), None);
        assert_eq!(prefix_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_bound("\u{10FFFF}"), None);
    }

    #[test]
    fn like_literal_escapes_wildcards_and_the_escape_character() {
        assert_eq!(like_literal("a%b_c!d\\e"), "a!%b!_c!!d\\e");
    }

    #[test]
    fn page_limit_defaults_and_clamps() {
        let req = |limit| proto::PageRequest { after: None, limit };
        assert_eq!(page_limit(&req(0)), 100);
        assert_eq!(page_limit(&req(1)), 1);
        assert_eq!(page_limit(&req(5000)), 1000);
    }

    /// Handlers hold the store across `.await`s on a multi-threaded runtime: the store and the
    /// futures of its methods must be `Send` (checked at compile time; never called).
    #[allow(dead_code)]
    fn store_and_its_futures_are_send(
        s: &Store,
        u: &proto::User,
        t: &proto::Tenant,
        m: &proto::MemberRef,
        tok: &TokenRecord,
    ) {
        fn send<T: Send>(_: T) {}
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<Store>();
        let p = proto::PageRequest::default();
        send(s.list_users("t", &proto::UserFilter::default(), &p));
        send(s.insert_user(u, None));
        send(s.update_user(u));
        send(s.delete_user("t", "u"));
        send(s.add_member("t", "g", m));
        send(s.replace_group_assignments("t", &[]));
        send(s.create_tenant(t));
        send(s.list_audit("t", &proto::AuditFilter::default(), &p));
        send(s.get_policy("t"));
        send(s.insert_token(tok));
        send(s.list_groups("t", None, &p));
    }

    #[test]
    fn enum_names_are_the_wire_names() {
        assert_eq!(enum_name(&proto::Source::OnPremises).unwrap(), "onPremises");
        assert_eq!(
            enum_name(&proto::LicenseErrorKind::CountViolation).unwrap(),
            "CountViolation"
        );
        let s: proto::AuditResult = parse_enum("failure", "result").unwrap();
        assert_eq!(s, proto::AuditResult::Failure);
        assert!(parse_enum::<proto::Source>("nonsense", "source").is_err());
    }
}
