//! The thin layer that lets every repository method write its SQL once: bind arguments
//! ([`Arg`]), read columns ([`Row`]), and run a statement on whichever pool or transaction
//! backs the store. Nothing here knows about users or tenants.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::{Result, StoreError};

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One bound parameter. Only the types the schema uses: TEXT, BIGINT, BOOLEAN, and NULLs of them.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::OptText(v.map(str::to_string))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::OptText(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// `args![a, b, c]` → `[Arg; 3]` (`Vec::from(args![…])` to grow it).
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$($crate::db::Arg::from($a)),*] };
}
pub(crate) use args;

/// Bind every argument to a query, whatever the database.
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match a {
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::OptText(v) => q.bind(v.as_deref()),
                Arg::Int(v) => q.bind(*v),
                Arg::OptInt(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Column access that is the same for both backends, so row mapping is written once.
pub(crate) trait Row {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn flag(&self, col: &str) -> Result<bool>;
}

macro_rules! impl_row {
    ($ty:ty) => {
        impl Row for $ty {
            fn text(&self, col: &str) -> Result<String> {
                sqlx::Row::try_get(self, col).map_err(db_err)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>> {
                sqlx::Row::try_get(self, col).map_err(db_err)
            }
            fn int(&self, col: &str) -> Result<i64> {
                sqlx::Row::try_get(self, col).map_err(db_err)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>> {
                sqlx::Row::try_get(self, col).map_err(db_err)
            }
            fn flag(&self, col: &str) -> Result<bool> {
                sqlx::Row::try_get(self, col).map_err(db_err)
            }
        }
    };
}
impl_row!(SqliteRow);
impl_row!(PgRow);

/// The error every statement failure becomes. A unique violation becomes a `Conflict` with a
/// generic sentence, which callers replace with one that names what clashed; a foreign-key
/// violation means the row refers to something that does not exist: `NotFound`.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        match d.kind() {
            sqlx::error::ErrorKind::UniqueViolation => {
                return StoreError::Conflict("a record with the same key already exists".into())
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => return StoreError::NotFound,
            _ => {}
        }
    }
    StoreError::Backend(e.to_string())
}

/// PostgreSQL refuses NUL in text and SQLite would store it: refuse it up front on both, as a
/// client error rather than a backend failure.
fn check_text(args: &[Arg]) -> Result<()> {
    let has_nul = args.iter().any(|a| match a {
        Arg::Text(s) | Arg::OptText(Some(s)) => s.contains('\0'),
        _ => false,
    });
    if has_nul {
        return Err(StoreError::Invalid(
            "text may not contain NUL characters".into(),
        ));
    }
    Ok(())
}

macro_rules! run_on {
    ($exec:expr, $sql:expr, $args:expr, execute) => {{
        check_text($args)?;
        bind_all!(sqlx::query($sql), $args)
            .execute($exec)
            .await
            .map(|r| r.rows_affected())
            .map_err(db_err)
    }};
    ($exec:expr, $sql:expr, $args:expr, $map:expr, fetch_all) => {{
        check_text($args)?;
        let rows = bind_all!(sqlx::query($sql), $args)
            .fetch_all($exec)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| $map(r as &dyn Row))
            .collect::<Result<Vec<_>>>()
    }};
    ($exec:expr, $sql:expr, $args:expr, $map:expr, fetch_optional) => {{
        check_text($args)?;
        let row = bind_all!(sqlx::query($sql), $args)
            .fetch_optional($exec)
            .await
            .map_err(db_err)?;
        row.as_ref().map(|r| $map(r as &dyn Row)).transpose()
    }};
}

impl Backend {
    /// Run a statement; the number of rows it affected.
    pub(crate) async fn exec(&self, sql: &str, args: &[Arg]) -> Result<u64> {
        match self {
            Backend::Sqlite(p) => run_on!(p, sql, args, execute),
            Backend::Postgres(p) => run_on!(p, sql, args, execute),
        }
    }

    pub(crate) async fn all<T>(
        &self,
        sql: &str,
        args: &[Arg],
        map: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Backend::Sqlite(p) => run_on!(p, sql, args, map, fetch_all),
            Backend::Postgres(p) => run_on!(p, sql, args, map, fetch_all),
        }
    }

    pub(crate) async fn opt<T>(
        &self,
        sql: &str,
        args: &[Arg],
        map: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Backend::Sqlite(p) => run_on!(p, sql, args, map, fetch_optional),
            Backend::Postgres(p) => run_on!(p, sql, args, map, fetch_optional),
        }
    }

    /// Start a transaction. SQLite takes the write lock at once (`BEGIN IMMEDIATE`), so a
    /// transaction that reads before it writes waits for other writers instead of failing.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Backend::Sqlite(p) => {
                Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?)
            }
            Backend::Postgres(p) => Tx::Postgres(p.begin().await.map_err(db_err)?),
        })
    }
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        match self {
            Tx::Sqlite(t) => run_on!(&mut **t, sql, args, execute),
            Tx::Postgres(t) => run_on!(&mut **t, sql, args, execute),
        }
    }

    pub(crate) async fn all<T>(
        &mut self,
        sql: &str,
        args: &[Arg],
        map: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Tx::Sqlite(t) => run_on!(&mut **t, sql, args, map, fetch_all),
            Tx::Postgres(t) => run_on!(&mut **t, sql, args, map, fetch_all),
        }
    }

    pub(crate) async fn opt<T>(
        &mut self,
        sql: &str,
        args: &[Arg],
        map: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Tx::Sqlite(t) => run_on!(&mut **t, sql, args, map, fetch_optional),
            Tx::Postgres(t) => run_on!(&mut **t, sql, args, map, fetch_optional),
        }
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await.map_err(db_err),
            Tx::Postgres(t) => t.commit().await.map_err(db_err),
        }
    }
}
