//! The connector space: a small SQLite database (`DATA_DIR/connector-space.db`) of what the
//! cloud last accepted from each connector, keyed by source anchor, with a hash of the exported
//! form; the delta cookie per connector; a DN → anchor index for group members; the DNs of OUs
//! (to notice an OU moved or renamed); the objects the cloud refused, to send again; and the
//! batch in flight, so a crash between the cloud's
//! answer and the local commit replays exactly that batch. It also keeps the writeback replay
//! guard: the tracking ids of the writeback requests opened, until they expire.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use proto::sync::{ObjectKind, SyncBatch, SyncObject, SyncObjectError, SyncRun};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::sync::map::hash;
use crate::sync::scope::dn_key;
use crate::AgentError;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS objects (
        connector TEXT NOT NULL, anchor TEXT NOT NULL, kind TEXT NOT NULL, dn TEXT NOT NULL,
        hash TEXT NOT NULL, last_seen_run TEXT, updated_at INTEGER NOT NULL,
        PRIMARY KEY (connector, anchor))",
    "CREATE TABLE IF NOT EXISTS cookies (
        connector TEXT PRIMARY KEY, cookie BLOB NOT NULL, updated_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dn_index (
        connector TEXT NOT NULL, dn_key TEXT NOT NULL, anchor TEXT NOT NULL,
        PRIMARY KEY (connector, dn_key))",
    "CREATE INDEX IF NOT EXISTS dn_index_anchor ON dn_index (connector, anchor)",
    "CREATE TABLE IF NOT EXISTS containers (
        connector TEXT NOT NULL, guid TEXT NOT NULL, dn TEXT NOT NULL,
        PRIMARY KEY (connector, guid))",
    // Batches recorded before they are sent and cleared when their answer is committed: at most
    // two of a run (docs/sync.md, "The next batch is recorded while the cloud applies the one
    // before").
    "CREATE TABLE IF NOT EXISTS inflight_batches (
        connector TEXT NOT NULL, run_id TEXT NOT NULL, seq INTEGER NOT NULL, batch TEXT NOT NULL,
        started_at INTEGER NOT NULL, PRIMARY KEY (connector, run_id, seq))",
    "CREATE TABLE IF NOT EXISTS runs (
        connector TEXT PRIMARY KEY, run TEXT NOT NULL)",
    // Objects the cloud refused (and so are not in `objects` as exported), to read and send
    // again: `run_id` is the run whose batch was refused.
    "CREATE TABLE IF NOT EXISTS refused (
        connector TEXT NOT NULL, anchor TEXT NOT NULL, dn TEXT NOT NULL, run_id TEXT NOT NULL,
        PRIMARY KEY (connector, anchor))",
    // Deletes the cloud accepted, by time, for the deletion threshold's window.
    "CREATE TABLE IF NOT EXISTS deletes_exported (
        connector TEXT NOT NULL, at INTEGER NOT NULL, count INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS deletes_exported_at ON deletes_exported (connector, at)",
    "CREATE TABLE IF NOT EXISTS writeback_seen (
        tracking_id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
];

/// Spaces before 2026-12 kept each object's exported JSON beside its hash (1 KB an object, a
/// gigabyte at a million users). Nothing read it: the diff needs the hash only, and the cloud
/// holds the object. The column goes when such a space is opened.
async fn drop_exported_json(pool: &SqlitePool) -> Result<(), AgentError> {
    let has: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM pragma_table_info('objects') WHERE name = 'exported'",
    )
    .fetch_one(pool)
    .await?;
    if has {
        sqlx::query("ALTER TABLE objects DROP COLUMN exported")
            .execute(pool)
            .await?;
        tracing::info!("connector space: dropped the unused exported column");
    }
    Ok(())
}

/// Spaces before 2026-12 kept one in-flight batch per connector in `inflight`; its record moves
/// to `inflight_batches`, keyed by the run and seq in the batch itself.
async fn move_inflight_records(pool: &SqlitePool) -> Result<(), AgentError> {
    let has: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'inflight'",
    )
    .fetch_one(pool)
    .await?;
    if has {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT OR IGNORE INTO inflight_batches (connector, run_id, seq, batch, started_at)
             SELECT connector, json_extract(batch, '$.runId'), json_extract(batch, '$.seq'), batch,
                    started_at
             FROM inflight",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("DROP TABLE inflight").execute(&mut *tx).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// SQLite page cache of each connection to the space, in KiB.
const SPACE_CACHE_KIB: u32 = 16 * 1024;

/// Rows per multi-row statement (7 columns at most: far under SQLite's parameter limit).
const ROWS_PER_STATEMENT: usize = 200;

/// `?, ?, …` (`n` of them).
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The connector-space writes of one page of a full import, applied by [`Space::apply_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageWrites {
    /// (DN, anchor): the anchor is now at that DN.
    pub index: Vec<(String, String)>,
    /// Anchors no longer in the DN index.
    pub unindex: Vec<String>,
    /// Anchors seen by the run.
    pub seen: Vec<String>,
}

/// One object as last accepted by the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceObject {
    pub anchor: String,
    pub kind: ObjectKind,
    pub dn: String,
    pub hash: String,
}

/// What [`Space::remember_tracking_id`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RememberOutcome {
    /// First time: recorded.
    New,
    /// Seen before: a replay.
    Replayed,
    /// The guard is full of unexpired ids: refuse (fail closed).
    Full,
}

#[derive(Debug, Clone)]
pub struct Space {
    pool: SqlitePool,
}

fn kind_text(k: ObjectKind) -> &'static str {
    match k {
        ObjectKind::User => "user",
        ObjectKind::Group => "group",
    }
}

impl Space {
    /// Opens (creating) `DATA_DIR/connector-space.db`.
    pub async fn open(data_dir: &Path) -> Result<Space, AgentError> {
        crate::private_dir(data_dir).map_err(AgentError::io(data_dir))?;
        let path = data_dir.join("connector-space.db");
        // SQLite creates `-wal` and `-shm` with the mode of the database file: create that
        // private before SQLite opens it, so all three are 0600 from the start.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(AgentError::io(&path))?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(30))
            // A full import of a large directory writes every row and index page of the space
            // batch after batch: a larger page cache than SQLite's 2 MB keeps them, a WAL
            // checkpoint a tenth as often copies each page into the database less often, and
            // multi-row statements keep their statement journal in memory instead of in a
            // temporary file (docs/benchmarks.md).
            .pragma("cache_size", format!("-{SPACE_CACHE_KIB}"))
            .pragma("wal_autocheckpoint", "10000")
            .pragma("temp_store", "memory");
        // Two connections: the sync engine's and one for writeback's replay guard, so a sync
        // transaction never holds up a password reset (each connection keeps its own cache).
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        drop_exported_json(&pool).await?;
        move_inflight_records(&pool).await?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Files an older version left world-readable.
            for suffix in ["", "-wal", "-shm"] {
                let p = data_dir.join(format!("connector-space.db{suffix}"));
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
            }
        }
        Ok(Space { pool })
    }

    /// Records a writeback tracking id until `expires_at` (pruning expired ones).
    /// [`RememberOutcome::Replayed`] when it was recorded before.
    pub async fn remember_tracking_id(
        &self,
        tracking_id: &str,
        expires_at: proto::Epoch,
        now: proto::Epoch,
        max: usize,
    ) -> Result<RememberOutcome, AgentError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM writeback_seen WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let seen = sqlx::query("SELECT 1 FROM writeback_seen WHERE tracking_id = $1")
            .bind(tracking_id)
            .fetch_optional(&mut *tx)
            .await?;
        if seen.is_some() {
            return Ok(RememberOutcome::Replayed);
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM writeback_seen")
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        if count as usize >= max {
            return Ok(RememberOutcome::Full);
        }
        let inserted = sqlx::query(
            "INSERT INTO writeback_seen (tracking_id, expires_at) VALUES ($1, $2)
             ON CONFLICT (tracking_id) DO NOTHING",
        )
        .bind(tracking_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(if inserted == 1 {
            RememberOutcome::New
        } else {
            RememberOutcome::Replayed
        })
    }

    /// How many writeback tracking ids the replay guard holds.
    pub async fn remembered_tracking_ids(&self) -> Result<usize, AgentError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM writeback_seen")
            .fetch_one(&self.pool)
            .await?
            .get(0);
        Ok(n as usize)
    }

    pub async fn cookie(&self, connector: &str) -> Result<Option<Vec<u8>>, AgentError> {
        let row = sqlx::query("SELECT cookie FROM cookies WHERE connector = $1")
            .bind(connector)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    /// Stores (or with `None` forgets) the delta cookie.
    pub async fn set_cookie(
        &self,
        connector: &str,
        cookie: Option<&[u8]>,
    ) -> Result<(), AgentError> {
        match cookie {
            Some(c) => {
                sqlx::query(
                    "INSERT INTO cookies (connector, cookie, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (connector) DO UPDATE SET cookie = excluded.cookie, updated_at = excluded.updated_at",
                )
                .bind(connector)
                .bind(c)
                .bind(crate::now())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM cookies WHERE connector = $1")
                    .bind(connector)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn get(
        &self,
        connector: &str,
        anchor: &str,
    ) -> Result<Option<SpaceObject>, AgentError> {
        let row = sqlx::query(
            "SELECT anchor, kind, dn, hash FROM objects WHERE connector = $1 AND anchor = $2",
        )
        .bind(connector)
        .bind(anchor)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| SpaceObject {
            anchor: r.get(0),
            kind: if r.get::<String, _>(1) == "group" {
                ObjectKind::Group
            } else {
                ObjectKind::User
            },
            dn: r.get(2),
            hash: r.get(3),
        }))
    }

    /// Marks an object as seen by a full import run.
    pub async fn mark_seen(
        &self,
        connector: &str,
        anchor: &str,
        run_id: &str,
    ) -> Result<(), AgentError> {
        sqlx::query("UPDATE objects SET last_seen_run = $3 WHERE connector = $1 AND anchor = $2")
            .bind(connector)
            .bind(anchor)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Anchors (and DNs) in the space that run `run_id` did not see.
    pub async fn unseen(
        &self,
        connector: &str,
        run_id: &str,
    ) -> Result<Vec<(String, String)>, AgentError> {
        let rows = sqlx::query(
            "SELECT anchor, dn FROM objects WHERE connector = $1 AND (last_seen_run IS NULL OR last_seen_run <> $2) ORDER BY anchor",
        )
        .bind(connector)
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Every anchor of a connector.
    pub async fn anchors(&self, connector: &str) -> Result<Vec<String>, AgentError> {
        let rows = sqlx::query("SELECT anchor FROM objects WHERE connector = $1")
            .bind(connector)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// (users, groups) in the space.
    pub async fn counts(&self, connector: &str) -> Result<(u64, u64), AgentError> {
        let rows =
            sqlx::query("SELECT kind, COUNT(*) FROM objects WHERE connector = $1 GROUP BY kind")
                .bind(connector)
                .fetch_all(&self.pool)
                .await?;
        let mut out = (0, 0);
        for r in rows {
            let n: i64 = r.get(1);
            if r.get::<String, _>(0) == "group" {
                out.1 = n as u64;
            } else {
                out.0 = n as u64;
            }
        }
        Ok(out)
    }

    /// The anchor of the object at `dn`, as last read from the directory.
    pub async fn anchor_at(&self, connector: &str, dn: &str) -> Result<Option<String>, AgentError> {
        let row = sqlx::query("SELECT anchor FROM dn_index WHERE connector = $1 AND dn_key = $2")
            .bind(connector)
            .bind(dn_key(dn))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Records that `anchor` is now at `dn` (forgetting where it was).
    pub async fn index_dn(
        &self,
        connector: &str,
        dn: &str,
        anchor: &str,
    ) -> Result<(), AgentError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM dn_index WHERE connector = $1 AND anchor = $2")
            .bind(connector)
            .bind(anchor)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO dn_index (connector, dn_key, anchor) VALUES ($1, $2, $3)
             ON CONFLICT (connector, dn_key) DO UPDATE SET anchor = excluded.anchor",
        )
        .bind(connector)
        .bind(dn_key(dn))
        .bind(anchor)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn unindex(&self, connector: &str, anchor: &str) -> Result<(), AgentError> {
        sqlx::query("DELETE FROM dn_index WHERE connector = $1 AND anchor = $2")
            .bind(connector)
            .bind(anchor)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The last known DN of an OU / container.
    /// The id (AD objectGUID in base64, OpenLDAP entryUUID) last seen at the OU `dn`.
    pub async fn container_at(
        &self,
        connector: &str,
        dn: &str,
    ) -> Result<Option<String>, AgentError> {
        let rows = sqlx::query("SELECT guid, dn FROM containers WHERE connector = $1")
            .bind(connector)
            .fetch_all(&self.pool)
            .await?;
        let key = dn_key(dn);
        Ok(rows
            .iter()
            .find(|r| dn_key(r.get::<&str, _>(1)) == key)
            .map(|r| r.get(0)))
    }

    pub async fn container(
        &self,
        connector: &str,
        guid: &str,
    ) -> Result<Option<String>, AgentError> {
        let row = sqlx::query("SELECT dn FROM containers WHERE connector = $1 AND guid = $2")
            .bind(connector)
            .bind(guid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn set_container(
        &self,
        connector: &str,
        guid: &str,
        dn: Option<&str>,
    ) -> Result<(), AgentError> {
        match dn {
            Some(dn) => {
                sqlx::query(
                    "INSERT INTO containers (connector, guid, dn) VALUES ($1, $2, $3)
                 ON CONFLICT (connector, guid) DO UPDATE SET dn = excluded.dn",
                )
                .bind(connector)
                .bind(guid)
                .bind(dn)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query("DELETE FROM containers WHERE connector = $1 AND guid = $2")
                    .bind(connector)
                    .bind(guid)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }

    /// The batches recorded and not yet committed here, in `seq` order, if the last run stopped
    /// in between (at most two).
    pub async fn inflight(&self, connector: &str) -> Result<Vec<SyncBatch>, AgentError> {
        let rows = sqlx::query(
            "SELECT batch FROM inflight_batches WHERE connector = $1 ORDER BY run_id, seq",
        )
        .bind(connector)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(&r.get::<String, _>(0))
                    .map_err(|e| AgentError::Config(format!("in-flight batch: {e}")))
            })
            .collect()
    }

    /// Records a batch before it is sent: `json` is the [`SyncBatch`] as sent.
    pub async fn set_inflight(
        &self,
        connector: &str,
        run_id: &str,
        seq: u32,
        json: &[u8],
    ) -> Result<(), AgentError> {
        let text = std::str::from_utf8(json)
            .map_err(|e| AgentError::Config(format!("in-flight batch: {e}")))?;
        sqlx::query(
            "INSERT INTO inflight_batches (connector, run_id, seq, batch, started_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (connector, run_id, seq) DO UPDATE SET batch = excluded.batch,
               started_at = excluded.started_at",
        )
        .bind(connector)
        .bind(run_id)
        .bind(seq)
        .bind(text)
        .bind(crate::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Drops the record of a batch that was recorded and never sent.
    pub async fn forget_inflight(
        &self,
        connector: &str,
        run_id: &str,
        seq: u32,
    ) -> Result<(), AgentError> {
        sqlx::query(
            "DELETE FROM inflight_batches WHERE connector = $1 AND run_id = $2 AND seq = $3",
        )
        .bind(connector)
        .bind(run_id)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes an accepted batch into the space and clears its in-flight record, in one
    /// transaction; with `cookie`, stores it in the same transaction.
    pub async fn commit_batch(
        &self,
        connector: &str,
        batch: &SyncBatch,
        cookie: Option<&[u8]>,
    ) -> Result<(), AgentError> {
        self.commit_answer(connector, batch, &[], cookie).await
    }

    /// [`Space::commit_batch`] for a batch the cloud answered with per-object `errors`: the
    /// upserts it refused are not recorded as exported (an update keeps the row of what the
    /// cloud last accepted) but as refused, for [`Space::refused`]; every other object of the
    /// batch leaves the refused list.
    pub async fn commit_answer(
        &self,
        connector: &str,
        batch: &SyncBatch,
        errors: &[SyncObjectError],
        cookie: Option<&[u8]>,
    ) -> Result<(), AgentError> {
        let refused: HashSet<&str> = errors.iter().map(|e| e.anchor.as_str()).collect();
        let (refused_upserts, upserts): (Vec<&SyncObject>, Vec<&SyncObject>) = batch
            .upserts
            .iter()
            .partition(|o| refused.contains(o.anchor.as_str()));
        let mut tx = self.pool.begin().await?;
        let now = crate::now();
        for o in &refused_upserts {
            sqlx::query(
                "INSERT INTO refused (connector, anchor, dn, run_id) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (connector, anchor) DO UPDATE SET dn = excluded.dn, run_id = excluded.run_id",
            )
            .bind(connector)
            .bind(&o.anchor)
            .bind(&o.attributes.distinguished_name)
            .bind(&batch.run_id)
            .execute(&mut *tx)
            .await?;
        }
        let cleared: Vec<&str> = upserts
            .iter()
            .map(|o| o.anchor.as_str())
            .chain(batch.deletes.iter().map(String::as_str))
            .filter(|a| !refused.contains(a))
            .collect();
        for chunk in cleared.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM refused WHERE connector = ? AND anchor IN ({})",
                marks(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(connector);
            for a in chunk {
                q = q.bind(*a);
            }
            q.execute(&mut *tx).await?;
        }
        // Multi-row statements: one per ROWS_PER_STATEMENT objects, rows in batch order (a later
        // row for the same anchor wins, as it did one statement per row).
        for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
            let rows = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO objects (connector, anchor, kind, dn, hash, last_seen_run, updated_at)
                 VALUES {rows}
                 ON CONFLICT (connector, anchor) DO UPDATE SET kind = excluded.kind, dn = excluded.dn,
                   hash = excluded.hash,
                   last_seen_run = excluded.last_seen_run, updated_at = excluded.updated_at"
            );
            let mut q = sqlx::query(&sql);
            for o in chunk {
                q = q
                    .bind(connector)
                    .bind(&o.anchor)
                    .bind(kind_text(o.kind))
                    .bind(&o.attributes.distinguished_name)
                    .bind(hash(o))
                    .bind(&batch.run_id)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in batch.deletes.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM objects WHERE connector = ? AND anchor IN ({})",
                marks(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(connector);
            for a in chunk {
                q = q.bind(a);
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query(
            "DELETE FROM inflight_batches WHERE connector = $1 AND run_id = $2 AND seq = $3",
        )
        .bind(connector)
        .bind(&batch.run_id)
        .bind(batch.seq)
        .execute(&mut *tx)
        .await?;
        if !batch.deletes.is_empty() {
            sqlx::query("INSERT INTO deletes_exported (connector, at, count) VALUES ($1, $2, $3)")
                .bind(connector)
                .bind(now)
                .bind(batch.deletes.len() as i64)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(c) = cookie {
            sqlx::query(
                "INSERT INTO cookies (connector, cookie, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (connector) DO UPDATE SET cookie = excluded.cookie, updated_at = excluded.updated_at",
            )
            .bind(connector)
            .bind(c)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many deletes of `connector` the cloud accepted at or after `since` (Unix seconds);
    /// older records are dropped.
    pub async fn deletes_since(&self, connector: &str, since: i64) -> Result<u32, AgentError> {
        sqlx::query("DELETE FROM deletes_exported WHERE connector = $1 AND at < $2")
            .bind(connector)
            .bind(since)
            .execute(&self.pool)
            .await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(count), 0) FROM deletes_exported WHERE connector = $1",
        )
        .bind(connector)
        .fetch_one(&self.pool)
        .await?;
        Ok(n.clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// Forgets the deletes counted for the window (an administrator released them).
    pub async fn forget_deletes(&self, connector: &str) -> Result<(), AgentError> {
        sqlx::query("DELETE FROM deletes_exported WHERE connector = $1")
            .bind(connector)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The objects the cloud refused in a run other than `run_id` (anchor, DN), to send again.
    pub async fn refused(
        &self,
        connector: &str,
        run_id: &str,
    ) -> Result<Vec<(String, String)>, AgentError> {
        let rows = sqlx::query(
            "SELECT anchor, dn FROM refused WHERE connector = $1 AND run_id <> $2 ORDER BY anchor",
        )
        .bind(connector)
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("anchor"), r.get("dn")))
            .collect())
    }

    /// Takes `anchor` off the refused list (gone from the directory, or nothing to send),
    /// unless run `run_id` had it refused again.
    pub async fn forget_refused(
        &self,
        connector: &str,
        anchor: &str,
        run_id: &str,
    ) -> Result<(), AgentError> {
        sqlx::query("DELETE FROM refused WHERE connector = $1 AND anchor = $2 AND run_id <> $3")
            .bind(connector)
            .bind(anchor)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The stored hash of each of `anchors` that is in the space (one query per
    /// [`ROWS_PER_STATEMENT`] anchors, instead of one [`Space::get`] each).
    pub async fn hashes(
        &self,
        connector: &str,
        anchors: &[String],
    ) -> Result<HashMap<String, String>, AgentError> {
        let mut out = HashMap::new();
        for chunk in anchors.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT anchor, hash FROM objects WHERE connector = ? AND anchor IN ({})",
                marks(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(connector);
            for a in chunk {
                q = q.bind(a);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(r.get(0), r.get(1));
            }
        }
        Ok(out)
    }

    /// The anchors of the objects at `dns`, as last read from the directory, keyed by
    /// [`dn_key`] (what [`Space::anchor_at`] answers, for many DNs at once).
    pub async fn anchors_at(
        &self,
        connector: &str,
        dns: &[String],
    ) -> Result<HashMap<String, String>, AgentError> {
        let keys: Vec<String> = dns.iter().map(|d| dn_key(d)).collect();
        let mut out = HashMap::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT dn_key, anchor FROM dn_index WHERE connector = ? AND dn_key IN ({})",
                marks(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(connector);
            for k in chunk {
                q = q.bind(k);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(r.get(0), r.get(1));
            }
        }
        Ok(out)
    }

    /// What a page of a full import changes in the DN index and the seen marks, in one
    /// transaction: the same as [`Space::index_dn`], [`Space::unindex`] and
    /// [`Space::mark_seen`] for each, when no anchor appears twice in `page`.
    pub async fn apply_page(
        &self,
        connector: &str,
        run_id: &str,
        page: &PageWrites,
    ) -> Result<(), AgentError> {
        let mut tx = self.pool.begin().await?;
        let forget: Vec<&String> = page
            .index
            .iter()
            .map(|(_, a)| a)
            .chain(page.unindex.iter())
            .collect();
        for chunk in forget.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM dn_index WHERE connector = ? AND anchor IN ({})",
                marks(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(connector);
            for a in chunk {
                q = q.bind(*a);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in page.index.chunks(ROWS_PER_STATEMENT) {
            let rows = vec!["(?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO dn_index (connector, dn_key, anchor) VALUES {rows}
                 ON CONFLICT (connector, dn_key) DO UPDATE SET anchor = excluded.anchor"
            );
            let mut q = sqlx::query(&sql);
            for (dn, a) in chunk {
                q = q.bind(connector).bind(dn_key(dn)).bind(a);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in page.seen.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE objects SET last_seen_run = ? WHERE connector = ? AND anchor IN ({})",
                marks(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(run_id).bind(connector);
            for a in chunk {
                q = q.bind(a);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Keeps the last run report per connector (for `agent status`).
    pub async fn set_last_run(&self, connector: &str, run: &SyncRun) -> Result<(), AgentError> {
        let text = serde_json::to_string(run).map_err(|e| AgentError::Config(e.to_string()))?;
        sqlx::query(
            "INSERT INTO runs (connector, run) VALUES ($1, $2)
             ON CONFLICT (connector) DO UPDATE SET run = excluded.run",
        )
        .bind(connector)
        .bind(text)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn last_run(&self, connector: &str) -> Result<Option<SyncRun>, AgentError> {
        let row = sqlx::query("SELECT run FROM runs WHERE connector = $1")
            .bind(connector)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| serde_json::from_str(&r.get::<String, _>(0)).ok()))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::sync::SyncAttributes;

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_and_its_wal_and_shm_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let space = Space::open(dir.path()).await.unwrap();
        space.remember_tracking_id("t-1", 100, 1, 10).await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.path().join(format!("connector-space.db{suffix}"));
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }

    fn obj(anchor: &str, dn: &str) -> SyncObject {
        SyncObject {
            anchor: anchor.into(),
            kind: ObjectKind::User,
            attributes: SyncAttributes {
                distinguished_name: dn.into(),
                ..Default::default()
            },
            members: vec![],
        }
    }

    #[tokio::test]
    async fn page_writes_and_bulk_reads_match_the_per_object_calls() {
        let dir = tempfile::tempdir().unwrap();
        let s = Space::open(dir.path()).await.unwrap();
        let objects: Vec<SyncObject> = (0..450)
            .map(|i| obj(&format!("a{i}"), &format!("CN=U{i},DC=x")))
            .collect();
        let batch = SyncBatch {
            run_id: "r1".into(),
            seq: 0,
            upserts: objects.clone(),
            deletes: vec![],
        };
        s.commit_batch("c", &batch, None).await.unwrap();
        for o in &objects {
            s.index_dn("c", &o.attributes.distinguished_name, &o.anchor)
                .await
                .unwrap();
        }
        let mut anchors: Vec<String> = objects.iter().map(|o| o.anchor.clone()).collect();
        anchors.push("not-there".into());
        let hashes = s.hashes("c", &anchors).await.unwrap();
        assert_eq!(hashes.len(), 450);
        assert_eq!(hashes["a7"], s.get("c", "a7").await.unwrap().unwrap().hash);

        // a0 moved, a1 is no longer indexed, a2 seen where it was; the others not seen.
        let page = PageWrites {
            index: vec![
                ("CN=Moved,DC=x".into(), "a0".into()),
                ("CN=U2,DC=x".into(), "a2".into()),
            ],
            unindex: vec!["a1".into()],
            seen: vec!["a0".into(), "a2".into()],
        };
        s.apply_page("c", "r2", &page).await.unwrap();
        let dns: Vec<String> = [
            "cn=moved, dc=x",
            "CN=U0,DC=x",
            "CN=U1,DC=x",
            "CN=U2,DC=x",
            "CN=U3,DC=x",
        ]
        .iter()
        .map(|d| d.to_string())
        .collect();
        let at = s.anchors_at("c", &dns).await.unwrap();
        for dn in &dns {
            assert_eq!(
                at.get(&dn_key(dn)).cloned(),
                s.anchor_at("c", dn).await.unwrap(),
                "{dn}"
            );
        }
        assert_eq!(
            s.anchor_at("c", "CN=Moved,DC=x").await.unwrap().as_deref(),
            Some("a0")
        );
        assert!(s.anchor_at("c", "CN=U0,DC=x").await.unwrap().is_none());
        assert!(s.anchor_at("c", "CN=U1,DC=x").await.unwrap().is_none());
        let unseen = s.unseen("c", "r2").await.unwrap();
        assert_eq!(unseen.len(), 448);
        assert!(!unseen.iter().any(|(a, _)| a == "a0" || a == "a2"));
    }

    /// A space written by an older agent, with the exported JSON column and the one-row
    /// in-flight table, opens in the new shape and keeps its rows and its batch in flight.
    #[tokio::test]
    async fn an_older_space_loses_its_exported_column_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connector-space.db");
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true);
        let old = SqlitePool::connect_with(opts).await.unwrap();
        sqlx::query(
            "CREATE TABLE objects (
                connector TEXT NOT NULL, anchor TEXT NOT NULL, kind TEXT NOT NULL, dn TEXT NOT NULL,
                hash TEXT NOT NULL, exported TEXT NOT NULL, last_seen_run TEXT, updated_at INTEGER NOT NULL,
                PRIMARY KEY (connector, anchor))",
        )
        .execute(&old)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO objects VALUES ('c', 'a', 'user', 'CN=A,DC=x', 'h1', '{}', 'r1', 1)",
        )
        .execute(&old)
        .await
        .unwrap();
        sqlx::query(
            "CREATE TABLE inflight (
                connector TEXT PRIMARY KEY, batch TEXT NOT NULL, started_at INTEGER NOT NULL)",
        )
        .execute(&old)
        .await
        .unwrap();
        let left = SyncBatch {
            run_id: "r0".into(),
            seq: 3,
            upserts: vec![obj("z", "CN=Z,DC=x")],
            deletes: vec!["y".into()],
        };
        sqlx::query("INSERT INTO inflight VALUES ('c', $1, 1)")
            .bind(serde_json::to_string(&left).unwrap())
            .execute(&old)
            .await
            .unwrap();
        old.close().await;

        let s = Space::open(dir.path()).await.unwrap();
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('objects')")
                .fetch_all(&s.pool)
                .await
                .unwrap();
        assert!(!columns.iter().any(|c| c == "exported"), "{columns:?}");
        assert_eq!(s.get("c", "a").await.unwrap().unwrap().hash, "h1");
        // The batch an older agent left in flight is still there to replay, under its run and seq.
        assert_eq!(s.inflight("c").await.unwrap(), vec![left.clone()]);
        s.commit_batch("c", &left, None).await.unwrap();
        assert!(s.inflight("c").await.unwrap().is_empty());
        // And it takes new batches in the new shape.
        let batch = SyncBatch {
            run_id: "r2".into(),
            seq: 0,
            upserts: vec![obj("b", "CN=B,DC=x")],
            deletes: vec![],
        };
        s.commit_batch("c", &batch, None).await.unwrap();
        // a, z (the replayed batch) and b.
        assert_eq!(s.counts("c").await.unwrap(), (3, 0));
    }

    #[tokio::test]
    async fn accepted_batches_survive_a_reopen_and_unseen_rows_become_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Space::open(dir.path()).await.unwrap();
        let batch = SyncBatch {
            run_id: "r1".into(),
            seq: 0,
            upserts: vec![obj("a", "CN=A,DC=x"), obj("b", "CN=B,DC=x")],
            deletes: vec![],
        };
        // Recorded ahead: the next batch of the run beside it, then committed one by one.
        let next = SyncBatch {
            seq: 1,
            upserts: vec![obj("c", "CN=C,DC=x")],
            ..batch.clone()
        };
        for b in [&next, &batch] {
            s.set_inflight("c", &b.run_id, b.seq, &serde_json::to_vec(b).unwrap())
                .await
                .unwrap();
        }
        assert_eq!(
            s.inflight("c").await.unwrap(),
            vec![batch.clone(), next.clone()]
        );
        s.commit_batch("c", &batch, Some(b"cookie1")).await.unwrap();
        assert_eq!(s.inflight("c").await.unwrap(), vec![next.clone()]);
        s.forget_inflight("c", "r1", 1).await.unwrap();
        assert!(s.inflight("c").await.unwrap().is_empty());
        s.close().await;

        let s = Space::open(dir.path()).await.unwrap();
        assert_eq!(
            s.cookie("c").await.unwrap().as_deref(),
            Some(&b"cookie1"[..])
        );
        let a = s.get("c", "a").await.unwrap().unwrap();
        assert_eq!(a.hash, hash(&obj("a", "CN=A,DC=x")));
        s.mark_seen("c", "a", "r2").await.unwrap();
        assert_eq!(
            s.unseen("c", "r2").await.unwrap(),
            vec![("b".to_string(), "CN=B,DC=x".to_string())]
        );
        assert!(s.get("other", "a").await.unwrap().is_none());

        s.index_dn("c", "CN=A,DC=x", "a").await.unwrap();
        s.index_dn("c", "CN=A2, DC=x", "a").await.unwrap();
        assert_eq!(
            s.anchor_at("c", "cn=a2,dc=x").await.unwrap().as_deref(),
            Some("a")
        );
        assert!(s.anchor_at("c", "CN=A,DC=x").await.unwrap().is_none());
    }
}
